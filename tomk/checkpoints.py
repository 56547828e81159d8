"""Checkpoints: where each stage's checkpoints live, which step a stage reached, and a run's parameters.

Each stage of a run keeps orbax checkpoints in W/checkpoints/<stage>/<step>/ holding the
train state (tomk.train.make_state: step, params, opt_state, nonfinite_step and, for RL
stages, the frozen reference policy) and the data iterator's state. A stage that forks a
trainer of its own (reward_model) keeps its model elsewhere and counts as finished once
that model is saved.

The parameter tree is a contract: {'perception': {...}, 'behavior': {...}, 'prediction':
{...}} as tomk.model lays it out, which every saved run holds (tests/test_old_runs.py
reads a run committed under tests/fixtures/). A change to it comes with a conversion of old
checkpoints here, applied where they are read.
"""
from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from tomk import algorithms, curriculum, rundir
from tomk.data import pipeline
from tomk.foundation import convert
from tomk.model import Model, ModelConfig


def manager(workdir: str, stage: str, keep: int | None = None) -> ocp.CheckpointManager:
  """The stage's CheckpointManager; with `keep`, one that saves (asynchronously), keeping
  the last `keep` checkpoints."""
  if keep is None:
    return ocp.CheckpointManager(rundir.checkpoint_dir(workdir, stage))
  return ocp.CheckpointManager(
      rundir.checkpoint_dir(workdir, stage),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True))


def latest_step(workdir: str, stage: str, config, repair: bool = False) -> int | None:
  """The last step of `stage` that is saved (and, with `repair`, readable), or None.

  repair (a run resuming its own workdir): a checkpoint that does not read back whole (a
  truncated file, garbage metadata, a missing directory: faults of the disk, not of a
  kill, since orbax renames a checkpoint into place only once written) is reported and
  moved aside (unreadable_dir), and the one before it is used: the run resumes from the
  last good checkpoint. Every process judges the same files; process 0 moves them.
  """
  algorithm = algorithms.get(config.algorithm)
  if algorithms.forks_trainer(algorithm):
    # Saved once, when trained; until then the stage has not started (its metrics, if any,
    # are redone).
    return config.steps if algorithm.trained(workdir) else None
  if not os.path.isdir(rundir.checkpoint_dir(workdir, stage)):
    return None
  with manager(workdir, stage) as m:
    steps = sorted(m.all_steps(), reverse=True)
  for step in steps:
    problem = unreadable(workdir, stage, step) if repair else None
    if problem is None:
      return step
    # Every process reads the same files and so reaches the same step; process 0 moves them.
    if jax.process_index() == 0:
      set_aside(workdir, stage, step, f'it does not read back ({problem}); the run resumes '
                f'from the checkpoint before it')
  return None


def unreadable(workdir: str, stage: str, step: int) -> str | None:
  """Why checkpoint `step` of `stage` does not read back whole, or None if it does."""
  path = os.path.join(rundir.checkpoint_dir(workdir, stage), str(step))
  try:
    if host_state(workdir, stage, step) is None:
      raise FileNotFoundError(f'{path}/state is missing')
    with open(os.path.join(path, '_CHECKPOINT_METADATA')) as f:
      json.load(f)
    data = os.path.join(path, 'data')        # the grain iterator's state, JSON per process
    for name in sorted(os.listdir(data)) if os.path.isdir(data) else []:
      if not name.endswith('.json'):
        continue
      with open(os.path.join(data, name)) as f:
        json.load(f)
  except Exception as e:  # noqa: BLE001 — whatever orbax, tensorstore or json raise
    _quiet_cancelled_reads()
    return f'{type(e).__name__}: {" ".join(str(e).split())[:200]}'
  return None


def _quiet_cancelled_reads():
  """After a failed read, tensorstore's cancelled reads call back into orbax's closed event
  loop, and Python prints each as an unraisable RuntimeError('Event loop is closed'): dropped
  (every other unraisable exception is printed as before)."""
  default = sys.unraisablehook
  if getattr(default, 'tomk_quiet', False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == 'Event loop is closed'):
      default(unraisable)
  hook.tomk_quiet = True
  sys.unraisablehook = hook


