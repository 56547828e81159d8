"""tomk's speed, measured beside Tunix in one run on one machine (SPEC §8).

  python benchmarks/side_by_side.py [--rounds=3] [--tunix_python=PATH] [--only=sampler,...]

A ratio holds only when both sides run in the same benchmark run on the same machine, and a
share of peak only against a peak measured in the same process: this command measures both
sides alternately, `--rounds` times, and the XLA f32 matmul peak here. Each measurement is
one JSON line ({"measure": ...}) followed by a human line:

- env: versions, load average, CPU flags, XLA_FLAGS.
- peak: the f32 matmul peak (n = 2048), GFLOP/s.
- sampler: 16 prompts × 64 tokens, 128 new, end of turn off, temperature 1; the benchmark
  model (d_model 256, 4 layers = 2 perception + 2 behavior, 4 heads, FFN 1024, vocab 1024,
  fp32); tomk's Sampler (prompts padded on the host, tokens back on the host) against
  Tunix's Sampler.__call__ (benchmarks/tunix_side.py): tokens/s, medians and ranges over
  the rounds, ratio of medians.
- rl_iteration: one rlhf iteration doing the work of Tunix's GRPO harness (8 prompts ×
  4 samples, 64 prompt tokens, 64 new, end of turn off, temperature 1, reward = share of
  sampled tokens equal to token 3, reference log-probs with KL coefficient 0.04, one
  PPO-clipped AdamW update on all 32 sequences) on the benchmark model, against Tunix's
  GRPOLearner on an RLCluster (benchmarks/tunix_side.py grpo): seconds per iteration and
  per phase, ratio of medians (benchmarks/rl_iteration.py).
- kindness_iteration: an empathy iteration (1 and 2 simulated replies per response) beside
  an rlhf one, each as a run does it (SocialWorld prompts, the run's tokenizer, the stage's
  routed step), at the default RL settings on the benchmark model (rl_iteration.py).
- train_step: the routed pretrain step at the default pretrain size (32 × 128 tokens),
  model FLOPs counted analytically (6·N·T for the matmul parameters N, plus attention's
  12·layers·T·S·d), as a share of the peak; and a plain step (one objective, both streams'
  NLL summed, jax.value_and_grad over the whole tree) with the same optimizer and finite
  check: the routing overhead.
- growth: the routed pretrain step at d_model 128 → 1024 (batch 32) and batch 8 → 64
  (d_model 256), seconds, tokens/s and share of the peak; the sampler at batch 1 → 64
  (cache 256) and cache 512 → 2048 (batch 16), tokens/s beside Tunix's (one round).

Every timed call is checked to compile nothing (the count is printed). The Tunix side runs
in a Python that has google-tunix: --tunix_python or $TOMK_TUNIX_PYTHON; without one the
benchmark says how to make it and measures tomk alone. Run it on a quiet machine (load
average below 0.3); its figures move from host to host, its ratios much less.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tomk import config as config_lib, optimizer, routing, train
from tomk.algorithms import pretrain
from tomk.model import Model, ModelConfig, count_params
from tomk.sampler import Sampler, SamplingConfig

from measuring import BENCHMARK_MODEL, HERE, emit, spread, timed
import rl_iteration

TUNIX_VENV = ('python3 -m venv /tmp/tunix && /tmp/tunix/bin/pip install google-tunix; then '
              'TOMK_TUNIX_PYTHON=/tmp/tunix/bin/python')
SAMPLER = dict(batch=16, prompt_len=64, new=128)


def environment() -> dict:
  from importlib import metadata
  flags = set()
  if os.path.exists('/proc/cpuinfo'):
    for line in open('/proc/cpuinfo'):
      if line.startswith('flags'):
        flags = set(line.split(':', 1)[1].split())
        break
  return {'measure': 'env', 'python': platform.python_version(), 'cpus': os.cpu_count(),
          'load_average': os.getloadavg()[0], 'xla_flags': os.environ.get('XLA_FLAGS', ''),
          'cpu_flags': sorted(flags & {'avx', 'avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_tile'}),
          'versions': {p: metadata.version(p) for p in ('jax', 'jaxlib', 'flax', 'optax')},
          'devices': [str(d) for d in jax.devices()]}


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
  """GFLOP/s of an f32 n×n matmul, the best of `repeats` calls."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  seconds, _ = timed(lambda: jax.block_until_ready(matmul(a, b)), repeats)
  return 2 * n ** 3 / min(seconds) / 1e9


