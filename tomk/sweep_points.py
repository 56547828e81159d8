"""The points of a sweep: loading a sweep file, naming each point's workdir, its
`python -m tomk.main` command, and checking its overrides against its config before
anything runs (tomk.sweep runs them)."""
from __future__ import annotations

import copy
import difflib
import hashlib
import importlib.util
import os
import urllib.parse
from typing import Any, Sequence

from tomk import cli, config as config_lib
from tomk.hyper import BRANCH_FROM, CONFIG, Point


def load_sweep(spec: str) -> list[Point]:
  """Calls get_sweep([arg]) of the sweep file `path[:arg]` and checks what it returns."""
  path, _, arg = spec.partition(':')
  if not os.path.exists(path):
    raise ValueError(f'sweep file {path} does not exist; give --sweep=configs/sweeps/NAME.py.')
  module_spec = importlib.util.spec_from_file_location(
      'sweep_' + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_sweep'):
    raise ValueError(f'{path} has no get_sweep(); define get_sweep(arg=None) returning a list '
                     f'of override dicts, e.g. hyper.sweep("seed", range(3)).')
  points = module.get_sweep(arg) if arg else module.get_sweep()
  points = list(points)
  if not points:
    raise ValueError(f'{spec}: get_sweep() returned no points.')
  for i, point in enumerate(points):
    if not isinstance(point, dict) or not all(isinstance(k, str) for k in point):
      raise ValueError(f'{spec}: point {i} is {point!r}; each point must be a dict like '
                       f'{{"seed": 0, "optimizer.behavior.learning_rate": 1e-3}}.')
  names = [point_name(p) for p in points]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f'{spec}: points repeat: {duplicates}; each point must differ.')
  for point in points:
    source = point.get(BRANCH_FROM)
    if source is not None and (not isinstance(source, dict) or point_name(source) not in names
                               or BRANCH_FROM in source):
      raise ValueError(f'{spec}: point {point_name(point)} branches from {source!r}, which is '
                       f'not a point of the sweep that trains from scratch; give '
                       f'{BRANCH_FROM} one of the points (a dict) without a {BRANCH_FROM}.')
  return points


def format_value(value: Any) -> str:
  """A value as a --config.k=v flag parses it back (floats keep every digit)."""
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def _shown(key: str, value: Any) -> str:
  if key == CONFIG:            # configs/rlhf.py:smoke -> rlhf:smoke
    path, colon, arg = str(value).partition(':')
    value = os.path.splitext(os.path.basename(path))[0] + colon + arg
  return urllib.parse.quote(format_value(value), safe="._-+:()")


def point_name(point: Point) -> str:
  """A readable directory name: k=v pairs joined by commas, '/' and spaces quoted; a point's
  own config file by its name (config=rlhf); the point it branches from left out."""
  point = {k: v for k, v in point.items() if k != BRANCH_FROM}
  if not point:
    return 'default'
  name = ','.join(f'{k}={_shown(k, v)}' for k, v in point.items())
  if len(name) > 200:       # file names stop at 255 bytes; keep it unique with a hash
    name = name[:180] + '~' + hashlib.sha1(name.encode()).hexdigest()[:12]
  return name


def command(config: str, workdir: str, point: Point, overrides: Sequence[str] = (),
            python: str = 'python') -> list[str]:
  """`python -m tomk.main` for one point: its own config file if it names one, and
  --branch_from the workdir of its source point (a sibling of `workdir`)."""
  branch = ([f'--branch_from={os.path.join(os.path.dirname(workdir), point_name(point[BRANCH_FROM]))}']
            if point.get(BRANCH_FROM) is not None else [])
  return [python, '-m', 'tomk.main', f'--config={point.get(CONFIG, config)}',
          f'--workdir={workdir}', *branch, *overrides,
          *(f'--config.{k}={format_value(v)}' for k, v in point.items()
            if k not in (CONFIG, BRANCH_FROM))]


def configs_of(config_spec: str, config, points: Sequence[Point]) -> list:
  """Each point's config: `config` (the sweep's --config, loaded), or the file it names."""
  loaded = {config_spec: config}
  for point in points:
    spec = point.get(CONFIG, config_spec)
    if spec not in loaded:
      loaded[spec] = cli.load_config_file(spec)
  return [loaded[point.get(CONFIG, config_spec)] for point in points]


def check_points(config, points: Sequence[Point], overrides: Sequence[str],
                 configs: Sequence | None = None) -> None:
  """Errors, before anything runs, for a key the config lacks or a value of the wrong type.
  `configs`: each point's own config (configs_of), where points name their config file."""
  given = {o.split('=', 1)[0][len('--config.'):] for o in overrides}
  for point, config in zip(points, configs or [config] * len(points)):
    flat = set(_flat_keys(config))
    for key, value in point.items():
      if key in (CONFIG, BRANCH_FROM):
        continue
      if key in given:
        raise ValueError(f'--config.{key} is both given to the sweep and swept by it; drop one.')
      if key not in flat and config_lib.renamed(key):
        raise ValueError(f'the sweep sets {key}, which was renamed to {config_lib.renamed(key)}; '
                         f'use the new name.')
      if key not in flat:
        close = difflib.get_close_matches(key, sorted(flat), n=3)
        raise ValueError(f'the sweep sets {key}, which the config does not have'
                         + (f'; did you mean {" or ".join(close)}?' if close else '.'))
      trial = copy.deepcopy(config)
      *parents, leaf = key.split('.')
      node = trial
      for part in parents:
        node = node[part]
      try:
        node[leaf] = value
      except (TypeError, ValueError) as e:
        raise ValueError(f'point {point_name(point)}: {key}={value!r} does not fit the '
                         f'config ({e}); give a value of the type the config holds.') from e


def _flat_keys(config, prefix=''):
  for k, v in config.items():
    if hasattr(v, 'items'):
      yield from _flat_keys(v, f'{prefix}{k}.')
    else:
      yield f'{prefix}{k}'
