"""Tests of tomk.sweep: sweep building, the runner's bookkeeping, a real 3 × 2 smoke sweep,
and an interrupted sweep that resumes to the same bytes.

The real sweeps run `python -m tomk.main` on configs/pretrain.py:smoke cut to 6 steps, with a
smaller evaluation. The persistent compilation cache shared by every run of the session
(conftest.py) makes all but the first run of each learning rate skip XLA compilation.
The tests that read the 3 × 2 sweep (here and in tests/test_reproduce.py) are marked
SMOKE_SWEEP: one xdist worker runs them, so the sweep is made once.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, SMALL_EVALUATION
from tomk import hyper
from tomk import rundir
from tomk import sweep

SMOKE = ['--config=configs/pretrain.py:smoke', '--config.steps=6', '--config.log_every=3',
         '--config.eval_every=6', '--config.checkpoint_every=3', *SMALL_EVALUATION]
SMOKE_SWEEP = pytest.mark.xdist_group('smoke_sweep')


# --- Building sweeps -------------------------------------------------------------------------

def test_product_zip_chain():
  seeds = hyper.sweep('seed', range(2))
  lrs = hyper.zipit(hyper.sweep('a.lr', [1e-3, 1e-2]), hyper.sweep('b.lr', [2e-3, 2e-2]))
  assert hyper.product(seeds, lrs) == [
      {'seed': 0, 'a.lr': 1e-3, 'b.lr': 2e-3}, {'seed': 0, 'a.lr': 1e-2, 'b.lr': 2e-2},
      {'seed': 1, 'a.lr': 1e-3, 'b.lr': 2e-3}, {'seed': 1, 'a.lr': 1e-2, 'b.lr': 2e-2}]
  assert hyper.chain(seeds, hyper.fixed('x', 'y')) == [{'seed': 0}, {'seed': 1}, {'x': 'y'}]
  with pytest.raises(ValueError, match='equal length'):
    hyper.zipit(seeds, hyper.sweep('a', [1, 2, 3]))
  with pytest.raises(ValueError, match='seed is set twice'):
    hyper.product(seeds, hyper.sweep('seed', [5]))


def test_names_and_commands():
  point = {'seed': 0, 'optimizer.behavior.learning_rate': 0.001, 'data.source': 'a/b c.jsonl'}
  assert sweep.point_name(point) == ('seed=0,optimizer.behavior.learning_rate=0.001,'
                                     'data.source=a%2Fb%20c.jsonl')
  assert sweep.point_name({}) == 'default'
  long = sweep.point_name({f'key{i}': 'v' * 20 for i in range(20)})
  assert len(long) <= 200 and long != sweep.point_name({f'key{i}': 'w' * 20 for i in range(20)})
  assert sweep.command('c.py:smoke', 'd/w', {'seed': 1, 'lr': 1e-05}, ['--config.steps=6']) == [
      'python', '-m', 'tomk.main', '--config=c.py:smoke', '--workdir=d/w', '--config.steps=6',
      '--config.seed=1', '--config.lr=1e-05']


def test_shipped_sweep_files():
  seeds = sweep.load_sweep(os.path.join(REPO, 'configs/sweeps/seeds.py'))
  assert seeds == [{'seed': 0}, {'seed': 1}, {'seed': 2}]
  assert len(sweep.load_sweep(os.path.join(REPO, 'configs/sweeps/seeds.py:5'))) == 5
  grid = sweep.load_sweep(os.path.join(REPO, 'configs/sweeps/seeds_x_lr.py'))
  assert len(grid) == 6 and {p['seed'] for p in grid} == {0, 1, 2}
  assert len({p['optimizer.behavior.learning_rate'] for p in grid}) == 2


def _smoke_config():
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  from configs import pretrain  # pylint: disable=g-import-not-at-top
  return pretrain.get_config('smoke')


def test_check_points_names_the_fix():
  config = _smoke_config()
  config.lock()
  sweep.check_points(config, [{'seed': 1, 'optimizer.behavior.learning_rate': 0.01}], [])
  with pytest.raises(ValueError, match='did you mean optimizer.behavior.learning_rate'):
    sweep.check_points(config, [{'optimizer.behavior.learning_rat': 0.01}], [])
  with pytest.raises(ValueError, match='does not fit'):
    sweep.check_points(config, [{'seed': 'zero'}], [])
  with pytest.raises(ValueError, match='both given to the sweep and swept'):
    sweep.check_points(config, [{'seed': 1}], ['--config.seed=2'])


# --- The runner's bookkeeping, with a stand-in for python -m tomk.main -----------------------

_FAKE_PYTHON = """\
#!{python}
# Stands in for `python -m tomk.main ...`: seed=1 fails, the others write a metrics file.
import json, os, sys
args = dict(a[2:].split('=', 1) for a in sys.argv[3:])
os.makedirs(args['workdir'], exist_ok=True)
counter = os.path.join(args['workdir'], 'calls')
calls = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, 'w').write(str(calls))
if args.get('config.seed') == '1' and not os.path.exists(os.environ['FIXED']):
  print('Traceback ...\\nValueError: seed 1 is cursed', file=sys.stderr)
  sys.exit(3)
