"""rlhf — the baseline every kindness claim is measured against.

Policy gradient on the extrinsic reward only: a reward model of raters'
preferences scores the model's response in isolation (SPEC §3). The prediction
stream is not trained.
"""
import jax.numpy as jnp

from tomk import rl
from tomk.data.conversation import prompt_for

ROUTES = {
    'rl': {'behavior': 1.0, 'perception': 1.0},
}

DATA = 'prompts'


def objectives(config):
  return [rl.objective(config)]


def gates(batch, config):
  del batch, config
  return {}


def rewards(context, params, conversations, responses, key):
  """R(s, a) = reward model of the prompt and the response."""
  del params, key
  prompts = [prompt_for(c) for c in conversations]
  extrinsic = context.reward_functions['extrinsic'](prompts, responses)
  return extrinsic, {'reward/extrinsic': float(jnp.mean(jnp.asarray(extrinsic)))}
