"""The grain input pipeline for language-model training: conversations and SocialWorld.

  sources (data.mixture, or data.source alone), each random access     sources.py
    -> indices [process_index::process_count]   each process reads a disjoint part
    -> shuffle(seed), repeat                    reshuffled every epoch, same on every host
  -> mix by weight                              a fixed interleave (grain MapDataset.mix)
    -> featurize: render (perspective / SocialWorld text), tokenize,    features.py
       reward each turn, masks and loss weights
    -> pack into rows of seq_len + 1 tokens                             packing.py
    -> batch(global_batch_size // process_count) -> inputs / targets / weights / rewards /
       self_mask (and reaction / reaction_mask with data.reaction, segments with
       data.document_mask)

Every stage is deterministic given (seed, process_index, process_count), and the
iterator's state is a small JSON dict: save it with
`grain.checkpoint.CheckpointSave(iterator)` beside the model and restore with
`CheckpointRestore`, or use `get_state()` / `set_state()` directly. tomk.data.batches
feeds a training stage from here (or from rollouts, for the RL algorithms).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os

import grain
import numpy as np

from tomk import config as config_lib, rundir
from tomk.data import conversation
from tomk.data import features
from tomk.data import packing
from tomk.data import sources
from tomk.data import tokenizer as tokenizer_lib

# Featurizing a conversation is ~1 ms of Python; one reader thread overlaps it with the
# (GIL-releasing) train step without fighting XLA for the cores.
READ_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=64)
# A mixture's tokenizer trains on this many documents, shared by the weights.
TOKENIZER_DOCUMENTS = 10_000


def check(config) -> None:
  """Errors for data settings (sources, mixture, featurizing, packing) before any data is read."""
  c = config_lib.Checker()
  c.run(sources.mixture, config.data)
  c.run(features.check, config.data)
  c.run(packing.packs_whole, config.data)
  c.run(sources.check_story_mix, config.data)
  c.run(sources.check_user_files, config.data)
  c.done()


def check_data_dir(data_config) -> None:
  """An error unless the data directory (datasets, tokenizers) can be written."""
  directory = sources.data_dir(data_config)
  what = 'the data directory (data.data_dir, $TOMK_DATA_DIR or ~/.cache/tomk)'
  if os.path.isdir(directory):
    return        # it may hold every dataset and tokenizer already (a shared, read-only cache)
  rundir.check_writable_dir(directory, what)


def tokenizer_name(data_config) -> str:
  """The tokenizer's cache name: its corpus, or for a mixture a hash of sources and weights."""
  weights = sources.mixture(data_config)
  names = sorted((sources.source_name(data_config, s), round(w, 6)) for s, w in weights.items())
  if len(names) == 1:
    return names[0][0]
  return 'mix-' + hashlib.sha256(json.dumps(names).encode()).hexdigest()[:10]


def tokenizer_for(data_config) -> tokenizer_lib.Tokenizer:
  """The tokenizer of the data, trained on its train split(s) on first use.

  A single conversation source trains on all of its turns. A mixture (or a SocialWorld
  source) trains on TOKENIZER_DOCUMENTS documents shared by weight, so the cache key
  names every source and weight: a chitchat-only tokenizer is never reused for a mixture.
  """
  if data_config.tokenizer:             # a pretrained model's own
    return tokenizer_lib.load(data_config.tokenizer)
  weights = sources.mixture(data_config)
  switch_names = data_config.switch_names_in_text

  def conversation_texts(source):
    records, to_conversation = sources.split_conversations(source, 'train',
                                                             sources.data_dir(data_config))
    for i in range(len(records)):
      c = to_conversation(records[i])
      c = conversation.switch(c, c.speakers[0] if c.speakers else None)
      for _, text in conversation.render_segments(c, switch_names):
        yield text

  def mixture_texts():
    for source, weight in weights.items():
      records = sources.records_of(data_config, source, 'train')
      count = min(len(records), max(1, round(TOKENIZER_DOCUMENTS * weight)))
      spread = [k * len(records) // count for k in range(count)]   # evenly over the split
      for start in range(0, count, 1024):
        indices = spread[start:start + 1024]
        for index, record in zip(indices, sources.read(records, indices)):
          # The tokenizer's name covers the sources and weights, not how scenarios are
          # shown: it always learns them as drawn, from the model's side.
          yield from features.rendered(data_config, source, record, index, seed=0,
                                       scenario_perspective='model', scenario_response='drawn')

  only = next(iter(weights)) if len(weights) == 1 else None
  if only and only not in sources.SOCIALWORLD:   # as before mixtures: the cached files stay valid
    texts = lambda: conversation_texts(only)
  else:
    texts = mixture_texts
  return tokenizer_lib.load_or_train(texts, data_config.vocab_size,
                                     os.path.join(sources.data_dir(data_config), 'tokenizers'),
                                     tokenizer_name(data_config))


def packed_rows(data_config, tokenizer, split: str, *, seed: int, process_index: int,
                process_count: int, shuffle: bool, repeat: bool) -> grain.IterDataset:
  """Packed rows of seq_len + 1 tokens from this process's shard: features.row_fields."""
  documents, named = sources.documents(data_config, split, seed=seed,
                                       process_index=process_index,
                                       process_count=process_count, shuffle=shuffle,
                                       repeat=repeat)
  # BPE-dropout and answer and reaction weights on the training split only: evaluation
  # reads the plain pieces and every token alike.
  train = split == 'train'
  featurize = features.Featurize(data_config, tokenizer, named, seed,
                                 data_config.subword_dropout if train else 0.0,
                                 data_config.answer_weight if train else 1.0,
                                 data_config.reaction_weight if train else 1.0)
  examples = documents.map(featurize).to_iter_dataset(READ_OPTIONS)
  return packing.PackIterDataset(examples, data_config.seq_len + 1,
                                 whole=packing.packs_whole(data_config),
                                 segments=data_config.document_mask)


def batch_fields(data_config) -> dict[str, np.dtype]:
  """The fields of lm_dataset's batches and their dtypes (tomk.aot compiles for them)."""
  rows = {k: np.zeros((1, 2), dtype) for k, dtype in features.row_fields(data_config).items()}
  return {k: v.dtype for k, v in lm_batch(rows).items()}


def local_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f'global_batch_size={global_batch_size} is not divisible by '
                     f'process_count={process_count}; use a multiple of {process_count}.')
  return global_batch_size // process_count


