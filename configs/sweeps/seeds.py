"""Three seeds of one config (SPEC §6: every number across seeds with a CI).

  python -m tomk.sweep --config=configs/pretrain.py --sweep=configs/sweeps/seeds.py \
      --sweepdir=runs/pretrain-seeds
  python -m tomk.compare runs/pretrain-seeds

`configs/sweeps/seeds.py:5` runs five seeds instead.
"""
from tomk import hyper


def get_sweep(arg=None):
  return hyper.sweep('seed', range(int(arg) if arg else 3))
