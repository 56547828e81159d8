"""The Tunix side of benchmarks/side_by_side.py, run by a Python that has google-tunix.

  $TOMK_TUNIX_PYTHON benchmarks/tunix_side.py sampler --batch 16 --prompt-len 64 --new 128
  $TOMK_TUNIX_PYTHON benchmarks/tunix_side.py grpo --prompts 8 --samples 4 --new 64

Builds Tunix's Llama 3 decoder at the benchmark model's shape (RMSNorm, RoPE, SwiGLU,
untied readout; d_model 256, 4 layers, 4 heads, FFN 1024, vocab 1024, fp32) with random
weights, times `tunix.generate.sampler.Sampler.__call__` end to end (prompts as text,
prefill, the jitted decode loop, tokens back on the host) with end of turn off, and prints
one JSON line: {"side": "tunix", "tokens_per_s": ..., "seconds": [...], "compiles": n}; or
times GRPO iterations of tunix.rl's GRPOLearner on an RLCluster (vanilla rollout, a
reference model, AdamW), from one pull of prompts to the next, with each phase timed:
{"phases": {"iteration", "rollout", "reference", "update"}, "compiles": n}.
Only Tunix's public modules are used. It imports nothing from tomk (whose dependencies the
Tunix venv need not have).
"""
import argparse
import itertools
import json
import statistics
import sys
import time


class IdTokenizer:
  """Text is space-separated token ids: tokenizing costs nothing measurable."""
  def __init__(self, vocab):
    self.vocab = vocab
  def encode(self, text, **_):
    return [int(t) for t in text.split()]
  def decode(self, ids, **_):
    return ' '.join(str(int(i)) for i in ids)
  def bos_id(self):
    return 1
  def eos_id(self):
    return 2
  def pad_id(self):
    return 0


def sampler(args):
  import jax
  import numpy as np
  from tunix.generate import sampler as sampler_lib

  head_dim = args.d_model // args.heads
  model = _llama(args, seed=0)
  cache = sampler_lib.CacheConfig(cache_size=args.prompt_len + args.new,
                                  num_layers=args.layers, num_kv_heads=args.heads,
                                  head_dim=head_dim)
  sample = sampler_lib.Sampler(transformer=model, tokenizer=IdTokenizer(args.vocab),
                               cache_config=cache)
  # The sampler puts BOS first: prompt_len - 1 ids of text, the same ids as tomk's side.
  ids = np.random.default_rng(0).integers(3, args.vocab, (args.batch, args.prompt_len - 1))
  prompts = [' '.join(map(str, row)) for row in ids]
  compiles = _compile_counter()

  def call(seed):
    start = time.perf_counter()
    out = sample(prompts, max_generation_steps=args.new, max_prompt_length=args.prompt_len,
                 echo=False, eos_tokens=[-1], seed=seed, temperature=1.0, top_p=1.0,
                 top_k=None)
    seconds = time.perf_counter() - start
    assert sum(len(t) for t in out.tokens) == args.batch * args.new
    return seconds

  call(0)
  call(1)                                          # compiled and warm
  before = len(compiles)
  seconds = [call(2 + i) for i in range(args.repeats)]
  tokens = args.batch * args.new
  return {'tokens_per_s': tokens / statistics.median(seconds), 'seconds': seconds,
          'compiles': len(compiles) - before}


