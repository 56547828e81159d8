"""reward_model — the RLHF reward: a Bradley–Terry model of raters' preferences.

Its own small transformer (a perception trunk of tomk.model) with a scalar head
on the last token, trained on SocialWorld's rater pairs: a rater who sees each
response in isolation and prefers polite, fluent, on-topic text, never the
partner's hidden wants. Saved with orbax in `<workdir>/reward_model/` and loaded
by path as a reward function `fn(prompts, responses) -> floats`.

  loss = -log σ(r(prompt, chosen) - r(prompt, rejected))
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from tomk import socialworld
from tomk.data import conversation as conversation_lib, tokenizer as tokenizer_lib
from tomk.model import ModelConfig, Perception, RMSNorm
from tomk.sampler import left_pad

ROUTES = {}          # trains its own model, not the three partitions
DATA = 'pairs'
LENGTH = 192         # tokens of prompt + response the reward model reads (the end is kept)


class RewardModel(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, tokens, valid):
    positions = jnp.maximum(jnp.cumsum(valid, 1) - 1, 0)
    h, _ = Perception(self.config, name='trunk')(tokens, positions, key_mask=valid)
    return nn.Dense(1, name='head')(RMSNorm(name='norm')(h[:, -1]))[:, 0]   # right-aligned


def objectives(config):
  del config
  return []


def gates(batch, config):
  return {}


def _texts(pairs, which):
  return [p['prompt'] + p[which] + conversation_lib.EOT for p in pairs]


def _encode(tokenizer, texts):
  tokens, valid = left_pad([tokenizer.encode(t) for t in texts], tokenizer.pad_id, length=LENGTH)
  return jnp.asarray(tokens), jnp.asarray(valid)


def train_stage(config, stage, workdir, tokenizer, writer, offset):
  """Trains the reward model for config.steps steps and saves it; returns a summary."""
  directory = os.path.abspath(os.path.join(workdir, 'reward_model'))
  if os.path.exists(os.path.join(directory, 'reward_model.json')):
    print(f'[{stage}] reward model already trained in {directory}', flush=True)
    return {}
  model_config = ModelConfig.from_config({**config.reward_model.to_dict(),
                                          'vocab_size': tokenizer.vocab_size})
  model = RewardModel(model_config)
  pairs_per_step = config.batch_size
  dummy = jnp.zeros((1, LENGTH), jnp.int32)
  params = nn.unbox(model.init(jax.random.key(config.seed), dummy,
                               jnp.ones((1, LENGTH), bool))['params'])
  tx = optax.adamw(config.reward_model_learning_rate)
  opt_state = tx.init(params)

  def loss_fn(p, chosen, rejected):
    margin = model.apply({'params': p}, *chosen) - model.apply({'params': p}, *rejected)
    return -jax.nn.log_sigmoid(margin).mean(), (margin > 0).mean()

  @jax.jit
  def step(p, o, chosen, rejected):
    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, chosen, rejected)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss, accuracy

  test = socialworld.generate('rater', 'test', config.seed, n=256)
  test_batch = (_encode(tokenizer, _texts(test, 'chosen')), _encode(tokenizer, _texts(test, 'rejected')))
  evaluate = jax.jit(lambda p, c, r: loss_fn(p, c, r)[1])
  started = time.perf_counter()
  for i in range(1, config.steps + 1):
    pairs = socialworld.generate('rater', 'train', config.seed, n=pairs_per_step,
                                 start=(i - 1) * pairs_per_step)
    params, opt_state, loss, accuracy = step(
        params, opt_state, _encode(tokenizer, _texts(pairs, 'chosen')),
        _encode(tokenizer, _texts(pairs, 'rejected')))
    if i % config.log_every == 0 or i == config.steps:
      scalars = {'loss/bradley_terry': float(loss), 'reward_model/train_accuracy': float(accuracy)}
      if i % config.eval_every == 0 or i == config.steps:
        scalars['eval/reward_model_accuracy'] = float(evaluate(params, *test_batch))
      writer.write(offset + i, scalars, stage=stage, algorithm='reward_model')
      print(f'[{stage}] step {i}/{config.steps}  ' +
            '  '.join(f'{k.split("/")[-1]} {v:.3f}' for k, v in scalars.items()), flush=True)
  save(directory, params, model_config, tokenizer.path)
  print(f'[{stage}] done in {time.perf_counter() - started:.0f} s; saved {directory}', flush=True)
  return {'reward_model_accuracy': float(evaluate(params, *test_batch))}


def save(directory, params, model_config: ModelConfig, tokenizer_path: str):
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, 'params'), params, force=True)
  with open(os.path.join(directory, 'reward_model.json'), 'w') as f:
    json.dump({'model': dataclasses.asdict(model_config), 'tokenizer': tokenizer_path}, f)


def load(directory: str):
  """The saved reward model as a reward function fn(prompts, responses) -> float32[n]."""
  directory = os.path.abspath(directory)
  meta_path = os.path.join(directory, 'reward_model.json')
  if not os.path.exists(meta_path):
    raise ValueError(f'no reward model in {directory}: train one with a reward_model stage '
                     f'(configs/empathy.py has one) or point rewards.extrinsic at its directory.')
  with open(meta_path) as f:
    meta = json.load(f)
  model = RewardModel(ModelConfig(**meta['model']))
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(directory, 'params'))
  tokenizer = tokenizer_lib.Tokenizer(meta['tokenizer'])
  score = jax.jit(lambda tokens, valid: model.apply({'params': params}, tokens, valid))

  def reward(prompts, responses):
    texts = [p + r + conversation_lib.EOT for p, r in zip(prompts, responses)]
    return np.asarray(score(*_encode(tokenizer, texts)), np.float32)
  return reward
