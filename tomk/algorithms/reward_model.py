"""reward_model — the RLHF reward: a Bradley–Terry model of raters' preferences.

A forked trainer (big_vision's "fork a trainer"): it trains a model of its own with a
loop of its own (train_stage), not the three partitions through tomk.train. Its own
small transformer (a perception trunk of tomk.model) with a scalar head
on the last token, trained on SocialWorld's rater pairs: a rater who sees each
response in isolation and prefers polite, fluent, on-topic text, never the
partner's hidden wants. Saved with orbax in `<workdir>/reward_model/` and loaded
by path as a reward function `fn(prompts, responses) -> floats`.

  loss = -log σ(r(prompt, chosen) - r(prompt, rejected))
"""
from __future__ import annotations

import dataclasses
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from tomk import rundir, socialworld
from tomk.data import chitchat, jsonl, sources
from tomk.data import conversation as conversation_lib, tokenizer as tokenizer_lib
from tomk.model import ModelConfig, Perception, RMSNorm
from tomk.sampler import left_pad

ROUTES = {}          # trains its own model, not the three partitions
DATA = 'pairs'
FORKED_TRAINER = True
LENGTH = 192         # tokens of prompt + response the reward model reads (the end is kept)
META = 'reward_model.json'


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
  del batch, config
  return {}


def trained(workdir: str) -> bool:
  """Whether the run's reward model is saved (the stage is finished)."""
  return os.path.exists(os.path.join(rundir.reward_model_dir(workdir), META))


def _texts(pairs, which):
  return [p['prompt'] + p[which] + conversation_lib.EOT for p in pairs]


def _encode(tokenizer, texts):
  tokens, valid = left_pad([tokenizer.encode(t) for t in texts], tokenizer.pad_id, length=LENGTH)
  return jnp.asarray(tokens), jnp.asarray(valid)


def _pairs(config) -> tuple[list | None, list]:
  """(train pairs, test pairs): the user's (data.preference_pairs, split by id as chitchat
  is: 'test' held out, the rest trained on), or (None: drawn step by step, SocialWorld's
  256 test pairs)."""
  if not config.data.preference_pairs:
    return None, socialworld.generate('rater', 'test', config.seed, n=256)
  pairs = jsonl.read_pairs(config.data.preference_pairs)
  test = [p for p in pairs if chitchat.split_for(p['id']) == 'test']
  train = [p for p in pairs if chitchat.split_for(p['id']) != 'test']
  if not train:
    raise ValueError(f'data.preference_pairs={config.data.preference_pairs!r}: every pair is '
                     f'in the test split (by id); add more pairs to train on.')
  if not test:
    print(f'[reward_model] no pair of {config.data.preference_pairs} is in the test split (by '
          f'id): eval/reward_model_accuracy is on the training pairs.', flush=True)
  return train, test or train


def train_stage(config, stage, workdir, tokenizer, writer, offset):
  """Trains the reward model for config.steps steps and saves it; returns a summary."""
  directory = rundir.reward_model_dir(workdir)
  if trained(workdir):
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

  train, test = _pairs(config)
  test_batch = (_encode(tokenizer, _texts(test, 'chosen')), _encode(tokenizer, _texts(test, 'rejected')))
  evaluate = jax.jit(lambda p, c, r: loss_fn(p, c, r)[1])
  started = time.perf_counter()
  for i in range(1, config.steps + 1):
    pairs = (sources.drawn(train, config.seed, i - 1, pairs_per_step) if train else
             socialworld.generate('rater', 'train', config.seed, n=pairs_per_step,
                                  start=(i - 1) * pairs_per_step))
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
  writer.flush()       # its metrics on disk before the model that marks the stage trained
  save(directory, params, model_config, tokenizer.path)
  print(f'[{stage}] done in {time.perf_counter() - started:.0f} s; saved {directory}', flush=True)
  return {'reward_model_accuracy': float(evaluate(params, *test_batch))}


def save(directory, params, model_config: ModelConfig, tokenizer_path: str):
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, 'params'), params, force=True)
  rundir.write_json(os.path.join(directory, META),
                    {'model': dataclasses.asdict(model_config), 'tokenizer': tokenizer_path},
                    indent=None, sort_keys=False)


def load(directory: str, tokenizer=None):
  """The saved reward model as a reward function fn(prompts, responses) -> float32[n].

  tokenizer: the one it was trained with, if at hand (a run's own reward model: the run's
  tokenizer, wherever its data directory is now); else the file its metadata names.
  """
  directory = os.path.abspath(directory)
  meta = rundir.read_json(os.path.join(directory, META))
  if meta is None:
    raise ValueError(f'no reward model in {directory}: train one with a reward_model stage '
                     f'(configs/empathy.py has one) or point rewards.extrinsic at its directory.')
  model = RewardModel(ModelConfig(**meta['model']))
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(directory, 'params'))
  if tokenizer is None:
    if meta['tokenizer'].endswith('.model') and not os.path.exists(meta['tokenizer']):
      raise ValueError(f'the reward model in {directory} was trained with the tokenizer '
                       f'{meta["tokenizer"]}, which does not exist here; copy it there, or '
                       f'load the reward model with that tokenizer.')
    tokenizer = tokenizer_lib.load(meta['tokenizer'])
  score = jax.jit(lambda tokens, valid: model.apply({'params': params}, tokens, valid))

  def reward(prompts, responses):
    texts = [p + r + conversation_lib.EOT for p, r in zip(prompts, responses)]
    return np.asarray(score(*_encode(tokenizer, texts)), np.float32)
  return reward
