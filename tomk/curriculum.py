"""An experiment is a curriculum of stages (SPEC §3).

``config.curriculum = 'pretrain,finetune,empathy'`` names the stages in order;
``config.stages.<name>`` holds what that stage changes (algorithm, steps, routes,
learning rates, data ...). Each stage is the top-level config with its overrides
applied; later stages start from the earlier stage's parameters (experiment.run).
A config without a curriculum is one stage named after its algorithm. A stage
whose routes are not given takes its algorithm's own table (ROUTES); so does a
single-stage config whose routes are another algorithm's own table, untouched, that
names objectives its algorithm lacks: `configs/pretrain.py --config.algorithm=imitation`
trains with imitation's routes (config.json keeps the routes as given).

Interleaving (the paper interleaves pre-training with fine-tuning). A stage may give
``interleave='pretrain:1,finetune:3'`` and ``cycles=N`` (default 1) instead of an algorithm; its
other overrides apply to every algorithm, and ``config.stages.<stage>.<algorithm>``
holds one algorithm's own (batch_size, data, routes ...). stages() expands it into
N cycles of consecutive sub-stages named ``<stage>.<cycle>.<algorithm>`` (cycles from
1), e.g. mix.1.pretrain, mix.1.finetune, mix.2.pretrain, mix.2.finetune. The stage's
`steps` is the total: each sub-stage gets steps·weight / (N·Σweights), rounded down
and at least 1, the steps left over going one each to the largest remainders (the
earlier sub-stage first on a tie). Each sub-stage is a stage like any other: it starts
from the previous one's parameters and has its own checkpoints, but its optimizer
state starts fresh (Adam moments, and the schedule with its warm-up capped at the
sub-stage's steps − 1: keep warmup_steps small for short sub-stages), an RL
sub-stage's KL reference is the policy it starts from, and each cycle draws data and
prompts with a seed of its own (derived from seed, stage and cycle) rather than
repeating the first cycle's. Only the last sub-stage of an interleaved stage is
evaluated when it ends (evaluated()): evaluation takes minutes at full size.
"""
from __future__ import annotations

import copy
import hashlib
import math

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
  """[(stage name, resolved stage config)] in order; interleaved stages expanded."""
  if not config.curriculum:
    return [(config.algorithm, _own_routes(config))]
  out = []
  for name in config.curriculum.split(','):
    if name not in config.stages:
      raise ValueError(f'curriculum names stage {name!r} but config.stages has only '
                       f'{sorted(config.stages.keys())}; add config.stages.{name}.')
    if 'interleave' in config.stages[name]:
      out += _interleaved(config, name)
    else:
      out.append((name, _stage(config, config.stages[name], f'stages.{name}')))
  if len({n for n, _ in out}) != len(out):
    raise ValueError(f'curriculum {config.curriculum!r} names a stage twice; give each its own name.')
  return out


def _stage(config, overrides, where, *more):
  """The top-level config with `overrides` (then each of `more`) applied."""
  stage = copy.deepcopy(config)
  with stage.unlocked():
    _apply(stage, overrides, where)
    for extra, extra_where in more:
      _apply(stage, extra, extra_where)
    stage.curriculum, stage.stages = '', ml_collections.ConfigDict()
    if 'routes' not in overrides and not any('routes' in extra for extra, _ in more):
      stage.routes = ml_collections.ConfigDict(algorithms.get(stage.algorithm).ROUTES)
  return stage


def interleave_ratio(spec: str, where: str) -> dict[str, float]:
  """'pretrain:1,finetune:3' → {'pretrain': 1.0, 'finetune': 3.0} (a missing weight is 1)."""
  example = "e.g. 'pretrain:1,finetune:3'"
  weights = {}
  for part in (p.strip() for p in str(spec).split(',') if p.strip()):
    algorithm, colon, given = part.partition(':')
    try:
      weight = float(given) if colon else 1.0
    except ValueError:
      weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
      raise ValueError(f'{where}={spec!r}: {part!r} must be algorithm:weight with a positive '
                       f'weight, {example}.')
    if algorithm not in algorithms.ALGORITHMS:
      raise ValueError(f'{where}={spec!r} names {algorithm!r}, not an algorithm; use '
                       f'{", ".join(algorithms.ALGORITHMS)}, {example}.')
    if algorithms.forks_trainer(algorithms.get(algorithm)):
      raise ValueError(f'{where}={spec!r}: {algorithm} trains a model of its own, once per '
                       f'run; give it a stage of its own instead.')
    if algorithm in weights:
      raise ValueError(f'{where}={spec!r} names {algorithm!r} twice; give each algorithm once.')
    weights[algorithm] = weight
  if len(weights) < 2:
    raise ValueError(f'{where}={spec!r} interleaves fewer than two algorithms; name two or '
                     f'more, {example}, or give the stage an algorithm instead.')
  return weights