# --- the sampler ---------------------------------------------------------------------------


def tomk_sampler(repeats: int, batch: int = SAMPLER['batch'],
                 prompt_len: int = SAMPLER['prompt_len'], new: int = SAMPLER['new']):
  """A function that measures tomk's sampler once (`repeats` calls): tokens/s, compiles."""
  model = Model(ModelConfig(**{**BENCHMARK_MODEL,
                               'max_len': max(BENCHMARK_MODEL['max_len'], prompt_len + new)}))
  params = model.init(jax.random.key(0))
  sampler = Sampler(model, eot_id=-1, pad_id=0)          # no end of turn: always `new` tokens
  prompts = np.random.default_rng(0).integers(3, 1024, (batch, prompt_len)).tolist()
  config = SamplingConfig(max_new_tokens=new, temperature=1.0)
  calls = itertools.count()

  def call():
    samples = sampler(params, prompts, jax.random.key(next(calls)), config=config)
    tokens = np.asarray(samples.tokens)                 # on the host, as Tunix's are
    assert tokens.shape == (batch, new)

  call()
  call()

  def measure():
    seconds, compiles = timed(call, repeats)
    return batch * new / statistics.median(seconds), compiles
  return measure


def tunix_sampler(python: str, repeats: int, batch: int = SAMPLER['batch'],
                  prompt_len: int = SAMPLER['prompt_len'], new: int = SAMPLER['new']):
  command = [python, os.path.join(HERE, 'tunix_side.py'), 'sampler', f'--batch={batch}',
             f'--prompt-len={prompt_len}', f'--new={new}', f'--repeats={repeats}']
  def measure():
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
      raise RuntimeError(f'the Tunix side failed:\n{done.stderr[-2000:]}')
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result['tokens_per_s'], result['compiles'], result['versions']
  return measure


def sampler_benchmark(rounds: int, repeats: int, tunix: str | None) -> None:
  tomk = tomk_sampler(repeats)
  peer = tunix_sampler(tunix, repeats) if tunix else None
  ours, theirs, compiles, versions = [], [], 0, None
  for _ in range(rounds):                                   # alternately
    rate, n = tomk()
    ours.append(rate)
    compiles += n
    if peer:
      rate, n, versions = peer()
      theirs.append(rate)
      compiles += n
  record = {'measure': 'sampler', **SAMPLER, 'tomk_tokens_per_s': spread(ours),
            'timed_compiles': compiles, 'load_average': os.getloadavg()[0]}
  line = f'sampler: tomk {statistics.median(ours):,.0f} tok/s ({min(ours):,.0f}–{max(ours):,.0f})'
  if theirs:
    ratio = statistics.median(ours) / statistics.median(theirs)
    record.update(tunix_tokens_per_s=spread(theirs), ratio=ratio, tunix_versions=versions)
    line += (f', Tunix {statistics.median(theirs):,.0f} tok/s ({min(theirs):,.0f}–'
             f'{max(theirs):,.0f}): {ratio:.2f}× Tunix (target ≥ 1.5)')
  emit(record, line + f'; {compiles} compilations in timed calls')


# --- the train step ------------------------------------------------------------------------


def model_flops(model_config: ModelConfig, params, batch: int, seq: int) -> float:
  """Model FLOPs of one training step: 6·N·T over the matmul parameters (all but the token
  embedding, which is a gather) plus attention's scores and values, 12·layers·T·S·d."""
  matmuls = sum(count_params(params).values()) - model_config.vocab_size * model_config.d_model
  layers = model_config.trunk_layers + 2 * model_config.tower_layers     # both streams
  tokens = batch * seq
  return 6 * matmuls * tokens + 12 * layers * tokens * seq * model_config.d_model


