"""The estimated reward of the people the model talks to (001 Eq. 1, 4.2.5; 003 §3).

For each known individual j of the conversation (the partner, or everyone who
spoke), switch to j's perspective, simulate j's reply with the chosen stream, and
score it: Rʲ = w_ext·RLHF(sʲ, âʲ) + w_int·IRF(sʲ, âʲ). The IRF defaults to the
sentiment of the simulated reply. Only observable text is used: the simulated
person's hidden wants are never read.

With kindness.reward = 'inferred' the intrinsic term is j's inferred reward instead,
read from the switched state by the prediction side's reward head (infer_reward):
Rʲ = w_ext·RLHF(sʲ, âʲ) + w_int·r̂(sʲ); a reply is simulated only for the RLHF term.

Future turns (001 Eq. 1: γ-discounted over the turns to come). With kindness.horizon
= H > 1 the talk with each j goes on in imagination: after j's simulated reply âʲ₀
the model's behavior stream answers from its own perspective (aₜ ~ π_B), j replies
again from j's (âʲₜ, the simulator stream), and so on for H replies of j:

  Rʲ = Σ_{t<H} γᵗ · Rʲₜ      Rʲₜ scores sʲₜ = S(s + a + âʲ₀ + a₁ + … + aₜ) and âʲₜ

as above (the inferred reward scores each switched state sʲₜ with r̂). Each j has
an imagined future of their own with the model (others stay silent in it). Every
simulated turn is one sampler call over all rows. H = 1 is the single reply above.
"""
from __future__ import annotations

import jax
import numpy as np

from tomk.algorithms import infer_reward
from tomk.data import conversation as conversation_lib

REWARDS = ('simulate', 'inferred')
INDIVIDUALS = ('partner', 'all')


def check(config) -> None:
  """Errors for a kindness config that cannot run, before any step is compiled."""
  reward = config.kindness.reward
  if reward not in REWARDS:
    raise ValueError(f'kindness.reward={reward!r}: use one of {REWARDS}.')
  if config.kindness.individuals not in INDIVIDUALS:
    raise ValueError(f"kindness.individuals={config.kindness.individuals!r}: use one of "
                     f"{INDIVIDUALS}.")
  horizon, gamma = config.kindness.horizon, config.kindness.gamma
  if not isinstance(horizon, int) or horizon < 1:
    raise ValueError(f'kindness.horizon={horizon!r} counts the partner\'s simulated replies; '
                     f'set it to an integer >= 1 (1: the next reply only).')
  if not 0.0 <= gamma <= 1.0:
    raise ValueError(f'kindness.gamma={gamma!r} discounts later turns; set it in [0, 1].')
  if reward == 'inferred':
    infer_reward.check_head(config)


def known_individuals(conversation, who: str) -> list[str]:
  """The partner (the last speaker) or, for 'all', every speaker but the model."""
  me = conversation.perspective
  partner = conversation.turns[-1].speaker
  if who == 'partner':
    return [partner]
  return [s for s in conversation.speakers if s != me]      # 'all' (check says so)


def _turn_rewards(context, params, views, key, simulator, reply_needed):
  """Rʲₜ for each view (a state from j's perspective) and j's simulated replies (or None)."""
  config = context.config.kindness
  per_view = np.zeros(len(views), np.float32)
  inferred, prompts, replies = None, None, None
  if config.reward == 'inferred' and config.w_int:
    inferred = infer_reward.estimate(context, params, views)        # r̂(sʲ)
    per_view += config.w_int * inferred
  if config.reward == 'simulate' or config.w_ext or reply_needed:
    prompts = [conversation_lib.prompt_for(v) for v in views]
    samples = context.sample(params, prompts, key, stream=simulator)  # âʲ ~ P(sʲ)
    replies = context.decode(samples)
    if config.w_ext:
      per_view += config.w_ext * np.asarray(context.reward_functions['extrinsic'](prompts, replies))
    if config.w_int and config.reward == 'simulate':
      per_view += config.w_int * np.asarray(context.reward_functions['intrinsic'](prompts, replies))
  return per_view, inferred, prompts, replies


