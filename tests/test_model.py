"""The three-partition model: tree layout, stream independence, cached decoding."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tomk.model import PARTITIONS, Model, ModelConfig

CONFIG = ModelConfig(vocab_size=97, d_model=32, num_heads=4, ffn_dim=64, trunk_layers=2,
                     tower_layers=1, max_len=40)


def test_parameter_tree_has_three_partitions_with_own_readouts():
  params = Model(CONFIG).init(jax.random.key(0))
  assert set(params) == set(PARTITIONS)
  assert 'embedding' in params['perception']
  assert 'readout' in params['behavior'] and 'readout' in params['prediction']
  assert not np.array_equal(params['behavior']['readout']['kernel'],
                            params['prediction']['readout']['kernel'])


def test_prediction_stream_does_not_depend_on_behavior_parameters():
  model = Model(CONFIG)
  params = model.init(jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 9), 0, CONFIG.vocab_size)
  noisy = dict(params, behavior=jax.tree.map(lambda x: x + 1.0, params['behavior']))
  a, b = model.apply(params, tokens), model.apply(noisy, tokens)
  np.testing.assert_array_equal(a['prediction'], b['prediction'])
  assert not np.allclose(a['behavior'], b['behavior'])


def test_a_document_masked_row_computes_each_document_as_if_alone():
  # Three documents packed in one row of 16, the last cut short: with the mask from their
  # segments every position's logits are those of its document run alone, from position 0
  # (rotary attention depends only on distances). Without it, later documents change.
  from tomk.routing import attention_mask
  model = Model(CONFIG)
  params = model.init(jax.random.key(0))
  apply = jax.jit(model.apply)       # one program per shape: faster than op by op
  tokens = jax.random.randint(jax.random.key(3), (1, 16), 0, CONFIG.vocab_size)
  segments = jnp.array([[1] * 5 + [2] * 7 + [3] * 4])
  packed = apply(params, tokens, key_mask=attention_mask({'segments': segments}))
  plain = apply(params, tokens)
  for start, end in ((0, 5), (5, 12), (12, 16)):
    alone = apply(params, tokens[:, start:end])
    for stream in alone:
      np.testing.assert_allclose(packed[stream][:, start:end], alone[stream], atol=1e-5)
  assert not np.allclose(plain['prediction'][:, 5:], packed['prediction'][:, 5:], atol=1e-3)


@pytest.mark.parametrize('overrides', [{}, {'num_kv_heads': 2, 'attention_bias': True},
                                       {'lora_partitions': 'behavior', 'lora_rank': 2}])
def test_cached_decoding_matches_full_sequence_for_both_streams(overrides):
  # Plain, grouped-query with attention biases (Qwen2), and with LoRA adapters.
  model = Model(dataclasses.replace(CONFIG, **overrides))
  params = model.init(jax.random.key(0))
  params = jax.tree.map(lambda x: x + 0.01 * jnp.ones_like(x), params)    # biases, B ≠ 0
  tokens = jax.random.randint(jax.random.key(2), (3, 16), 0, CONFIG.vocab_size)
  full = model.apply(params, tokens)
  decode = jax.jit(model.decode, static_argnames='stream')
  for stream in ('behavior', 'prediction'):
    cache = model.init_cache(3, 24)
    logits, cache = decode(params, tokens[:, :7], None, cache, stream=stream)   # prefill
    chunks = [logits]
    for t in range(7, 16):                                                       # one token at a time
      logits, cache = decode(params, tokens[:, t:t + 1], jnp.full((3, 1), t), cache, stream=stream)
      chunks.append(logits)
    np.testing.assert_allclose(np.concatenate(chunks, 1), full[stream], atol=2e-5, rtol=1e-5)


def test_reading_out_some_positions_gives_those_positions_logits():
  model = Model(CONFIG)
  params = model.init(jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(4), (2, 12), 0, CONFIG.vocab_size)
  at = jnp.array([[11, 3, 0], [5, 5, 7]])
  full, some = model.apply(params, tokens), model.apply(params, tokens, readout_at=at)
  for stream in full:
    assert some[stream].shape == (2, 3, CONFIG.vocab_size)
    np.testing.assert_allclose(some[stream], jnp.take_along_axis(full[stream], at[..., None], 1),
                               atol=1e-6)
