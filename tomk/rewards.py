"""Reward functions over text, Tunix-style: fn(prompts, responses) -> float32[len].

A reward function scores each response given the prompt it answers. The input
pipeline calls one per conversation turn (prompt = the rendered history before
the turn, response = the rendered turn), and the pretrain algorithm gates the
behavior stream's learning by it (SPEC §3). Prompts may be a lazy sequence: a
function that only reads responses never pays for building them.
"""
from __future__ import annotations

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


def check(name: str, key: str) -> None:
  """An error naming the known rewards if config key `key` names an unknown one."""
  if name not in _REWARDS:
    raise ValueError(f'{key}={name!r} is not a reward; choose one of {sorted(_REWARDS)}.')


def get(name: str, **kwargs) -> RewardFn:
  """The reward function called `name`, built with `kwargs` (e.g. get('constant', value=0.5))."""
  if name not in _REWARDS:
    raise ValueError(f'Unknown reward {name!r}; choose one of {sorted(_REWARDS)} '
                     f'(e.g. --config.data.reward=sentiment).')
  try:
    return _REWARDS[name](**kwargs)
  except TypeError as e:
    raise ValueError(f'Reward {name!r} does not take arguments {sorted(kwargs)}: {e}.') from e
