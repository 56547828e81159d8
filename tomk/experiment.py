"""An experiment: a curriculum of stages run in one workdir (SPEC §3, §7).

  experiment.run(config, workdir)     python -m tomk.main calls it

In the order of the work: every setting of every stage checked (check), the workdir's
config.json and provenance, a branch's copied stages (tomk.branch), the mesh, tokenizer
and held-out batches all stages share, where to resume (the first stage whose last step
is not saved), then each stage trained (tomk.train.run_stage) and evaluated as it ends
(SPEC §6: eval/<stage>.json), and at the end eval.json, provenance and report.md.
"""
from __future__ import annotations

import jax
import numpy as np

from tomk import (algorithms, branch, checkpoints, config as config_lib, curriculum, evaluation,
                  metrics as metrics_lib, model, optimizer, provenance, report, rundir, sharding,
                  train)
from tomk.data import pipeline
from tomk.foundation import convert


def check(config, workdir: str | None = None, device_count: int | None = None) -> list:
  """Every stage of `config` checked by each module that owns some of its settings, and the
  workdir, before anything runs: every problem found, reported together (config.Problems).
  Returns the stages (curriculum.stages)."""
  stages = curriculum.stages(config)      # a bad curriculum is one problem, found alone
  checker = config_lib.Checker()
  where = {}           # problem -> the stages that have it
  for name, stage_config in stages:
    stage = config_lib.Checker()
    for check_settings in (config_lib.check, algorithms.check, pipeline.check, train.check,
                           evaluation.check, optimizer.check, model.check, convert.check):
      stage.run(check_settings, stage_config)
    stage.run(sharding.check_mesh, stage_config, device_count)
    for message in stage.messages:
      where.setdefault(message, []).append(name)
  for message, names in where.items():
    checker.require(False, message if len(names) == len(stages) else
                    f'(stage{"s" * (len(names) > 1)} {", ".join(names)}) {message}')
  if workdir is not None:
    checker.run(rundir.check_workdir, workdir)
    checker.run(pipeline.check_data_dir, config.data)
  checker.done()
  return stages


def run(config, workdir: str, branch_from: str | None = None) -> dict:
  """Trains `config` in `workdir` stage by stage, resuming from the last checkpoint.

  branch_from: a workdir whose leading stages equal this config's; a new workdir starts
  with copies of those it finished (tomk/branch.py).
  """
  # --- Settings, workdir and config ----------------------------------------------------------
  stages = check(config, workdir)
  if branch_from and jax.process_count() > 1:
    raise ValueError('--branch_from runs in one process; branch first, then resume the new '
                     'workdir with all processes.')
  new = not rundir.is_run(workdir)
  if branch_from and not new:
    print(f'[branch] {workdir} has started before: resuming it, nothing copied', flush=True)
  if jax.process_index() == 0:
    if branch_from and new:
      # config.json last: a copy cut short leaves a workdir that is still new, copied again.
      branch.copy_stages(config, branch_from, workdir, *branch.plan(config, branch_from))
    rundir.write_config(workdir, config)
  provenance.record_start(workdir, config, branched_from=branch_from if new else None)

  # --- Mesh, tokenizer and held-out batches (shared by every stage) ---------------------------
  mesh = sharding.make_mesh(config.mesh)     # (its fit to the batch: check, above)
  tokenizer = pipeline.tokenizer_for(config.data)
  eval_batches = [sharding.global_batch(b, sharding.batch_sharding(mesh)) for b in
                  pipeline.eval_batches(config.data, tokenizer, 'validation',
                                        global_batch_size=config.batch_size,
                                        num_batches=config.eval_batches,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count())]

  # --- Where to resume: the first stage whose last step is not saved --------------------------
  offsets = np.cumsum([0] + [c.steps for _, c in stages]).tolist()
  resume_step, unfinished = None, None
  for (name, stage_config), offset in zip(stages, offsets):
    if unfinished:
      # Checkpoints after an unfinished stage exist only when that stage's newest checkpoint
      # was unreadable: they are redone from it, as their metrics are.
      checkpoints.set_aside_stage(workdir, name, stage_config, f'{unfinished} resumes before '
                                  f'its end')
      continue
    latest = checkpoints.latest_step(workdir, name, stage_config, repair=True)
    if latest is not None:
      resume_step = offset + latest
    if latest is None or latest < stage_config.steps:
      unfinished = name
  writer = metrics_lib.Writer(workdir, resume_step=resume_step)

  # --- Stages, each evaluated (SPEC §6) when it ends: eval/<stage>.json -----------------------
  # (an interleaved stage only after its last sub-stage: curriculum.evaluated)
  params, summary, results = None, {}, None
  evaluated = curriculum.evaluated(stages)
  # A run from a pretrained model evaluates it (as load_run imports it) before its policy trains.
  imported_before = _first_policy_stage(stages) if config.model.init_from else None
  for (name, stage_config), offset in zip(stages, offsets):
    if name == imported_before:
      _evaluate_imported(workdir)
    params, summary = train.run_stage(stage_config, name, workdir, mesh, tokenizer,
                                      eval_batches, writer, offset, params)
    if name in evaluated:
      results = _evaluate_stage(workdir, stages, name,
                                signal=name in _signal_stages(stages, evaluated)) or results
  writer.close()

  # --- The last stage's evaluation is the run's (eval.json); report.md and plots --------------
  if results is not None:
    evaluation.save(workdir, results)
  summary['eval'] = results
  provenance.record_end(workdir, summary)
  if jax.process_index() == 0:
    print(report.write(workdir, plots=report.plots_wanted()), flush=True)
  return summary


