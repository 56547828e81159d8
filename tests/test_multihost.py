"""Multi-host (SPEC §7): two local processes × 4 fake CPU devices, as pod workers run.

launch/local.py starts them with tomk.main's --coordinator_address / --num_processes /
--process_id; JAX's CPU collectives (gloo) join them into one 8-device mesh. Each
process reads its own part of the data, so the single-process run they are checked
against reads the same two parts side by side (_REFERENCE below).
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import EIGHT_DEVICES, REPO, SMALL_EVALUATION

STEPS = 20
ARGS = (f'--config.steps={STEPS}', '--config.log_every=5', '--config.eval_every=10',
        '--config.checkpoint_every=5', '--config.eval_batches=1', *SMALL_EVALUATION)
# The tests that read the module's runs: one xdist worker makes them once.
MULTIHOST_RUNS = pytest.mark.xdist_group('multihost')

# One process, 8 devices, reading what processes 0 and 1 of 2 read, row-concatenated in
# process order (the order make_array_from_process_local_data lays them on the mesh).
_REFERENCE = r'''
import json, runpy, sys
import numpy as np
from tomk.data import pipeline

PROCESSES = 2
lm_dataset, eval_batches = pipeline.lm_dataset, pipeline.eval_batches


class Joined:
  def __init__(self, iterators):
    self.iterators = iterators

  def __iter__(self):
    return self

  def __next__(self):
    parts = [next(it) for it in self.iterators]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  def get_state(self):
    return json.dumps([it.get_state() for it in self.iterators]).encode()

  def set_state(self, state):
    for it, s in zip(self.iterators, json.loads(state)):
      it.set_state(s)


def joined_lm_dataset(*args, process_index=0, process_count=1, **kwargs):
  assert (process_index, process_count) == (0, 1)
  return Joined([iter(lm_dataset(*args, process_index=i, process_count=PROCESSES, **kwargs))
                 for i in range(PROCESSES)])


def joined_eval_batches(*args, process_index=0, process_count=1, **kwargs):
  parts = [eval_batches(*args, process_index=i, process_count=PROCESSES, **kwargs)
           for i in range(PROCESSES)]
  return [{k: np.concatenate([p[k] for p in batches]) for k in batches[0]}
          for batches in zip(*parts)]


pipeline.lm_dataset, pipeline.eval_batches = joined_lm_dataset, joined_eval_batches
sys.argv = ['tomk.main', *sys.argv[1:]]
runpy.run_module('tomk.main', run_name='__main__')
'''


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _launch(workdir, **kwargs):
  cmd = [sys.executable, os.path.join(REPO, 'launch', 'local.py'), '--num_processes=2',
         '--devices_per_process=4', '--', '--config=configs/pretrain.py:smoke',
         f'--workdir={workdir}', *ARGS]
  return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kwargs)


@pytest.fixture(scope='module')
def reference(data_dir, tmp_path_factory):
  """The single-process 8-device run of the two processes' data (also fills the data cache)."""
  workdir = tmp_path_factory.mktemp('reference')
  script = workdir / 'reference.py'
  script.write_text(_REFERENCE)
  result = subprocess.run(
      [sys.executable, str(script), '--config=configs/pretrain.py:smoke',
       f'--workdir={workdir / "run"}', '--config.mesh.data=8', *ARGS], cwd=REPO,
      capture_output=True, text=True, timeout=600,
      # A script outside the repository: tomk must be importable from REPO, installed or not.
      env={**os.environ, **EIGHT_DEVICES,
           'PYTHONPATH': os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')]))})
  assert result.returncode == 0, result.stderr[-3000:]
  return _records(workdir / 'run')


@pytest.fixture(scope='module')
def preempted_then_resumed(reference, tmp_path_factory):
  """2 processes: SIGTERM after the first checkpoint, then the same command again."""
  workdir = tmp_path_factory.mktemp('multihost') / 'run'
  first = _launch(workdir)
  checkpoints = workdir / 'checkpoints' / 'pretrain'
  deadline = time.time() + 400
  while time.time() < deadline and first.poll() is None:
    if (checkpoints / '5').exists():
      break
    time.sleep(0.02)
  first.send_signal(signal.SIGTERM)          # launch/local.py forwards it to both processes
  first_out, _ = first.communicate(timeout=300)
  second = _launch(workdir)
  second_out, _ = second.communicate(timeout=400)
  return workdir, (first.returncode, first_out), (second.returncode, second_out)


@MULTIHOST_RUNS
def test_two_processes_preempt_resume_and_match_one_process(reference, preempted_then_resumed):
  workdir, (code1, out1), (code2, out2) = preempted_then_resumed
  assert code1 == 0, out1[-3000:]
  assert 'preempted: saved step' in out1, out1[-3000:]
  saved = int(out1.split('preempted: saved step ')[1].split(';')[0])
  assert 5 <= saved < STEPS
  assert code2 == 0, out2[-3000:]
  assert f'resuming {workdir} from step {saved}' in out2 and f'done: {STEPS - saved} steps' in out2
  records = _records(workdir)
  assert [r['step'] for r in records] == [r['step'] for r in reference]
  for a, b in zip(reference, records):
    for key in a:
      if key.startswith(('loss/', 'eval/nll_')):
        np.testing.assert_allclose(b[key], a[key], rtol=2e-4, err_msg=f'step {a["step"]} {key}')


@MULTIHOST_RUNS
def test_only_process_zero_writes_logs(preempted_then_resumed):
  workdir, (_, out1), (_, out2) = preempted_then_resumed
  for out in (out1, out2):
    assert '[pretrain] step' in out and '[process 1] [pretrain]' not in out
  records = [(r['step'], tuple(sorted(r))) for r in _records(workdir)]
  assert len(records) == len(set(records))        # no record written twice
  # One event file per invocation (the preempted one and the resumed one), not per process.
  assert len(os.listdir(workdir / 'tensorboard')) == 2


@MULTIHOST_RUNS
def test_checkpoints_are_written_by_both_processes(preempted_then_resumed):
  workdir, _, _ = preempted_then_resumed
  final = workdir / 'checkpoints' / 'pretrain' / str(STEPS)
  assert sorted(os.listdir(final / 'data')) == ['commit_success.txt', 'process_0-of-2.json',
                                                'process_1-of-2.json']
  states = [json.loads((final / 'data' / f'process_{i}-of-2.json').read_text()) for i in (0, 1)]
  assert states[0] != states[1]                   # two readers, each at its own position
  assert {'ocdbt.process_0', 'ocdbt.process_1'} <= set(os.listdir(final / 'state'))


def test_each_process_reads_a_different_part_of_the_data(data_dir):
  import importlib.util
  from tomk.data import sources
  spec = importlib.util.spec_from_file_location('pretrain_config',
                                                os.path.join(REPO, 'configs', 'pretrain.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('smoke').data
  documents = [sources.documents(config, 'train', seed=0, process_index=i, process_count=2,
                                   shuffle=True, repeat=False)[0] for i in (0, 1)]
  indices = [{int(index) for _, index in part} for part in documents]
  assert indices[0] and indices[1] and not indices[0] & indices[1]
  total = len(sources.documents(config, 'train', seed=0, process_index=0, process_count=1,
                                  shuffle=False, repeat=False)[0])
  assert len(indices[0]) + len(indices[1]) == total
