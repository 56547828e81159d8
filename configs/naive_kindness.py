"""Naive kindness (paper 003 Alg. 1) on the same curriculum as configs/empathy.py, last:

  pretrain → reward_model → finetune → imitation (⇄ infer_reward) → naive_kindness

  python -m tomk.main --config=configs/naive_kindness.py --workdir=runs/naive_kindness
  python -m tomk.main --config=configs/naive_kindness.py:smoke --workdir=/tmp/naive-smoke
"""
from configs import empathy


def get_config(arg=None):
  return empathy.get_config(arg, final='naive_kindness')
