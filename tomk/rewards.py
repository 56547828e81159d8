"""Reward functions over text, Tunix-style: fn(prompts, responses) -> float32[len].

A reward function scores each response given the prompt it answers. Besides the ones
named here, any config key that names a reward takes an import path, 'module:function'
(e.g. 'my_rewards:length_penalty', importable from the working directory or PYTHONPATH):
such a user function is called as fn(prompts, responses) and must return one finite
number per response; one that raises or returns NaN stops the run naming it (checked). The input
pipeline calls one per conversation turn (prompt = the rendered history before
the turn, response = the rendered turn), and the pretrain algorithm gates the
behavior stream's learning by it (SPEC §3). Prompts may be a lazy sequence: a
function that only reads responses never pays for building them.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import Callable, Sequence

import numpy as np

from tomk.data import conversation

RewardFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]

_ROLE_TOKENS = re.compile('|'.join(re.escape(t) for t in conversation.ROLE_TOKENS))
# The speaker label a rendered turn starts with: '<other> Name: ' (conversation.render_turn),
# or a bare 'Name: ' on plain text. Only one capitalised word, so 'I think: ...' stays.
_LEADING_LABEL = re.compile(r"^\s*(?:<other>\s*[^:\n]{1,40}:|<self>|[A-Z][\w'.-]{0,30}:)\s*")


def constant(value: float = 1.0) -> RewardFn:
  """Every response gets `value` (pretraining with reward gates = plain LM training)."""
  def reward(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    del prompts
    return np.full(len(responses), value, np.float32)
  return reward


def strip_roles(text: str) -> str:
  """The words a person said: no role tokens, no leading 'Name:' label."""
  return _ROLE_TOKENS.sub(' ', _LEADING_LABEL.sub('', text, count=1)).strip()


def sentiment() -> RewardFn:
  """VADER compound sentiment of the response, in [-1, 1] (0 for empty text)."""
  # Imported here so that modules using only `constant` do not load VADER's lexicon.
  from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
  analyzer = SentimentIntensityAnalyzer()

  def reward(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    del prompts
    return np.array([analyzer.polarity_scores(strip_roles(r))['compound'] for r in responses],
                    np.float32)
  return reward


_REWARDS = {'constant': constant, 'sentiment': sentiment}
# Names of the RL rewards (config.rewards) that tomk.rollout builds itself: SocialWorld's
# rater, the run's reward model, a reward model saved elsewhere ('reward_model:PATH').
RL_REWARDS = ('rater', 'reward_model')
_IMPORT_PATH = re.compile(r'^[A-Za-z_][\w.]*:[A-Za-z_]\w*$')


def is_import_path(name: str) -> bool:
  return bool(_IMPORT_PATH.match(name)) and not name.startswith('reward_model:')


def check(name: str, key: str, rl: bool = False) -> None:
  """An error naming the known rewards if config key `key` names an unknown one, or an
  import path that does not import. rl: an RL reward (config.rewards.*), which may also be
  one of RL_REWARDS or 'reward_model:PATH' (tomk.rollout builds those)."""
  known = sorted((*_REWARDS, *RL_REWARDS) if rl else _REWARDS)
  if rl and name.startswith('reward_model:'):
    path = name.split(':', 1)[1]
    if not os.path.isdir(path):
      raise ValueError(f'{key}={name!r}: {path} is not a directory; give the directory of a '
                       f'reward model a reward_model stage saved (W/reward_model).')
  elif is_import_path(name):
    imported(name, key)
  elif name not in known:
    raise ValueError(f'{key}={name!r} is not a reward; choose one of {known}'
                     f'{", reward_model:PATH" if rl else ""} or give your own function\'s '
                     f"import path, 'module:function'.")


def imported(name: str, key: str = 'reward') -> RewardFn:
  """The user's reward function at import path `name` ('module:function'), checked."""
  module_name, function_name = name.split(':')
  try:
    module = importlib.import_module(module_name)
  except Exception as e:  # noqa: BLE001 — whatever the user's module raises, in one line
    raise ValueError(f'{key}={name!r}: importing {module_name} failed ({type(e).__name__}: '
                     f'{e}); put it on PYTHONPATH or in the working directory.') from e
  function = getattr(module, function_name, None)
  if not callable(function):
    raise ValueError(f'{key}={name!r}: {module_name} has no function {function_name}.')
  return checked(function, name)


def checked(function: Callable, name: str) -> RewardFn:
  """`function` with its output checked: one finite number per response, or an error that
  names it (what it raised, or which response got NaN)."""
  def reward(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    try:
      values = np.asarray(function(prompts, responses), np.float32)
    except Exception as e:  # noqa: BLE001
      raise ValueError(f'reward function {name} raised {type(e).__name__}: {e}') from e
    if values.shape != (len(responses),):
      raise ValueError(f'reward function {name} returned shape {values.shape} for '
                       f'{len(responses)} responses; return one number per response.')
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
      raise ValueError(f'reward function {name} returned {values[bad[0]]} for response '
                       f'{bad[0]} ({str(responses[bad[0]])[:60]!r}); return finite numbers.')
    return values
  return reward


def get(name: str, **kwargs) -> RewardFn:
  """The reward function called `name`, built with `kwargs` (e.g. get('constant', value=0.5)),
  or the user's at import path `name`."""
  if is_import_path(name):
    return imported(name)
  if name not in _REWARDS:
    raise ValueError(f'Unknown reward {name!r}; choose one of {sorted(_REWARDS)} '
                     f'(e.g. --config.data.reward=sentiment).')
  try:
    return _REWARDS[name](**kwargs)
  except TypeError as e:
    raise ValueError(f'Reward {name!r} does not take arguments {sorted(kwargs)}: {e}.') from e
