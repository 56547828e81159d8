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

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from tomk import algorithms, curriculum, rundir
from tomk.data import pipeline
from tomk.model import Model, ModelConfig


def manager(workdir: str, stage: str, keep: int | None = None) -> ocp.CheckpointManager:
  """The stage's CheckpointManager; with `keep`, one that saves (asynchronously), keeping
  the last `keep` checkpoints."""
  if keep is None:
    return ocp.CheckpointManager(rundir.checkpoint_dir(workdir, stage))
  return ocp.CheckpointManager(
      rundir.checkpoint_dir(workdir, stage),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True))


def latest_step(workdir: str, stage: str, config) -> int | None:
  """The last step of `stage` that is saved, or None if none is."""
  algorithm = algorithms.get(config.algorithm)
  if algorithms.forks_trainer(algorithm):
    # Saved once, when trained; until then the stage has not started (its metrics, if any,
    # are redone).
    return config.steps if algorithm.trained(workdir) else None
  if not os.path.isdir(rundir.checkpoint_dir(workdir, stage)):
    return None
  with manager(workdir, stage) as m:
    return m.latest_step()


def load_run(workdir: str, step: int | None = None, stage: str | None = None):
  """(config, model, tokenizer, params, step) of a run's latest (or given) checkpoint, on
  the host: the last stage's, or the one `stage` ended with (curriculum.policy_stage).
  For evaluation and sampling outside the training loop: no optimizer or mesh needed.
  """
  config = rundir.read_config(workdir)
  policy = curriculum.policy_stage(curriculum.stages(config), stage)
  if policy is None:
    raise ValueError(f'{workdir}: no stage up to {stage or "the last"} trains the policy, so '
                     f'there are no parameters to load; name a later stage.')
  with manager(workdir, policy) as m:
    step = m.latest_step() if step is None else step
    if step is None:
      raise ValueError(f'{workdir} has no checkpoint yet; train it first with tomk.main.')
  path = os.path.join(rundir.checkpoint_dir(workdir, policy), str(step), 'state')
  # Into host numpy arrays: without a target orbax restores the saved sharding, which in a
  # multi-process run spans devices this process cannot address.
  saved = ocp.StandardCheckpointHandler().metadata(epath.Path(path))
  target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), dict(saved))
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(path, target)['params']
  tokenizer = pipeline.tokenizer_for(config.data)
  model = Model(ModelConfig.from_config({**config.model.to_dict(),
                                         'vocab_size': tokenizer.vocab_size}))
  return config, model, tokenizer, params, step
