"""Kills a run with SIGKILL at many points, resumes it each time, and checks that what it
wrote equals what an uninterrupted run writes.

  python scripts/kill_resume.py --points=20                     # configs/empathy.py:smoke
  python scripts/kill_resume.py --config=configs/pretrain.py:smoke --points=4

1. The reference: the config run once uninterrupted (OUT/reference), watched, so the
   script knows how many of each event the run has.
2. Each point: a fresh workdir, the same command, killed with SIGKILL when the point's
   event happens for the n-th time; then the same command again, to the end. Events:
     data_build   the first file in an empty data directory (datasets and tokenizer are
                  being built; this point has a data directory of its own)
     checkpoint   an orbax checkpoint directory being written (*.orbax-checkpoint-tmp*)
     evaluation   an evaluation part under way (a '[evaluate] ...' line was printed)
     stage_end    a stage's evaluation written (eval/<stage>.json appeared)
     report       the run's eval.json written, report.md being written
     step         a training progress line printed ('[stage] step k/n')
   Where each kill landed is logged: the event, the last line the run printed and the
   unfinished files it left (*.tmp, *-tmp*).
3. Compared with the reference: metrics.jsonl and every evaluation (eval/<stage>.json,
   eval/<stage>.scenarios.jsonl, eval.json) as tomk.reproduce compares them, report.md
   byte for byte, and the parameters (numpy arrays) of every stage's last checkpoint.
   provenance.json (times, hosts) is not compared.

Exit code 0 iff every point was reached and every resumed run is identical. Runs share
one XLA compilation cache (OUT/jax-cache) and, but for data_build, one data directory.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tomk import reproduce  # noqa: E402  (the repository's, whichever tomk is installed)
EVENTS = ('data_build', 'checkpoint', 'evaluation', 'stage_end', 'report', 'step')


class Watch:
  """Runs one `python -m tomk.main` and counts its events; with `kill_at` = (event, n),
  SIGKILLs it when that event happens the n-th time and records where it landed."""

  def __init__(self, cmd, env, workdir, data_dir, kill_at=None, log=None):
    self.workdir, self.data_dir, self.kill_at = workdir, data_dir, kill_at
    self.counts = dict.fromkeys(EVENTS, 0)
    self.last_line, self.landed, self.killed = '', None, False
    self._lock = threading.Lock()
    self._log = log
    self._seen = set()
    self.data_was_empty = not os.path.isdir(data_dir) or not os.listdir(data_dir)
    self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)

  def _event(self, name):
    with self._lock:
      if self.killed:
        return
      self.counts[name] += 1
      if self.kill_at == (name, self.counts[name]):
        self.process.send_signal(signal.SIGKILL)
        self.killed = True
        self.landed = {'event': f'{name} #{self.counts[name]}', 'last_line': self.last_line,
                       'unfinished': unfinished(self.workdir, self.data_dir)}

  def _read_output(self):
    for line in self.process.stdout:
      if self._log:
        self._log.write(line)
      line = line.rstrip()
      if line:
        self.last_line = line[:160]
      if line.startswith('[evaluate]'):
        self._event('evaluation')
      elif re.match(r'^\[[^\]]+\] step \d+/\d+', line):
        self._event('step')

  def _poll_files(self):
    while self.process.poll() is None:
      if self.data_was_empty and os.path.isdir(self.data_dir) and os.listdir(self.data_dir):
        self.data_was_empty = False
        self._event('data_build')
      for path in glob.glob(os.path.join(self.workdir, 'checkpoints', '*', '*-tmp*')) + \
          glob.glob(os.path.join(self.workdir, 'reward_model', '*-tmp*')):
        self._once('checkpoint', path)
      for path in glob.glob(os.path.join(self.workdir, 'eval', '*.json')):
        self._once('stage_end', path)
      if os.path.exists(os.path.join(self.workdir, 'eval.json')):
        self._once('report', 'eval.json')
      time.sleep(0.002)

  def _once(self, event, key):
    if key not in self._seen:
      self._seen.add(key)
      self._event(event)

  def wait(self) -> int:
    threads = [threading.Thread(target=self._read_output, daemon=True),
               threading.Thread(target=self._poll_files, daemon=True)]
    for t in threads:
      t.start()
    code = self.process.wait()
    for t in threads:
      t.join(timeout=5)
    return code


def unfinished(workdir: str, data_dir: str) -> list[str]:
  """The half-written files and directories under workdir and data_dir, relative."""
  found = []
  for root in (workdir, data_dir):
    for path in glob.glob(os.path.join(root, '**', '*'), recursive=True):
      name = os.path.basename(path)
      if name.endswith('.tmp') or '-tmp' in name or name.startswith('tmp') or \
          name.endswith('.incomplete') or 'incomplete.' in name:
        found.append(os.path.relpath(path, os.path.dirname(root)))
  return sorted(found)[:6]


def command(config: str, workdir: str, extra) -> list[str]:
  return [sys.executable, '-m', 'tomk.main', f'--config={config}', f'--workdir={workdir}',
          *extra]


def environment(out: str, data_dir: str) -> dict:
  return {**os.environ, 'TOMK_DATA_DIR': data_dir, 'TOMK_PLOTS': '0',
          'JAX_COMPILATION_CACHE_DIR': os.path.join(out, 'jax-cache'),
          'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
          'XLA_FLAGS': ' '.join(filter(None, [os.environ.get('XLA_FLAGS'),
                                              '--xla_backend_optimization_level=0']))}


def plan(counts: dict, points: int) -> list[tuple[str, int]]:
  """`points` kill points over the events the reference run had: one data_build, the rest
  dealt to the other kinds of event in turn, each kind's occurrences spread over the run."""
  kinds = [e for e in EVENTS if e != 'data_build' and counts.get(e)]
  taken, left = dict.fromkeys(kinds, 0), points - 1
  while left > 0 and any(taken[k] < counts[k] for k in kinds):
    for kind in kinds:
      if left > 0 and taken[kind] < counts[kind]:
        taken[kind], left = taken[kind] + 1, left - 1
  chosen = [('data_build', 1)] if points else []
  for kind, n in taken.items():
    chosen += [(kind, 1 + round(j * (counts[kind] - 1) / (n - 1)) if n > 1 else
                max(1, counts[kind] // 2)) for j in range(n)]
  return chosen


def identical(reference: str, workdir: str) -> list[str]:
  """What differs between two workdirs: metrics.jsonl and every evaluation as tomk.reproduce
  compares them, report.md's bytes, every stage's last parameters."""
  differ = [message for same, message in (reproduce.compare_metrics(reference, workdir),
                                          reproduce.compare_evaluations(reference, workdir))
            if not same]
  reports = [os.path.join(root, 'report.md') for root in (reference, workdir)]
  if any(not os.path.exists(p) for p in reports) or len({open(p, 'rb').read()
                                                         for p in reports}) > 1:
    differ.append('report.md')
  return differ + _differing_parameters(reference, workdir)


def _differing_parameters(reference: str, workdir: str) -> list[str]:
  import numpy as np
  from tomk import checkpoints
  out = []
  for stage_dir in sorted(glob.glob(os.path.join(reference, 'checkpoints', '*'))):
    stage = os.path.basename(stage_dir)
    steps = [int(s) for s in os.listdir(stage_dir) if s.isdigit()]
    if not steps:
      continue
    step = max(steps)
    a, b = (checkpoints.host_state(root, stage, step) for root in (reference, workdir))
    if a is None or b is None:
      out.append(f'checkpoints/{stage}/{step} (missing)')
      continue
    leaves_a, leaves_b = (checkpoints.flat(x) for x in (a, b))
    if leaves_a.keys() != leaves_b.keys() or not all(
        np.array_equal(leaves_a[k], leaves_b[k]) for k in leaves_a):
      out.append(f'checkpoints/{stage}/{step}')
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/empathy.py:smoke')
  parser.add_argument('--points', type=int, default=20)
  parser.add_argument('--out', default='/tmp/tomk-kills')
  parser.add_argument('extra', nargs='*', help='more flags for tomk.main (--config.x=y)')
  args = parser.parse_args()
  out = os.path.abspath(args.out)
  shutil.rmtree(out, ignore_errors=True)
  os.makedirs(out)
  data_dir = os.path.join(out, 'data')

  # Every workdir is named 'run' (in a directory of its own): report.md's title is its name.
  reference = os.path.join(out, 'reference', 'run')
  print(f'reference run: {args.config} in {reference}', flush=True)
  with open(os.path.join(out, 'reference.log'), 'w') as log:
    started = time.perf_counter()
    watch = Watch(command(args.config, reference, args.extra), environment(out, data_dir),
                  reference, data_dir, log=log)
    if watch.wait() != 0:
      sys.exit(f'the reference run failed; see {out}/reference.log')
  print(f'  {time.perf_counter() - started:.0f} s; events {watch.counts}', flush=True)

  rows = []
  for k, (event, n) in enumerate(plan(watch.counts, args.points), 1):
    workdir = os.path.join(out, f'point{k:02d}', 'run')
    point_data = os.path.join(out, f'data-{k:02d}') if event == 'data_build' else data_dir
    env = environment(out, point_data)
    with open(os.path.join(out, f'point{k:02d}.log'), 'w') as log:
      killed = Watch(command(args.config, workdir, args.extra), env, workdir, point_data,
                     kill_at=(event, n), log=log)
      killed.wait()
      log.write('\n=== resumed ===\n')
      log.flush()
      resumed = subprocess.run(command(args.config, workdir, args.extra), cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    differ = identical(reference, workdir) if resumed.returncode == 0 else ['resume failed']
    if not killed.killed:
      differ.append('the event never happened: not killed')
    landed = killed.landed or {}
    rows.append({'point': k, 'kill_at': f'{event} #{n}', 'landed': landed.get('last_line', ''),
                 'unfinished': landed.get('unfinished', []), 'identical': not differ,
                 'differ': differ})
    print(f'{k:2d}. {event} #{n}: {"identical" if not differ else "DIFFERS: " + ", ".join(differ)}'
          f'\n    last line: {landed.get("last_line", "-")}'
          f'\n    unfinished: {", ".join(landed.get("unfinished", [])) or "-"}', flush=True)
  with open(os.path.join(out, 'kills.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  same = sum(r['identical'] for r in rows)
  print(f'{same}/{len(rows)} identical after SIGKILL and resume ({out}/kills.json)')
  sys.exit(0 if same == len(rows) else 1)


if __name__ == '__main__':
  main()