def set_aside(workdir: str, stage: str, step: int, problem: str) -> None:
  """Moves checkpoint `step` of `stage` to W/checkpoints-unreadable/ and says why (process 0
  only: latest_step and set_aside_stage call it there)."""
  source = os.path.join(rundir.checkpoint_dir(workdir, stage), str(step))
  target = os.path.join(rundir.unreadable_dir(workdir), stage.replace('/', '_'), str(step))
  n = 0
  while os.path.exists(f'{target}.{n}' if n else target):
    n += 1
  target = f'{target}.{n}' if n else target
  os.makedirs(os.path.dirname(target), exist_ok=True)
  os.replace(source, target)
  print(f'[{stage}] checkpoint of step {step} set aside to {target}: {problem}.', flush=True)


def host_state(workdir: str, stage: str, step: int) -> dict | None:
  """The train state saved at `step` of `stage`, as host numpy arrays (no mesh needed), or
  None if there is no such checkpoint."""
  path = os.path.join(rundir.checkpoint_dir(workdir, stage), str(step), 'state')
  if not os.path.isdir(path):
    return None
  # Into host numpy arrays: without a target orbax restores the saved sharding, which in a
  # multi-process run spans devices this process cannot address.
  saved = ocp.StandardCheckpointHandler().metadata(epath.Path(path))
  target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), dict(saved))
  checkpointer = ocp.StandardCheckpointer()
  try:
    return checkpointer.restore(path, target)
  finally:
    checkpointer.close()      # after a failed read, see _quiet_cancelled_reads


def flat(tree) -> dict[str, np.ndarray]:
  """{'params/behavior/...': array} of a nested tree."""
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def set_aside_stage(workdir: str, stage: str, config, why: str) -> None:
  """Sets aside every checkpoint of `stage` (see set_aside), saying `why`."""
  if algorithms.forks_trainer(algorithms.get(config.algorithm)):
    return            # its model does not depend on the stages before it
  if jax.process_index() == 0 and os.path.isdir(rundir.checkpoint_dir(workdir, stage)):
    with manager(workdir, stage) as m:
      steps = sorted(m.all_steps(), reverse=True)
    for step in steps:
      set_aside(workdir, stage, step, why)


# The parameters a run imported (model.init_from), before its first step, evaluated as if
# a stage of that name had ended with them: eval/imported.json. The leaves the checkpoint
# lacks (LoRA adapters, the reward head) come from the run's own key, as in train.setup.
IMPORTED = 'imported'


def load_run(workdir: str, step: int | None = None, stage: str | None = None):
  """(config, model, tokenizer, params, step) of a run's latest (or given) checkpoint, on
  the host: the last stage's, or the one `stage` ended with (curriculum.policy_stage);
  stage IMPORTED: the checkpoint the run started from (model.init_from), step 0.
  For evaluation and sampling outside the training loop: no optimizer or mesh needed.
  """
  config = rundir.read_config(workdir)
  tokenizer = pipeline.tokenizer_for(config.data)
  model = Model(ModelConfig.from_config({**config.model.to_dict(),
                                         'vocab_size': tokenizer.vocab_size}))
  if stage == IMPORTED:
    if not config.model.init_from:
      raise ValueError(f'{workdir} starts from random weights (model.init_from is empty): '
                       f'there is no imported model to evaluate.')
    params = convert.load(config.model.init_from, model, model.init(jax.random.key(config.seed)))
    return config, model, tokenizer, jax.device_get(params), 0
  policy = curriculum.policy_stage(curriculum.stages(config), stage)
  if policy is None:
    raise ValueError(f'{workdir}: no stage up to {stage or "the last"} trains the policy, so '
                     f'there are no parameters to load; name a later stage.')
  with manager(workdir, policy) as m:
    step = m.latest_step() if step is None else step
    if step is None:
      raise ValueError(f'{workdir} has no checkpoint yet; train it first with tomk.main.')
  state = host_state(workdir, policy, step)
  if state is None:
    raise ValueError(f'{workdir} has no checkpoint of step {step} of stage {policy}.')
  params = state['params']
  return config, model, tokenizer, params, step
