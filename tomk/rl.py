"""Policy gradient shared by every RL algorithm: rollout → reward → advantage → update.

The `rl` objective is a per-token loss on the behavior stream over the sampled
response tokens: PPO-style clipped ratio × advantage, a KL penalty to a frozen
reference policy and an entropy bonus. With one update epoch per rollout the
ratio is 1 and this is REINFORCE with a baseline; with several it is PPO/GRPO.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from tomk.routing import Objective
from tomk.sampler import Samples

ESTIMATORS = ('batch_mean', 'group', 'rloo')


def check(config) -> None:
  """Errors for config.rl of an algorithm that samples."""
  rl = config.rl
  if rl.estimator not in ESTIMATORS:
    raise ValueError(f'rl.estimator={rl.estimator!r}: use one of {ESTIMATORS}.')
  if config.batch_size % rl.num_samples:
    raise ValueError(f'batch_size {config.batch_size} must be a multiple of rl.num_samples '
                     f'{rl.num_samples} (prompts per step × samples per prompt).')
  if rl.estimator in ('group', 'rloo') and rl.num_samples < 2:
    raise ValueError(f'rl.num_samples={rl.num_samples}: the {rl.estimator!r} estimator compares '
                     f'samples of one prompt, so every advantage would be 0; set it >= 2, or '
                     f"use rl.estimator='batch_mean'.")


@dataclasses.dataclass(frozen=True)
class PolicyGradientConfig:
  """config.rl's policy-gradient settings (their defaults are config.base()'s)."""
  estimator: str                # batch_mean | group (GRPO: standardise within each prompt) | rloo
  clip_epsilon: float
  kl_coef: float
  entropy_coef: float
  epochs: int                   # update epochs per rollout (PPO when > 1)

  @classmethod
  def from_config(cls, config) -> 'PolicyGradientConfig':
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dict(config).items() if k in fields})


def advantages(rewards: np.ndarray, group_size: int, estimator: str) -> np.ndarray:
  """Per-sample advantages; rows are grouped by prompt (k = group_size consecutive rows)."""
  rewards = np.asarray(rewards, np.float32)
  if estimator == 'batch_mean':
    return rewards - rewards.mean()
  groups = rewards.reshape(-1, group_size)
  if estimator == 'group':
    centred = groups - groups.mean(1, keepdims=True)
    return (centred / (groups.std(1, keepdims=True) + 1e-4)).reshape(-1)
  if estimator == 'rloo':
    if group_size < 2:
      raise ValueError('the rloo estimator needs num_samples ≥ 2 per prompt.')
    others = (groups.sum(1, keepdims=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)
  raise ValueError(f'advantage estimator {estimator!r} is unknown; use one of {ESTIMATORS}.')


def policy_loss(config: PolicyGradientConfig):
  """The `rl` objective's per-token loss and metrics, for routing.Objective."""
  def loss(logits, batch):
    log_probs = jax.nn.log_softmax(logits)
    logprob = jnp.take_along_axis(log_probs, batch['targets'][..., None], -1)[..., 0]
    ratio = jnp.exp(logprob - batch['old_logprobs'])
    advantage = batch['advantages']
    clipped = jnp.clip(ratio, 1 - config.clip_epsilon, 1 + config.clip_epsilon)
    policy = -jnp.minimum(ratio * advantage, clipped * advantage)
    # k3 estimator of KL(π || π_ref): unbiased, always ≥ 0.
    log_ref_ratio = batch['ref_logprobs'] - logprob
    kl = jnp.exp(log_ref_ratio) - log_ref_ratio - 1.0
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, -1)
    per_token = policy + config.kl_coef * kl - config.entropy_coef * entropy
    clip_fraction = (jnp.abs(ratio - 1.0) > config.clip_epsilon).astype(jnp.float32)
    return per_token, {'kl': kl, 'entropy': entropy, 'clip_fraction': clip_fraction}
  return loss


def objective(config) -> Objective:
  """The `rl` objective of every RL algorithm: policy_loss on the behavior stream over the
  sampled response tokens."""
  return Objective('rl', 'behavior', policy_loss(PolicyGradientConfig.from_config(config.rl)),
                   mask='response_mask')


def sequence_batch(prompt_tokens, prompt_valid, samples: Samples, pad_id: int) -> dict:
  """Prompt + sampled response as a training batch (aligned to next-token targets).

  `response_mask` marks targets that are response tokens; `key_mask` hides the
  prompt's left padding and what follows a row's end of turn.
  """
  tokens = jnp.concatenate([prompt_tokens, samples.tokens], 1)
  valid = jnp.concatenate([prompt_valid, samples.mask], 1)
  positions = jnp.maximum(jnp.cumsum(valid, 1) - 1, 0)
  prompt_len = prompt_tokens.shape[1]
  response_mask = jnp.zeros(tokens.shape, bool).at[:, prompt_len:].set(samples.mask)
  old_logprobs = jnp.zeros(tokens.shape, jnp.float32).at[:, prompt_len:].set(samples.logprobs)
  return {'inputs': tokens[:, :-1], 'targets': tokens[:, 1:], 'positions': positions[:, :-1],
          'key_mask': valid[:, :-1], 'response_mask': response_mask[:, 1:].astype(jnp.float32),
          'old_logprobs': old_logprobs[:, 1:]}


def token_logprobs(model, params, batch, stream='behavior'):
  """log π(target) per position under `params` (e.g. the frozen reference policy)."""
  logits = model.apply(params, batch['inputs'], batch['positions'], streams=(stream,),
                       key_mask=batch['key_mask'])[stream]
  return jnp.take_along_axis(jax.nn.log_softmax(logits), batch['targets'][..., None], -1)[..., 0]
