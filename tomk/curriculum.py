"""An experiment is a curriculum of stages (SPEC §3).

``config.curriculum = 'pretrain,finetune,empathy'`` names the stages in order;
``config.stages.<name>`` holds what that stage changes (algorithm, steps, routes,
learning rates, data ...). Each stage is the top-level config with its overrides
applied; later stages start from the earlier stage's parameters (train.run).
A config without a curriculum is one stage named after its algorithm.
"""
from __future__ import annotations

import copy

import ml_collections

from tomk import algorithms


def _apply(config: ml_collections.ConfigDict, overrides: ml_collections.ConfigDict, where: str):
  for key, value in overrides.items():
    if key not in config:
      raise ValueError(f'{where}.{key} is not a config key; stage overrides can change only '
                       f'existing keys ({", ".join(sorted(config.keys()))}).')
    if key == 'routes':                  # a stage's routing table replaces the whole table
      config.routes = ml_collections.ConfigDict(value.to_dict())
    elif isinstance(value, ml_collections.ConfigDict):
      _apply(config[key], value, f'{where}.{key}')
    else:
      config[key] = value


def stages(config) -> list[tuple[str, ml_collections.ConfigDict]]:
  """[(stage name, resolved stage config)] in order."""
  if not config.curriculum:
    return [(config.algorithm, config)]
  out = []
  for name in config.curriculum.split(','):
    if name not in config.stages:
      raise ValueError(f'curriculum names stage {name!r} but config.stages has only '
                       f'{sorted(config.stages.keys())}; add config.stages.{name}.')
    stage = copy.deepcopy(config)
    with stage.unlocked():
      _apply(stage, config.stages[name], f'stages.{name}')
      stage.curriculum, stage.stages = '', ml_collections.ConfigDict()
      if 'routes' not in config.stages[name]:
        stage.routes = ml_collections.ConfigDict(algorithms.get(stage.algorithm).ROUTES)
    out.append((name, stage))
  if len({n for n, _ in out}) != len(out):
    raise ValueError(f'curriculum {config.curriculum!r} names a stage twice; give each its own name.')
  return out
