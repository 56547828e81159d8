"""The run contract (SPEC §7): files in the workdir, clear errors, determinism, resume, devices."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import EIGHT_DEVICES, PRETRAIN_SMOKE, REPO, SMALL_EVALUATION, run_main


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


@PRETRAIN_SMOKE
def test_smoke_run_writes_the_workdir(pretrain_smoke):
  workdir, result, seconds, _ = pretrain_smoke
  print(f'smoke run, compiled programs cached: {seconds:.0f} s')
  for name in ('config.json', 'metrics.jsonl', 'checkpoints', 'tensorboard'):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(f'{workdir}/tensorboard'))
  records = _records(workdir)
  train_records = [r for r in records if 'loss/prediction_nll' in r]
  assert train_records and all(r['stage'] == 'pretrain' and r['algorithm'] == 'pretrain'
                               for r in records)
  assert all('loss/behavior_nll' in r for r in train_records)
  evals = [r for r in records if 'eval/nll_prediction' in r]
  assert evals[0]['step'] == 0 and evals[-1]['step'] == 20
  for stream in ('behavior', 'prediction'):
    assert evals[-1][f'eval/nll_{stream}'] < evals[0][f'eval/nll_{stream}']
  assert json.load(open(f'{workdir}/config.json'))['algorithm'] == 'pretrain'
  assert 'done: 20 steps' in result.stdout
  # TOMK_PLOTS=0 (conftest): report.md says how to draw the PNGs it has not drawn.
  with open(f'{workdir}/report.md') as f:
    assert 'Not drawn (TOMK_PLOTS=0)' in f.read()
  assert not os.path.exists(f'{workdir}/plots')


@PRETRAIN_SMOKE
def test_same_config_and_seed_give_byte_identical_metrics(pretrain_smoke):
  workdir, _, _, first = pretrain_smoke       # the first compiled, the second read the cache
  assert open(f'{workdir}/metrics.jsonl', 'rb').read() == \
      open(f'{first}/metrics.jsonl', 'rb').read()


@PRETRAIN_SMOKE
def test_rerun_on_finished_workdir_resumes_without_redoing(pretrain_smoke):
  workdir, _, _, _ = pretrain_smoke
  before = open(f'{workdir}/metrics.jsonl', 'rb').read()
  result = run_main(workdir)
  assert 'resuming' in result.stdout
  assert open(f'{workdir}/metrics.jsonl', 'rb').read() == before


# Long enough that SIGTERM sent once a checkpoint is saved (step 10) lands mid-run, with 50
# steps to spare on a loaded machine. SIGKILL at chosen points, then resume: tests/test_kills.py.
LONG_STEPS = 60
LONG = (f'--config.steps={LONG_STEPS}', '--config.log_every=10', '--config.checkpoint_every=10',
        f'--config.eval_every={LONG_STEPS}', *SMALL_EVALUATION)


@PRETRAIN_SMOKE
def test_eight_devices_match_one_device(pretrain_smoke, tmp_path):
  workdir, _, _, _ = pretrain_smoke
  run_main(tmp_path / 'eight', '--config.mesh.data=8', *SMALL_EVALUATION,
           env=EIGHT_DEVICES)
  one, eight = _records(workdir), _records(tmp_path / 'eight')
  assert [r['step'] for r in one] == [r['step'] for r in eight]
  for a, b in zip(one, eight):
    for key in a:
      if key.startswith(('loss/', 'eval/nll')):
        np.testing.assert_allclose(a[key], b[key], rtol=2e-4, err_msg=f'step {a["step"]} {key}')


@pytest.mark.parametrize('overrides, env, message', [
    (('--config.no_such_key=1',), {}, 'no_such_key'),
    (('--config.batch_size=12', '--config.mesh.data=8'),
     EIGHT_DEVICES, 'not divisible by the 8'),
])
def test_bad_input_fails_with_a_clear_message(data_dir, tmp_path, overrides, env, message):
  """Through the command line itself (tests/test_errors.py has the table, in process)."""
  result = run_main(tmp_path / 'w', *overrides, env=env, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().startswith('error: ') and message in result.stderr


@PRETRAIN_SMOKE
def test_workdir_with_a_different_config_is_refused_naming_keys(pretrain_smoke):
  workdir, _, _, _ = pretrain_smoke
  result = run_main(workdir, '--config.seed=7', '--config.batch_size=16', check=False)
  assert result.returncode != 0
  assert 'seed: saved 0, now 7' in result.stderr and 'batch_size' in result.stderr


def test_malformed_jsonl_names_file_and_line(data_dir, tmp_path):
  path = tmp_path / 'mine.jsonl'
  good = {'id': 'a', 'turns': [{'speaker': 'Ann', 'text': 'hi'}, {'speaker': 'Bo', 'text': 'yo'}]}
  path.write_text(json.dumps(good) + '\n' + '{"id": "b", "turns": [{"speaker": "Ann"}]}\n')
  result = run_main(tmp_path / 'w', f'--config.data.source={path}', check=False)
  assert result.returncode != 0
  assert f'{path}:2' in result.stderr


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(data_dir, tmp_path):
  workdir = tmp_path / 'preempted'
  cmd = [sys.executable, '-m', 'tomk.main', '--config=configs/pretrain.py:smoke',
         f'--workdir={workdir}', *LONG]
  process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if (workdir / 'checkpoints' / 'pretrain' / '10').exists():
      break
    time.sleep(0.02)
  process.send_signal(signal.SIGTERM)
  out, _ = process.communicate(timeout=120)
  assert process.returncode == 0, out
  assert 'preempted: saved step' in out
  saved = int(out.split('preempted: saved step ')[1].split(';')[0])
  assert saved < LONG_STEPS and (workdir / 'checkpoints' / 'pretrain' / str(saved)).exists()
  assert f'from step {saved}' in run_main(workdir, *LONG).stdout
