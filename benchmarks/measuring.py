"""What every benchmark here shares: the benchmark model, compile counting, timing and output."""
import json
import os
import statistics
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARK_MODEL = dict(vocab_size=1024, d_model=256, num_heads=4, ffn_dim=1024, trunk_layers=2,
                       tower_layers=2, max_len=512)


class Compiles:
  """Counts XLA compilations (JAX's backend-compile events) in a region."""
  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._event)

  def _event(self, event, *_, **__):
    if event == '/jax/core/compile/backend_compile_duration':
      self.count += 1


COMPILES = Compiles()


def timed(fn, repeats: int) -> tuple[list[float], int]:
  """Seconds of each of `repeats` calls of fn (which blocks), and compilations among them."""
  before = COMPILES.count
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return seconds, COMPILES.count - before


def emit(record: dict, line: str) -> None:
  print(json.dumps(record, sort_keys=True), flush=True)
  print(f'  {line}', flush=True)


def spread(values) -> dict:
  return {'median': statistics.median(values), 'min': min(values), 'max': max(values)}


def measure_phases(iteration, repeats: int):
  """A function that times `repeats` calls of `iteration` (which returns {phase: seconds})
  after two untimed ones (compilation): ({phase: median seconds}, compilations among them)."""
  iteration()
  iteration()

  def measure():
    before = COMPILES.count
    times = [iteration() for _ in range(repeats)]
    return ({k: statistics.median(t[k] for t in times) for k in times[0]},
            COMPILES.count - before)
  return measure
