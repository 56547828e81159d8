"""Rollouts for the RL algorithms: prompts → behavior samples → rewards → a training batch.

Sampling runs jitted on the device with no host round trip inside it; the host
decodes the responses to text only to score them, because reward functions are
Tunix-style `fn(prompts, responses) -> floats` over text (a reward model, the
sentiment of a reply, ...). How the reward is obtained is the algorithm's
business (`algorithm.rewards`): rlhf scores the response, empathy simulates the
partner's reply with the prediction stream from the partner's perspective, and so on.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tomk import rewards as rewards_lib, rl, rundir
from tomk.algorithms import reward_model
from tomk.data import conversation as conversation_lib
from tomk.sampler import Sampler, SamplingConfig, left_pad

def simulation_prompt_len(config) -> int:
  """The sampler's fixed prompt length (one compile): a prompt and, for kindness, the
  turns simulated after it, each a reply of at most max_new_tokens plus a name: the
  response and the partner's reply for kindness.horizon = 1, two more turns per further
  reply. Longer prompts keep their end (sampler.left_pad)."""
  return config.rl.prompt_len + (2 * config.kindness.horizon - 1) * (config.rl.max_new_tokens + 16)


@dataclasses.dataclass
class Context:
  """What an algorithm's reward function may use: the model, sampler and text codecs.

  Ground truth (`example['partner_reward']` etc.) is deliberately not here: training
  rewards come only from what a deployed model could observe.
  """
  model: object
  tokenizer: object
  sampler: Sampler
  sampling: SamplingConfig
  config: object
  reward_functions: dict[str, Callable]

  def encode(self, prompts: Sequence[str]) -> list[list[int]]:
    return [self.tokenizer.encode_prompt(p) for p in prompts]

  def decode(self, samples) -> list[str]:
    tokens, mask = np.asarray(samples.tokens), np.asarray(samples.mask)
    eot = conversation_lib.EOT
    return [self.tokenizer.decode([int(t) for t, m in zip(row, keep) if m]).replace(eot, '').strip()
            for row, keep in zip(tokens, mask)]

  def sample(self, params, prompts: Sequence[str], key, stream: str, num_samples: int = 1):
    return self.sampler(params, self.encode(prompts), key, stream=stream, config=self.sampling,
                        num_samples=num_samples)


def rollout(context: Context, algorithm, params, reference_params, examples: list[dict], key,
            num_samples: int, policy_gradient: rl.PolicyGradientConfig,
            logprob_fn) -> tuple[dict, dict, list[str]]:
  """One rollout: the training batch for the `rl` (and other response) objectives, its
  metrics and the responses."""
  # Only the conversation travels on: no hidden state reaches the reward functions.
  conversations = [ex['conversation'] for ex in examples]
  prompts = [conversation_lib.prompt_for(c) for c in conversations]
  prompt_tokens, prompt_valid = left_pad(context.encode(prompts), context.tokenizer.pad_id,
                                         length=context.config.rl.prompt_len)
  sample_key, reward_key = jax.random.split(key)
  samples = context.sampler.sample_padded(params, prompt_tokens, prompt_valid, sample_key, 'behavior',
                                      context.sampling, num_samples)
  responses = context.decode(samples)
  repeated = [c for c in conversations for _ in range(num_samples)]
  rewards, metrics = algorithm.rewards(context, params, repeated, responses, reward_key)
  rewards = np.asarray(rewards, np.float32)
  batch = training_batch(prompt_tokens, prompt_valid, samples, rewards, num_samples,
                         policy_gradient, context.tokenizer.pad_id, logprob_fn, reference_params)
  metrics = {'reward/mean': float(rewards.mean()), 'reward/std': float(rewards.std()),
             'response/length': float(np.asarray(samples.mask).sum(1).mean()), **metrics}
  return batch, metrics, responses


def training_batch(prompt_tokens, prompt_valid, samples, rewards: np.ndarray, num_samples: int,
                   policy_gradient: rl.PolicyGradientConfig, pad_id: int, logprob_fn,
                   reference_params) -> dict:
  """Prompts [P, L] and their k = num_samples samples each, with one reward per sample, as
  the `rl` objective's batch: advantages, rewards and the reference policy's log-probs."""
  advantage = rl.advantages(rewards, num_samples, policy_gradient.estimator)
  batch = rl.sequence_batch(jnp.repeat(prompt_tokens, num_samples, 0),
                            jnp.repeat(prompt_valid, num_samples, 0), samples, pad_id)
  mask = batch['response_mask']
  batch['weights'] = mask
  batch['advantages'] = jnp.asarray(advantage)[:, None] * mask
  batch['rewards'] = jnp.asarray(rewards)[:, None] * mask
  batch['ref_logprobs'] = logprob_fn(reference_params, batch)
  return batch


class Rollouts:
  """The rollouts of one RL stage: (policy, reference, examples, key) -> (training batch,
  metrics). A data.batches.RolloutBatches draws the examples and keys step by step."""

  def __init__(self, config, model, tokenizer, algorithm, workdir: str):
    sampling = SamplingConfig(config.rl.max_new_tokens, config.rl.temperature, config.rl.top_k,
                              config.rl.top_p)
    sampler = Sampler(model, tokenizer.eot_id, tokenizer.pad_id,
                      prompt_len=simulation_prompt_len(config))
    self.context = Context(model, tokenizer, sampler, sampling, config,
                           reward_functions(config, workdir, tokenizer))
    self.algorithm, self.num_samples = algorithm, config.rl.num_samples
    self.policy_gradient = rl.PolicyGradientConfig.from_config(config.rl)
    self.logprob_fn = jax.jit(lambda p, b: rl.token_logprobs(model, p, b))

  def __call__(self, params, reference_params, examples: list[dict], key) -> tuple[dict, dict]:
    batch, metrics, _ = rollout(self.context, self.algorithm, params, reference_params,
                                examples, key, self.num_samples, self.policy_gradient,
                                self.logprob_fn)
    return batch, metrics


def reward_functions(config, workdir: str, tokenizer, trained_only: bool = False) -> dict:
  """config.rewards as functions ({'extrinsic': RLHF, 'intrinsic': IRF}); with
  trained_only, less the run's own reward model while its stage has not trained it."""
  return {name: reward_function(spec, workdir, tokenizer)
          for name, spec in config.rewards.items()
          if not (trained_only and spec == 'reward_model' and not reward_model.trained(workdir))}


def reward_function(spec: str, workdir: str = '', tokenizer=None) -> Callable:
  """'sentiment', 'constant', 'rater', 'reward_model' (this run's reward_model stage, read
  with the run's `tokenizer`) or 'reward_model:PATH' (a Bradley–Terry model saved by
  orbax, read with the tokenizer it was trained with)."""
  if spec == 'reward_model':
    return reward_model.load(rundir.reward_model_dir(workdir), tokenizer)
  if spec == 'rater':
    # SocialWorld's simulated human rater: judges a response in isolation (politeness,
    # fluency, topicality), never the partner's hidden wants; the RLHF signal.
    from tomk.socialworld import rater
    return lambda prompts, responses: np.asarray(
        [rater.score(p, r) for p, r in zip(prompts, responses)], np.float32)
  if spec.startswith('reward_model:'):
    return reward_model.load(spec.split(':', 1)[1])
  return rewards_lib.get(spec)
