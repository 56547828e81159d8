"""The grain input pipeline for language-model training on conversations.

  source (tfds array_record / JSONL list), random access
    -> indices [process_index::process_count]   each process reads a disjoint part
    -> shuffle(seed), repeat                    reshuffled every epoch, same on every host
    -> map: perspective, render, tokenize each turn, reward each turn
    -> pack: concat-then-split into rows of seq_len + 1 tokens
    -> batch(global_batch_size // process_count) -> inputs / targets / weights / rewards

Every stage is deterministic given (seed, process_index, process_count), and the
iterator's state is a small JSON dict: save it with
`grain.checkpoint.CheckpointSave(iterator)` beside the model and restore with
`CheckpointRestore`, or use `get_state()` / `set_state()` directly.

`data_config.source` is 'chitchat' or a path to a JSONL file of conversations
(tomk.data.jsonl). A path containing '{split}' names one file per split
('convs-{split}.jsonl'); any other path is split 90/5/5 by conversation id, like
chitchat.
"""
from __future__ import annotations

import hashlib
import itertools
import os
from typing import Any, Callable, Sequence

import grain
import numpy as np

from tomk import rewards as rewards_lib
from tomk.data import chitchat
from tomk.data import conversation
from tomk.data import jsonl
from tomk.data import tokenizer as tokenizer_lib

PERSPECTIVES = ('first', 'random')
# Featurizing a conversation is ~1 ms of Python; one reader thread overlaps it with the
# (GIL-releasing) train step without fighting XLA for the cores.
_READ_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=64)


# --- Sources ------------------------------------------------------------------------------------

def data_dir(data_config) -> str:
  """data_config.data_dir, or $TOMK_DATA_DIR, or ~/.cache/tomk."""
  return getattr(data_config, 'data_dir', '') or chitchat.default_data_dir()


def _is_jsonl(source: str) -> bool:
  return source.endswith('.jsonl')


def _check_source(source: str) -> None:
  if source != 'chitchat' and not _is_jsonl(source):
    raise ValueError(f"data.source={source!r}: use 'chitchat' or a path ending in .jsonl "
                     f"(one conversation per line, see tomk/data/jsonl.py).")


def _jsonl_split(source: str, split: str) -> list[conversation.Conversation]:
  if '{split}' in source:
    path = source.format(split=split)
    if not os.path.exists(path):
      raise ValueError(f'data.source={source!r} names one file per split, but the {split!r} '
                       f'file {path} does not exist; create it or drop {{split}} from the path '
                       f'to split one file 90/5/5 by conversation id.')
    return jsonl.read_conversations(path)
  return [c for c in jsonl.read_conversations(source) if chitchat.split_for(c.id) == split]


def conversations(data_config, split: str) -> tuple[Sequence[Any], Callable]:
  """(random-access records, record -> Conversation) of one split of data_config.source."""
  source = data_config.source
  _check_source(source)
  if source == 'chitchat':
    return chitchat.load(split, data_dir(data_config)), chitchat.to_conversation
  return _jsonl_split(source, split), lambda c: c


def _source_name(source: str) -> str:
  """Names the tokenizer cache: the corpus, and for files a hash of their content."""
  if source == 'chitchat':
    return 'chitchat'
  train_file = source.format(split='train') if '{split}' in source else source
  with open(train_file, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:10]
  stem = os.path.splitext(os.path.basename(train_file))[0]
  return f'{stem}-{digest}'


def tokenizer_for(data_config) -> tokenizer_lib.Tokenizer:
  """The tokenizer of data_config.source, trained on its train split on first use."""
  def texts():
    records, to_conversation = conversations(data_config, 'train')
    switch_names = getattr(data_config, 'switch_names_in_text', True)
    for i in range(len(records)):
      c = to_conversation(records[i])
      c = conversation.switch(c, c.speakers[0] if c.speakers else None)
      for _, text in conversation.render_segments(c, switch_names):
        yield text
  _check_source(data_config.source)
  return tokenizer_lib.load_or_train(texts, data_config.vocab_size,
                                     os.path.join(data_dir(data_config), 'tokenizers'),
                                     _source_name(data_config.source))


# --- One conversation -> tokens and per-token rewards ---------------------------------------

