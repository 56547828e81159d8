"""Where a run's numbers came from: W/provenance.json.

record_start writes the resolved config, the git commit of the tomk source (and whether
it had uncommitted changes), package versions, the JAX backend and devices, the host and
the start time; record_end adds the end time, wall time and the run's summary. A run
whose provenance has an `end_time` finished. A resumed run keeps the earlier attempts
under `previous_attempts`, so the file tells how a result was produced, interruptions
included. Only process 0 writes. Reading it needs no JAX (rundir.finished reads it for
sweep runners and tomk.compare).
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any

from tomk import rundir

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'grain', 'numpy',
            'tensorflow-datasets', 'ml-collections', 'chex', 'sentencepiece', 'absl-py',
            'tensorboardX', 'array-record', 'chitchat-dataset', 'vaderSentiment')
# Environment variables that change what a run computes or where it reads data.
ENVIRONMENT = ('XLA_FLAGS', 'JAX_PLATFORMS', 'JAX_ENABLE_X64', 'JAX_DEFAULT_MATMUL_PRECISION',
               'JAX_COMPILATION_CACHE_DIR', 'TOMK_DATA_DIR', 'CUDA_VISIBLE_DEVICES',
               'TPU_WORKER_HOSTNAMES', 'SLURM_NTASKS')


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def package_versions() -> dict[str, str | None]:
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def _git(args: list[str], cwd: str) -> str | None:
  try:
    out = subprocess.run(['git', *args], cwd=cwd, capture_output=True, text=True, timeout=20)
  except (OSError, subprocess.TimeoutExpired):
    return None
  return out.stdout if out.returncode == 0 else None


def git_state() -> dict[str, Any] | None:
  """Commit and dirty flag of the checkout holding the tomk package; None if not a checkout.

  Only a checkout whose top level holds this tomk package counts: an installed copy
  inside some other repository must not report that repository's commit.
  """
  source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  top = _git(['rev-parse', '--show-toplevel'], source)
  if top is None or os.path.realpath(top.strip()) != os.path.realpath(source):
    return None
  commit = _git(['rev-parse', 'HEAD'], source)
  status = _git(['status', '--porcelain'], source)
  changed = [line[3:] for line in (status or '').splitlines() if line.strip()]
  return {'commit': commit.strip() if commit else None,
          'dirty': None if status is None else bool(changed),
          'changed_files': changed[:100], 'root': source}


def jax_state() -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  return {'backend': jax.default_backend(),
          'device_kinds': sorted({d.device_kind for d in devices}),
          'device_count': jax.device_count(),
          'local_device_count': jax.local_device_count(),
          'process_count': jax.process_count(),
          'process_index': jax.process_index()}


def _config_json(config) -> Any:
  if hasattr(config, 'to_json_best_effort'):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config, default=repr))


def read(workdir: str) -> dict[str, Any] | None:
  """The workdir's provenance, or None if it has none."""
  return rundir.read_json(rundir.provenance_path(workdir))


def _write(workdir: str, record: dict[str, Any]) -> None:
  # Whole or not at all; values JSON lacks (a device, a path object) as their repr.
  rundir.write_json(rundir.provenance_path(workdir), record, default=repr)


def record_start(workdir: str, config, branched_from: str | None = None) -> None:
  """Writes W/provenance.json at the start of a run (or of its resumption); branched_from:
  the workdir its first stages were copied from (tomk/branch.py)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() != 0:
    return
  previous = read(workdir)
  attempts = []
  if previous is not None:
    attempts = previous.pop('previous_attempts', [])
    previous.pop('config', None)          # the config cannot change on resume (check_workdir)
    attempts.append(previous)
  record = {
      'config': _config_json(config),
      'git': git_state(),
      'packages': package_versions(),
      'python': sys.version.split()[0],
      'platform': platform.platform(),
      'jax': jax_state(),
      'hostname': socket.gethostname(),
      'argv': sys.argv,
      'environment': {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
      'start_time': _now(),
      'start_unix': time.time(),
      'previous_attempts': attempts,
  }
  if branched_from:
    record['branched_from'] = os.path.abspath(branched_from)
  elif previous is not None and 'branched_from' in previous:
    record['branched_from'] = previous['branched_from']
  _write(workdir, record)


def record_end(workdir: str, summary: dict[str, Any]) -> None:
  """Adds end time, wall time and the run's summary to W/provenance.json."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() != 0:
    return
  record = read(workdir)
  if record is None:
    raise ValueError(f'{rundir.provenance_path(workdir)} is missing: call '
                     f'provenance.record_start(workdir, config) before record_end.')
  end = time.time()
  record.update(end_time=_now(), end_unix=end, wall_seconds=end - record['start_unix'],
                summary={k: v.item() if hasattr(v, 'item') else v for k, v in summary.items()})
  _write(workdir, record)
