"""Re-runs a recorded result and checks that it comes back bit for bit (SPEC §7).

  python -m tomk.reproduce runs/pretrain [--into=runs/pretrain-reproduce] [--compare_only]

Runs `python -m tomk.main --config=configs/from_json.py:WORKDIR/config.json --workdir=NEWDIR`
(NEWDIR defaults to WORKDIR-reproduce; an existing one is resumed), then compares the
two metrics.jsonl files and every evaluation (eval/<stage>.json with its per-scenario
rows, eval.json). Metrics match
when their bytes do, or when a run of older code holds the same records under metric
names renamed since (config.RENAMED_OBJECTIVES). Exit code 0 if everything matches, 1 if
not (naming the first step and metric that differ, with both values, or the evaluation),
2 if the re-run itself failed. On a mismatch it also lists what provenance.json says
changed between the two runs (commit, packages, devices), the usual culprits.
--compare_only compares WORKDIR with an existing NEWDIR and runs nothing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any, Sequence

from absl import app
from absl import flags

from tomk import provenance
from tomk import rundir

FROM_JSON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         'configs', 'from_json.py')


@dataclasses.dataclass
class Difference:
  record: int                 # 0-based index of the record in metrics.jsonl
  step: Any
  stage: Any
  metric: str | None          # None when one file has more records than the other
  original: Any
  rerun: Any

  def describe(self, original_name: str = 'the original', rerun_name: str = 'the re-run') -> str:
    if self.metric is None:
      return (f'{original_name} has {self.original} records and {rerun_name} {self.rerun}; '
              f'they agree up to record {self.record} (step {self.step}).')
    return (f'first difference at step {self.step} (stage {self.stage}, record '
            f'{self.record + 1}): {self.metric} = {self.original!r} in {original_name}, '
            f'{self.rerun!r} in {rerun_name}.')


def _records(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def first_difference(original: Sequence[dict], rerun: Sequence[dict]) -> Difference | None:
  """The first record and key (in file order) whose values differ; None if all agree."""
  for i, (a, b) in enumerate(zip(original, rerun)):
    for key in list(a) + [k for k in b if k not in a]:
      if a.get(key, '<absent>') != b.get(key, '<absent>'):
        return Difference(i, a.get('step', b.get('step')), a.get('stage', b.get('stage')),
                          key, a.get(key, '<absent>'), b.get(key, '<absent>'))
  if len(original) != len(rerun):
    last = min(len(original), len(rerun))
    step = (original or rerun)[last - 1].get('step') if last else None
    return Difference(last, step, None, None, len(original), len(rerun))
  return None


def _as_written_today(path: str) -> bytes:
  """metrics.jsonl with old metric names renamed, each record laid out as tomk.metrics
  writes it today: the labels, then the metrics sorted by name."""
  lines = []
  for record in _records(path):
    labels = {k: v for k, v in record.items() if k in rundir.LABELS}
    metrics = {rundir.metric_name(k): v for k, v in record.items() if k not in rundir.LABELS}
    lines.append(json.dumps({**labels, **dict(sorted(metrics.items()))}) + '\n')
  return ''.join(lines).encode()


def compare_metrics(original_dir: str, rerun_dir: str) -> tuple[bool, str]:
  """(identical bytes?, a sentence saying so or naming the first difference)."""
  paths = [rundir.metrics_path(d) for d in (original_dir, rerun_dir)]
  with open(paths[0], 'rb') as f:
    original_bytes = f.read()
  with open(paths[1], 'rb') as f:
    rerun_bytes = f.read()
  if original_bytes == rerun_bytes:
    return True, (f'MATCH: metrics.jsonl of {original_dir} and {rerun_dir} are identical '
                  f'({original_bytes.count(b"{")} records, {len(original_bytes)} bytes).')
  renamed = sorted({f'{k} → {rundir.metric_name(k)}' for record in _records(paths[0])
                    for k in record if rundir.metric_name(k) != k})
  if renamed and _as_written_today(paths[0]) == rerun_bytes:
    return True, (f'MATCH: metrics.jsonl of {original_dir}, its metrics renamed as today\'s '
                  f'({", ".join(renamed)}), is identical to {rerun_dir}\'s '
                  f'({len(rerun_bytes)} bytes).')
  original, rerun = rundir.read_metrics(original_dir), rundir.read_metrics(rerun_dir)
  difference = first_difference(original, rerun)
  if difference is None:
    return False, ('MISMATCH: the same numbers but different bytes (key order or number '
                   'formatting changed in metrics.jsonl).')
  return False, 'MISMATCH: ' + difference.describe(original_dir, rerun_dir)


def _bytes(path: str) -> bytes | None:
  if not os.path.exists(path):
    return None
  with open(path, 'rb') as f:
    return f.read()


def compare_evaluations(original_dir: str, rerun_dir: str) -> tuple[bool, str]:
  """(is every evaluation of the original the same bytes in the re-run?, a sentence)."""
  names = rundir.evaluations(original_dir)
  for name in names:
    if _bytes(os.path.join(rerun_dir, name)) != _bytes(os.path.join(original_dir, name)):
      return False, (f'MISMATCH: {name} of {rerun_dir} differs from that of {original_dir} '
                     f'(or is missing).')
  return True, f'MATCH: {len(names)} evaluations are identical ({", ".join(names)}).'


def provenance_differences(original_dir: str, rerun_dir: str) -> list[str]:
  """What changed between the runs' environments, as far as provenance.json tells."""
  a, b = provenance.read(original_dir), provenance.read(rerun_dir)
  if a is None or b is None:
    return []
  notes = []
  for section, key in (('git', 'commit'), ('git', 'dirty'), ('jax', 'backend'),
                       ('jax', 'device_kinds'), ('jax', 'device_count'),
                       ('jax', 'process_count')):
    x, y = (a.get(section) or {}).get(key), (b.get(section) or {}).get(key)
    if x != y:
      notes.append(f'{section} {key}: {x} then {y}')
  for name in sorted(set(a.get('packages', {})) | set(b.get('packages', {}))):
    x, y = a.get('packages', {}).get(name), b.get('packages', {}).get(name)
    if x != y:
      notes.append(f'{name}: {x} then {y}')
  for name in sorted(set(a.get('environment', {})) | set(b.get('environment', {}))):
    x, y = a.get('environment', {}).get(name), b.get('environment', {}).get(name)
    if x != y and name != 'JAX_COMPILATION_CACHE_DIR':
      notes.append(f'${name}: {x} then {y}')
  return notes


