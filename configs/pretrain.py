"""Pre-training on real conversations (paper 001, Algorithms 1 and 5).

Both streams learn the chitchat conversations; the behavior stream's learning is
gated by the reward of each turn (a constant 1 by default: plain LM training;
--config.data.reward=sentiment gates it by the turn's VADER sentiment).

  python -m tomk.main --config=configs/pretrain.py --workdir=runs/pretrain
  python -m tomk.main --config=configs/pretrain.py:smoke --workdir=/tmp/pretrain-smoke
"""
from tomk import config as config_lib
from tomk.algorithms import pretrain


def get_config(arg=None):
  config = config_lib.base()
  config.algorithm = 'pretrain'
  config_lib.set_routes(config, pretrain.ROUTES)
  if arg == 'smoke':
    config_lib.smoke(config)
  elif arg:
    raise ValueError(f'configs/pretrain.py takes no argument or "smoke", got {arg!r}.')
  return config
