"""The estimated reward of the people the model talks to (001 Eq. 1, 4.2.5; 003 §3).

For each known individual j of the conversation (the partner, or everyone who
spoke), switch to j's perspective, simulate j's reply with the chosen stream, and
score it: Rʲ = w_ext·RLHF(sʲ, âʲ) + w_int·IRF(sʲ, âʲ). The IRF defaults to the
sentiment of the simulated reply. Only observable text is used: the simulated
person's hidden wants are never read.
"""
from __future__ import annotations

import jax
import numpy as np

from tomk.data import conversation as conversation_lib


def known_individuals(conversation, who: str) -> list[str]:
  """The partner (the last speaker) or, for 'all', every speaker but the model."""
  me = conversation.perspective
  partner = conversation.turns[-1].speaker
  if who == 'partner':
    return [partner]
  if who == 'all':
    return [s for s in conversation.speakers if s != me]
  raise ValueError(f"kindness.individuals={who!r}: use 'partner' or 'all'.")


def estimated_rewards(context, params, conversations, responses, key, simulator: str):
  config = context.config.kindness
  views, owners = [], []
  for row, (c, response) in enumerate(zip(conversations, responses)):
    after = c.append(c.perspective, response)                       # s + a
    for person in known_individuals(c, config.individuals):
      views.append(conversation_lib.switch(after, person))          # sʲ = S(s + a)
      owners.append(row)
  prompts = [conversation_lib.prompt_for(v) for v in views]
  samples = context.sample(params, prompts, key, stream=simulator)  # âʲ ~ P(sʲ)
  replies = context.decode(samples)
  per_view = np.zeros(len(views), np.float32)
  if config.w_ext:
    per_view += config.w_ext * np.asarray(context.reward_functions['extrinsic'](prompts, replies))
  if config.w_int:
    per_view += config.w_int * np.asarray(context.reward_functions['intrinsic'](prompts, replies))
  rewards = np.zeros(len(conversations), np.float32)
  np.add.at(rewards, owners, per_view)
  metrics = {'reward/simulated_individuals': len(views) / max(len(conversations), 1)}
  context.last_simulated = list(zip(prompts, replies))   # for inspection and tests
  return rewards, metrics
