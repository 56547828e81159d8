"""Sweeps: one config run at many points, each point its own workdir.

  python -m tomk.sweep --config=configs/pretrain.py:smoke --sweep=configs/sweeps/seeds_x_lr.py \
      --sweepdir=runs/lr-sweep [--parallel=2] [--print_commands] [--config.steps=100 ...]

A sweep file (configs/sweeps/*.py) has `get_sweep(arg=None)` returning a list of
overrides, one dict per point, built with tomk.hyper as XManager's `hyper` does:

  hyper.product(hyper.sweep('seed', range(3)),
                hyper.sweep('optimizer.behavior.learning_rate', [3e-3, 1e-2]))

Each point runs as `python -m tomk.main --config=... --workdir=SWEEPDIR/NAME --config.k=v ...`
(NAME spells its overrides, e.g. `seed=0,optimizer.behavior.learning_rate=0.003`), one
after another or --parallel at a time; --config.k=v flags given to the sweep apply to
every point; each point's output goes to its stdout.log and stderr.log. Re-running the
command skips finished points (a DONE marker, written once main exited 0 having reached
its last step, or provenance.json with an end time) and resumes the others (main resumes
a workdir from its last checkpoint). A failed point is recorded with its exit code and
stderr tail in SWEEPDIR/sweep.json and does not stop the others; so is a point that exited
0 early (main does after a SIGTERM, once its checkpoint is saved). The command exits 1 if
any point failed or is incomplete, 130 if interrupted. --print_commands prints the launch
commands (for a pod or a cluster) and runs nothing.

A point may name its own config file (hyper.CONFIG) and branch from another point
(hyper.BRANCH_FROM, e.g. configs/sweeps/kindness.py): it starts once its source has
finished (a cluster running --print_commands must keep that order), and is marked failed,
not launched, if the source fails.

Points of a seed sweep share their compiled programs if the children get a persistent
compilation cache, e.g. JAX_COMPILATION_CACHE_DIR=/tmp/jax-cache
JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 in the environment (children inherit it).
"""
from __future__ import annotations

import collections
import datetime
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Sequence

from absl import app
from absl import flags

from tomk import cli, config as config_lib
from tomk import rundir
from tomk.hyper import BRANCH_FROM, CONFIG, Point
from tomk.sweep_points import check_points, command, configs_of, load_sweep, point_name

FLAGS = flags.FLAGS


# --- Running a sweep -----------------------------------------------------------------------------


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def _tail(path: str, offset: int, chars: int = 2000) -> str:
  try:
    with open(path, errors='replace') as f:
      f.seek(offset)
      return f.read()[-chars:]
  except OSError:
    return ''


class _Interrupted(Exception):
  pass


def _raise_interrupted(signum, frame):
  del frame
  raise _Interrupted(signal.Signals(signum).name)


