"""The three-partition transformer (SPEC §1; paper 001 §4.1).

A decoder-only language model whose parameters split at the top into
``perception`` (token embedding + shared lower blocks, the "trunk"), ``behavior``
(upper blocks + readout whose output is the model's action) and ``prediction``
(upper blocks + readout whose output is a simulation). The prediction stream reads
only perception and prediction parameters, so it is an impartial simulator.

Each part is its own linen module so a training step can differentiate them
separately after one forward pass (see routing.py); ``Model`` ties them together.
Generation uses an explicit KV cache (a pytree the sampler donates): the
perception cache is shared by both streams.

With ``reward_head`` the prediction tower also carries a scalar head on its final
normed state, r̂(s) per position: the reward of the person whose perspective s is
rendered from, as inferred from their observed reactions (infer_reward, 001 §4.2.4).
It is computed only when asked for (``with_reward``), never by sampling.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from tomk.layers import RMSNorm, check_rope_scaling, dense, rope

PARTITIONS = ('perception', 'behavior', 'prediction')
LORA_TARGETS = {'query', 'key', 'value', 'out', 'gate', 'up', 'down'}
STREAMS = ('behavior', 'prediction')

Cache = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int = 1024
  d_model: int = 256
  num_heads: int = 4
  ffn_dim: int = 1024
  trunk_layers: int = 2
  tower_layers: int = 2
  max_len: int = 512
  rope_base: float = 10_000.0
  dtype: str = 'float32'
  reward_head: bool = False    # a scalar reward head on the prediction tower (infer_reward)
  # What pretrained checkpoints need (tomk.foundation); the defaults leave the tree as it was.
  num_kv_heads: int = 0        # grouped-query attention: key/value heads (0 = num_heads)
  attention_bias: bool = False  # biases on the query, key and value projections (Qwen2)
  norm_eps: float = 1e-6       # RMSNorm's epsilon
  rope_scaling: str = ''       # '' or 'linear,factor=F' or 'llama3,factor=F,low_freq_factor=L,
                               # high_freq_factor=H,original_max_len=N'
  # LoRA: adapters on the `lora_targets` matrices of the `lora_partitions` (comma-separated).
  lora_partitions: str = ''
  lora_rank: int = 8
  lora_alpha: float = 16.0
  lora_targets: str = 'query,value'

  @classmethod
  def from_config(cls, config) -> 'ModelConfig':
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dict(config).items() if k in fields})

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads or self.num_heads

  def adapted(self, partition: str) -> bool:
    return partition in self.lora_partitions.split(',')


class Attention(nn.Module):
  config: ModelConfig
  adapt: bool = False      # LoRA on its lora_targets

  @nn.compact
  def __call__(self, x, positions, cache: Cache | None, key_mask=None):
    c = self.config
    project = lambda f, name, bias=c.attention_bias, contract=1: dense(
        f, ('heads', 'kv', 'embed') if contract == 2 else ('embed', 'heads', 'kv'), name,
        contract, bias, c, self.adapt)
    q = project((c.num_heads, c.head_dim), 'query')(x)
    k = project((c.kv_heads, c.head_dim), 'key')(x)
    v = project((c.kv_heads, c.head_dim), 'value')(x)
    q = rope(q, positions, c.rope_base, c.rope_scaling)
    k = rope(k, positions, c.rope_base, c.rope_scaling)
    # Head-major [B, heads, T, head_dim] from here on, as the cache keeps keys and values:
    # a decode step then reads the cache as the attention dots want it, with no transpose.
    q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
    if cache is None:
      keys, values, key_slots = k, v, jnp.arange(x.shape[1])
      query_slots = key_slots
    else:
      # Write this chunk at slot `index`; attend to every filled slot up to the query's.
      index = cache['index']
      keys = jax.lax.dynamic_update_slice_in_dim(cache['k'], k.astype(cache['k'].dtype), index, 2)
      values = jax.lax.dynamic_update_slice_in_dim(cache['v'], v.astype(cache['v'].dtype), index, 2)
      key_slots = jnp.arange(keys.shape[2])
      query_slots = index + jnp.arange(x.shape[1])
      cache = {'k': keys, 'v': values, 'index': index + x.shape[1]}
    mask = (query_slots[:, None] >= key_slots[None, :])[None, None]          # [1, 1, T, S]
    if key_mask is not None and key_mask.ndim == 2:                           # padding: [B, S]
      mask = mask & key_mask[:, None, None, :]
    elif key_mask is not None:                              # documents: [B, T, S] per query
      mask = mask & key_mask[:, None]
    # Grouped-query attention: query head h reads key/value head h // group, the group's
    # queries side by side in one dot (keys and values are read once, never repeated).
    q = q.reshape(q.shape[0], c.kv_heads, -1, *q.shape[2:])                   # [B, K, G, T, D]
    scores = jnp.einsum('bkgtd,bksd->bkgts', q, keys) / jnp.sqrt(c.head_dim).astype(x.dtype)
    scores = jnp.where(mask[:, :, None], scores.astype(jnp.float32), -1e30)
    weights = jax.nn.softmax(scores, axis=-1).astype(x.dtype)
    out = jnp.einsum('bkgts,bksd->btkgd', weights, values)
    out = out.reshape(*out.shape[:2], c.num_heads, c.head_dim)               # [B, T, H, D]
    out = project(c.d_model, 'out', bias=False, contract=2)(out)
    return out, cache


class Block(nn.Module):
  """Pre-norm Llama-style block: RMSNorm, rotary attention, SwiGLU MLP."""
  config: ModelConfig
  adapt: bool = False

  @nn.compact
  def __call__(self, x, positions, cache: Cache | None, key_mask=None):
    c = self.config
    y, cache = Attention(c, self.adapt, name='attention')(RMSNorm(c.norm_eps, name='attention_norm')(x),
                                              positions, cache, key_mask)
    x = nn.with_logical_constraint(x + y, ('batch', 'length', 'embed'))
    h = RMSNorm(c.norm_eps, name='mlp_norm')(x)
    gate = dense(c.ffn_dim, ('embed', 'mlp'), 'gate', config=c, adapt=self.adapt)(h)
    up = dense(c.ffn_dim, ('embed', 'mlp'), 'up', config=c, adapt=self.adapt)(h)
    down = dense(c.d_model, ('mlp', 'embed'), 'down', config=c, adapt=self.adapt)
    y = down(nn.silu(gate) * up)
    return nn.with_logical_constraint(x + y, ('batch', 'length', 'embed')), cache


class Perception(nn.Module):
  """Token embedding and the shared trunk: h = trunk(embed(tokens))."""
  config: ModelConfig

  @nn.compact
  def __call__(self, tokens, positions, cache: list | None = None, key_mask=None):
    c = self.config
    embed = self.param('embedding', nn.with_logical_partitioning(
        nn.initializers.normal(1.0), ('vocab', 'embed')), (c.vocab_size, c.d_model))
    x = jnp.take(embed.astype(c.dtype), tokens, axis=0)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    new_cache = []
    for i in range(c.trunk_layers):
      x, layer_cache = Block(c, c.adapted('perception'), name=f'block_{i}')(x, positions,
                                                   None if cache is None else cache[i], key_mask)
      new_cache.append(layer_cache)
    return x, (new_cache if cache is not None else None)


class RewardHead(nn.Module):
  """r̂(s): one scalar per position from the tower's final normed state.

  Starts at zero (no reward is inferred before infer_reward has trained it).
  """

  @nn.compact
  def __call__(self, h):
    kernel = self.param('kernel', nn.with_logical_partitioning(nn.initializers.zeros,
                                                               ('embed', None)),
                        (h.shape[-1], 1), jnp.float32)
    bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros, (None,)),
                      (1,), jnp.float32)
    return (h.astype(jnp.float32) @ kernel + bias)[..., 0]


class Tower(nn.Module):
  """Upper blocks and a readout of one stream (behavior or prediction).

  With `reward_head` (the prediction tower, when ModelConfig.reward_head) it also
  holds a RewardHead; `with_reward=True` returns (logits, reward) instead of logits.
  `readout_at` [B, K] (positions along the length) reads out only those positions: logits
  [B, K, V], where the readout would otherwise cost every position its vocabulary-wide
  product (a third of a pretrained model's forward pass, at 49,152 words).
  """
  config: ModelConfig
  reward_head: bool = False
  adapt: bool = False       # made with LoRA (applied, a tower uses whatever its params hold)

  @nn.compact
  def __call__(self, h, positions, cache: list | None = None, key_mask=None, with_reward=False,
               readout_at=None):
    c = self.config
    new_cache = []
    for i in range(c.tower_layers):
      h, layer_cache = Block(c, self.adapt, name=f'block_{i}')(h, positions,
                                                   None if cache is None else cache[i], key_mask)
      new_cache.append(layer_cache)
    if readout_at is not None:
      h = jnp.take_along_axis(h, readout_at[..., None], axis=1)
    h = RMSNorm(c.norm_eps, name='final_norm')(h)
    logits = dense(c.vocab_size, ('embed', 'vocab'), 'readout')(h).astype(jnp.float32)
    logits = nn.with_logical_constraint(logits, ('batch', 'length', 'vocab'))
    new_cache = new_cache if cache is not None else None
    if self.reward_head and (with_reward or self.is_initializing()):
      reward = RewardHead(name='reward_head')(h)
      if with_reward:
        return (logits, reward), new_cache
    return logits, new_cache


class Model:
  """The whole model as pure functions of the parameter tree {perception, behavior, prediction}."""

  def __init__(self, config: ModelConfig):
    self.config = config
    self.perception = Perception(config)
    # Behavior and prediction share the architecture, not the weights; only the prediction
    # tower is initialised with the reward head (a tower without one never reads it).
    self.tower = Tower(config, reward_head=config.reward_head,
                       adapt=config.adapted('prediction'))

  def init_boxed(self, rng, batch_size=1, length=8):
    """Parameters with their logical-axis metadata (nn.Partitioned boxes)."""
    tokens = jnp.zeros((batch_size, length), jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(length), tokens.shape)
    r_perception, r_behavior, r_prediction = jax.random.split(rng, 3)
    perception = self.perception.init(r_perception, tokens, positions)['params']
    h = jnp.zeros((batch_size, length, self.config.d_model), self.config.dtype)
    return {'perception': perception,
            'behavior': Tower(self.config, adapt=self.config.adapted('behavior')).init(
                r_behavior, h, positions)['params'],
            'prediction': self.tower.init(r_prediction, h, positions)['params']}

  def init(self, rng, batch_size=1, length=8):
    return nn.unbox(self.init_boxed(rng, batch_size, length))

  # --- the parts, for routing and sampling -------------------------------------------------
  # key_mask [B, S] (True = a real token) hides padding from attention; S is the
  # sequence length, or the cache length when decoding. Without a cache it may also be
  # [B, T, S], the keys each query may see (packed documents: routing.attention_mask).
  def perceive(self, perception_params, tokens, positions=None, cache=None, key_mask=None):
    positions = _default_positions(tokens, positions)
    return self.perception.apply({'params': perception_params}, tokens, positions, cache, key_mask)

  def stream(self, tower_params, h, positions=None, cache=None, key_mask=None, readout_at=None):
    positions = _default_positions(h[..., 0], positions)
    return self.tower.apply({'params': tower_params}, h, positions, cache, key_mask,
                            readout_at=readout_at)

  def stream_outputs(self, tower_params, h, positions=None, key_mask=None, reward=False):
    """What a training objective may read of a stream: {'logits'}, and with `reward`
    the reward head's {'reward': [B, T]} from the same tower pass."""
    positions = _default_positions(h[..., 0], positions)
    if not reward:
      return {'logits': self.tower.apply({'params': tower_params}, h, positions, None,
                                         key_mask)[0]}
    if 'reward_head' not in tower_params:
      raise ValueError('an objective reads the reward head, but the model has none: set '
                       '--config.model.reward_head=True (the prediction tower carries it).')
    (logits, r), _ = self.tower.apply({'params': tower_params}, h, positions, None, key_mask,
                                      with_reward=True)
    return {'logits': logits, 'reward': r}

  # --- the whole model ---------------------------------------------------------------------
  def apply(self, params, tokens, positions=None, streams=STREAMS, key_mask=None,
            readout_at=None):
    """Both streams' logits: {'behavior': [B,T,V], 'prediction': [B,T,V]} ([B,K,V] at the
    positions `readout_at` [B,K] names)."""
    h, _ = self.perceive(params['perception'], tokens, positions, key_mask=key_mask)
    return {s: self.stream(params[s], h, positions, key_mask=key_mask, readout_at=readout_at)[0]
            for s in streams}

  def reward(self, params, tokens, positions=None, key_mask=None):
    """r̂ [B, T]: the prediction side's reward head at every position of `tokens`."""
    h, _ = self.perceive(params['perception'], tokens, positions, key_mask=key_mask)
    return self.stream_outputs(params['prediction'], h, positions, key_mask, reward=True)['reward']

  def init_cache(self, batch_size: int, max_len: int | None = None, dtype=None,
                 streams=STREAMS) -> Cache:
    """An empty KV cache for perception and the given towers; `valid` marks filled slots."""
    c = self.config
    max_len = max_len or c.max_len
    dtype = dtype or c.dtype
    def layers(n):
      return [{'k': jnp.zeros((batch_size, c.kv_heads, max_len, c.head_dim), dtype),
               'v': jnp.zeros((batch_size, c.kv_heads, max_len, c.head_dim), dtype),
               'index': jnp.zeros((), jnp.int32)} for _ in range(n)]
    return {'valid': jnp.zeros((batch_size, max_len), bool), 'perception': layers(c.trunk_layers),
            **{s: layers(c.tower_layers) for s in streams}}

  @staticmethod
  def grow_cache(cache: Cache, max_len: int) -> Cache:
    """`cache` with room for max_len slots: empty (invalid) slots appended to every layer's
    keys and values and to `valid`; the filled slots and indices unchanged."""
    def grow(x, axis):
      return jnp.pad(x, [(0, max_len - x.shape[axis]) if a == axis else (0, 0)
                         for a in range(x.ndim)])
    layers = lambda ls: [{**l, 'k': grow(l['k'], 2), 'v': grow(l['v'], 2)} for l in ls]
    return {name: grow(value, 1) if name == 'valid' else layers(value)
            for name, value in cache.items()}

  def decode(self, params, tokens, positions, cache: Cache, stream: str, valid=None,
             readout_at=None):
    """Runs a chunk (prompt or one token) of one stream through the cache.

    `valid` [B, t] marks real tokens of the chunk (False = left padding). Returns
    that stream's logits for the chunk (at `readout_at` [B, K], chunk positions, if given)
    and the updated cache; the perception cache is shared by both streams.
    """
    valid = jnp.ones(tokens.shape, bool) if valid is None else valid
    key_mask = jax.lax.dynamic_update_slice_in_dim(
        cache['valid'], valid, cache['perception'][0]['index'], 1)
    h, perception_cache = self.perceive(params['perception'], tokens, positions,
                                        cache['perception'], key_mask)
    logits, stream_cache = self.stream(params[stream], h, positions, cache[stream], key_mask,
                                       readout_at)
    return logits, {**cache, 'valid': key_mask, 'perception': perception_cache,
                    stream: stream_cache}


def check(config) -> None:
  """Errors for config.model's settings for pretrained checkpoints and LoRA (the counts and
  sizes: config.check)."""
  m = config.model
  problem = check_rope_scaling(m.rope_scaling)
  if problem:
    raise ValueError(problem)
  targets = set(m.lora_targets.split(',')) - LORA_TARGETS
  if targets:
    raise ValueError(f'model.lora_targets names {", ".join(sorted(targets))}; the matrices are '
                     f'{", ".join(sorted(LORA_TARGETS))}.')


def _default_positions(tokens, positions):
  if positions is None:
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape[:2])
  return positions


def count_params(params) -> dict[str, int]:
  return {k: sum(x.size for x in jax.tree.leaves(v)) for k, v in params.items()}
