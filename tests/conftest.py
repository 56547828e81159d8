"""Shared fixtures: one data cache (tfds + tokenizers) for the whole test session."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent XLA compilation cache for every run the tests start (results are
  bit-identical with or without it; compiling dominates a smoke run)."""
  shared = tmp_path_factory.getbasetemp().parent    # shared by pytest-xdist workers
  os.environ['JAX_COMPILATION_CACHE_DIR'] = str(shared / 'jax-cache')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'


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
