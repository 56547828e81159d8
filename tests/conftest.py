"""Shared fixtures: one data cache per worker, one compilation cache for the whole session,
and the pretrain smoke run that tests/test_run.py, test_evaluate.py and test_scale.py read.

The README runs the suite on two pytest-xdist workers with --dist=loadgroup (pyproject.toml):
tests marked xdist_group('NAME') run on one worker, one after another, so a module- or
session-scoped run they share is made once; unmarked tests are dealt out one by one.
"""
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# XLA's backend optimisation off for every run the tests start, this process included:
# compiling dominates a smoke run, and unoptimised programs compile faster and compute
# the same things (measured back to back: a curriculum smoke test 69 s against 76-80 s; the
# suite 962 s against 1,062 s).
os.environ['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'),
                                                 '--xla_backend_optimization_level=0']))
# Eight CPU devices, for the runs of a mesh: XLA_FLAGS for a run's environment.
EIGHT_DEVICES = {'XLA_FLAGS': os.environ['XLA_FLAGS'] + ' --xla_force_host_platform_device_count=8'}

# Fewer evaluation examples, for runs whose tests read none of the evaluation's numbers. These
# counts only change how many fixed-shape batches (evaluation.batch_size × evaluation.lengths)
# are scored, so such runs reuse the compiled programs of the smoke config's own evaluation;
# scenarios_per_family sets the sampler's batch, so it stays as the smoke config has it.
SMALL_EVALUATION = ('--config.evaluation.stories_per_label=1',
                    '--config.evaluation.chitchat_conversations=2',
                    '--config.evaluation.windows_per_conversation=1')

# The tests that read `pretrain_smoke`: one xdist worker runs them all.
PRETRAIN_SMOKE = pytest.mark.xdist_group('pretrain_smoke')
# Runs of the kindness curriculum (configs/empathy.py and the configs built on it), which
# share every stage but the last and so the compiled programs of those stages: one xdist
# worker runs them one after another, so those stages compile once, not on both workers at
# the same time.
KINDNESS_CURRICULUM = pytest.mark.xdist_group('kindness_curriculum')


def session_dir(tmp_path_factory):
  """This session's temporary directory, the same for every pytest-xdist worker."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent XLA compilation cache for every run the tests start (results are
  bit-identical with or without it; compiling dominates a smoke run)."""
  os.environ['JAX_COMPILATION_CACHE_DIR'] = str(session_dir(tmp_path_factory) / 'jax-cache')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  # Runs write report.md without PNGs (matplotlib's seconds, times every run here);
  # tests/test_report.py draws them.
  os.environ['TOMK_PLOTS'] = '0'


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  path = os.environ.get('TOMK_TEST_DATA_DIR') or str(tmp_path_factory.mktemp('tomkdata'))
  os.environ['TOMK_DATA_DIR'] = path
  return path


def run_main(workdir, *overrides, config='configs/pretrain.py:smoke', env=None, check=True,
             timeout=600):
  """python -m tomk.main as a user runs it; returns the CompletedProcess."""
  cmd = [sys.executable, '-m', 'tomk.main', f'--config={config}', f'--workdir={workdir}',
         *overrides]
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
  if check and result.returncode != 0:
    raise AssertionError(f'{" ".join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}')
  return result


@pytest.fixture(scope='session')
def pretrain_smoke(data_dir, tmp_path_factory):
  """configs/pretrain.py:smoke run twice as a user runs it: (workdir, CompletedProcess,
  seconds, the first run's workdir).

  The first run builds the data and compiles (the persistent cache); `seconds` time the
  second, what a smoke run costs a user once JAX has compiled it. The two must write the
  same bytes (tests/test_run.py). Its tests are marked PRETRAIN_SMOKE. They may add files
  to the workdir (a re-run, an evaluation) but leave config.json, metrics.jsonl and the
  checkpoints as they are.
  """
  first = str(tmp_path_factory.mktemp('pretrain_smoke_first'))
  run_main(first)
  workdir = str(tmp_path_factory.mktemp('pretrain_smoke'))
  start = time.perf_counter()
  result = run_main(workdir)
  return workdir, result, time.perf_counter() - start, first


@pytest.fixture(scope='session')
def empathy_smoke(data_dir, tmp_path_factory):
  """configs/empathy.py:smoke run to completion: (workdir, CompletedProcess). Its tests are
  marked KINDNESS_CURRICULUM; configs/rlhf.py:smoke and configs/naive_kindness.py:smoke
  branch from it (tests/test_configs.py)."""
  workdir = str(tmp_path_factory.mktemp('empathy_smoke'))
  return workdir, run_main(workdir, config='configs/empathy.py:smoke')


def records(workdir, stages=None):
  """metrics.jsonl's lines, those of `stages` only if given (bytes compared, not parsed)."""
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(str(workdir), 'metrics.jsonl')) as f:
    lines = [line for line in f if line.strip()]
  return [line for line in lines if stages is None or json.loads(line)['stage'] in stages]
