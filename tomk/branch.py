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
"""
from __future__ import annotations

import json
import os
import shutil

from tomk import config as config_lib
from tomk import curriculum
from tomk import provenance

# What the whole curriculum looks like, not what one stage does.
CURRICULUM_KEYS = ('curriculum', 'stages')


def _stage_json(stage_config) -> dict:
  data = config_lib.to_json(stage_config)
  for key in CURRICULUM_KEYS:
    data.pop(key, None)
  return config_lib.flatten(data)


def shared_stages(config, source: str) -> tuple[list[str], str]:
  """(names of `config`'s leading stages that `source` ran with equal configs, why the
  next stage is not shared)."""
  mine, theirs = curriculum.stages(config), curriculum.stages(config_lib.load(source))
  shared = []
  for (name, stage_config), (other, other_config) in zip(mine, theirs):
    if name != other:
      return shared, f'stage {len(shared) + 1} is {name} here, {other} there'
    a, b = _stage_json(stage_config), _stage_json(other_config)
    differ = config_lib.differing_keys(a, b)
    if differ:
      return shared, f'{name} differs in {", ".join(differ[:6])}' + (' ...' if differ[6:] else '')
    shared.append(name)
  if len(mine) <= len(theirs):
    return shared, 'every stage is shared'
  return shared, f'{source} has no stage {mine[len(shared)][0]}'


def plan(config, source: str, finished) -> tuple[list[str], str]:
  """(the shared stages `source` finished, why the next is not copied); an error if none.

  finished(workdir, stage, stage_config) -> the stage's last saved step or None.
  """
  shared, why = shared_stages(config, source)
  stages = dict(curriculum.stages(config))
  done = []
  for name in shared:
    if finished(source, name, stages[name]) != stages[name].steps:
      why = f'{source} has not finished {name}'
      break
    done.append(name)
  if not done:
    raise ValueError(f'--branch_from={source} shares no finished stage with this config '
                     f'({why}); train from scratch without --branch_from.')
  return done, why


def copy_stages(config, source: str, workdir: str, done: list[str], why: str) -> None:
  """Copies the stages `done` (plan()) from `source` into the new `workdir`, over any
  partial copy an interrupted branch left (its caller writes config.json after this)."""
  stages = dict(curriculum.stages(config))
  for name in done:
    checkpoint = os.path.join('checkpoints', name, str(stages[name].steps))
    if os.path.isdir(os.path.join(source, checkpoint)):
      shutil.copytree(os.path.join(source, checkpoint), os.path.join(workdir, checkpoint),
                      dirs_exist_ok=True)
    if stages[name].algorithm == 'reward_model':
      shutil.copytree(os.path.join(source, 'reward_model'), os.path.join(workdir, 'reward_model'),
                      dirs_exist_ok=True)
    evaluated = os.path.join('eval', f'{name}.json')
    if os.path.exists(os.path.join(source, evaluated)):
      os.makedirs(os.path.join(workdir, 'eval'), exist_ok=True)
      shutil.copy2(os.path.join(source, evaluated), os.path.join(workdir, evaluated))
  with open(os.path.join(source, 'metrics.jsonl')) as f:
    records = [line for line in f if line.strip() and json.loads(line).get('stage') in done]
  path = os.path.join(workdir, 'metrics.jsonl')
  with open(path + '.tmp', 'w') as f:
    f.writelines(records)
  os.replace(path + '.tmp', path)
  print(f'[branch] copied {", ".join(done)} from {source} (equal stage configs); '
        f'training from here: {why}', flush=True)
  # Equal configs give equal stages only under the same code.
  theirs = ((provenance.read(source) or {}).get('git') or {}).get('commit')
  mine = (provenance.git_state() or {}).get('commit')
  if theirs and mine and theirs != mine:
    print(f'[branch] note: {source} ran at commit {theirs[:12]}, this is {mine[:12]}; the '
          f'copied stages are that code\'s', flush=True)