def reproduce(workdir: str, into: str | None = None, python: str = sys.executable,
              log=print) -> int:
  """Re-runs `workdir`'s config into `into`; returns the exit code (0 match, 1 not, 2 failed)."""
  config_path = os.path.abspath(rundir.config_path(workdir))
  for path in (config_path, rundir.metrics_path(workdir)):
    if not os.path.exists(path):
      raise ValueError(f'{workdir} has no {os.path.basename(path)}; give a workdir written by '
                       f'python -m tomk.main.')
  if not os.path.exists(FROM_JSON):
    raise ValueError(f'{FROM_JSON} is missing; run tomk.reproduce from a tomk checkout.')
  into = into or os.path.normpath(workdir) + '-reproduce'
  if os.path.abspath(into) == os.path.abspath(workdir):
    raise ValueError('--into must be a new directory, not the workdir being reproduced.')
  if os.path.exists(rundir.metrics_path(into)):
    log(f'[reproduce] {into} exists: resuming it (delete it for a fresh re-run).', flush=True)
  command = [python, '-m', 'tomk.main', f'--config={FROM_JSON}:{config_path}',
             f'--workdir={into}']
  log(f'[reproduce] {" ".join(command)}', flush=True)
  code = subprocess.run(command, check=False).returncode
  if code != 0:
    log(f'[reproduce] the re-run failed with exit code {code}; see its output above.',
        flush=True)
    return 2
  return check(workdir, into, log)


def check(workdir: str, into: str, log=print) -> int:
  """Compares the metrics and evaluations of two runs; 0 if they match, else 1."""
  same, message = compare_metrics(workdir, into)
  log(message)
  evaluations_same, message = compare_evaluations(workdir, into)
  log(message)
  same = same and evaluations_same
  if not same:
    notes = provenance_differences(workdir, into)
    if notes:
      log('what changed between the two runs (provenance.json):\n  ' + '\n  '.join(notes))
  return 0 if same else 1


def main(argv):
  if len(argv) != 2:
    print('usage: python -m tomk.reproduce WORKDIR [--into=NEWDIR] [--compare_only]',
          file=sys.stderr)
    sys.exit(2)
  try:
    if flags.FLAGS.compare_only:
      if not flags.FLAGS.into:
        raise ValueError('--compare_only compares WORKDIR with --into=NEWDIR; give --into.')
      sys.exit(check(argv[1], flags.FLAGS.into))
    sys.exit(reproduce(argv[1], flags.FLAGS.into))
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  flags.DEFINE_string('into', None, 'Workdir of the re-run (default: WORKDIR-reproduce).')
  flags.DEFINE_bool('compare_only', False, 'Compare WORKDIR with an existing --into; run nothing.')
  app.run(main)