def interleaved_steps(steps: int, weights: list[float], cycles: int, where: str) -> list[int]:
  """Steps of each sub-stage, cycle by cycle: `steps` split by the weights over `cycles`
  (largest remainder, each at least 1, the total exactly `steps`)."""
  count = cycles * len(weights)
  if steps < count:
    raise ValueError(f'{where}: {steps} steps cannot give each of {cycles} cycles × '
                     f'{len(weights)} algorithms a step; raise steps to at least {count} or '
                     f'lower cycles.')
  ideal = [steps * w / (cycles * sum(weights)) for _ in range(cycles) for w in weights]
  out = [max(1, math.floor(x)) for x in ideal]
  by_remainder = sorted(range(count), key=lambda i: (-(ideal[i] - out[i]), i))
  for i in by_remainder[:max(steps - sum(out), 0)]:
    out[i] += 1
  while sum(out) > steps:         # the floor of 1 took steps: give back from the largest
    out[max(range(count), key=lambda i: (out[i], i))] -= 1
  return out


def _cycle_seed(seed: int, stage: str, cycle: int) -> int:
  if cycle == 1:
    return seed
  digest = hashlib.sha256(f'{seed}:{stage}:{cycle}'.encode()).digest()
  return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def _interleaved(config, name):
  """The sub-stages of interleaved stage `name`, in order."""
  where = f'stages.{name}'
  overrides = copy.deepcopy(config.stages[name])
  weights = interleave_ratio(overrides.interleave, f'{where}.interleave')
  cycles = overrides.get('cycles', 1)
  if not isinstance(cycles, int) or cycles < 1:
    raise ValueError(f'{where}.cycles={cycles!r}: set it to a positive integer (how often '
                     f'the algorithms take turns).')
  for key in ('algorithm', 'routes'):
    if key in overrides:
      raise ValueError(f'{where} interleaves {overrides.interleave!r} and gives {key}; give it '
                       f'per algorithm instead ({where}.<algorithm>.{key}), or drop interleave.')
  own = {a: overrides[a] if a in overrides else ml_collections.ConfigDict() for a in weights}
  for algorithm, given in own.items():
    if 'algorithm' in given or 'steps' in given:
      raise ValueError(f'{where}.{algorithm} sets algorithm or steps; the interleave sets '
                       f'both (set {where}.steps and {where}.interleave instead).')
  with overrides.unlocked():
    for key in ['interleave', 'cycles', *weights]:
      if key in overrides:
        del overrides[key]
  steps, seed = overrides.get('steps', config.steps), overrides.get('seed', config.seed)
  split = interleaved_steps(steps, list(weights.values()), cycles, where)
  out = []
  for cycle in range(1, cycles + 1):
    for algorithm in weights:
      sub = _stage(config, overrides, where, (own[algorithm], f'{where}.{algorithm}'),
                   (ml_collections.ConfigDict(dict(
                       algorithm=algorithm, steps=split[len(out)],
                       seed=_cycle_seed(seed, name, cycle))), where))
      out.append((f'{name}.{cycle}.{algorithm}', sub))
  return out


def evaluated(stage_list) -> list[str]:
  """The stages evaluated as they end: all but the sub-stages of an interleaved stage
  before its last (evaluation takes minutes at full size)."""
  names = [name for name, _ in stage_list]
  return [name for i, name in enumerate(names)
          if i + 1 == len(names) or _interleave_of(name) is None
          or _interleave_of(names[i + 1]) != _interleave_of(name)]


def _interleave_of(name: str) -> str | None:
  """'mix' for a sub-stage named 'mix.<cycle>.<algorithm>', else None. (A stage that the
  config names cannot have a dot: ConfigDict keys refuse them.)"""
  parts = name.rsplit('.', 2)
  if len(parts) == 3 and parts[1].isdigit() and parts[2] in algorithms.ALGORITHMS:
    return parts[0]
  return None


def policy_stage(stages, stage: str | None = None) -> str | None:
  """The stage whose checkpoint holds the policy as `stage` (default the last) left it.

  That is `stage` itself, or for a stage that trains a model of its own (reward_model)
  the nearest earlier stage; None if there is none.
  """
  names = [name for name, _ in stages]
  if stage is not None and stage not in names:     # an interleaved stage: its last sub-stage
    stage = next((n for n in reversed(names) if _interleave_of(n) == stage), stage)
  if stage is not None and stage not in names:
    raise ValueError(f'the run has no stage {stage!r}; its stages are {", ".join(names)}.')
  end = len(names) if stage is None else names.index(stage) + 1
  for name, config in reversed(stages[:end]):
    if not algorithms.forks_trainer(algorithms.get(config.algorithm)):
      return name
  return None
