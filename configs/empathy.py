"""Kindness end to end: pretrain → finetune → empathy (paper 001, Algorithms 1, 2 and 4).

The model first learns conversations (both streams), then learns from reward on its
own responses while its prediction stream learns to predict them, then is trained
on the simulated reaction of the person it talks to: the prediction stream plays
the partner from the partner's perspective (the name switch), and the sentiment of
that simulated reply is the reward.

  python -m tomk.main --config=configs/empathy.py --workdir=runs/empathy
  python -m tomk.main --config=configs/empathy.py:smoke --workdir=/tmp/empathy-smoke
"""
import ml_collections

from tomk import config as config_lib
from tomk.algorithms import pretrain

FINAL = 'empathy'      # configs/rlhf.py and configs/naive_kindness.py swap the last stage


def get_config(arg=None, final=FINAL):
  config = config_lib.base()
  config.algorithm = 'pretrain'
  config_lib.set_routes(config, pretrain.ROUTES)
  config.curriculum = f'pretrain,finetune,{final}'
  config.stages = ml_collections.ConfigDict({
      'pretrain': {'algorithm': 'pretrain', 'steps': 300},
      'finetune': {'algorithm': 'finetune', 'steps': 40, 'batch_size': 16},
      final: {'algorithm': final, 'steps': 60, 'batch_size': 16},
  })
  if arg == 'smoke':
    config_lib.smoke(config)
    config.rl.max_new_tokens = 8
    config.stages.pretrain.steps = 10
    config.stages.finetune.update(steps=4, batch_size=8)
    config.stages[final].update(steps=4, batch_size=8)
  elif arg:
    raise ValueError(f'configs/{final}.py takes no argument or "smoke", got {arg!r}.')
  return config