class Sweep:
  """The points of one sweepdir, their status, and the subprocesses that run them."""

  def __init__(self, config: str, sweep_spec: str, sweepdir: str, points: Sequence[Point],
               overrides: Sequence[str] = ()):
    self.config, self.sweep_spec, self.sweepdir = config, sweep_spec, sweepdir
    self.overrides = list(overrides)
    self.path = rundir.sweep_state_path(sweepdir)
    old = self._load_old()
    self.records = {}
    self.current = [point_name(p) for p in points]
    for point in points:
      name = point_name(point)
      workdir = os.path.join(sweepdir, name)
      record = {'name': name, 'overrides': point, 'workdir': workdir,
                'command': command(config, workdir, point, self.overrides),
                'status': 'pending', 'launches': 0}
      previous = old.pop(name, None)
      if previous:
        record['launches'] = previous.get('launches', 0)
        for k in ('exit_code', 'seconds', 'error', 'finished_at'):
          if k in previous:
            record[k] = previous[k]
      if rundir.finished(workdir):
        record['status'] = 'done'
      self.records[name] = record
    # Points of an earlier sweep file in the same dir stay listed; compare reads them too.
    for name, previous in old.items():
      previous['status'] = 'done' if rundir.finished(previous['workdir']) else previous['status']
      self.records[name] = previous

  def _load_old(self) -> dict[str, dict]:
    if not os.path.exists(self.path):
      return {}
    with open(self.path) as f:
      old = json.load(f)
    if old.get('config') != self.config or old.get('overrides', []) != self.overrides:
      raise ValueError(
          f'{self.sweepdir} holds a sweep of --config={old.get("config")} with '
          f'{" ".join(old.get("overrides", [])) or "no --config.* flags"}, not --config='
          f'{self.config} {" ".join(self.overrides)}; use a new --sweepdir, or the same --config '
          f'and --config.* flags to continue that sweep.')
    return {p['name']: p for p in old.get('points', [])}

  def save(self) -> None:
    rundir.write_json(self.path, {'config': self.config, 'sweep': self.sweep_spec,
                                  'overrides': self.overrides, 'updated': _now(),
                                  'points': list(self.records.values())}, sort_keys=False)

  def run(self, parallel: int = 1, python: str = sys.executable, poll_seconds: float = 0.2,
          log=print) -> int:
    """Runs every unfinished point; returns the number of failed or incomplete points."""
    todo = [self.records[n] for n in self.current if self.records[n]['status'] != 'done']
    for record in todo:        # this run's: a branch waits for its source to run again
      record['status'] = 'pending'
    log(f'[sweep] {len(self.current)} points in {self.sweepdir}: '
        f'{len(self.current) - len(todo)} finished before, {len(todo)} to run, {parallel} at a '
        f'time', flush=True)
    running: dict[str, tuple[subprocess.Popen, float, int]] = {}
    handlers = {}
    try:      # SIGTERM (a scheduler, `kill`) stops the children too, instead of orphaning them
      for s in (signal.SIGTERM, signal.SIGHUP):
        handlers[s] = signal.signal(s, _raise_interrupted)
    except ValueError:
      pass    # not the main thread: signals stay as they were
    try:
      while todo or running:
        for record in [r for r in todo if self._source_status(r) in ('failed', 'incomplete')]:
          todo.remove(record)
          record.pop('exit_code', None)
          record['status'] = 'failed'
          record['error'] = f'its branch source {self._source(record)} did not finish.'
          log(f'[sweep] FAILED {record["name"]}: {record["error"]}', flush=True)
          self.save()
        ready = [r for r in todo if self._source_status(r) in (None, 'done')]
        while ready and len(running) < parallel:
          record = ready.pop(0)
          todo.remove(record)
          running[record['name']] = self._launch(record, python)
          log(f'[sweep] started {record["name"]}', flush=True)
        time.sleep(poll_seconds)
        for name, (process, started, offset) in list(running.items()):
          if process.poll() is None:
            continue
          del running[name]
          self._finish(self.records[name], process.returncode, time.time() - started, offset, log)
    except (KeyboardInterrupt, _Interrupted) as e:
      log(f'[sweep] interrupted ({e or "SIGINT"}); stopping {len(running)} running point(s). '
          f'Re-run the same command to resume.', flush=True)
      for process, _, _ in running.values():
        process.terminate()
      for name, (process, _, _) in running.items():
        try:
          process.wait(timeout=60)     # main saves a checkpoint on SIGTERM
        except subprocess.TimeoutExpired:
          process.kill()
        self.records[name]['status'] = 'interrupted'
      self.save()
      raise
    finally:
      for s, h in handlers.items():
        signal.signal(s, h)
    failed = [r for r in self.records.values() if r['status'] in ('failed', 'incomplete')]
    log(f'[sweep] {sum(r["status"] == "done" for r in self.records.values())} done, '
        f'{len(failed)} failed or incomplete' + ''.join(
            f'\n  {r["status"].upper()} {r["name"]} ' + (
            f'(exit {r["exit_code"]}), see {r["workdir"]}/stderr.log' if 'exit_code' in r
            else f'(not launched: {r.get("error", "")})') for r in failed),
        flush=True)
    drift = self.config_drift()
    if drift:
      log(f'[sweep] warning: the points ran with configs that differ in keys the sweep does '
          f'not set: {", ".join(drift)}. The config file or tomk changed mid-sweep; re-run in a '
          f'new --sweepdir for comparable points.', flush=True)
    return len(failed)

  def _source(self, record: dict) -> str | None:
    source = record['overrides'].get(BRANCH_FROM)
    return None if source is None else point_name(source)

  def _source_status(self, record: dict) -> str | None:
    """None for a point that trains from scratch, else the status of its branch source."""
    source = self._source(record)
    return None if source is None else self.records[source]['status']

  def config_drift(self) -> list[str]:
    """Keys, other than swept ones, whose value differs between finished points' config.json
    (among the points of one config file)."""
    configs, swept = collections.defaultdict(list), set()
    for name in self.current:
      record = self.records[name]
      if record['status'] == 'done' and rundir.is_run(record['workdir']):
        swept.update(k for k in record['overrides'] if k != BRANCH_FROM)
        configs[record['overrides'].get(CONFIG)].append(
            rundir.flatten(config_lib.to_json(rundir.read_config(record['workdir']))))
    drift = set()
    for group in configs.values():
      keys = {k for c in group for k in c} - swept
      drift |= {k for k in keys if len({json.dumps(c.get(k, rundir.ABSENT), sort_keys=True)
                                        for c in group}) > 1}
    return sorted(drift)

  def _launch(self, record: dict, python: str) -> tuple[subprocess.Popen, float, int]:
    os.makedirs(record['workdir'], exist_ok=True)
    cmd = [python, *record['command'][1:]]
    stdout_path = os.path.join(record['workdir'], 'stdout.log')
    stderr_path = os.path.join(record['workdir'], 'stderr.log')
    offset = os.path.getsize(stderr_path) if os.path.exists(stderr_path) else 0
    record['launches'] += 1
    record['status'] = 'running'
    for k in ('exit_code', 'error'):
      record.pop(k, None)
    self.save()
    with open(stdout_path, 'a') as out, open(stderr_path, 'a') as err:
      out.write(f'=== launch {record["launches"]} at {_now()}: {shlex.join(cmd)}\n')
      out.flush()
      # The child stays in the sweep's process group: killing the group stops it too.
      process = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    return process, time.time(), offset

  def _finish(self, record: dict, code: int, seconds: float, offset: int, log) -> None:
    record['exit_code'], record['seconds'] = code, round(seconds, 1)
    if code == 0 and not rundir.reached_the_end(record['workdir']):
      # main exits 0 when preempted (SIGTERM) once its checkpoint is saved: not finished.
      record['status'] = 'incomplete'
      record['error'] = ('exited 0 before its last step (preempted?); re-run the sweep to '
                         'resume it.')
      log(f'[sweep] INCOMPLETE {record["name"]}: {record["error"]}', flush=True)
    elif code == 0:
      rundir.write_json(rundir.done_path(record['workdir']),
                        {'command': record['command'], 'seconds': record['seconds'],
                         'time': _now()}, sort_keys=False)
      record['status'], record['finished_at'] = 'done', _now()
      log(f'[sweep] done {record["name"]} in {seconds:.0f} s', flush=True)
    else:
      record['status'] = 'failed'
      record['error'] = _tail(os.path.join(record['workdir'], 'stderr.log'), offset)
      last = record['error'].strip().splitlines()[-1:] or ['(no stderr)']
      log(f'[sweep] FAILED {record["name"]} (exit {code}): {last[0]}', flush=True)
    self.save()


