"""The positive control of the kindness experiment: configs/empathy.py's curriculum with a
last stage trained by policy gradient on the partners' TRUE reward (SocialWorld's ground
truth, read by this stage alone: tomk/algorithms/oracle_control.py).

  pretrain → reward_model → rehearse → imitation (⇄ infer_reward) → oracle_control

If this cannot raise the partners' true reward over the stage it starts from, the RL
machinery cannot, and no kindness result (empathy, naive_kindness against rlhf) means
anything. It shares every stage but the last with configs/empathy.py:

  python -m tomk.main --config=configs/oracle_control.py --workdir=runs/oracle \
      --branch_from=runs/empathy
  python -m tomk.main --config=configs/oracle_control.py:smoke --workdir=/tmp/oracle-smoke
"""
from configs import empathy


# The control trains longer than the kindness arms' last stage (60 × 32): 150 steps of batch
# 32 raised the true partner reward over its start by +0.154 ± 0.076 (seed 0, n = 600;
# README, "The default curriculum since 2026-12-06"). It costs no simulated replies.
CONTROL_STEPS = 150


def get_config(arg=None):
  config = empathy.get_config(arg, final='oracle_control')
  if not arg:
    config.stages.oracle_control.steps = CONTROL_STEPS
  return config
