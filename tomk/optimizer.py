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


def check(config) -> None:
  """Errors for config.optimizer's partitions and schedules (rates: config.check)."""
  c = config_lib.Checker()
  for name, settings in config.optimizer.items():
    c.require(name in PARTITIONS, f'optimizer.{name} is not a partition; the model has '
              f'{", ".join(PARTITIONS)}.')
    c.require(settings.schedule in SCHEDULES, f'optimizer.{name}.schedule='
              f'{settings.schedule!r}: use one of {", ".join(SCHEDULES)}.')
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
  return optax.partition(transforms, param_labels)


def decayed(params):
  """True for every leaf weight decay applies to: all but the reward head's."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: not any(getattr(k, 'key', None) == 'reward_head' for k in path), params)


def param_labels(params):
  """Each leaf's label is the partition it sits in."""
  return {p: jax.tree.map(lambda _, p=p: p, sub) for p, sub in params.items()}