def _lock(sweepdir: str):
  """Holds DIR/.sweep.lock while running; the kernel drops it if the runner dies."""
  handle = open(os.path.join(sweepdir, '.sweep.lock'), 'a+')
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    raise ValueError(f'another tomk.sweep is running in {sweepdir}; wait for it, or stop it '
                     f'before re-running.') from None
  return handle


def _config_overrides(argv: Sequence[str]) -> list[str]:
  overrides = []
  for arg in argv:
    if arg.startswith('--config.'):
      if '=' not in arg:
        raise ValueError(f'write {arg}=VALUE (with "=") so the sweep can pass it to every run.')
      overrides.append(arg)
  return overrides


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    overrides = _config_overrides(sys.argv[1:])
    points = load_sweep(FLAGS.sweep)
    config = FLAGS['config'].config_filename     # path[:arg], as given
    check_points(FLAGS.config, points, overrides, configs_of(config, FLAGS.config, points))
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)
  if FLAGS.print_commands:
    for point in points:
      print(shlex.join(command(config, os.path.join(FLAGS.sweepdir, point_name(point)), point,
                               overrides)))
    return
  if FLAGS.parallel < 1:
    print('error: --parallel must be at least 1.', file=sys.stderr)
    sys.exit(2)
  os.makedirs(FLAGS.sweepdir, exist_ok=True)
  try:
    lock = _lock(FLAGS.sweepdir)
    state = Sweep(config, FLAGS.sweep, FLAGS.sweepdir, points, overrides)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)
  state.save()
  try:
    failed = state.run(parallel=FLAGS.parallel)
  except (KeyboardInterrupt, _Interrupted):
    sys.exit(130)
  finally:
    lock.close()
  sys.exit(1 if failed else 0)


def _define_flags():
  # Only when run as a program: sweep files import this module for its helpers.
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'The config every point starts from '
                                  '(configs/X.py[:arg]).', lock_config=True)
  flags.DEFINE_string('sweep', None, 'Sweep file configs/sweeps/Y.py[:arg] with get_sweep().')
  flags.DEFINE_string('sweepdir', None, 'Where each point gets its workdir, plus sweep.json.')
  flags.DEFINE_integer('parallel', 1, 'How many points run at a time.')
  flags.DEFINE_bool('print_commands', False, 'Print the launch commands and run nothing.')
  flags.mark_flags_as_required(['config', 'sweep', 'sweepdir'])


if __name__ == '__main__':
  _define_flags()
  app.run(main, flags_parser=cli.parse_flags)
