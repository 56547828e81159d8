"""An experiment is a curriculum of stages (SPEC §3).

``config.curriculum = 'pretrain,finetune,empathy'`` names the stages in order;
``config.stages.<name>`` holds what that stage changes (algorithm, steps, routes,
learning rates, data ...). Each stage is the top-level config with its overrides
applied; later stages start from the earlier stage's parameters (train.run).
A config without a curriculum is one stage named after its algorithm. A stage
whose routes are not given takes its algorithm's own table (ROUTES); so does a
single-stage config whose routes are another algorithm's own table, untouched, that
names objectives its algorithm lacks: `configs/pretrain.py --config.algorithm=imitation`
trains with imitation's routes (config.json keeps the routes as given).
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


def _own_routes(config):
  """config, or a copy with its algorithm's ROUTES if its routes are another algorithm's
  default table that does not fit it (the config file's, before --config.algorithm
  changed the algorithm). Routes that fit, or that a user changed, are kept."""
  routes = config.routes.to_dict() if 'routes' in config else None
  own = algorithms.get(config.algorithm).ROUTES
  others = [algorithms.get(name).ROUTES for name in algorithms.ALGORITHMS
            if name != config.algorithm]
  fits = routes is not None and set(routes) <= set(own)     # names only its objectives
  if routes is None or fits or routes not in others:
    return config
  config = copy.deepcopy(config)
  with config.unlocked():
    config.routes = ml_collections.ConfigDict(own)
  return config


def stages(config) -> list[tuple[str, ml_collections.ConfigDict]]:
  """[(stage name, resolved stage config)] in order."""
  if not config.curriculum:
    return [(config.algorithm, _own_routes(config))]
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


def policy_stage(stages, stage: str | None = None) -> str | None:
  """The stage whose checkpoint holds the policy as `stage` (default the last) left it.

  That is `stage` itself, or for a stage that trains a model of its own (reward_model)
  the nearest earlier stage; None if there is none.
  """
  names = [name for name, _ in stages]
  if stage is not None and stage not in names:
    raise ValueError(f'the run has no stage {stage!r}; its stages are {", ".join(names)}.')
  end = len(names) if stage is None else names.index(stage) + 1
  for name, config in reversed(stages[:end]):
    if not hasattr(algorithms.get(config.algorithm), 'train_stage'):
      return name
  return None
