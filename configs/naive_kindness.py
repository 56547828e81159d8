"""Naive kindness (paper 003 Alg. 1) on the same curriculum as configs/empathy.py, last:

  pretrain → reward_model → rehearse → imitation (⇄ infer_reward) → naive_kindness

The last stage trains on the target's reward of Alg. 1 line 6, both terms weighted 1:
RLHF (this run's reward model) of the target's reply, which the model itself generates
from the target's side, plus IRF (the sentiment, rewards.intrinsic) of the model's own
response seen from the target's side.

  python -m tomk.main --config=configs/naive_kindness.py --workdir=runs/naive_kindness
  python -m tomk.main --config=configs/naive_kindness.py:smoke --workdir=/tmp/naive-smoke
"""
from configs import empathy


def get_config(arg=None):
  config = empathy.get_config(arg, final='naive_kindness')
  config.stages.naive_kindness.kindness = {'w_ext': 1.0, 'w_int': 1.0}     # Alg. 1 line 6
  return config
