"""empathy — Empathetic kindness, paper 001 Algorithms 4 and 7 (Eq. 1 for many individuals).

  a ~ π_B(s)                          the model's response
  prediction_nll on a                       prediction learns the model's own behavior
  sⁱ = S(s + a)                       the partner's state: the name switch
  âⁱ ~ P(sⁱ)                          the prediction stream simulates the partner's reply
  Rⁱ = w_ext·RLHF(sⁱ, âⁱ) + w_int·IRF(sⁱ, âⁱ)
  rl on a with Rⁱ                     → behavior, perception
  behavior_nll on a gated by max(0, Rⁱ)    → behavior only

With kindness.individuals = 'all' the reward sums Rʲ over every known individual
of the conversation (001 Eq. 1), third parties who spoke earlier included; with
kindness.horizon = H it scores H simulated replies of each, γ-discounted (kindness.py).
"""
import jax

from tomk import rl
from tomk.algorithms import kindness
from tomk.routing import Objective, token_nll

ROUTES = {
    'rl': {'behavior': 1.0, 'perception': 1.0},
    'prediction_nll': {'prediction': 1.0, 'perception': 1.0},
    'behavior_nll': {'behavior': 'reward_gate'},
}

DATA = 'prompts'

SIMULATOR = 'prediction'     # an impartial simulator of the partner (001 §4.2.6)


check = kindness.check


def objectives(config):
  return [rl.objective(config),
          Objective('prediction_nll', 'prediction', token_nll, mask='response_mask'),
          Objective('behavior_nll', 'behavior', token_nll, mask='response_mask')]


def gates(batch, config):
  return {'reward_gate': jax.numpy.clip(batch['rewards'], 0.0, config.gate_max)}


def rewards(context, params, conversations, responses, key):
  return kindness.estimated_rewards(context, params, conversations, responses, key, SIMULATOR)
