"""infer_reward — Inferring others' reward functions, paper 001 §4.2.4.

The paper leaves the method open ("Inverse Reinforcement Learning"); rewards are
not visible, but people's reactions are. A scalar head on the prediction tower,
r̂(s), reads a state rendered from a person's perspective up to the <self> token
that opens their next turn, and regresses an observable signal of that turn: the
data.reaction score (VADER sentiment) of what they say when they answer someone,
e.g. a SocialWorld partner's reaction to the model's offer, seen from the partner's
side (data.scenario_perspective='partner'). Never the hidden utilities or rewards.

  reward_regression = (r̂(s^X) − reaction(a^X))²   → prediction, perception

kindness.reward = 'inferred' then scores each switched state sʲ = S(s + a) with r̂
instead of simulating j's reply and taking its sentiment: the partner's reward is
learnt from the partner, not assumed to be the model's own (003 Eq. 2).
The head lives in params['prediction']['reward_head'] (config.model.reward_head=True)
and changes only through this route (it is not weight-decayed).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tomk.data import conversation as conversation_lib
from tomk.routing import Objective
from tomk.sampler import left_pad

ROUTES = {
    'reward_regression': {'prediction': 1.0, 'perception': 1.0},
}

DATA = 'lm'    # conversations whose turns include people's reactions (data.reaction)


def squared_error(reward, batch):
  """(r̂ − observed reaction)² per position; the head's estimate and target are logged."""
  return jnp.square(reward - batch['reaction']), {'estimate': reward, 'target': batch['reaction']}


def check_head(config):
  """The model has the head (config.model.reward_head); errors say what to set."""
  if not config.model.reward_head:
    raise ValueError(f'{config.algorithm} reads the inferred reward r̂, but the model has no '
                     f'reward head; set --config.model.reward_head=True (for a curriculum, at '
                     f'the top level: every stage shares the parameter tree).')


def check(config):
  check_head(config)
  if not config.data.reaction:
    raise ValueError('infer_reward regresses people\'s observed reactions, but data.reaction '
                     'is empty; set --config.data.reaction=sentiment (and, for SocialWorld '
                     'scenarios, --config.data.scenario_perspective=partner).')


def objectives(config):
  del config
  return [Objective('reward_regression', 'prediction', squared_error, mask='reaction_mask',
                    output='reward')]


def gates(batch, config):
  del batch, config
  return {}


# --- Using the inferred reward (kindness.reward = 'inferred') ----------------------------------

def state(view: conversation_lib.Conversation) -> str:
  """The text r̂ reads: the history from the view owner's perspective up to the <self>
  token that opens their next turn (where the pipeline puts each reaction's score)."""
  return conversation_lib.render(view) + conversation_lib.SELF


@functools.partial(jax.jit, static_argnums=0)
def _last_position_reward(model, params, tokens, valid):
  positions = jnp.maximum(jnp.cumsum(valid, 1) - 1, 0)
  return model.reward(params, tokens, positions, key_mask=valid)[:, -1]   # right-aligned


def estimate(context, params, views) -> np.ndarray:
  """r̂(sʲ) for each view (a conversation seen from person j's perspective): float32[n]."""
  tokens, valid = left_pad(context.encode([state(v) for v in views]), context.tokenizer.pad_id,
                           length=context.sampler.prompt_len)      # one length: one compile
  return np.asarray(_last_position_reward(context.model, params, tokens, valid), np.float32)
