"""What a training stage reads each step: packed text, or rollouts of the policy.

  TextBatches     the grain pipeline (pipeline.lm_dataset); its iterator state is saved in
                  every checkpoint beside the model
  RolloutBatches  the RL algorithms' batches: SocialWorld scenario prompts drawn for the
                  step (sources.scenario_prompts), or the user's (data.prompts,
                  sources.drawn), rolled out by a tomk.rollout.Rollouts; a pure function of
                  (seed, step), so there is no iterator state to save

Both answer next(state, step) -> (global batch on the mesh, host metrics).
"""
from __future__ import annotations

import grain
import jax

from tomk import sharding
from tomk.data import jsonl
from tomk.data import pipeline
from tomk.data import sources


class TextBatches:
  """Batches of packed text from the grain pipeline; its iterator state is checkpointed."""

  def __init__(self, config, tokenizer, batch_sharding):
    self.iterator = iter(pipeline.lm_dataset(
        config.data, tokenizer, 'train', seed=config.seed, global_batch_size=config.batch_size,
        process_index=jax.process_index(), process_count=jax.process_count()))
    self.batch_sharding = batch_sharding
    self.tokens_per_step = config.batch_size * config.data.seq_len

  def next(self, state, step):
    del state, step
    return sharding.global_batch(next(self.iterator), self.batch_sharding), {}

  def save_args(self):
    return {'data': grain.checkpoint.CheckpointSave(self.iterator)}

  def restore_args(self):
    return {'data': grain.checkpoint.CheckpointRestore(self.iterator)}


class RolloutBatches:
  """Batches made by rollouts of the current policy: rollouts(params, reference, examples,
  key) -> (batch, metrics), on the step's prompts and key."""

  def __init__(self, config, rollouts, batch_sharding):
    self.rollouts, self.batch_sharding = rollouts, batch_sharding
    self.seed = config.seed
    self.families = tuple(config.rl.families.split(','))
    # The user's prompts (data.prompts), read once; else SocialWorld scenarios each step.
    self.prompts = ([{'conversation': c} for c in jsonl.read_prompts(config.data.prompts)]
                    if config.data.prompts else None)
    self.prompts_per_step = config.batch_size // config.rl.num_samples
    self.tokens_per_step = config.batch_size * config.rl.max_new_tokens

  def next(self, state, step):
    if self.prompts:
      examples = sources.drawn(self.prompts, self.seed, step, self.prompts_per_step)
    else:
      examples = sources.scenario_prompts(self.families, 'train', self.seed, step,
                                          self.prompts_per_step)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(self.seed), step), 1)
    batch, metrics = self.rollouts(state['params'], state['reference'], examples, key)
    return jax.device_put(batch, self.batch_sharding), metrics

  def save_args(self):
    return {}

  def restore_args(self):
    return {}
