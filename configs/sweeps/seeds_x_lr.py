"""Three seeds × two learning rates of the behavior stream (6 runs).

  python -m tomk.sweep --config=configs/pretrain.py:smoke \
      --sweep=configs/sweeps/seeds_x_lr.py --sweepdir=/tmp/lr-sweep --parallel=2
  python -m tomk.compare /tmp/lr-sweep

Seeds vary slowest so that, run two at a time, the first two points compile the two
settings' programs and the later seeds find them in a persistent compilation cache.
"""
from tomk import hyper


def get_sweep(arg=None):
  del arg
  return hyper.product(hyper.sweep('seed', range(3)),
                       hyper.sweep('optimizer.behavior.learning_rate', [3e-3, 1e-2]))