open(os.path.join(args['workdir'], 'metrics.jsonl'), 'w').write('{{"step": 0}}\\n')
config = {{'seed': int(args['config.seed']), 'steps': 0,
          'code': 'v2' if os.path.exists(os.environ['FIXED']) else 'v1'}}
if os.environ.get('PREEMPTED'):    # like main after a SIGTERM: checkpoint saved, exit 0
  config['steps'] = 2
json.dump(config, open(os.path.join(args['workdir'], 'config.json'), 'w'))
"""


def test_runner_records_failures_and_skips_finished(tmp_path, monkeypatch):
  fake = tmp_path / 'fake-python'
  fake.write_text(_FAKE_PYTHON.format(python=sys.executable))
  fake.chmod(0o755)
  monkeypatch.setenv('FIXED', str(tmp_path / 'fixed'))
  sweepdir = str(tmp_path / 'sweep')
  os.makedirs(sweepdir)
  points = hyper.sweep('seed', range(3))
  state = sweep.Sweep('c.py', 'seeds.py', sweepdir, points, ['--config.steps=2'])
  assert state.run(parallel=2, python=str(fake), poll_seconds=0.01, log=lambda *a, **k: None) == 1
  with open(os.path.join(sweepdir, 'sweep.json')) as f:
    record = {p['name']: p for p in json.load(f)['points']}
  assert [record[f'seed={i}']['status'] for i in range(3)] == ['done', 'failed', 'done']
  assert record['seed=1']['exit_code'] == 3
  assert 'seed 1 is cursed' in record['seed=1']['error']
  assert os.path.exists(os.path.join(sweepdir, 'seed=0', 'DONE'))
  assert not os.path.exists(os.path.join(sweepdir, 'seed=1', 'DONE'))

  # Re-running retries only the failed point; the finished ones are not launched again.
  (tmp_path / 'fixed').write_text('')
  state = sweep.Sweep('c.py', 'seeds.py', sweepdir, points, ['--config.steps=2'])
  assert state.run(parallel=1, python=str(fake), poll_seconds=0.01, log=lambda *a, **k: None) == 0
  calls = [int((tmp_path / 'sweep' / f'seed={i}' / 'calls').read_text()) for i in range(3)]
  assert calls == [1, 2, 1]
  assert [state.records[f'seed={i}']['launches'] for i in range(3)] == [1, 2, 1]
  # seed=1 ran with other code than seeds 0 and 2: the sweep says its points are not comparable.
  assert state.config_drift() == ['code']
  with pytest.raises(ValueError, match='use a new --sweepdir'):
    sweep.Sweep('other.py', 'seeds.py', sweepdir, points, ['--config.steps=2'])


def test_exit_zero_before_the_last_step_is_not_done(tmp_path, monkeypatch):
  fake = tmp_path / 'fake-python'
  fake.write_text(_FAKE_PYTHON.format(python=sys.executable))
  fake.chmod(0o755)
  monkeypatch.setenv('FIXED', str(tmp_path / 'fixed'))
  monkeypatch.setenv('PREEMPTED', '1')
  state = sweep.Sweep('c.py', 'seeds.py', str(tmp_path), hyper.sweep('seed', [0]))
  assert state.run(python=str(fake), poll_seconds=0.01, log=lambda *a, **k: None) == 1
  assert state.records['seed=0']['status'] == 'incomplete'
  assert not os.path.exists(tmp_path / 'seed=0' / 'DONE')
  assert not rundir.finished(str(tmp_path / 'seed=0'))


_FAKE_ARM = """\
#!{python}
# Stands in for `python -m tomk.main ...`, logging when it starts and ends; seed=1 of the
# sweep's own config fails.
import json, os, sys, time
args = dict(a[2:].split('=', 1) for a in sys.argv[3:])
name = os.path.basename(args['workdir'])
log = lambda event: open(os.environ['ORDER'], 'a').write(f'{{event}} {{name}} {{args.get("branch_from", "-")}}\\n')
log('start')
os.makedirs(args['workdir'], exist_ok=True)
time.sleep(0.2)
if args.get('config.seed') == '1' and args['config'] == 'c.py':
  sys.exit(3)
