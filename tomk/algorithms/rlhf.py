"""rlhf — the baseline every kindness claim is measured against.

Policy gradient on the extrinsic reward only: a reward model of raters'
preferences scores the model's response in isolation (SPEC §3). The prediction
stream is not trained.
"""
import jax.numpy as jnp

from tomk import rl
from tomk.routing import Objective

ROUTES = {
    'rl': {'behavior': 1.0, 'perception': 1.0},
}

DATA = 'prompts'


def objectives(config):
  return [Objective('rl', 'behavior', rl.policy_loss(rl.PolicyGradientConfig.from_config(config.rl)),
                    mask='response_mask')]


def gates(batch, config):
  return {}


def rewards(context, params, conversations, responses, key):
  """R(s, a) = reward model of the prompt and the response."""
  del params, key
  from tomk.data.conversation import prompt_for
  prompts = [prompt_for(c) for c in conversations]
  extrinsic = context.reward_functions['extrinsic'](prompts, responses)
  return extrinsic, {'reward/extrinsic': float(jnp.mean(jnp.asarray(extrinsic)))}
