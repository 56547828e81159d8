"""A recorded run's config.json as a config, to re-run a result exactly (tomk.reproduce).

  python -m tomk.main --config=configs/from_json.py:runs/pretrain/config.json \
      --workdir=runs/pretrain-again

Tuples were saved as lists; the trainer accepts either. A config.json of older code is
completed as tomk reads every saved config (tomk.config.complete).
"""
import json
import os

from tomk import config as config_lib


def get_config(path=None):
  if not path:
    raise ValueError('configs/from_json.py needs the path of a config.json after a colon, e.g. '
                     '--config=configs/from_json.py:runs/pretrain/config.json.')
  if not os.path.exists(path):
    raise ValueError(f'configs/from_json.py: {path} does not exist; give the config.json of a '
                     f'workdir (python -m tomk.main writes one into every workdir).')
  with open(path) as f:
    return config_lib.complete(json.load(f))     # a run of older code: keys filled, renamed
