"""pretrain — Basic (unstructured) pre-training, paper 001 Algorithms 1 and 5.

The prediction stream learns the data (prediction error only). The behavior
stream learns the same data with a reward-gated learning rate η_r = max(0, R)·η:
it imitates what the reward function approves of. Perception, shared by both,
learns from both, ungated. With a constant reward of 1 this is plain LM training
of both streams.
"""
import jax.numpy as jnp

from tomk.routing import Objective, token_nll

OBJECTIVES = [
    Objective('prediction_nll', stream='prediction', loss=token_nll),
    Objective('behavior_nll', stream='behavior', loss=token_nll),
]

ROUTES = {
    'prediction_nll': {'prediction': 1.0, 'perception': 1.0},
    'behavior_nll': {'behavior': 'reward_gate', 'perception': 1.0},
}

DATA = 'lm'    # batches of packed conversations: inputs, targets, weights, rewards


def gates(batch, config):
  """reward_gate = clip(max(0, R), 0, gate_max), per token (R of the turn it belongs to)."""
  return {'reward_gate': jnp.clip(batch['rewards'], 0.0, config.gate_max)}


def objectives(config):
  del config
  return OBJECTIVES
