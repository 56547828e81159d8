"""The sampler: reproducible from its key, cached logits equal a full recompute, stops at end of turn."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tomk.model import Model, ModelConfig
from tomk.sampler import Sampler, SamplingConfig, left_pad

CONFIG = ModelConfig(vocab_size=61, d_model=32, num_heads=2, ffn_dim=64, trunk_layers=1,
                     tower_layers=1, max_len=64)
EOT, PAD = 3, 0
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [20]]


def _setup():
  model = Model(CONFIG)
  return model, model.init(jax.random.key(0)), Sampler(model, EOT, PAD)


def test_same_key_same_samples_other_key_other_samples():
  _, params, sampler = _setup()
  config = SamplingConfig(max_new_tokens=12, temperature=1.0, top_k=20, top_p=0.9)
  a = sampler(params, PROMPTS, jax.random.key(1), config=config, num_samples=2)
  b = sampler(params, PROMPTS, jax.random.key(1), config=config, num_samples=2)
  c = sampler(params, PROMPTS, jax.random.key(2), config=config, num_samples=2)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert not np.array_equal(a.tokens, c.tokens)
  assert a.tokens.shape == (6, 12)


@pytest.mark.parametrize('segment', [3, 32])
def test_recorded_logprobs_equal_a_full_forward_of_the_sampled_sequence(monkeypatch, segment):
  """Also when the cache grows while decoding (segments of 3 steps: 4 loops of 3, 3, 3, 1)."""
  from tomk import sampler as sampler_lib
  monkeypatch.setattr(sampler_lib, 'SEGMENT', segment)
  model, params, sampler = _setup()
  # A full forward, right-padded to one length (causal: the padding changes nothing before it).
  length = max(map(len, PROMPTS)) + 10
  forward = jax.jit(lambda tokens: model.apply(params, tokens))
  for stream in ('behavior', 'prediction'):
    s = sampler(params, PROMPTS, jax.random.key(3), stream=stream,
                config=SamplingConfig(max_new_tokens=10))
    for row, prompt in enumerate(PROMPTS):
      n = int(s.mask[row].sum())
      sequence = jnp.asarray([prompt + list(np.asarray(s.tokens[row, :n]))])
      padded = jnp.pad(sequence, ((0, 0), (0, length - sequence.shape[1])), constant_values=PAD)
      logits = forward(padded)[stream][0]
      logprobs = jax.nn.log_softmax(logits)[len(prompt) - 1:len(prompt) - 1 + n]
      expected = jnp.take_along_axis(logprobs, sequence[0, len(prompt):, None], -1)[:, 0]
      np.testing.assert_allclose(s.logprobs[row, :n], expected, atol=1e-5)


def test_greedy_stops_at_end_of_turn_and_pads_after():
  model, params, sampler = _setup()
  # Make the end-of-turn token overwhelmingly likely in the behavior readout.
  params = jax.tree.map(lambda x: x, params)
  bias = params['behavior']['readout']['kernel'].at[:, EOT].add(50.0)
  params['behavior']['readout']['kernel'] = bias
  s = sampler(params, PROMPTS, jax.random.key(0), config=SamplingConfig(8, temperature=0.0))
  np.testing.assert_array_equal(s.tokens[:, 0], EOT)
  np.testing.assert_array_equal(s.tokens[:, 1:], PAD)
  np.testing.assert_array_equal(s.mask.sum(1), 1)


def test_left_pad_aligns_prompts_right():
  tokens, valid = left_pad(PROMPTS, PAD, multiple=8)
  assert tokens.shape == (3, 8)
  np.testing.assert_array_equal(tokens[0, -3:], [5, 6, 7])
  assert valid.sum() == 11


def test_no_retrace_between_calls_of_the_same_shape():
  _, params, sampler = _setup()
  config = SamplingConfig(max_new_tokens=6)
  for seed in range(3):
    sampler(params, PROMPTS, jax.random.key(seed), config=config)
  assert sampler.sample_padded._cache_size() == 1


def test_tokens_are_those_categorical_draws_step_by_step(monkeypatch):
  """The decode loop draws step i's Gumbel noise from fold_in(key, i), a block of steps at a
  time: its tokens are jax.random.categorical's on a full forward of the sequence so far,
  whatever the block (here 2 steps; and all 9 at once), and whether the cache grows while
  decoding (segments of 4 steps) or not."""
  from tomk import sampler as sampler_lib
  model, params, _ = _setup()
  config = SamplingConfig(max_new_tokens=9, temperature=0.7, top_k=30)
  key = jax.random.key(5)
  prompts = [[5, 6, 7], [8, 9, 10, 11]]
  rows = [list(p) for p in prompts]
  # A full forward of each sequence so far, left-padded to one length: one compilation.
  forward = jax.jit(lambda tokens, positions, valid: model.apply(
      params, tokens, positions, key_mask=valid)['behavior'][:, -1])
  for i in range(9):
    tokens, valid = left_pad(rows, PAD, length=4 + 9)
    positions = jnp.maximum(jnp.cumsum(valid, 1) - 1, 0)
    logits = forward(jnp.asarray(tokens), positions, jnp.asarray(valid))
    logits = sampler_lib._filter(logits.at[:, PAD].set(-jnp.inf) / 0.7, 30, 1.0)
    drawn = jax.random.categorical(jax.random.fold_in(key, i), logits)
    rows = [r + [int(t)] for r, t in zip(rows, drawn)]
  expected = np.asarray([r[len(p):] for r, p in zip(rows, prompts)])
  for block, segment in [(2 * 2 * 61, 4), (sampler_lib.NOISE_BLOCK, sampler_lib.SEGMENT)]:
    monkeypatch.setattr(sampler_lib, 'NOISE_BLOCK', block)
    monkeypatch.setattr(sampler_lib, 'SEGMENT', segment)
    samples = Sampler(model, eot_id=-1, pad_id=PAD)(params, prompts, key, config=config)
    np.testing.assert_array_equal(samples.tokens, expected)