def estimated_rewards(context, params, conversations, responses, key, simulator: str):
  config = context.config.kindness
  horizon, gamma = config.horizon, config.gamma
  views, selves, owners = [], [], []
  for row, (c, response) in enumerate(zip(conversations, responses)):
    after = c.append(c.perspective, response)                       # s + a
    for person in known_individuals(c, config.individuals):
      views.append(conversation_lib.switch(after, person))          # sʲ = S(s + a)
      selves.append(c.perspective)
      owners.append(row)
  metrics = {'reward/simulated_individuals': len(views) / max(len(conversations), 1)}
  per_view, inferred_means, simulated = None, [], []
  for t in range(horizon):
    if t:   # the talk goes on: the model answers j's reply from its own perspective, aₜ ~ π_B
      prompts = [conversation_lib.prompt_for(conversation_lib.switch(v, me))
                 for v, me in zip(views, selves)]
      answers = context.decode(context.sample(params, prompts, jax.random.fold_in(key, 2 * t),
                                              stream='behavior'))
      views = [v.append(me, a) for v, me, a in zip(views, selves, answers)]
    turn_key = key if t == 0 else jax.random.fold_in(key, 2 * t + 1)
    rewards_t, inferred, prompts, replies = _turn_rewards(
        context, params, views, turn_key, simulator, reply_needed=t < horizon - 1)
    per_view = rewards_t if t == 0 else per_view + np.float32(gamma ** t) * rewards_t
    if horizon > 1:
      metrics[f'reward/turn_{t}'] = float(rewards_t.mean()) if len(views) else 0.0
    if inferred is not None:
      inferred_means.append(float(inferred.mean()) if len(views) else 0.0)
    if replies is not None:
      simulated += list(zip(prompts, replies))
      if t < horizon - 1:     # j's reply joins the history, from j's own perspective
        views = [v.append(v.perspective, r) for v, r in zip(views, replies)]
  if inferred_means:
    metrics['reward/inferred'] = float(np.mean(inferred_means))
  if simulated:
    # For inspection and tests: (prompt, simulated reply) of every turn, turn by turn.
    context.last_simulated = simulated
  rewards = np.zeros(len(conversations), np.float32)
  np.add.at(rewards, owners, per_view)
  return rewards, metrics


def target_rewards(context, params, conversations, responses, key):
  """The target's reward of 003 Alg. 1 line 6 (Eq. 12–13), for naive_kindness.

  For each known individual i (the partner, or everyone with kindness.individuals='all'):

    s̄ⁱ = S(s + a)             the target's state: the model's action appended, names switched
    āⁱ ~ π_B(s̄ⁱ)             the target's reply, generated by the model itself (Eq. 2)
    Rⁱ = w_ext·RLHF(āⁱ | s̄ⁱ) + w_int·IRF(a | S(s))

  The intrinsic term scores the model's own action seen from the target's side (the
  history before it, rendered from i's perspective, then the model's turn): 003 §2.3
  shifts the intrinsic reward back one step, to the reply the target received. R is
  summed over the individuals; one simulated reply, no horizon (check).
  """
  config = context.config.kindness
  views, seen, actions, owners = [], [], [], []
  for row, (c, response) in enumerate(zip(conversations, responses)):
    after = c.append(c.perspective, response)                              # s + a
    for person in known_individuals(c, config.individuals):
      views.append(conversation_lib.switch(after, person))                 # s̄ⁱ
      seen.append(conversation_lib.prompt_for(conversation_lib.switch(c, person),
                                              c.perspective))              # S(s), a's turn
      actions.append(response)
      owners.append(row)
  per_view = np.zeros(len(views), np.float32)
  metrics = {'reward/simulated_individuals': len(views) / max(len(conversations), 1)}
  if config.w_ext:
    prompts = [conversation_lib.prompt_for(v) for v in views]
    replies = context.decode(context.sample(params, prompts, key, stream='behavior'))
    extrinsic = np.asarray(context.reward_functions['extrinsic'](prompts, replies), np.float32)
    per_view += config.w_ext * extrinsic
    metrics['reward/target_extrinsic'] = float(extrinsic.mean()) if len(views) else 0.0
    context.last_simulated = list(zip(prompts, replies))
  if config.w_int:
    intrinsic = np.asarray(context.reward_functions['intrinsic'](seen, actions), np.float32)
    per_view += config.w_int * intrinsic
    metrics['reward/target_intrinsic'] = float(intrinsic.mean()) if len(views) else 0.0
  rewards = np.zeros(len(conversations), np.float32)
  np.add.at(rewards, owners, per_view)
  return rewards, metrics

