"""One module per algorithm of the papers; each states its objectives and routing table at its top."""
import importlib

ALGORITHMS = ('pretrain', 'reward_model', 'finetune', 'imitation', 'infer_reward', 'rlhf', 'empathy',
              'naive_kindness')


def get(name: str):
  """The algorithm module called `name`, with an error that lists the known ones."""
  if name not in ALGORITHMS:
    raise ValueError(f'unknown algorithm {name!r}; choose one of {", ".join(ALGORITHMS)}.')
  return importlib.import_module(f'tomk.algorithms.{name}')
