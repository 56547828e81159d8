"""How likely each stream finds some tokens: batched, jitted, few shapes.

Every evaluation here is a question of the form "how likely are these tokens after
that context?": a candidate answer after a story, the partner's turns of a
conversation, one reaction against another. `Scorer` answers it for both streams
with one forward pass per batch.

Sequences are sorted by length, cut into batches of a fixed size and padded to the
shortest of a few fixed lengths (`lengths`, from config.evaluation), so XLA compiles
once per length, not once per sequence length. A compilation costs seconds, so a few
lengths with some padding beat many tight ones. Padding sits after the real tokens,
so causal attention keeps it out of every real position.

Only the positions asked for are read out (the vocabulary-wide product is a third of a
pretrained model's forward pass, and a candidate answer is a few tokens of a story): a
batch reads out a fixed eighth or half of its padded length when its sequences ask for
no more, every position otherwise, so each padded length compiles at most three times.

A continuation is encoded together with its prompt, because SentencePiece may tokenize
a word differently at a text boundary; its tokens are those after the prompt's own
token length. That split is only right when the prompt's tokens are a prefix of the
joint encoding, which is checked; otherwise prompt and continuation are encoded apart.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tomk.model import STREAMS

# Per sequence of T tokens: {stream: (log p(token t+1 | tokens ≤ t) [T-1], argmax hit [T-1])};
# a target index the caller did not ask for holds NaN (and no hit).
TokenScores = dict[str, tuple[np.ndarray, np.ndarray]]


def _token_scores(model, streams, params, tokens, readout_at):
  """tokens [B, L], readout_at [B, K] target indices or None (all L-1) ->
  {stream: (log-likelihood [B, K], argmax == next token [B, K])}."""
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  if readout_at is not None:
    targets = jnp.take_along_axis(targets, readout_at, 1)
  logits = model.apply(params, inputs, streams=streams, readout_at=readout_at)
  out = {}
  for stream in streams:
    log_probs = jax.nn.log_softmax(logits[stream].astype(jnp.float32), axis=-1)
    target_log_probs = jnp.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    out[stream] = (target_log_probs, jnp.argmax(logits[stream], -1) == targets)
  return out


class Scorer:
  """Scores token sequences under a model's streams, at fixed batch shapes."""

  def __init__(self, model, params, tokenizer, batch_size: int = 32,
               lengths: Sequence[int] = (128, 256, 512), streams: Sequence[str] = STREAMS):
    lengths = tuple(sorted(int(n) for n in lengths))
    if batch_size <= 0 or not lengths or lengths[0] < 2:
      raise ValueError(f'evaluation.batch_size={batch_size} and evaluation.lengths={lengths}: '
                       f'use a positive batch size and padded lengths of at least 2 tokens.')
    # On the device once: a restored checkpoint is host memory, copied on every call otherwise.
    self.params, self.tokenizer = jax.device_put(params), tokenizer
    self.batch_size, self.lengths = batch_size, lengths
    self.max_length = lengths[-1]
    self.streams = tuple(streams)
    self.traces = 0       # how often XLA traced the forward pass: at most once per length
    self.truncated = 0    # pairs whose prompt lost its beginning to fit max_length

    def forward(params, tokens, readout_at):
      self.traces += 1
      return _token_scores(model, self.streams, params, tokens, readout_at)
    self._forward = jax.jit(forward)

  # --- Whole sequences -------------------------------------------------------------------------
  def token_scores(self, sequences: Sequence[Sequence[int]],
                   scored: Sequence[np.ndarray] | None = None) -> list[TokenScores]:
    """Each stream's log-likelihood and argmax hit of every token after the first, or of
    those scored[i] [len(sequences[i]) - 1] marks (target index t is token t + 1)."""
    for i, s in enumerate(sequences):
      if not 2 <= len(s) <= self.max_length:
        raise ValueError(f'sequence {i} has {len(s)} tokens; scoring needs 2 to '
                         f'evaluation.lengths[-1]={self.max_length}. Truncate it, or add a longer '
                         f'padded length to evaluation.lengths.')
    if scored is not None:
      for i, (s, marks) in enumerate(zip(sequences, scored, strict=True)):
        if len(marks) != len(s) - 1:
          raise ValueError(f'sequence {i}: {len(marks)} marks of scored targets for {len(s)} '
                           f'tokens; give one per target, len(sequence) - 1 (mask[1:] of a '
                           f'per-token mask).')
    wanted = [np.arange(len(s) - 1) if scored is None else np.flatnonzero(scored[i])
              for i, s in enumerate(sequences)]
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    results: list[TokenScores | None] = [None] * len(sequences)
    for first in range(0, len(order), self.batch_size):
      members = order[first:first + self.batch_size]
      longest = len(sequences[members[-1]])
      length = next(n for n in self.lengths if n >= longest)
      tokens = np.zeros((self.batch_size, length), np.int32)
      for row, i in enumerate(members):
        tokens[row, :len(sequences[i])] = sequences[i]
      need = max(len(wanted[i]) for i in members)
      width = None if scored is None else next(
          (w for w in (length // 8, length // 2) if w >= need), None)
      readout_at = None
      if width is not None:                     # padding rows read position 0
        readout_at = np.zeros((self.batch_size, width), np.int32)
        for row, i in enumerate(members):
          readout_at[row, :len(wanted[i])] = wanted[i]
      scores = jax.device_get(self._forward(self.params, tokens, readout_at))
      for row, i in enumerate(members):
        n, at = len(sequences[i]) - 1, wanted[i]
        results[i] = {}
        for stream, (log_likelihood, hit) in scores.items():
          full_log_likelihood, full_hit = np.full(n, np.nan, np.float32), np.zeros(n, bool)
          if readout_at is None:            # every position read out: keep those asked for
            full_log_likelihood[at], full_hit[at] = log_likelihood[row, at], hit[row, at]
          else:
            full_log_likelihood[at], full_hit[at] = (log_likelihood[row, :len(at)],
                                                     hit[row, :len(at)])
          results[i][stream] = (full_log_likelihood, full_hit)
    return results

  # --- Continuations after prompts -------------------------------------------------------------
  def encode_pairs(self, prompts: Sequence[str],
                   continuations: Sequence[str]) -> list[tuple[list[int], int]]:
    """(tokens of prompt + continuation, number of prompt tokens) per pair, fitted to max_length.

    A sequence too long keeps its end: the continuation and the context nearest to it.
    """
    if len(prompts) != len(continuations):
      raise ValueError(f'{len(prompts)} prompts but {len(continuations)} continuations; '
                       f'give one continuation per prompt.')
    prompt_ids = self.tokenizer.encode_batch(prompts)
    joint_ids = self.tokenizer.encode_batch([p + c for p, c in zip(prompts, continuations)])
    pairs = []
    for i, (prompt, joint) in enumerate(zip(prompt_ids, joint_ids)):
      if len(joint) <= len(prompt) or joint[:len(prompt)] != prompt:
        joint = prompt + self.tokenizer.encode(continuations[i])   # the boundary merged
      if len(joint) == len(prompt) or not prompt:
        raise ValueError(f'pair {i}: prompt {prompts[i][-40:]!r} and continuation '
                         f'{continuations[i]!r} must both encode to at least one token.')
      cut = max(0, len(joint) - self.max_length)
      if cut >= len(prompt):
        raise ValueError(f'pair {i}: the continuation {continuations[i][:40]!r} has '
                         f'{len(joint) - len(prompt)} tokens, too many for the longest padded '
                         f'length {self.max_length}; add a longer one to evaluation.lengths.')
      self.truncated += bool(cut)
      pairs.append((joint[cut:], len(prompt) - cut))
    return pairs

  def continuations(self, prompts: Sequence[str],
                    continuations: Sequence[str]) -> dict[str, np.ndarray]:
    """{stream: [N] log-likelihood of each continuation given its prompt}."""
    pairs = self.encode_pairs(prompts, continuations)
    scores = self.token_scores([tokens for tokens, _ in pairs],
                               [np.arange(len(tokens) - 1) >= prompt_length - 1
                                for tokens, prompt_length in pairs])
    # Target index t scores token t + 1, so a continuation from token p is scored from p - 1.
    return {s: np.array([scores[i][s][0][prompt_length - 1:].sum(dtype=np.float64)
                         for i, (_, prompt_length) in enumerate(pairs)])
            for s in self.streams}


def two_candidate_accuracy(right: np.ndarray, wrong: np.ndarray) -> np.ndarray:
  """Per example: 1 if the right candidate is the likelier, 0 if not, 1/2 on a tie.

  A tie (an untrained model can give both candidates the same score) is a coin flip,
  so it counts at chance rather than for or against the model.
  """
  right, wrong = np.asarray(right), np.asarray(wrong)
  return np.where(right > wrong, 1.0, np.where(right < wrong, 0.0, 0.5))


def summarize(correct: np.ndarray) -> dict:
  """{'accuracy', 'n'}; accuracy is None when there are no examples."""
  n = int(len(correct))
  return {'accuracy': float(np.mean(correct)) if n else None, 'n': n}
