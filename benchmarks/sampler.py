"""Benchmark: KV-cached sampling, 16 prompts × 64 tokens, 128 new (SPEC §8's sampler workload).

  python benchmarks/sampler.py

Same model as the peers' measurement (d_model 256, 4 layers = 2 trunk + 2 behavior,
4 heads, FFN 1024, vocab 1024, fp32). Prints generated tokens/s and the ratio to
Tunix 0.1.7's 5,590 tok/s measured on this machine (target ≥ 1.5×).
"""
import time

import jax
import numpy as np

from tomk.model import Model, ModelConfig
from tomk.sampler import Sampler, SamplingConfig

TUNIX_TOKENS_PER_SECOND = 5590


def main(batch=16, prompt_len=64, new=128, repeats=5):
  model = Model(ModelConfig(vocab_size=1024, d_model=256, num_heads=4, ffn_dim=1024,
                            trunk_layers=2, tower_layers=2, max_len=512))
  params = model.init(jax.random.key(0))
  sampler = Sampler(model, eot_id=-1, pad_id=0)    # no end of turn: always 128 new tokens
  prompts = np.random.default_rng(0).integers(1, 1024, (batch, prompt_len)).tolist()
  config = SamplingConfig(max_new_tokens=new, temperature=1.0)
  jax.block_until_ready(sampler(params, prompts, jax.random.key(0), config=config).tokens)
  start = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(sampler(params, prompts, jax.random.key(i), config=config).tokens)
  seconds = (time.perf_counter() - start) / repeats
  rate = batch * new / seconds
  print(f'sampler: {batch} prompts × {prompt_len} tokens, {new} new: {seconds * 1e3:.0f} ms, '
        f'{rate:,.0f} generated tok/s = {rate / TUNIX_TOKENS_PER_SECOND:.2f}× Tunix')


if __name__ == '__main__':
  main()