class _Prefixes(Sequence[str]):
  """prompts[i] = the rendered history before turn i, built only if a reward reads it.

  Building every prefix eagerly is quadratic in the conversation length (some chitchat
  conversations have ~3,000 messages) and the shipped rewards never look at it.
  """

  def __init__(self, segments: Sequence[str]):
    self._segments = segments

  def __len__(self):
    return len(self._segments)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    return ''.join(self._segments[:range(len(self))[i]])


def _perspective_owner(c: conversation.Conversation, index: int, perspective: str,
                       seed: int) -> str | None:
  speakers = c.speakers
  if not speakers:
    return None
  if perspective == 'first':
    return speakers[0]
  draw = int(hashlib.sha256(f'{seed}:{index}'.encode()).hexdigest()[:8], 16)
  return speakers[draw % len(speakers)]


class _Featurize:
  """Source index -> {'tokens': int32[n], 'rewards': float32[n]} of one whole conversation."""

  def __init__(self, data_config, tokenizer, records, to_conversation, seed: int):
    self._records, self._to_conversation = records, to_conversation
    self._tokenizer, self._seed = tokenizer, seed
    self._perspective = getattr(data_config, 'perspective', 'first')
    if self._perspective not in PERSPECTIVES:
      raise ValueError(f'data.perspective={self._perspective!r}; choose one of {PERSPECTIVES}.')
    self._switch_names = getattr(data_config, 'switch_names_in_text', True)
    name = getattr(data_config, 'reward', 'constant')
    kwargs = {'value': getattr(data_config, 'reward_value', 1.0)} if name == 'constant' else {}
    self._reward_fn = rewards_lib.get(name, **kwargs)

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    c = self._to_conversation(self._records[int(index)])
    c = conversation.switch(c, _perspective_owner(c, int(index), self._perspective, self._seed))
    segments = [text for _, text in conversation.render_segments(c, self._switch_names)]
    if not segments:
      return {'tokens': np.zeros(0, np.int32), 'rewards': np.zeros(0, np.float32)}
    ids = self._tokenizer.encode_batch(segments)
    turn_rewards = np.asarray(self._reward_fn(_Prefixes(segments), segments), np.float32)
    if turn_rewards.shape != (len(segments),):
      raise ValueError(f'Reward function returned shape {turn_rewards.shape} for '
                       f'{len(segments)} turns of {c.id!r}; it must return one float per turn.')
    lengths = [len(x) for x in ids]
    tokens = np.fromiter(itertools.chain.from_iterable(ids), np.int32, sum(lengths))
    return {'tokens': tokens, 'rewards': np.repeat(turn_rewards, lengths)}


# --- Packing ------------------------------------------------------------------------------------

class _PackIterDataset(grain.IterDataset):
  """Concat-then-split: conversations back to back, cut into rows of `row_length` tokens.

  A conversation longer than what is left of a row continues in the next row; the last
  row of a finite stream is padded (token 0, real 0). grain's
  experimental.ConcatThenSplitIterDataset does the same but (grain 0.2.18) its state
  holds tuples that do not survive a JSON round trip, so restoring from a grain/orbax
  checkpoint can skip data; this one's state is {'parent': ..., 'offset': int}.
  """

  def __init__(self, parent: grain.IterDataset, row_length: int):
    super().__init__(parent)
    self._row_length = row_length

  def __iter__(self):
    return _PackIterator(self._parent.__iter__(), self._row_length)


class _PackIterator(grain.DatasetIterator):

  def __init__(self, parent: grain.DatasetIterator, row_length: int):
    super().__init__(parent)
    self._row_length = row_length
    self._element = None           # the conversation being cut into rows
    self._element_state = None     # parent state just before `_element` was read
    self._offset = 0               # tokens of `_element` already emitted

  def __next__(self) -> dict[str, np.ndarray]:
    tokens, rewards, need = [], [], self._row_length
    while need:
      if self._element is None:
        self._element_state = self._parent.get_state()
        try:
          self._element, self._offset = next(self._parent), 0
        except StopIteration:
          break
      piece = slice(self._offset, self._offset + need)
      tokens.append(self._element['tokens'][piece])
      rewards.append(self._element['rewards'][piece])
      need -= len(tokens[-1])
      self._offset += len(tokens[-1])
      if self._offset >= len(self._element['tokens']):
        self._element = None
    if need == self._row_length:
      raise StopIteration
    real = np.zeros(self._row_length, np.float32)
    real[:self._row_length - need] = 1.0
    tokens.append(np.zeros(need, np.int32))
    rewards.append(np.zeros(need, np.float32))
    return {'tokens': np.concatenate(tokens), 'rewards': np.concatenate(rewards), 'real': real}

  def get_state(self) -> dict[str, Any]:
    if self._element is None:
      return {'parent': self._parent.get_state(), 'offset': 0}
    return {'parent': self._element_state, 'offset': self._offset}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['parent'])
    self._element = None
    if state['offset']:
      # Re-read the conversation the next row starts in; featurizing is deterministic.
      self._element_state = state['parent']
      self._element, self._offset = next(self._parent), state['offset']


