"""Branching a run from another: the stages two curricula share are trained once.

configs/rlhf.py and configs/naive_kindness.py run configs/empathy.py's curriculum with
another last stage. A stage's result depends only on its own resolved config, the stages
before it and the seed (data order, prompts and samples draw from seeds derived from the
seed, the stage's name and its cycle), so the leading stages whose configs are equal end
in the same bytes in both runs (tests/test_configs.py checks this). With

  python -m tomk.main --config=configs/rlhf.py --workdir=runs/rlhf --branch_from=runs/empathy

a new workdir starts with copies of those stages from runs/empathy (their last checkpoint,
the reward model, eval/<stage>.json and their metrics.jsonl records) and trains only the
stages that differ. TensorBoard events are not copied: the copied stages' curves are in
the source's tensorboard/ and in metrics.jsonl. A workdir that has started already is
resumed as usual; --branch_from then copies nothing.

Settings of the evaluation (config.evaluation) never change what a stage trains: a stage
whose config differs from the source's only there is shared too, its checkpoint copied
and its evaluation made again under this run's settings (e.g. more scenarios a family).
"""
from __future__ import annotations

import json
import os
import shutil

from tomk import algorithms
from tomk import checkpoints
from tomk import config as config_lib
from tomk import curriculum
from tomk import provenance
from tomk import rundir

# What the whole curriculum looks like, not what one stage does.
CURRICULUM_KEYS = ('curriculum', 'stages')
# What a stage is scored on, not what it trains.
EVALUATION_KEY = 'evaluation'


def _stage_json(stage_config, evaluation=True) -> dict:
  data = config_lib.to_json(stage_config)
  for key in CURRICULUM_KEYS + (() if evaluation else (EVALUATION_KEY,)):
    del data[key]
  return rundir.flatten(data)


def _remove_evaluation(workdir: str, stage: str) -> None:
  for path in (rundir.eval_path, rundir.scenarios_path):
    if os.path.exists(path(workdir, stage)):
      os.remove(path(workdir, stage))


def shared_stages(config, source: str) -> tuple[list[str], str]:
  """(names of `config`'s leading stages that `source` ran with configs equal but for the
  evaluation settings, why the next stage is not shared)."""
  mine = curriculum.stages(config)
  theirs = curriculum.stages(rundir.read_config(source))
  shared = []
  for (name, stage_config), (other, other_config) in zip(mine, theirs):
    if name != other:
      return shared, f'stage {len(shared) + 1} is {name} here, {other} there'
    a, b = _stage_json(stage_config, False), _stage_json(other_config, False)
    differ = rundir.differing_keys(a, b)
    if differ:
      return shared, f'{name} differs in {", ".join(differ[:6])}' + (' ...' if differ[6:] else '')
    shared.append(name)
  if len(mine) <= len(theirs):
    return shared, 'every stage is shared'
  return shared, f'{source} has no stage {mine[len(shared)][0]}'


def plan(config, source: str) -> tuple[list[str], str]:
  """(the shared stages `source` finished, why the next is not copied); an error if none."""
  shared, why = shared_stages(config, source)
  stages = dict(curriculum.stages(config))
  done = []
  for name in shared:
    if checkpoints.latest_step(source, name, stages[name]) != stages[name].steps:
      why = f'{source} has not finished {name}'
      break
    done.append(name)
  if not done:
    raise ValueError(f'--branch_from={source} shares no finished stage with this config '
                     f'({why}); train from scratch without --branch_from.')
  return done, why


def copy_stages(config, source: str, workdir: str, done: list[str], why: str) -> None:
  """Copies the stages `done` (plan()) from `source` into the new `workdir`, over any
  partial copy an interrupted branch left (its caller writes config.json after this).
  Their evaluations come along where the evaluation settings are equal; the run makes the
  others again."""
  stages = dict(curriculum.stages(config))
  theirs_config = dict(curriculum.stages(rundir.read_config(source)))
  reevaluated = []
  for name in done:
    step = str(stages[name].steps)
    checkpoint = os.path.join(rundir.checkpoint_dir(source, name), step)
    if os.path.isdir(checkpoint):
      shutil.copytree(checkpoint, os.path.join(rundir.checkpoint_dir(workdir, name), step),
                      dirs_exist_ok=True)
    if algorithms.forks_trainer(algorithms.get(stages[name].algorithm)):   # its own model
      shutil.copytree(rundir.reward_model_dir(source), rundir.reward_model_dir(workdir),
                      dirs_exist_ok=True)
    # Shared stages differ at most in their evaluation settings.
    if _stage_json(stages[name]) != _stage_json(theirs_config[name]):
      reevaluated.append(name)
      _remove_evaluation(workdir, name)        # what an interrupted earlier copy left
      continue
    for path in (rundir.eval_path, rundir.scenarios_path):     # the evaluation, its rows
      if os.path.exists(path(source, name)):
        os.makedirs(os.path.dirname(path(workdir, name)), exist_ok=True)
        shutil.copy2(path(source, name), path(workdir, name))
  # The evaluation of an imported model (experiment._evaluate_imported), made after the
  # first copied stage at the latest: equal configs import and score it alike.
  if reevaluated:
    _remove_evaluation(workdir, checkpoints.IMPORTED)
  for path in (rundir.eval_path, rundir.scenarios_path):
    if done and not reevaluated and os.path.exists(path(source, checkpoints.IMPORTED)):
      os.makedirs(os.path.dirname(path(workdir, checkpoints.IMPORTED)), exist_ok=True)
      shutil.copy2(path(source, checkpoints.IMPORTED), path(workdir, checkpoints.IMPORTED))
  # The records as written (bytes, old metric names and all): the copied stages are that
  # run's.
  with open(rundir.metrics_path(source)) as f:
    records = [line for line in f if line.strip() and json.loads(line)['stage'] in done]
  rundir.write_text(rundir.metrics_path(workdir), ''.join(records))
  print(f'[branch] copied {", ".join(done)} from {source} (equal stage configs'
        f'{", but for the evaluation" if reevaluated else ""}); training from here: {why}',
        flush=True)
  if reevaluated:
    print(f'[branch] {", ".join(reevaluated)}: evaluated again here (other evaluation '
          f'settings than {source}\'s)', flush=True)
  # Equal configs give equal stages only under the same code.
  theirs = ((provenance.read(source) or {}).get('git') or {}).get('commit')
  mine = (provenance.git_state() or {}).get('commit')
  if theirs and mine and theirs != mine:
    print(f'[branch] note: {source} ran at commit {theirs[:12]}, this is {mine[:12]}; the '
          f'copied stages are that code\'s', flush=True)