open(os.path.join(args['workdir'], 'metrics.jsonl'), 'w').write('{{"step": 0}}\\n')
json.dump({{'seed': int(args['config.seed']), 'steps': 0, 'file': args['config']}},
          open(os.path.join(args['workdir'], 'config.json'), 'w'))
log('end')
"""


def test_a_branch_runs_after_its_source_and_fails_with_it(tmp_path, monkeypatch):
  """Points may name their own config file and branch from another point: the branch waits
  for its source (listed first or not, whatever --parallel), gets --branch_from its
  workdir, and fails unlaunched when the source fails."""
  fake = tmp_path / 'fake-python'
  fake.write_text(_FAKE_ARM.format(python=sys.executable))
  fake.chmod(0o755)
  order = tmp_path / 'order'
  monkeypatch.setenv('ORDER', str(order))
  sources = hyper.sweep('seed', range(2))
  points = [{hyper.CONFIG: 'arm.py', 'seed': s['seed'], hyper.BRANCH_FROM: s} for s in sources]
  points += sources
  sweepdir = str(tmp_path / 'sweep')
  os.makedirs(sweepdir)
  state = sweep.Sweep('c.py', 'arms.py', sweepdir, points)
  assert state.run(parallel=3, python=str(fake), poll_seconds=0.01, log=lambda *a, **k: None) == 2
  events = order.read_text().splitlines()
  assert events.index(f'end seed=0 -') < events.index(
      f'start config=arm,seed=0 {os.path.join(sweepdir, "seed=0")}')
  assert not any('config=arm,seed=1' in e for e in events)       # never launched
  status = {name: r['status'] for name, r in state.records.items()}
  assert status == {'config=arm,seed=0': 'done', 'config=arm,seed=1': 'failed',
                    'seed=0': 'done', 'seed=1': 'failed'}
  assert 'branch source seed=1 did not finish' in state.records['config=arm,seed=1']['error']
  assert state.config_drift() == []        # arms of other config files are not drift


def test_kindness_sweep_file(tmp_path, monkeypatch):
  points = sweep.load_sweep(os.path.join(REPO, 'configs/sweeps/kindness.py'))
  names = [sweep.point_name(p) for p in points]
  assert len(points) == 25 and names[:5] == [
      'seed=0', 'config=rlhf,seed=0', 'config=naive_kindness,seed=0',
      'config=oracle_control,seed=0', 'config=empathy:inferred,seed=0']
  assert sweep.command('configs/empathy.py', 'runs/k/config=rlhf,seed=3', points[16]) == [
      'python', '-m', 'tomk.main', '--config=configs/rlhf.py', '--workdir=runs/k/config=rlhf,seed=3',
      '--branch_from=runs/k/seed=3', '--config.seed=3']
  smoke = sweep.load_sweep(os.path.join(REPO, 'configs/sweeps/kindness.py:2,smoke'))
  _smoke_config()                                  # configs/ importable
  from tomk import cli  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(REPO)                          # the sweep file names configs/ relatively
  config = cli.load_config_file('configs/empathy.py:smoke')
  specs = {p.get(hyper.CONFIG, 'configs/empathy.py:smoke') for p in smoke}
  assert specs == {f'configs/{c}.py:smoke' for c in
                   ('empathy', 'rlhf', 'naive_kindness', 'oracle_control')} | {
                       'configs/empathy.py:smoke,inferred'}
  sweep.check_points(config, smoke, [], sweep.configs_of('configs/empathy.py:smoke', config, smoke))
  bad = [dict(smoke[1], seed='zero')]                # checked against configs/rlhf.py:smoke
  with pytest.raises(ValueError, match='does not fit'):
    sweep.check_points(config, bad, [], sweep.configs_of('configs/empathy.py:smoke', config, bad))
  sweep_file = tmp_path / 'stray.py'
  sweep_file.write_text('def get_sweep(arg=None):\n  return '
                        f'{[{"seed": 0}, {"seed": 1, hyper.BRANCH_FROM: {"seed": 7}}]!r}\n')
  with pytest.raises(ValueError, match='not a point of the sweep'):
    sweep.load_sweep(str(sweep_file))


def _sweep_command(sweep_file, sweepdir, *extra):
  return [sys.executable, '-m', 'tomk.sweep', *SMOKE, f'--sweep={sweep_file}',
          f'--sweepdir={sweepdir}', *extra]


def test_cli_print_commands_and_failure_exit_code(data_dir, tmp_path):
  out = subprocess.run(_sweep_command('configs/sweeps/seeds_x_lr.py', tmp_path / 'sw',
                                      '--print_commands'),
                       cwd=REPO, capture_output=True, text=True, check=True).stdout
  lines = out.strip().splitlines()
  assert len(lines) == 6 and not (tmp_path / 'sw').exists()
  assert lines[1] == ('python -m tomk.main --config=configs/pretrain.py:smoke --workdir='
                      f'{tmp_path}/sw/seed=0,optimizer.behavior.learning_rate=0.01 '
                      + ' '.join(SMOKE[1:]) +
                      ' --config.seed=0 --config.optimizer.behavior.learning_rate=0.01')
  # A point main refuses (batch_size 0) is recorded with its error; the sweep exits 1.
  bad = tmp_path / 'bad.py'
  bad.write_text('def get_sweep():\n  return [{"batch_size": 0}]\n')
  result = subprocess.run(_sweep_command(str(bad), tmp_path / 'bad'), cwd=REPO,
                          capture_output=True, text=True)
  assert result.returncode == 1, result.stdout + result.stderr
  with open(tmp_path / 'bad' / 'sweep.json') as f:
    point, = json.load(f)['points']
  assert point['status'] == 'failed' and point['exit_code'] == 1
  assert 'batch_size=0: set it to a positive integer' in point['error']


# --- Real sweeps of the smoke config ---------------------------------------------------------

@pytest.fixture(scope='session')
def smoke_sweep(data_dir, tmp_path_factory):
  """3 seeds × 2 learning rates, two at a time; re-invoking it skips what is done."""
  sweepdir = tmp_path_factory.getbasetemp() / 'smoke-sweep'
  _prepare_data(data_dir)
  started = time.time()
  result = subprocess.run(_sweep_command('configs/sweeps/seeds_x_lr.py', sweepdir,
                                         '--parallel=2'),
                          cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
  print(f'3 × 2 smoke sweep: {time.time() - started:.0f} s')
  return str(sweepdir)


def _prepare_data(data_dir):
  """Builds chitchat and the smoke tokenizer once, so parallel runs do not race to."""
  from tomk.data import pipeline  # pylint: disable=g-import-not-at-top
  config = _smoke_config()
  config.data.data_dir = data_dir
  pipeline.tokenizer_for(config.data)


@SMOKE_SWEEP
def test_smoke_sweep_and_compare(smoke_sweep):
  with open(os.path.join(smoke_sweep, 'sweep.json')) as f:
    state = json.load(f)
  assert state['config'] == 'configs/pretrain.py:smoke'
  assert [p['status'] for p in state['points']] == ['done'] * 6
  for p in state['points']:
    with open(os.path.join(p['workdir'], 'config.json')) as f:
      config = json.load(f)
    assert config['seed'] == p['overrides']['seed'] and config['steps'] == 6
    assert config['optimizer']['behavior']['learning_rate'] == \
        p['overrides']['optimizer.behavior.learning_rate']

  result = subprocess.run([sys.executable, '-m', 'tomk.compare', smoke_sweep], cwd=REPO,
                          capture_output=True, text=True, check=True)
  print(result.stdout)
  assert ('| metric | optimizer.behavior.learning_rate=0.003 (n=3) | '
          'optimizer.behavior.learning_rate=0.01 (n=3) |') in result.stdout
  for metric in ('eval/nll_behavior', 'eval/nll_prediction', 'loss/behavior_nll', 'loss/prediction_nll'):
    assert f'| {metric} | ' in result.stdout
  for name in ('comparison.md', 'comparison.csv', 'plots/curve_loss_behavior_nll.png',
               'plots/eval_eval.png'):
    assert os.path.exists(os.path.join(smoke_sweep, name)), name

  # Re-running the finished sweep launches nothing.
  result = subprocess.run(_sweep_command('configs/sweeps/seeds_x_lr.py', smoke_sweep),
                          cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0 and '6 finished before, 0 to run' in result.stdout


@SMOKE_SWEEP
def test_interrupted_sweep_resumes_to_the_same_bytes(smoke_sweep, tmp_path_factory):
  """Kill the sweep's process group once seed 0 finished and seed 1 saved a checkpoint, re-run
  it: seed 0 is not redone, seed 1 resumes, and every run's config.json and metrics.jsonl
  equal the uninterrupted sweep's (its lr 0.003 is the config's default)."""
  sweepdir = tmp_path_factory.getbasetemp() / 'interrupted-sweep'
  command = _sweep_command('configs/sweeps/seeds.py:2', sweepdir)
  runner = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
  first, second = sweepdir / 'seed=0', sweepdir / 'seed=1'
  deadline = time.time() + 240
  # Kill once seed=0 has finished and seed=1 has saved its step-3 checkpoint (or finished).
  while not ((first / 'DONE').exists() and
             ((second / 'checkpoints' / '3').exists() or (second / 'DONE').exists())):
    assert runner.poll() is None and time.time() < deadline, 'the sweep ended before the kill'
    time.sleep(0.02)
  second_was_done = (second / 'DONE').exists()
  os.killpg(runner.pid, signal.SIGKILL)
  runner.wait()
  first_mtime = (first / 'metrics.jsonl').stat().st_mtime_ns

  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
  assert (first / 'metrics.jsonl').stat().st_mtime_ns == first_mtime
  with open(sweepdir / 'sweep.json') as f:
    points = {p['name']: p for p in json.load(f)['points']}
  assert points['seed=0']['launches'] == 1
  assert points['seed=1']['launches'] == (1 if second_was_done else 2)
  if not second_was_done:
    assert 'resuming' in (second / 'stdout.log').read_text()
  for seed in range(2):
    reference = os.path.join(smoke_sweep, f'seed={seed},optimizer.behavior.learning_rate=0.003')
    for name in ('config.json', 'metrics.jsonl'):
      with open(os.path.join(reference, name), 'rb') as a, \
          open(sweepdir / f'seed={seed}' / name, 'rb') as b:
        assert a.read() == b.read(), f'seed={seed} {name}'
