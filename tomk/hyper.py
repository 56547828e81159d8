"""Building sweeps: the points of a sweep file (configs/sweeps/*.py), as XManager's `hyper`.

  from tomk import hyper

  def get_sweep(arg=None):
    return hyper.product(hyper.sweep('seed', range(3)),
                         hyper.sweep('optimizer.behavior.learning_rate', [3e-3, 1e-2]))

A point is a dict of overrides ({'seed': 0, 'optimizer.behavior.learning_rate': 3e-3});
tomk.sweep runs each as its own workdir. Two keys are not config keys: CONFIG, the config
file a point runs instead of the sweep's --config (arms of an experiment that differ in
their config file), and BRANCH_FROM, another point of the same sweep that this one branches
from (`tomk.main --branch_from`: the stages they share are copied, not trained again; the
sweep runs the source first):

  empathy = {'seed': 0}
  [empathy, {CONFIG: 'configs/rlhf.py', 'seed': 0, BRANCH_FROM: empathy}]
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

Point = dict[str, Any]
CONFIG = 'config'
BRANCH_FROM = 'branch_from'


def sweep(key: str, values: Iterable[Any]) -> list[Point]:
  """One axis: [{key: v} for v in values]."""
  return [{key: v} for v in values]


def fixed(key: str, value: Any) -> list[Point]:
  """A key every point sets to the same value (part of each point's name)."""
  return [{key: value}]


def product(*sweeps: Sequence[Point]) -> list[Point]:
  """Every combination; the last sweep varies fastest (itertools.product order)."""
  points = []
  for combination in itertools.product(*sweeps):
    points.append(_merge(combination))
  return points


def zipit(*sweeps: Sequence[Point]) -> list[Point]:
  """Point i of each sweep together, e.g. two learning rates that move as one setting."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ValueError(f'zipit needs sweeps of equal length, got lengths '
                     f'{[len(s) for s in sweeps]}; shorten or extend one.')
  return [_merge(combination) for combination in zip(*sweeps)]


def chain(*sweeps: Sequence[Point]) -> list[Point]:
  """The points of one sweep after another."""
  return [dict(p) for s in sweeps for p in s]


def _merge(points: Iterable[Point]) -> Point:
  merged = {}
  for point in points:
    for k, v in point.items():
      if k in merged and merged[k] != v:
        raise ValueError(f'{k} is set twice in one point ({merged[k]!r} and {v!r}); a key '
                         f'belongs to one axis of a product or zipit.')
      merged[k] = v
  return merged