def lm_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Rows of L+1 tokens -> next-token prediction: targets[t] = inputs[t+1] of the row.

  Per-token values of what is predicted align with targets; a reaction, read from the
  state up to the token that opens its turn, aligns with inputs.
  """
  tokens = rows['tokens']
  batch = {'inputs': tokens[:, :-1], 'targets': tokens[:, 1:],
           'weights': (rows['real'] * rows['weight'])[:, 1:],
           'rewards': rows['rewards'][:, 1:],
           'self_mask': (rows['self'] * rows['weight'])[:, 1:]}
  if 'reaction' in rows:
    batch.update(reaction=rows['reaction'][:, :-1], reaction_mask=rows['reaction_mask'][:, :-1])
  if 'segment' in rows:
    batch['segments'] = rows['segment'][:, :-1]
  return batch


def lm_dataset(data_config, tokenizer, split: str, *, seed: int, global_batch_size: int,
               process_index: int = 0, process_count: int = 1,
               repeat: bool = True) -> grain.IterDataset:
  """Batches of this process for language-model training on the data's mixture.

  Yields {'inputs': int32[B, L], 'targets': int32[B, L], 'weights': float32[B, L],
  'rewards': float32[B, L], 'self_mask': float32[B, L]} with B = global_batch_size //
  process_count and L = data_config.seq_len. weights is each target's loss weight: 0 on
  padding, data.answer_weight on a story's answers and data.reaction_weight on a scenario's
  last turn (training split), else 1; rewards[b, t] is the reward of the turn that
  targets[b, t] belongs to; self_mask[b, t] is that weight where targets[b, t] is a token
  the perspective owner said, else 0. With data.reaction also
  'reaction' and 'reaction_mask' (see the module docstring); with data.document_mask
  'segments': int32[B, L], which document of the row inputs[b, t] belongs to (0 on
  padding; routing.attention_mask). Without repeat, a last partial batch is dropped.
  """
  batch_size = local_batch_size(global_batch_size, process_count)
  rows = packed_rows(data_config, tokenizer, split, seed=seed, process_index=process_index,
                     process_count=process_count, shuffle=True, repeat=repeat)
  return rows.batch(batch_size, drop_remainder=True).map(lm_batch)


def eval_batches(data_config, tokenizer, split: str, *, global_batch_size: int,
                 num_batches: int, process_index: int = 0,
                 process_count: int = 1) -> list[dict[str, np.ndarray]]:
  """The first `num_batches` batches of `split` in source order (seed 0), the same every call.

  If the split runs out, the remaining rows are padding with weights 0.
  """
  batch_size = local_batch_size(global_batch_size, process_count)
  rows = packed_rows(data_config, tokenizer, split, seed=0, process_index=process_index,
                     process_count=process_count, shuffle=False, repeat=False)
  length = data_config.seq_len + 1
  padding = {k: np.zeros(length, dtype) for k, dtype in features.row_fields(data_config).items()}
  taken = list(itertools.islice(iter(rows), batch_size * num_batches))
  taken += [padding] * (batch_size * num_batches - len(taken))
  return [lm_batch({k: np.stack([r[k] for r in taken[i:i + batch_size]]) for k in padding})
          for i in range(0, len(taken), batch_size)]
