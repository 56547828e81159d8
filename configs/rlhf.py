"""The RLHF baseline on the same curriculum as configs/empathy.py, rlhf last:

  pretrain → reward_model → rehearse → imitation (⇄ infer_reward) → rlhf

  python -m tomk.main --config=configs/rlhf.py --workdir=runs/rlhf
  python -m tomk.main --config=configs/rlhf.py:smoke --workdir=/tmp/rlhf-smoke
"""
from configs import empathy


def get_config(arg=None):
  return empathy.get_config(arg, final='rlhf')
