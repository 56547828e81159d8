"""Benchmark: the routed pretrain step against a plain single-objective LM step.

  python benchmarks/train_step.py [--batch 32 --seq 128]

Prints tokens/s and achieved GFLOP/s of both, and the routing overhead ratio
(SPEC §8: routing ≤ 10 % over plain; pretrain ≥ 50 % of the ~450 GFLOP/s matmul peak).
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tomk import config as config_lib, optimizer, routing, train
from tomk.algorithms import pretrain
from tomk.model import Model, ModelConfig, count_params


def bench(fn, state, batch, repeats):
  state, m = fn(state, batch)
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(repeats):
    state, m = fn(state, batch)
  jax.block_until_ready(m)
  return (time.perf_counter() - start) / repeats


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--seq', type=int, default=128)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  config = config_lib.base()
  config_lib.set_routes(config, pretrain.ROUTES)
  model_config = ModelConfig.from_config({**config.model.to_dict(), 'vocab_size': 1024})
  model = Model(model_config)
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 1024, (args.batch, args.seq + 1))
  batch = {'inputs': jnp.asarray(tokens[:, :-1], jnp.int32),
           'targets': jnp.asarray(tokens[:, 1:], jnp.int32),
           'weights': jnp.ones((args.batch, args.seq)), 'rewards': jnp.ones((args.batch, args.seq))}

  tx = optimizer.make(config.optimizer, {'perception', 'behavior', 'prediction'}, 1000)
  state = train.make_state(model, tx, jax.random.key(0))
  n_params = sum(count_params(state['params']).values())
  routed = jax.jit(train.make_train_step(model, tx, pretrain, config), donate_argnums=0)
  t_routed = bench(routed, state, batch, args.repeats)

  # Plain: one objective (sum of both streams' NLL) by jax.grad over the whole tree.
  plain_tx = optax.adamw(1e-3)
  def plain_step(state, batch):
    def loss(p):
      logits = model.apply(p, batch['inputs'])
      return sum(routing.token_nll(l, batch).mean() for l in logits.values())
    value, grads = jax.value_and_grad(loss)(state['params'])
    updates, opt = plain_tx.update(grads, state['opt'], state['params'])
    return {'params': optax.apply_updates(state['params'], updates), 'opt': opt}, value
  params = train.make_state(model, tx, jax.random.key(0))['params']
  plain = jax.jit(plain_step, donate_argnums=0)
  t_plain = bench(plain, {'params': params, 'opt': plain_tx.init(params)}, batch, args.repeats)

  tokens_per_step = args.batch * args.seq
  flops = 6 * n_params * tokens_per_step      # matmul FLOPs, attention scores ignored
  for name, t in (('routed pretrain step', t_routed), ('plain LM step', t_plain)):
    print(f'{name:22s} {t * 1e3:8.1f} ms  {tokens_per_step / t:9,.0f} tok/s  '
          f'{flops / t / 1e9:6.1f} GFLOP/s')
  print(f'routing overhead: {t_routed / t_plain:.3f}x plain')


if __name__ == '__main__':
  main()
