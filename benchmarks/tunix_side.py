"""The Tunix side of benchmarks/side_by_side.py, run by a Python that has google-tunix.

  $TOMK_TUNIX_PYTHON benchmarks/tunix_side.py sampler --batch 16 --prompt-len 64 --new 128

Builds Tunix's Llama 3 decoder at the benchmark model's shape (RMSNorm, RoPE, SwiGLU,
untied readout; d_model 256, 4 layers, 4 heads, FFN 1024, vocab 1024, fp32) with random
weights, times `tunix.generate.sampler.Sampler.__call__` end to end (prompts as text,
prefill, the jitted decode loop, tokens back on the host) with end of turn off, and prints
one JSON line: {"side": "tunix", "tokens_per_s": ..., "seconds": [...], "compiles": n}.
Only Tunix's public modules are used. It imports nothing from tomk (whose dependencies the
Tunix venv need not have).
"""
import argparse
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
  from tunix.models import dummy_model_creator
  from tunix.models.llama3 import model as llama

  head_dim = args.d_model // args.heads
  config = llama.ModelConfig(num_layers=args.layers, vocab_size=args.vocab,
                             embed_dim=args.d_model, hidden_dim=args.ffn,
                             num_heads=args.heads, head_dim=head_dim, num_kv_heads=args.heads,
                             rope_theta=10_000, norm_eps=1e-5, weight_tying=False)
  model = dummy_model_creator.create_dummy_model(llama.Llama3, config, mesh=None,
                                                 dtype=jax.numpy.float32, random_seed=0,
                                                 scale=0.02)
  cache = sampler_lib.CacheConfig(cache_size=args.prompt_len + args.new,
                                  num_layers=args.layers, num_kv_heads=args.heads,
                                  head_dim=head_dim)
  sample = sampler_lib.Sampler(transformer=model, tokenizer=IdTokenizer(args.vocab),
                               cache_config=cache)
  # The sampler puts BOS first: prompt_len - 1 ids of text, the same ids as tomk's side.
  ids = np.random.default_rng(0).integers(3, args.vocab, (args.batch, args.prompt_len - 1))
  prompts = [' '.join(map(str, row)) for row in ids]
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, *_, **__: compiles.append(1)
      if event == '/jax/core/compile/backend_compile_duration' else None)

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


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('work', choices=['sampler'])
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--prompt-len', type=int, default=64)
  parser.add_argument('--new', type=int, default=128)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--d-model', type=int, default=256)
  parser.add_argument('--layers', type=int, default=4)
  parser.add_argument('--heads', type=int, default=4)
  parser.add_argument('--ffn', type=int, default=1024)
  parser.add_argument('--vocab', type=int, default=1024)
  args = parser.parse_args()
  from importlib import metadata
  result = {'side': 'tunix', 'work': args.work, **sampler(args),
            'versions': {p: metadata.version(p) for p in ('google-tunix', 'jax', 'flax')}}
  sys.stdout.write(json.dumps(result) + '\n')


if __name__ == '__main__':
  main()