# --- Datasets -----------------------------------------------------------------------------------

def _rows(data_config, tokenizer, split: str, *, seed: int, process_index: int,
          process_count: int, shuffle: bool, repeat: bool) -> grain.IterDataset:
  """Packed rows {'tokens', 'rewards', 'real'} of seq_len + 1 from this process's shard."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} must be in [0, {process_count}).')
  records, to_conversation = conversations(data_config, split)
  featurize = _Featurize(data_config, tokenizer, records, to_conversation, seed)
  indices = grain.MapDataset.range(len(records))[process_index::process_count]
  if len(indices) == 0:
    raise ValueError(f'The {split!r} split of {data_config.source!r} has {len(records)} '
                     f'conversations, none for process {process_index} of {process_count}; '
                     f'add conversations or use a source with a non-empty {split!r} split.')
  if shuffle:
    indices = indices.shuffle(seed)
  if repeat:
    indices = indices.repeat()
  examples = indices.map(featurize).to_iter_dataset(_READ_OPTIONS)
  return _PackIterDataset(examples, data_config.seq_len + 1)


def _local_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f'global_batch_size={global_batch_size} is not divisible by '
                     f'process_count={process_count}; use a multiple of {process_count}.')
  return global_batch_size // process_count


def _lm_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Rows of L+1 tokens -> next-token prediction: targets[t] = inputs[t+1] of the row."""
  tokens = rows['tokens']
  return {'inputs': tokens[:, :-1], 'targets': tokens[:, 1:],
          'weights': rows['real'][:, 1:], 'rewards': rows['rewards'][:, 1:]}


def lm_dataset(data_config, tokenizer, split: str, *, seed: int, global_batch_size: int,
               process_index: int = 0, process_count: int = 1,
               repeat: bool = True) -> grain.IterDataset:
  """Batches of this process for language-model training on data_config.source.

  Yields {'inputs': int32[B, L], 'targets': int32[B, L], 'weights': float32[B, L],
  'rewards': float32[B, L]} with B = global_batch_size // process_count and
  L = data_config.seq_len. weights is 0 on padding; rewards[b, t] is the reward of the
  turn that targets[b, t] belongs to. Without repeat, a last partial batch is dropped.
  """
  batch_size = _local_batch_size(global_batch_size, process_count)
  rows = _rows(data_config, tokenizer, split, seed=seed, process_index=process_index,
               process_count=process_count, shuffle=True, repeat=repeat)
  return rows.batch(batch_size, drop_remainder=True).map(_lm_batch)


def eval_batches(data_config, tokenizer, split: str, *, global_batch_size: int,
                 num_batches: int, process_index: int = 0,
                 process_count: int = 1) -> list[dict[str, np.ndarray]]:
  """The first `num_batches` batches of `split` in source order (seed 0), the same every call.

  If the split runs out, the remaining rows are padding with weights 0.
  """
  batch_size = _local_batch_size(global_batch_size, process_count)
  rows = _rows(data_config, tokenizer, split, seed=0, process_index=process_index,
               process_count=process_count, shuffle=False, repeat=False)
  length = data_config.seq_len + 1
  padding = {'tokens': np.zeros(length, np.int32), 'rewards': np.zeros(length, np.float32),
             'real': np.zeros(length, np.float32)}
  taken = list(itertools.islice(iter(rows), batch_size * num_batches))
  taken += [padding] * (batch_size * num_batches - len(taken))
  return [_lm_batch({k: np.stack([r[k] for r in taken[i:i + batch_size]]) for k in padding})
          for i in range(0, len(taken), batch_size)]
