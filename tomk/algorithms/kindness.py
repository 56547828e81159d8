"""The estimated reward of the people the model talks to (001 Eq. 1, 4.2.5; 003 §3).

For each known individual j of the conversation (the partner, or everyone who
spoke), switch to j's perspective, simulate j's reply with the chosen stream, and
score it: Rʲ = w_ext·RLHF(sʲ, âʲ) + w_int·IRF(sʲ, âʲ). The IRF defaults to the
sentiment of the simulated reply. Only observable text is used: the simulated
person's hidden wants are never read.

With kindness.reward = 'inferred' the intrinsic term is j's inferred reward instead,
read from the switched state by the prediction side's reward head (infer_reward):
Rʲ = w_ext·RLHF(sʲ, âʲ) + w_int·r̂(sʲ); a reply is simulated only for the RLHF term.
"""
from __future__ import annotations

import jax
import numpy as np

from tomk.algorithms import infer_reward
from tomk.data import conversation as conversation_lib

REWARDS = ('simulate', 'inferred')


def check(config) -> None:
  """Errors for a kindness config that cannot run, before any step is compiled."""
  reward = config.kindness.get('reward', 'simulate')
  if reward not in REWARDS:
    raise ValueError(f'kindness.reward={reward!r}: use one of {REWARDS}.')
  if reward == 'inferred':
    infer_reward.check(config)


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
  reward = config.get('reward', 'simulate')
  if reward not in REWARDS:
    raise ValueError(f'kindness.reward={reward!r}: use one of {REWARDS}.')
  views, owners = [], []
  for row, (c, response) in enumerate(zip(conversations, responses)):
    after = c.append(c.perspective, response)                       # s + a
    for person in known_individuals(c, config.individuals):
      views.append(conversation_lib.switch(after, person))          # sʲ = S(s + a)
      owners.append(row)
  per_view = np.zeros(len(views), np.float32)
  metrics = {'reward/simulated_individuals': len(views) / max(len(conversations), 1)}
  if reward == 'inferred' and config.w_int:
    inferred = infer_reward.estimate(context, params, views)        # r̂(sʲ)
    per_view += config.w_int * inferred
    metrics['reward/inferred'] = float(inferred.mean()) if len(views) else 0.0
  if reward == 'simulate' or config.w_ext:
    prompts = [conversation_lib.prompt_for(v) for v in views]
    samples = context.sample(params, prompts, key, stream=simulator)  # âʲ ~ P(sʲ)
    replies = context.decode(samples)
    if config.w_ext:
      per_view += config.w_ext * np.asarray(context.reward_functions['extrinsic'](prompts, replies))
    if config.w_int and reward == 'simulate':
      per_view += config.w_int * np.asarray(context.reward_functions['intrinsic'](prompts, replies))
    context.last_simulated = list(zip(prompts, replies))   # for inspection and tests
  rewards = np.zeros(len(conversations), np.float32)
  np.add.at(rewards, owners, per_view)
  return rewards, metrics
