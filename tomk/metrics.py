"""Where a run's numbers go: metrics.jsonl, TensorBoard events, and a progress line.

Only process 0 writes. metrics.jsonl holds nothing that depends on wall-clock
time, so two runs of the same config and seed write identical bytes; speed goes
to TensorBoard and the progress line.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import jax

from tomk import rundir


def _clean(value):
  value = float(value)
  return value if math.isfinite(value) else repr(value)


class Writer:

  def __init__(self, workdir: str, resume_step: int | None):
    self.active = jax.process_index() == 0
    self.path = rundir.metrics_path(workdir)
    self._file = self._tensorboard = None
    if not self.active:
      return
    if resume_step is None:
      open(self.path, 'w').close()
    else:
      self._truncate_after(resume_step)
    self._file = open(self.path, 'a')
    from tensorboardX import SummaryWriter
    self._tensorboard = SummaryWriter(rundir.tensorboard_dir(workdir))

  def _truncate_after(self, step: int):
    """Drops records a killed run logged after its last checkpoint: they will be redone."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      kept = [line for line in f if line.strip() and json.loads(line)['step'] <= step]
    rundir.write_text(self.path, ''.join(kept))

  def write(self, step: int, scalars: dict, **labels):
    """One record: {'step', labels..., scalars...} to metrics.jsonl and TensorBoard."""
    if not self.active:
      return
    record = {'step': int(step), **labels, **{k: _clean(v) for k, v in sorted(scalars.items())}}
    self._file.write(json.dumps(record) + '\n')
    for k, v in scalars.items():
      self._tensorboard.add_scalar(k, float(v), step)

  def write_timing(self, step: int, scalars: dict):
    """Speed figures: TensorBoard only (they would break bit-identical metrics.jsonl)."""
    if self.active:
      for k, v in scalars.items():
        self._tensorboard.add_scalar(k, float(v), step)

  def flush(self):
    if self.active:
      self._file.flush()
      self._tensorboard.flush()

  def close(self):
    if self.active:
      self._file.close()
      self._tensorboard.close()


class Progress:
  """A progress line per log step: losses, tokens/s and time left."""

  def __init__(self, label: str, total_steps: int, tokens_per_step: int):
    self.label, self.total, self.tokens_per_step = label, total_steps, tokens_per_step
    self.active = jax.process_index() == 0
    self._last = None     # (step, time) of the previous report

  def report(self, step: int, scalars: dict) -> dict:
    now = time.perf_counter()
    timing = {}
    if self._last is not None and step > self._last[0]:
      seconds_per_step = (now - self._last[1]) / (step - self._last[0])
      timing = {'speed/tokens_per_second': self.tokens_per_step / seconds_per_step,
                'speed/seconds_per_step': seconds_per_step}
    self._last = (step, now)
    if self.active:
      shown = '  '.join(f'{k.split("/")[-1]} {float(v):.3f}' for k, v in scalars.items()
                        if k.startswith(('loss/', 'eval/', 'gate')))
      speed = ''
      if timing:
        eta = (self.total - step) * timing['speed/seconds_per_step']
        speed = (f'  {timing["speed/tokens_per_second"]:,.0f} tok/s'
                 f'  ETA {int(eta // 60)}m{int(eta % 60):02d}s')
      print(f'[{self.label}] step {step}/{self.total}  {shown}{speed}', flush=True)
      sys.stdout.flush()
    return timing