def plain_step_fn(model, tx):
  """One objective (both streams' NLL summed) by jax.value_and_grad over the whole tree,
  the same optimizer and finite check as train.make_train_step."""
  def step(state, batch):
    def loss(params):
      logits = model.apply(params, batch['inputs'])
      return sum((routing.token_nll(l, batch) * batch['weights']).mean() for l in logits.values())
    value, grads = jax.value_and_grad(loss)(state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    finite = train.all_finite((value, grads))
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    params = optax.apply_updates(state['params'], updates)
    return {**state, 'params': keep(params, state['params']),
            'opt_state': keep(opt_state, state['opt_state'])}, value
  return step


def lm_batch(batch_size: int, seq: int) -> dict:
  """Random tokens of the benchmark vocabulary as a pretrain batch, reward 1 everywhere."""
  tokens = np.random.default_rng(0).integers(0, 1024, (batch_size, seq + 1))
  return {'inputs': jnp.asarray(tokens[:, :-1], jnp.int32),
          'targets': jnp.asarray(tokens[:, 1:], jnp.int32),
          'weights': jnp.ones((batch_size, seq)), 'rewards': jnp.ones((batch_size, seq))}


def train_step_benchmark(rounds: int, repeats: int, peak: float) -> None:
  config = config_lib.base()
  config_lib.set_routes(config, pretrain.ROUTES)
  batch_size, seq = config.batch_size, config.data.seq_len
  model_config = ModelConfig.from_config({**config.model.to_dict(), 'vocab_size': 1024})
  model = Model(model_config)
  batch = lm_batch(batch_size, seq)
  tx = optimizer.make(config.optimizer, {'perception', 'behavior', 'prediction'}, 1000)
  # A constant reward of 1 (gate 1 everywhere: one behavior-tower VJP serves tower and
  # trunk) and rewards that vary per token (the gate weights them apart: two VJPs).
  varied = {**batch, 'rewards': jnp.asarray(
      np.random.default_rng(1).uniform(-1, 1, (batch_size, seq)), jnp.float32)}
  routed = jax.jit(train.make_train_step(model, tx, pretrain, config), donate_argnums=0)
  steps = {'routed': (routed, batch), 'routed_varied_gate': (routed, varied),
           'plain': (jax.jit(plain_step_fn(model, tx), donate_argnums=0), batch)}
  states = {name: train.make_state(model, tx, jax.random.key(0)) for name in steps}
  flops = model_flops(model_config, states['routed']['params'], batch_size, seq)

  def run(name):
    step, data = steps[name]
    states[name], out = step(states[name], data)
    jax.block_until_ready(out)
  for name in steps:
    run(name)
    run(name)
  times = {name: [] for name in steps}
  compiles = 0
  for _ in range(rounds):
    for name in steps:
      seconds, n = timed(lambda: run(name), repeats)
      times[name].append(statistics.median(seconds))
      compiles += n
  routed, varied, plain = (statistics.median(times[n])
                           for n in ('routed', 'routed_varied_gate', 'plain'))
  share = flops / routed / 1e9 / peak
  emit({'measure': 'train_step', 'batch': batch_size, 'seq': seq, 'model_flops': flops,
        'routed_s': spread(times['routed']), 'plain_s': spread(times['plain']),
        'routed_varied_gate_s': spread(times['routed_varied_gate']),
        'gflops': flops / routed / 1e9, 'peak_share': share, 'routing_ratio': routed / plain,
        'routing_ratio_varied_gate': varied / plain, 'timed_compiles': compiles},
       f'train step {batch_size} × {seq}: routed {routed * 1e3:.1f} ms = '
       f'{flops / routed / 1e9:.1f} GFLOP/s = {share:.0%} of the peak (target ≥ 50 %); '
       f'plain {plain * 1e3:.1f} ms: routing {routed / plain:.3f}× (target ≤ 1.05); with a '
       f'gate that varies per token (two behavior-tower VJPs) {varied * 1e3:.1f} ms = '
       f'{varied / plain:.3f}×; {compiles} compilations in timed calls')


# --- how cost grows ----------------------------------------------------------------------------


def growth_benchmark(repeats: int, peak: float, tunix: str | None) -> None:
  """Train-step time across model widths and batch sizes; sampler tokens/s across batch
  sizes and cache lengths, beside Tunix where it runs. One table each."""
  config = config_lib.base()
  config_lib.set_routes(config, pretrain.ROUTES)
  seq, rows = config.data.seq_len, []
  for d_model, batch_size in [(128, 32), (256, 32), (512, 32), (1024, 32), (256, 8), (256, 64)]:
    model_config = ModelConfig.from_config({
        **config.model.to_dict(), 'vocab_size': 1024, 'd_model': d_model,
        'num_heads': d_model // 64, 'ffn_dim': 4 * d_model})
    model = Model(model_config)
    batch = lm_batch(batch_size, seq)
    tx = optimizer.make(config.optimizer, {'perception', 'behavior', 'prediction'}, 1000)
    step = jax.jit(train.make_train_step(model, tx, pretrain, config), donate_argnums=0)
    state = [train.make_state(model, tx, jax.random.key(0))]
    def run():
      state[0], out = step(state[0], batch)
      jax.block_until_ready(out)
    run()
    run()
    seconds, compiles = timed(run, repeats)
    second = statistics.median(seconds)
    flops = model_flops(model_config, state[0]['params'], batch_size, seq)
    rows.append({'d_model': d_model, 'batch': batch_size, 'seconds': second,
                 'tokens_per_s': batch_size * seq / second, 'peak_share': flops / second / 1e9 / peak,
                 'timed_compiles': compiles})
  emit({'measure': 'train_step_growth', 'seq': seq, 'rows': rows},
       'train step growth (routed pretrain step, sequence 128): ' + '; '.join(
           f'd{r["d_model"]} × batch {r["batch"]}: {r["seconds"]:.2f} s, {r["tokens_per_s"]:,.0f} '
           f'tok/s, {r["peak_share"]:.0%} of peak' for r in rows))
  rows = []
  for batch, prompt_len, new in [(1, 64, 192), (4, 64, 192), (16, 64, 192), (64, 64, 192),
                                 (16, 384, 128), (16, 896, 128), (16, 1920, 128)]:
    ours, compiles = tomk_sampler(repeats, batch, prompt_len, new)()
    row = {'batch': batch, 'cache': prompt_len + new, 'tomk_tokens_per_s': ours,
           'timed_compiles': compiles}
    if tunix:
      theirs, compiles, _ = tunix_sampler(tunix, repeats, batch, prompt_len, new)()
      row.update(tunix_tokens_per_s=theirs, ratio=ours / theirs)
      row['timed_compiles'] += compiles
    rows.append(row)
  emit({'measure': 'sampler_growth', 'rows': rows},
       'sampler growth (tok/s; new tokens 192 at cache 256, else 128): ' + '; '.join(
           f'batch {r["batch"]}, cache {r["cache"]}: tomk {r["tomk_tokens_per_s"]:,.0f}'
           + (f', Tunix {r["tunix_tokens_per_s"]:,.0f} ({r["ratio"]:.2f}×)' if 'ratio' in r else '')
           for r in rows))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--tunix_python', default=os.environ.get('TOMK_TUNIX_PYTHON'))
  parser.add_argument('--only',
                      default='sampler,rl_iteration,kindness_iteration,train_step,growth')
  args = parser.parse_args()
  work = set(args.only.split(','))
  env = environment()
  emit(env, f'{platform.node()}: {env["cpus"]} CPUs {env["cpu_flags"]}, load '
            f'{env["load_average"]:.2f}, jax {env["versions"]["jax"]}')
  if env['load_average'] > 0.3:
    print('  (the machine is not quiet: load average above 0.3)', flush=True)
  peak = matmul_peak()
  emit({'measure': 'peak', 'gflops': peak}, f'XLA f32 matmul peak here: {peak:.1f} GFLOP/s')
  if not args.tunix_python and work & {'sampler', 'rl_iteration'}:
    print(f'  no Tunix side (make one: {TUNIX_VENV}); tomk alone', flush=True)
  if 'sampler' in work:
    sampler_benchmark(args.rounds, args.repeats, args.tunix_python)
  if 'rl_iteration' in work:
    rl_iteration.rlhf_against_tunix(args.rounds, args.repeats, args.tunix_python)
  if 'kindness_iteration' in work:
    rl_iteration.empathy_against_rlhf(args.rounds, args.repeats)
  if 'train_step' in work:
    train_step_benchmark(args.rounds, args.repeats, peak)
  if 'growth' in work:
    growth_benchmark(args.repeats, peak, args.tunix_python)


if __name__ == '__main__':
  sys.exit(main())