def _signal_stages(stages, evaluated) -> list[str]:
  """Where the kindness-signal check runs (it samples many replies): at the end of the last
  stage and, when that is an RL stage, of the one before it, whose policy it starts from."""
  final_rl = algorithms.get(stages[-1][1].algorithm).DATA == 'prompts'
  return evaluated[-2:] if final_rl else evaluated[-1:]


def _first_policy_stage(stages) -> str | None:
  """The first stage that trains the policy (a curriculum may open with reward_model)."""
  return next((name for name, _ in stages if curriculum.policy_stage(stages, name) == name), None)


def _evaluate_imported(workdir):
  """The checkpoint the run starts from, before its first step (eval/imported.json): the
  'before' of a run from a pretrained model, scored by the reward model trained so far."""
  if evaluation.load(workdir, checkpoints.IMPORTED) is not None:
    if jax.process_index() == 0:
      print(f'[{checkpoints.IMPORTED}] evaluated before: '
            f'{rundir.eval_path(workdir, checkpoints.IMPORTED)}', flush=True)
    return
  evaluation.run(workdir, stage=checkpoints.IMPORTED, signal=True)


def _evaluate_stage(workdir, stages, stage, signal):
  """Evaluates the parameters `stage` ended with into eval/<stage>.json, unless done before."""
  policy = curriculum.policy_stage(stages, stage)
  if policy is None:         # no stage so far trained the policy (a curriculum opening with
    return None              # reward_model): nothing to evaluate
  step = dict(stages)[policy].steps
  saved = evaluation.load(workdir, stage)
  if saved is not None and saved['step'] == step:
    lacks_signal = (signal and dict(stages)[stage].evaluation.signal_scenarios_per_family
                    and 'kindness_signal' not in saved)
    if not lacks_signal:
      if jax.process_index() == 0:
        print(f'[{stage}] evaluated before: {rundir.eval_path(workdir, stage)}', flush=True)
      return saved
    # Evaluated before the signal check was due here (a branch copied the evaluation of a
    # stage that was not the one before its source's final RL): the check, the rest kept.
    return evaluation.run(workdir, step, stage=stage, keep=saved, signal=True)
  # A stage that left the policy as the stage before it did (reward_model) changes only
  # the reward-model score: keep the rest of that stage's evaluation.
  index, keep = [name for name, _ in stages].index(stage), None
  if index and curriculum.policy_stage(stages, stages[index - 1][0]) == policy:
    keep = evaluation.load(workdir, stages[index - 1][0])
    keep = keep if keep is not None and keep['step'] == step else None
  return evaluation.run(workdir, step, stage=stage, keep=keep, signal=signal)