def grpo(args):
  """Seconds per GRPO iteration (rollout with the reward, reference log-probs, update)."""
  import jax
  import numpy as np
  import optax
  from flax import nnx
  from tunix.rl import rl_cluster as rl_cluster_lib
  from tunix.rl.grpo import grpo_learner
  from tunix.rl.rollout import base_rollout

  actor, reference = _llama(args, seed=0), _llama(args, seed=0)
  # Auto axes: with jax.make_mesh's default (Explicit) the embedding gather cannot resolve
  # its output sharding.
  mesh = jax.make_mesh((1, 1), ('fsdp', 'tp'), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  Role = rl_cluster_lib.Role
  iterations = 2 + args.repeats
  cluster = rl_cluster_lib.RLCluster(
      actor=actor, reference=reference, tokenizer=IdTokenizer(args.vocab),
      cluster_config=rl_cluster_lib.ClusterConfig(
          role_to_mesh={Role.ACTOR: mesh, Role.ROLLOUT: mesh, Role.REFERENCE: mesh},
          rollout_engine='vanilla', offload_to_cpu=False,
          training_config=rl_cluster_lib.RLTrainingConfig(
              actor_optimizer=optax.adamw(1e-5), eval_every_n_steps=10**9,
              max_steps=iterations + 1, checkpoint_root_directory=None),
          rollout_config=base_rollout.RolloutConfig(
              max_tokens_to_generate=args.new, max_prompt_length=args.prompt_len,
              kv_cache_size=args.prompt_len + args.new, temperature=1.0, top_p=1.0,
              top_k=None, eos_tokens=[-1])))
  phases = {'rollout': [], 'reference': [], 'update': []}

  def timed(name, fn, ready=lambda out: out):
    def wrapper(*a, **kw):
      start = time.perf_counter()
      out = fn(*a, **kw)
      jax.block_until_ready(ready(out))
      phases[name].append(time.perf_counter() - start)
      return out
    return wrapper
  cluster.generate = timed('rollout', cluster.generate, lambda _: 0)
  cluster.get_ref_per_token_logps = timed('reference', cluster.get_ref_per_token_logps)
  cluster.update_actor = timed('update', cluster.update_actor, lambda _: nnx.state(
      cluster.actor_trainer.model, nnx.Param))
  target = str(args.target)
  learner = grpo_learner.GRPOLearner(
      rl_cluster=cluster, reward_fns=lambda prompts, completions, **_: [
          c.split().count(target) / max(1, len(c.split())) for c in completions],
      algo_config=grpo_learner.GRPOConfig(num_generations=args.samples, num_iterations=1,
                                          beta=args.kl_coef))
  pulls, compiles = [], _compile_counter()

  def prompts():
    for i in itertools.count():
      pulls.append((time.perf_counter(), len(compiles)))
      ids = np.random.default_rng(i).integers(3, args.vocab, (args.prompts, args.prompt_len - 1))
      yield {'prompts': np.array([' '.join(map(str, row)) for row in ids])}
  learner.train(prompts())
  # An iteration runs from one pull of prompts to the next; the first two compile.
  steady = list(zip(pulls, pulls[1:]))[2:2 + args.repeats]
  if len(steady) < args.repeats:
    raise RuntimeError(f'only {len(pulls) - 1} iterations ran')
  result = {'iteration': statistics.median(b[0] - a[0] for a, b in steady)}
  result.update({k: statistics.median(v[2:2 + args.repeats]) for k, v in phases.items()})
  return {'phases': result, 'compiles': sum(b[1] - a[1] for a, b in steady)}


def _llama(args, seed: int):
  """Tunix's Llama 3 decoder at the benchmark model's shape, random weights."""
  import jax
  from tunix.models import dummy_model_creator
  from tunix.models.llama3 import model as llama
  config = llama.ModelConfig(num_layers=args.layers, vocab_size=args.vocab,
                             embed_dim=args.d_model, hidden_dim=args.ffn,
                             num_heads=args.heads, head_dim=args.d_model // args.heads,
                             num_kv_heads=args.heads, rope_theta=10_000, norm_eps=1e-5,
                             weight_tying=False)
  return dummy_model_creator.create_dummy_model(llama.Llama3, config, mesh=None,
                                                dtype=jax.numpy.float32, random_seed=seed,
                                                scale=0.02)


def _compile_counter() -> list:
  """A list that grows by one at every XLA compilation."""
  import jax
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, *_, **__: compiles.append(1)
      if event == '/jax/core/compile/backend_compile_duration' else None)
  return compiles


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('work', choices=['sampler', 'grpo'])
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--prompt-len', type=int, default=64)
  parser.add_argument('--new', type=int, default=128)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--d-model', type=int, default=256)
  parser.add_argument('--layers', type=int, default=4)
  parser.add_argument('--heads', type=int, default=4)
  parser.add_argument('--ffn', type=int, default=1024)
  parser.add_argument('--vocab', type=int, default=1024)
  parser.add_argument('--prompts', type=int, default=8)          # grpo
  parser.add_argument('--samples', type=int, default=4)
  parser.add_argument('--kl-coef', type=float, default=0.04)
  parser.add_argument('--target', type=int, default=3)
  args = parser.parse_args()
  from importlib import metadata
  work = {'sampler': sampler, 'grpo': grpo}[args.work]
  result = {'side': 'tunix', 'work': args.work, **work(args),
            'versions': {p: metadata.version(p) for p in ('google-tunix', 'jax', 'flax')}}
  sys.stdout.write(json.dumps(result) + '\n')


if __name__ == '__main__':
  main()
