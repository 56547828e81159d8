"""Sampling from either stream with a KV cache (SPEC §8; Tunix's sampler is the model).

`generate` is a pure, jittable function: left-padded prompts are prefilled in one
chunk, then tokens are decoded one at a time inside a `lax.while_loop` that stops
when every row has ended its turn. Nothing returns to the host inside a rollout,
so it can run inside a larger jitted step (rollout → reward → update). `Sampler`
wraps it in `jax.jit` with the sampling settings static.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tomk.model import Model


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  max_new_tokens: int = 64
  temperature: float = 1.0      # 0 = greedy
  top_k: int = 0                # 0 = no top-k cut
  top_p: float = 1.0            # 1 = no nucleus cut


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Samples:
  tokens: jax.Array       # [B, N] generated tokens, pad after the end of turn
  logprobs: jax.Array     # [B, N] log π(token) under the stream at temperature 1
  mask: jax.Array         # [B, N] True for generated tokens (end-of-turn included)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, multiple: int = 16,
             length: int | None = None):
  """Prompts → (tokens [B, P], valid [B, P]) right-aligned.

  P is `length` when given (longer prompts keep their end: the most recent turns),
  so every step of a rollout runs one compiled program; otherwise the longest
  prompt rounded up to `multiple`.
  """
  if length is None:
    longest = max(len(p) for p in prompts)
    length = -(-max(longest, 1) // multiple) * multiple
  prompts = [list(p)[-length:] for p in prompts]
  tokens = np.full((len(prompts), length), pad_id, np.int32)
  valid = np.zeros((len(prompts), length), bool)
  for i, p in enumerate(prompts):
    if len(p):
      tokens[i, length - len(p):] = p
      valid[i, length - len(p):] = True
  return tokens, valid


def _filter(logits, top_k: int, top_p: float):
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, -1), -1)
    # Keep the smallest set whose mass reaches top_p: the cut-off logit is the first past it.
    cutoff_index = jnp.sum(cumulative < top_p, -1, keepdims=True)
    cutoff = jnp.take_along_axis(sorted_logits, cutoff_index, -1)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return logits


# Gumbel noise for this many vocabulary entries (64 MB of f32) is drawn at once, for as many
# decode steps as fit: one vectorised draw instead of one inside every step of the loop.
NOISE_BLOCK = 1 << 24
# Decode steps between growths of the KV cache. A decode step's time grows with the cache
# it attends over (about 0.01 ms a slot at 16 rows, d256): 128 new tokens after a 64-token
# prompt attend over 96 … 192 slots, 144 on average, instead of 192 every step. Each segment
# is a loop of its own (compiled once per run); rollouts of up to SEGMENT tokens have one.
SEGMENT = 32


def sample_token(logits, noise, config: SamplingConfig):
  """A token per row: argmax(filtered logits / T + Gumbel noise), which is what
  jax.random.categorical computes from the noise its key gives; greedy at T = 0."""
  if config.temperature == 0.0:
    return jnp.argmax(logits, -1).astype(jnp.int32)
  logits = _filter(logits / config.temperature, config.top_k, config.top_p)
  return jnp.argmax(logits + noise, -1).astype(jnp.int32)


def generate(model: Model, params, tokens, valid, key, *, stream: str, eot_id: int, pad_id: int,
             config: SamplingConfig, num_samples: int = 1) -> Samples:
  """Samples `num_samples` turns per row from `stream` after left-padded prompts [B, P]:
  rows i·k … i·k + k − 1 of the result continue prompt i. Each prompt is prefilled once
  and its cache shared by its k samples."""
  prompts, prompt_len = tokens.shape
  batch, steps = prompts * num_samples, config.max_new_tokens
  # The cache grows by SEGMENT slots as decoding goes on: a step attends over the cache as
  # filled so far (rounded up to a segment), not over all prompt_len + steps slots.
  cache = model.init_cache(prompts, prompt_len + min(steps, SEGMENT), streams=(stream,))
  positions = jnp.maximum(jnp.cumsum(valid, 1) - 1, 0)
  # The prompt's last position is the only one whose logits are read.
  logits, cache = model.decode(params, tokens, positions, cache, stream, valid,
                               readout_at=jnp.full((prompts, 1), prompt_len - 1))
  if num_samples > 1:                                # every array with a batch axis
    logits, cache, valid = jax.tree.map(
        lambda x: jnp.repeat(x, num_samples, 0) if x.ndim else x, (logits, cache, valid))
  next_position = valid.sum(1)                       # [B] where the first new token goes
  # Step i's noise is jax.random.gumbel(fold_in(key, i)): the tokens categorical would draw.
  # Greedy decoding draws none (a block of 1 that stays zero).
  block = max(1, min(steps, NOISE_BLOCK // logits[:, -1].size)) if config.temperature else 1
  def noise_from(start):
    return jax.vmap(lambda i: jax.random.gumbel(jax.random.fold_in(key, i), logits[:, -1].shape,
                                                logits.dtype))(start + jnp.arange(block))

  def body(carry):
    i, out, logprobs, done, last_logits, cache, noise = carry
    if config.temperature:
      noise = jax.lax.cond(i % block == 0, noise_from, lambda _: noise, i)
    # Padding is never a real token: it marks where a row has stopped.
    allowed = last_logits.at[:, pad_id].set(-jnp.inf)
    token = sample_token(allowed, noise[i % block], config)
    token = jnp.where(done, pad_id, token)
    logprob = jnp.take_along_axis(jax.nn.log_softmax(last_logits), token[:, None], -1)[:, 0]
    out = out.at[:, i].set(token)
    logprobs = logprobs.at[:, i].set(jnp.where(done, 0.0, logprob))
    emitted = ~done
    done = done | (token == eot_id)
    step_logits, cache = model.decode(params, token[:, None], (next_position + i)[:, None], cache,
                                      stream, emitted[:, None])
    return i + 1, out, logprobs, done, step_logits[:, -1], cache, noise

  noise = jnp.zeros((block,) + (logits[:, -1].shape if config.temperature else (1, 1)),
                    logits.dtype)
  carry = (jnp.zeros((), jnp.int32), jnp.full((batch, steps), pad_id, jnp.int32),
           jnp.zeros((batch, steps), jnp.float32), jnp.zeros((batch,), bool), logits[:, -1], cache,
           noise)
  for start in range(0, steps, SEGMENT):
    end = min(start + SEGMENT, steps)
    if start:
      carry = (*carry[:5], model.grow_cache(carry[5], prompt_len + end), carry[6])
    carry = jax.lax.while_loop(lambda c, end=end: (c[0] < end) & ~jnp.all(c[3]), body, carry)
  _, out, logprobs, *_ = carry
  # A row's tokens are real up to and including its end of turn.
  ended_before = jnp.cumsum(out == eot_id, 1) - (out == eot_id)
  mask = (ended_before == 0) & (out != pad_id)
  return Samples(out, logprobs * mask, mask)


class Sampler:
  """Jitted sampling for host callers: token lists in, Samples out."""

  def __init__(self, model: Model, eot_id: int, pad_id: int, prompt_len: int | None = None):
    self.model, self.eot_id, self.pad_id, self.prompt_len = model, eot_id, pad_id, prompt_len
    # Jitted (params, tokens [B,P], valid [B,P], key, stream, config, num_samples) -> Samples.
    self.sample_padded = jax.jit(self._call, static_argnames=('stream', 'config', 'num_samples'))

  def _call(self, params, tokens, valid, key, stream, config, num_samples):
    return generate(self.model, params, tokens, valid, key, stream=stream, eot_id=self.eot_id,
                    pad_id=self.pad_id, config=config, num_samples=num_samples)

  def __call__(self, params, prompts: Sequence[Sequence[int]], key, *, stream='behavior',
               config: SamplingConfig = SamplingConfig(), num_samples: int = 1) -> Samples:
    """k = num_samples samples per prompt, rows grouped by prompt (prompt i → rows i·k … i·k+k-1)."""
    tokens, valid = left_pad(prompts, self.pad_id, length=self.prompt_len)
    return self.sample_padded(params, tokens, valid, key, stream, config, num_samples)
