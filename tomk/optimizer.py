"""Per-partition optimizer: optax.multi_transform keyed by perception/behavior/prediction.

Each partition has its own learning rate, schedule, clipping and weight decay;
a partition that is frozen, or that the routing table sends no gradient, gets
``optax.set_to_zero`` so it stays bit-identical (AdamW would otherwise decay it).
The prediction tower's reward head is never weight-decayed: it changes only when an
objective routed to it (infer_reward's reward_regression) sends it a gradient.
"""
from __future__ import annotations

import jax
import optax

from tomk import config as config_lib
from tomk.model import PARTITIONS

SCHEDULES = ('constant', 'cosine', 'linear')
TRAIN = ('all', 'lora')
FROZEN = 'frozen'      # the label of leaves no partition trains (train='lora': the base weights)


def check(config) -> None:
  """Errors for config.optimizer's partitions and schedules (rates: config.check)."""
  c = config_lib.Checker()
  for name, settings in config.optimizer.items():
    c.require(name in PARTITIONS, f'optimizer.{name} is not a partition; the model has '
              f'{", ".join(PARTITIONS)}.')
    c.require(settings.schedule in SCHEDULES, f'optimizer.{name}.schedule='
              f'{settings.schedule!r}: use one of {", ".join(SCHEDULES)}.')
    c.require(settings.train in TRAIN, f'optimizer.{name}.train={settings.train!r}: use one of '
              f'{", ".join(TRAIN)}.')
    lora = [p for p in config.model.lora_partitions.split(',') if p]
    c.require(settings.train != 'lora' or name in lora, f'optimizer.{name}.train=\'lora\' '
              f'trains only adapters, but {name} has none: add it to model.lora_partitions.')
  for name in [p for p in config.model.lora_partitions.split(',') if p]:
    c.require(name in PARTITIONS, f'model.lora_partitions names {name!r}; the partitions are '
              f'{", ".join(PARTITIONS)}.')
  c.done()


def schedule(config, total_steps: int) -> optax.Schedule:
  """Linear warm-up, then constant, cosine or linear decay to end_fraction · lr."""
  lr, warmup = config.learning_rate, min(config.warmup_steps, max(total_steps - 1, 0))
  decay_steps = max(total_steps - warmup, 1)
  end = lr * config.end_fraction
  decay = {'constant': optax.constant_schedule(lr),
           'cosine': optax.cosine_decay_schedule(lr, decay_steps, alpha=config.end_fraction),
           'linear': optax.linear_schedule(lr, end, decay_steps)}
  if warmup == 0:
    return decay[config.schedule]
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay[config.schedule]],
                              [warmup])


def scale_by_update_scale(partition: str) -> optax.GradientTransformationExtraArgs:
  """Multiplies the partition's update by the per-step extra arg update_scales[partition]."""
  def update(updates, state, params=None, *, update_scales=None, **extra_args):
    del params, extra_args
    if update_scales is not None:
      updates = jax.tree.map(lambda u: u * update_scales[partition].astype(u.dtype), updates)
    return updates, state
  return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def partition_transform(config, total_steps: int, partition: str) -> optax.GradientTransformation:
  parts = []
  if config.clip_norm:
    parts.append(optax.clip_by_global_norm(config.clip_norm))
  parts.append(optax.adamw(schedule(config, total_steps), b1=config.b1, b2=config.b2,
                           weight_decay=config.weight_decay, mask=decayed))
  parts.append(scale_by_update_scale(partition))
  return optax.chain(*parts)


def make(optimizer_config, trained: set[str], total_steps: int) -> optax.GradientTransformation:
  """The optimizer over the whole parameter tree.

  Args:
    optimizer_config: ConfigDict with one sub-config per partition.
    trained: partitions the routing table sends gradients to.
    total_steps: length of the schedule.
  """
  transforms = {}
  for partition in PARTITIONS:
    config = optimizer_config[partition]
    frozen = config.frozen or partition not in trained
    transforms[partition] = (optax.set_to_zero() if frozen
                             else partition_transform(config, total_steps, partition))
  adapters_only = {p for p in PARTITIONS if optimizer_config[p].train == 'lora'}
  if adapters_only:      # only then: the optimizer state of every other run keeps its layout
    transforms[FROZEN] = optax.set_to_zero()
  return optax.partition(transforms, lambda params: param_labels(params, adapters_only))


def _named(path, name: str) -> bool:
  return any(getattr(k, 'key', None) == name for k in path)


def decayed(params):
  """True for every leaf weight decay applies to: all but the reward head's."""
  return jax.tree_util.tree_map_with_path(lambda path, _: not _named(path, 'reward_head'),
                                          params)


def is_adapter(path) -> bool:
  """A leaf train='lora' trains: a LoRA adapter (model.Dense's lora_a, lora_b), or the reward
  head (new with tomk, nothing to adapt)."""
  return any(_named(path, name) for name in ('lora_a', 'lora_b', 'reward_head'))


def param_labels(params, adapters_only=frozenset()):
  """Each leaf's label is the partition it sits in; in a partition that trains only its
  adapters, every other leaf is FROZEN."""
  return {p: jax.tree_util.tree_map_with_path(
      lambda path, _, p=p: FROZEN if p in adapters_only and not is_adapter(path) else p, sub)
          for p, sub in params.items()}
