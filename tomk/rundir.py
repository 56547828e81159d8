"""The run directory (a workdir) and everything in it: where each file lives, how it is
written, and how a run is read back.

  W/config.json                  the resolved config (write_config; read_config completes it)
  W/metrics.jsonl                one JSON record per logged step (tomk.metrics)
  W/tensorboard/                 the same scalars, plus speed
  W/checkpoints/<stage>/<step>/  orbax checkpoints of each stage (tomk.checkpoints)
  W/reward_model/                a reward_model stage's own model
  W/eval/<stage>.json            the evaluation each stage ended with; W/eval.json the last
  W/eval/<stage>.scenarios.jsonl its kindness evaluation, a line per scenario
  W/report.md, W/plots/          tomk.report
  W/provenance.json              tomk.provenance
  W/DONE                         written by tomk.sweep once a point's run exited 0

A sweepdir holds a workdir per point and sweep.json, the sweep's record of its points.

Every JSON file is written whole or not at all (write_json): a killed run never leaves
half a file. Nothing here needs JAX, so sweep runners and tomk.compare stay light.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Any

from tomk import config as config_lib

CONFIG = 'config.json'
METRICS = 'metrics.jsonl'
PROVENANCE = 'provenance.json'
REPORT = 'report.md'
DONE = 'DONE'
ABSENT = '<absent>'
# The labels of a metrics.jsonl record; every other key is a number.
LABELS = ('step', 'stage', 'algorithm')


# --- Paths -------------------------------------------------------------------------------------

def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG)


def metrics_path(workdir: str) -> str:
  return os.path.join(workdir, METRICS)


def tensorboard_dir(workdir: str) -> str:
  return os.path.join(workdir, 'tensorboard')


def checkpoint_dir(workdir: str, stage: str) -> str:
  """Absolute: orbax wants absolute paths."""
  return os.path.abspath(os.path.join(workdir, 'checkpoints', stage))


def unreadable_dir(workdir: str) -> str:
  """Where checkpoints that did not read back are moved (checkpoints.latest_step)."""
  return os.path.join(workdir, 'checkpoints-unreadable')


def reward_model_dir(workdir: str) -> str:
  return os.path.abspath(os.path.join(workdir, 'reward_model'))


def eval_path(workdir: str, stage: str | None = None) -> str:
  """eval.json, or eval/<stage>.json for the evaluation at the end of `stage`."""
  if stage is None:
    return os.path.join(workdir, 'eval.json')
  return os.path.join(workdir, 'eval', f'{stage}.json')


def scenarios_path(workdir: str, stage: str) -> str:
  """eval/<stage>.scenarios.jsonl: the stage's kindness evaluation, a line per scenario."""
  return os.path.join(workdir, 'eval', f'{stage}.scenarios.jsonl')


def evaluations(workdir: str) -> list[str]:
  """The evaluations a run holds, as paths relative to it: eval/<stage>.json and
  eval/<stage>.scenarios.jsonl ..., eval.json."""
  folder = os.path.dirname(eval_path(workdir, 'stage'))
  names = sorted(os.path.join('eval', n) for n in os.listdir(folder)
                 if n.endswith(('.json', '.jsonl'))) if os.path.isdir(folder) else []
  return names + (['eval.json'] if os.path.exists(eval_path(workdir)) else [])


def report_path(workdir: str) -> str:
  return os.path.join(workdir, REPORT)


def plots_dir(workdir: str) -> str:
  return os.path.join(workdir, 'plots')


def provenance_path(workdir: str) -> str:
  return os.path.join(workdir, PROVENANCE)


def done_path(workdir: str) -> str:
  return os.path.join(workdir, DONE)


def sweep_state_path(sweepdir: str) -> str:
  return os.path.join(sweepdir, 'sweep.json')


# --- Writing and reading files -----------------------------------------------------------------

def check_writable_dir(path: str, what: str) -> None:
  """An error unless `path` is a directory this process can write, or can be made one."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f'{what} {path} is a file, not a directory; give a directory.')
  existing = path
  while existing and not os.path.exists(existing):
    existing = os.path.dirname(existing.rstrip(os.sep)) or '.'
  if not os.path.isdir(existing):
    raise ValueError(f'{what} {path} cannot be made: {existing} is a file, not a directory.')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'{what} {path} is not writable ({existing} is not); choose a directory '
                     f'you can write to.')


def check_workdir(workdir: str) -> None:
  check_writable_dir(workdir, '--workdir')


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically (a temporary file, then a rename)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)


def write_json(path: str, data: Any, **dump_options) -> None:
  """`data` as JSON, atomically; indented with sorted keys unless dump_options (json.dumps'
  keyword arguments) say otherwise."""
  write_text(path, json.dumps(data, **{'indent': 2, 'sort_keys': True, **dump_options}))


def read_json(path: str) -> Any:
  """The JSON in `path`, or None if there is no such file."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def flatten(d: dict, prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}: the keys a --config.a.b=... override names."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


# --- The config --------------------------------------------------------------------------------

def is_run(path: str) -> bool:
  return os.path.exists(config_path(path))


def read_config(workdir: str):
  """The config a run saved, completed (config.complete: an old run's missing keys filled
  in, renamed keys renamed)."""
  data = read_json(config_path(workdir))
  if data is None:
    raise ValueError(f'{workdir} has no {CONFIG}; give the workdir of a run of python -m '
                     f'tomk.main.')
  return config_lib.complete(data)


def differing_keys(a: dict, b: dict) -> list[str]:
  """Sorted keys of two flat configs whose values differ (a key only one has differs)."""
  return sorted(k for k in a.keys() | b.keys() if a.get(k, ABSENT) != b.get(k, ABSENT))


def write_config(workdir: str, config) -> None:
  """Writes config.json, or refuses a workdir whose saved config differs (naming the keys).

  The saved config is completed first, so a run from before a setting existed resumes as
  long as the new setting holds the value that run had.
  """
  new = config_lib.to_json(config)
  if is_run(workdir):
    old_flat = flatten(config_lib.to_json(read_config(workdir)))
    new_flat = flatten(config_lib.to_json(config_lib.complete(new)))
    differ = differing_keys(old_flat, new_flat)
    if differ:
      lines = [f'  {k}: saved {old_flat.get(k, ABSENT)!r}, now {new_flat.get(k, ABSENT)!r}'
               for k in differ]
      raise ValueError(f'workdir {workdir} holds a run with a different config; these keys '
                       f'differ:\n' + '\n'.join(lines) +
                       '\nUse a new --workdir, or the saved values to resume.')
    return
  write_json(config_path(workdir), new)


# --- Reading a run -----------------------------------------------------------------------------

def metric_name(name: str) -> str:
  """A metric's name today: 'loss/nll_pred' of an old run is 'loss/prediction_nll'."""
  head, slash, rest = name.partition('/')
  if head == 'loss' and rest in config_lib.RENAMED_OBJECTIVES:
    return f'loss/{config_lib.RENAMED_OBJECTIVES[rest]}'
  if slash and head in config_lib.RENAMED_OBJECTIVES:
    return f'{config_lib.RENAMED_OBJECTIVES[head]}/{rest}'
  return name


def read_metrics(workdir: str) -> list[dict]:
  """metrics.jsonl's records, metric names as today's (metric_name); a line that is not
  JSON (a run killed mid-write) is an error naming it."""
  path = metrics_path(workdir)
  if not os.path.exists(path):
    raise ValueError(f'{workdir} is not a workdir: it has no {METRICS}. Give workdirs written '
                     f'by python -m tomk.main, or sweepdirs holding them.')
  records = []
  with open(path) as f:
    for line_number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path} line {line_number} is not JSON ({e}); the run was probably '
                         f'killed mid-write: re-run it to resume, or delete the line.') from e
      records.append({metric_name(k): v for k, v in record.items()})
  return records


def number(value) -> float | None:
  """A metric value as a float: numbers, and the 'nan'/'inf' strings metrics.py writes."""
  if isinstance(value, bool) or not isinstance(value, (int, float, str)):
    return None
  try:
    return float(value)
  except ValueError:
    return None


# Bookkeeping in eval.json (tomk.evaluation): which step and seeds, how many examples.
EVAL_BOOKKEEPING = ('step', 'seed', 'train_seed', 'n', 'tokens')


def eval_numbers(data: Any, prefix: str) -> dict[str, float]:
  """Every number of an evaluation, keyed by its path ('eval.json/kindness/test/...')."""
  out = {}
  if isinstance(data, dict):
    for k, v in data.items():
      if k not in EVAL_BOOKKEEPING:
        out.update(eval_numbers(v, f'{prefix}/{k}'))
  elif not isinstance(data, str) and number(data) is not None:
    out[prefix] = number(data)
  return out


@dataclasses.dataclass
class Run:
  """What a finished or running workdir holds, as numbers."""
  workdir: str
  config: dict[str, Any]                       # flattened, completed config.json
  final: dict[str, float]                      # metric -> last value (and eval.json's numbers)
  curves: dict[tuple[str, str], list[tuple[int, float]]]   # (stage, metric) -> [(step, v)]
  last_step: int | None

  @property
  def seed(self):
    return self.config['seed']

  def setting(self, key: str):
    """The config's value of flat `key`, or '<absent>' (runs of different algorithms have
    different routing tables)."""
    return self.config[key] if key in self.config else ABSENT

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.workdir))


def read_run(workdir: str) -> Run:
  if not is_run(workdir):
    raise ValueError(f'{workdir} is not a workdir: it has no {CONFIG}. Give workdirs written '
                     f'by python -m tomk.main, or sweepdirs holding them.')
  config = flatten(config_lib.to_json(read_config(workdir)))
  final, curves, last_step = {}, collections.defaultdict(list), None
  for record in read_metrics(workdir):
    step, stage = record['step'], record['stage']
    last_step = step
    for key, value in record.items():
      value = number(value)
      if key in LABELS or value is None:
        continue
      final[key] = value
      curves[(stage, key)].append((step, value))
  evaluation = read_json(eval_path(workdir))
  if evaluation is not None:
    final.update(eval_numbers(evaluation, 'eval.json'))
  return Run(workdir, config, final, dict(curves), last_step)


def finished(workdir: str) -> bool:
  """Whether a run is done: a sweep saw its main exit 0 (DONE), or its provenance.json
  records an end (the run reached its last step and was not resumed since)."""
  if os.path.exists(done_path(workdir)):
    return True
  try:
    record = read_json(provenance_path(workdir))
  except (OSError, ValueError):
    return False
  return bool(record and record.get('end_time'))


def reached_the_end(workdir: str) -> bool:
  """Whether a run that exited 0 trained to its last step (provenance's end time, else the
  last step in metrics.jsonl against config.json's `steps`)."""
  try:
    record = read_json(provenance_path(workdir))
    if record is not None and 'start_time' in record:
      return bool(record.get('end_time'))
    steps = read_config(workdir).steps
    records = read_metrics(workdir)
  except (OSError, ValueError):
    return False
  return bool(records) and records[-1]['step'] >= steps
