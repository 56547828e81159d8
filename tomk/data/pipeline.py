"""The grain input pipeline for language-model training: conversations and SocialWorld.

  sources (data.mixture, or data.source alone), each random access (tfds array_record / JSONL)
    -> indices [process_index::process_count]   each process reads a disjoint part
    -> shuffle(seed), repeat                    reshuffled every epoch, same on every host
  -> mix by weight                              a fixed interleave (grain MapDataset.mix)
    -> map: render (perspective / SocialWorld text), tokenize each turn, reward each turn
    -> pack: concat-then-split into rows of seq_len + 1 tokens
    -> batch(global_batch_size // process_count) -> inputs / targets / weights / rewards /
       self_mask (and reaction / reaction_mask with data.reaction, segments with
       data.document_mask)

Every stage is deterministic given (seed, process_index, process_count), and the
iterator's state is a small JSON dict: save it with
`grain.checkpoint.CheckpointSave(iterator)` beside the model and restore with
`CheckpointRestore`, or use `get_state()` / `set_state()` directly.

Sources. 'chitchat'; a path to a JSONL file of conversations (tomk.data.jsonl; a path
containing '{split}' names one file per split, 'convs-{split}.jsonl', any other is
split 90/5/5 by conversation id, like chitchat); or a SocialWorld family
(tomk.socialworld.builders): 'story' (stories of data.story_mix), 'preference_story',
a scenario family ('preference_offer', 'similar_partner', 'dissimilar_partner',
'false_belief_assist', 'third_party', 'multi_party'), 'scenarios' (all six, the weight
split evenly) or 'rater' (prompt + chosen response). data.story_mix and
data.socialworld_train_size pick the SocialWorld builder configs.

data.mixture. '' trains on data.source alone; otherwise 'name:weight,...', e.g.
'chitchat:1,story:2,preference_story:0.5,scenarios:1' (a missing ':weight' is 1; a dict
{name: weight} works too). Weights are shares of *documents* (conversations, stories,
scenarios), normalised to sum 1: a chitchat conversation is ~10x a story's tokens.
Within a source documents are shuffled by the seed; sources interleave in a fixed
pattern, so a restored iterator (state {'next_index': n}) continues exactly.

Perspective. A conversation is rendered from one speaker's perspective (their turns
carry <self>): data.perspective 'first', 'random' (by seed and index) or 'other' (a
speaker other than the first). SocialWorld scenarios are shown as the model saw them,
or with data.scenario_perspective='partner' from the partner's side, whose reaction
ends them. self_mask marks the tokens the perspective owner said (their turns' text and
<eot>, not the <self> role token that opens the turn: whose turn it is belongs to the
state, as in conversation.prompt_for). With data.reaction (a reward function name,
e.g. 'sentiment'), each owner turn that answers someone else is an observed reaction:
its score sits at the <self> token opening it (reaction_mask 1 there), aligned with
inputs, so a head reading the state up to that token can regress it (infer_reward).

Splits. 'train', 'validation', 'test' for every source, and 'heldout': SocialWorld's
held-out vocabulary (names, rooms, containers, objects, items never in training text);
conversation sources have no held-out vocabulary and give their 'test' split.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from typing import Any, Callable, Mapping, Sequence

import grain
import numpy as np

from tomk import rewards as rewards_lib
from tomk.data import chitchat
from tomk.data import conversation
from tomk.data import jsonl
from tomk.data import tokenizer as tokenizer_lib
from tomk.socialworld import builders
from tomk.socialworld import scenarios
from tomk.socialworld import stories

PERSPECTIVES = ('first', 'random', 'other')
SPLITS = ('train', 'validation', 'test', 'heldout')
SOCIALWORLD = builders.FAMILIES
# Featurizing a conversation is ~1 ms of Python; one reader thread overlaps it with the
# (GIL-releasing) train step without fighting XLA for the cores.
_READ_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=64)
# A mixture's tokenizer trains on this many documents, shared by the weights.
_TOKENIZER_DOCUMENTS = 10_000


# --- Sources ------------------------------------------------------------------------------------

def data_dir(data_config) -> str:
  """data_config.data_dir, or $TOMK_DATA_DIR, or ~/.cache/tomk."""
  return getattr(data_config, 'data_dir', '') or chitchat.default_data_dir()


def _is_jsonl(source: str) -> bool:
  return source.endswith('.jsonl')


def _check_source(source: str, field: str = 'data.source') -> None:
  if source != 'chitchat' and not _is_jsonl(source) and source not in SOCIALWORLD:
    raise ValueError(f"{field}={source!r}: use 'chitchat' or a path ending in .jsonl "
                     f"(one conversation per line, see tomk/data/jsonl.py), or a SocialWorld "
                     f"family {SOCIALWORLD} ('scenarios' in a mixture: all six scenario "
                     f"families).")


def _jsonl_split(source: str, split: str) -> list[conversation.Conversation]:
  if '{split}' in source:
    path = source.format(split=split)
    if not os.path.exists(path):
      raise ValueError(f'data.source={source!r} names one file per split, but the {split!r} '
                       f'file {path} does not exist; create it or drop {{split}} from the path '
                       f'to split one file 90/5/5 by conversation id.')
    return jsonl.read_conversations(path)
  return [c for c in jsonl.read_conversations(source) if chitchat.split_for(c.id) == split]


def _conversations(source: str, split: str, directory: str) -> tuple[Sequence[Any], Callable]:
  if split not in SPLITS:
    raise ValueError(f'Unknown split {split!r}; use one of {SPLITS}.')
  split = 'test' if split == 'heldout' else split   # no held-out vocabulary in real talk
  if source == 'chitchat':
    return chitchat.load(split, directory), chitchat.to_conversation
  return _jsonl_split(source, split), lambda c: c


def conversations(data_config, split: str) -> tuple[Sequence[Any], Callable]:
  """(random-access records, record -> Conversation) of one split of data_config.source."""
  source = data_config.source
  _check_source(source)
  if source in SOCIALWORLD:
    raise ValueError(f'data.source={source!r} is SocialWorld, not conversations; read it '
                     f'with tomk.socialworld.builders.load.')
  return _conversations(source, split, data_dir(data_config))


def mixture(data_config) -> dict[str, float]:
  """{source: weight}, weights summing to 1: data.mixture, or data.source alone."""
  spec = getattr(data_config, 'mixture', '') or ''
  if not spec:
    _check_source(data_config.source)
    return {data_config.source: 1.0}
  if data_config.source != 'chitchat':
    raise ValueError(f'data.source={data_config.source!r} is ignored when data.mixture is '
                     f'set ({spec!r}); add it to the mixture ("{data_config.source}:1,...") '
                     f"or set --config.data.mixture='' to train on the source alone.")
  if hasattr(spec, 'items'):
    items = [(str(k), v) for k, v in spec.items()]
  else:
    items = []
    for part in (p.strip() for p in str(spec).split(',') if p.strip()):
      name, colon, weight = part.rpartition(':')
      items.append((name, weight) if colon else (part, 1.0))
  weights = {}
  for name, given in items:
    try:
      weight = float(given)
    except (TypeError, ValueError):
      weight = -1.0
    if not weight >= 0 or not name:
      raise ValueError(f'data.mixture={spec!r}: {name}:{given} must be name:weight with a '
                       f'weight >= 0, e.g. "chitchat:1,story:2,scenarios:1".')
    names = scenarios.FAMILIES if name == 'scenarios' else (name,)
    for n in names:
      _check_source(n, 'a data.mixture entry')
      weights[n] = weights.get(n, 0.0) + weight / len(names)
  total = sum(weights.values())
  if not total > 0:
    raise ValueError(f'data.mixture={spec!r} gives every source weight 0; give one a '
                     f'positive weight.')
  return {n: w / total for n, w in weights.items() if w > 0}


def _records(data_config, source: str, split: str) -> Sequence[Any]:
  if source in SOCIALWORLD:
    if split not in SPLITS:
      raise ValueError(f'Unknown split {split!r}; use one of {SPLITS}.')
    return builders.load(source, split, data_dir(data_config), _story_mix(data_config),
                         getattr(data_config, 'socialworld_train_size', 0))
  return _conversations(source, split, data_dir(data_config))[0]


def _story_mix(data_config) -> str:
  return getattr(data_config, 'story_mix', 'balanced')


def _read(records: Sequence[Any], indices: list[int]) -> list[Any]:
  # array_record reads many records at once ~4x faster than one by one.
  if hasattr(records, '__getitems__'):
    return records.__getitems__(indices)
  return [records[i] for i in indices]


def _source_name(data_config, source: str) -> str:
  """Names the tokenizer cache: the corpus, and for files a hash of their content."""
  if source == 'chitchat':
    return 'chitchat'
  if source in SOCIALWORLD:
    config = builders.builder_config(source, _story_mix(data_config),
                                     getattr(data_config, 'socialworld_train_size', 0))
    return f'socialworld-{config.name}-{config.version}'
  train_file = source.format(split='train') if '{split}' in source else source
  with open(train_file, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:10]
  stem = os.path.splitext(os.path.basename(train_file))[0]
  return f'{stem}-{digest}'


def _segments(data_config, source: str, record, index: int, seed: int,
              scenario_perspective: str | None = None) -> list[str]:
  """The rendered training text of one record of `source`, one string per turn."""
  switch_names = getattr(data_config, 'switch_names_in_text', True)
  if source in SOCIALWORLD:
    if scenario_perspective is None:
      scenario_perspective = getattr(data_config, 'scenario_perspective', 'model')
    return builders.training_segments(source, builders.plain_record(record),
                                      _draw(f'{seed}:{source}:{index}'), switch_names,
                                      scenario_perspective)
  c = chitchat.to_conversation(record) if source == 'chitchat' else record
  perspective = getattr(data_config, 'perspective', 'first')
  c = conversation.switch(c, _perspective_owner(c, index, perspective, seed))
  return [text for _, text in conversation.render_segments(c, switch_names)]


def tokenizer_name(data_config) -> str:
  """The tokenizer's cache name: its corpus, or for a mixture a hash of sources and weights."""
  weights = mixture(data_config)
  names = sorted((_source_name(data_config, s), round(w, 6)) for s, w in weights.items())
  if len(names) == 1:
    return names[0][0]
  return 'mix-' + hashlib.sha256(json.dumps(names).encode()).hexdigest()[:10]


def tokenizer_for(data_config) -> tokenizer_lib.Tokenizer:
  """The tokenizer of the data, trained on its train split(s) on first use.

  A single conversation source trains on all of its turns. A mixture (or a SocialWorld
  source) trains on _TOKENIZER_DOCUMENTS documents shared by weight, so the cache key
  names every source and weight: a chitchat-only tokenizer is never reused for a mixture.
  """
  weights = mixture(data_config)
  switch_names = getattr(data_config, 'switch_names_in_text', True)

  def conversation_texts(source):
    records, to_conversation = _conversations(source, 'train', data_dir(data_config))
    for i in range(len(records)):
      c = to_conversation(records[i])
      c = conversation.switch(c, c.speakers[0] if c.speakers else None)
      for _, text in conversation.render_segments(c, switch_names):
        yield text

  def mixture_texts():
    for source, weight in weights.items():
      records = _records(data_config, source, 'train')
      count = min(len(records), max(1, round(_TOKENIZER_DOCUMENTS * weight)))
      spread = [k * len(records) // count for k in range(count)]   # evenly over the split
      for start in range(0, count, 1024):
        indices = spread[start:start + 1024]
        for index, record in zip(indices, _read(records, indices)):
          yield from _segments(data_config, source, record, index, seed=0,
                               scenario_perspective='model')

  only = next(iter(weights)) if len(weights) == 1 else None
  if only and only not in SOCIALWORLD:   # as before mixtures: the cached files stay valid
    texts = lambda: conversation_texts(only)
  else:
    texts = mixture_texts
  return tokenizer_lib.load_or_train(texts, data_config.vocab_size,
                                     os.path.join(data_dir(data_config), 'tokenizers'),
                                     tokenizer_name(data_config))


# --- One conversation -> tokens and per-token rewards ---------------------------------------

class _Prefixes(Sequence[str]):
  """prompts[i] = the rendered history before turn turns[i] (default: turn i), built only
  if a reward reads it.

  Building every prefix eagerly is quadratic in the conversation length (some chitchat
  conversations have ~3,000 messages) and the shipped rewards never look at it.
  """

  def __init__(self, segments: Sequence[str], turns: Sequence[int] | None = None):
    self._segments = segments
    self._turns = range(len(segments)) if turns is None else turns

  def __len__(self):
    return len(self._turns)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    return ''.join(self._segments[:self._turns[i]])


def _draw(key: str) -> int:
  """A deterministic pseudo-random integer from a string (the same in every process)."""
  return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def _perspective_owner(c: conversation.Conversation, index: int, perspective: str,
                       seed: int) -> str | None:
  speakers = c.speakers
  if not speakers:
    return None
  if perspective == 'first':
    return speakers[0]
  if perspective == 'other' and len(speakers) > 1:
    return speakers[1 + _draw(f'{seed}:{index}') % (len(speakers) - 1)]
  return speakers[_draw(f'{seed}:{index}') % len(speakers)]


def _fields(data_config) -> dict[str, type]:
  """The per-token arrays of a featurized document."""
  fields = {'tokens': np.int32, 'rewards': np.float32, 'self': np.float32,
            'weight': np.float32}
  if getattr(data_config, 'reaction', ''):
    fields.update(reaction=np.float32, reaction_mask=np.float32)
  return fields


def _row_fields(data_config) -> dict[str, type]:
  """The per-token arrays of a packed row: a document's, 'real' and (data.document_mask)
  'segment'."""
  fields = {**_fields(data_config), 'real': np.float32}
  if getattr(data_config, 'document_mask', False):
    fields['segment'] = np.int32
  return fields


class _Featurize:
  """(source number, record index) -> {'tokens': int32[n], 'rewards': float32[n],
  'self': float32[n], 'weight': float32[n]} (+ 'reaction', 'reaction_mask' with
  data.reaction).

  One whole document: a conversation (each turn rewarded by the configured reward) or a
  SocialWorld example; a plain-text story ends with EOS so its answer does not run into
  the next story's first line. 'self' is 1 on the tokens the perspective owner said.
  'weight' is each token's loss weight: `answer_weight` on a story's answers, else 1.
  """

  def __init__(self, data_config, tokenizer, sources: Sequence[tuple[str, Sequence]],
               seed: int, subword_dropout: float = 0.0, answer_weight: float = 1.0):
    self._data_config, self._sources = data_config, sources
    self._subword_dropout, self._answer_weight = subword_dropout, answer_weight
    self._tokenizer, self._seed = tokenizer, seed
    perspective = getattr(data_config, 'perspective', 'first')
    if perspective not in PERSPECTIVES:
      raise ValueError(f'data.perspective={perspective!r}; choose one of {PERSPECTIVES}.')
    name = getattr(data_config, 'reward', 'constant')
    kwargs = {'value': getattr(data_config, 'reward_value', 1.0)} if name == 'constant' else {}
    self._reward_fn = rewards_lib.get(name, **kwargs)
    reaction = getattr(data_config, 'reaction', '')
    self._reaction_fn = rewards_lib.get(reaction) if reaction else None
    self._fields = _fields(data_config)

  def __call__(self, item: tuple[int, int]) -> dict[str, np.ndarray]:
    source, records = self._sources[int(item[0])]
    index = int(item[1])
    story = source in builders.STORY_FAMILIES
    if story:
      # One segment (one reward), encoded by its pieces (story and questions, answers, in
      # turn): they give the text's tokens and tell the answers' apart.
      texts = stories.pieces(builders.plain_record(records[index]))
      segments = [''.join(texts)]     # = _segments(): builders.training_segments
    else:
      segments = texts = _segments(self._data_config, source, records[index], index,
                                   self._seed)
    if not segments:
      return {k: np.zeros(0, dtype) for k, dtype in self._fields.items()}
    if self._subword_dropout and story:
      ids = self._tokenizer.encode_dropout(texts, self._subword_dropout,
                                           _draw(f'{self._seed}:{source}:{index}:pieces'))
    else:
      ids = self._tokenizer.encode_batch(texts)
    if story:
      # Answers at odd places; EOS ends the story so its answer does not run into the next.
      weight = np.concatenate([np.full(len(x), self._answer_weight if i % 2 else 1.0,
                                       np.float32) for i, x in enumerate(ids)] + [[1.0]])
      ids = [list(itertools.chain.from_iterable(ids)) + [self._tokenizer.eos_id]]
    else:
      weight = np.ones(sum(len(x) for x in ids), np.float32)
    turn_rewards = np.asarray(self._reward_fn(_Prefixes(segments), segments), np.float32)
    if turn_rewards.shape != (len(segments),):
      raise ValueError(f'Reward function returned shape {turn_rewards.shape} for '
                       f'{len(segments)} turns of record {index} of {source!r}; it must '
                       f'return one float per turn.')
    lengths = [len(x) for x in ids]
    tokens = np.fromiter(itertools.chain.from_iterable(ids), np.int32, sum(lengths))
    # The owner's turns open with the <self> role token; what they said follows it.
    owner = np.array([bool(x) and x[0] == self._tokenizer.self_id for x in ids])
    starts = np.cumsum([0] + lengths[:-1])
    said = np.repeat(owner, lengths).astype(np.float32)
    said[starts[owner]] = 0.0
    out = {'tokens': tokens, 'rewards': np.repeat(turn_rewards, lengths), 'self': said,
           'weight': weight}
    if self._reaction_fn is not None:
      # A reaction: an owner turn that answers another speaker's turn.
      turns = [i for i in range(1, len(segments)) if owner[i] and not owner[i - 1]]
      scores = np.asarray(self._reaction_fn(_Prefixes(segments, turns),
                                            [segments[i] for i in turns]), np.float32)
      out['reaction'] = np.zeros(len(tokens), np.float32)
      out['reaction_mask'] = np.zeros(len(tokens), np.float32)
      out['reaction'][starts[turns]] = scores
      out['reaction_mask'][starts[turns]] = 1.0
    return out


# --- Packing ------------------------------------------------------------------------------------

PACKINGS = ('concat', 'whole')   # data.packing: see _PackIterDataset


def packs_whole(data_config) -> bool:
  """Whether data.packing is 'whole'; an error naming the choices for any other value."""
  packing = getattr(data_config, 'packing', 'concat')
  if packing not in PACKINGS:
    raise ValueError(f'data.packing={packing!r}; choose one of {PACKINGS}.')
  return packing == 'whole'


class _PackIterDataset(grain.IterDataset):
  """Concat-then-split: conversations back to back, cut into rows of `row_length` tokens.

  A conversation longer than what is left of a row continues in the next row; the last
  row of a finite stream is padded (token 0, real 0). grain's
  experimental.ConcatThenSplitIterDataset does the same but (grain 0.2.18) its state
  holds tuples that do not survive a JSON round trip, so restoring from a grain/orbax
  checkpoint can skip data; this one's state is {'parent': ..., 'offset': int}.

  whole=True (data.packing='whole'): a document that fits in a row is never cut. When it
  does not fit in what is left of the row, the row is padded and the document opens the
  next one. A story cut in two leaves its questions without the sentences that answer
  them; longer documents are still cut.

  segments=True (data.document_mask): each row also gets 'segment', int32, a number per
  document piece of the row (increasing, distinct; 0 on padding), so attention can stay
  within a document (routing.attention_mask).
  """

  def __init__(self, parent: grain.IterDataset, row_length: int, whole: bool = False,
               segments: bool = False):
    super().__init__(parent)
    self._row_length, self._whole, self._segments = row_length, whole, segments

  def __iter__(self):
    return _PackIterator(self._parent.__iter__(), self._row_length, self._whole,
                         self._segments)


class _PackIterator(grain.DatasetIterator):

  def __init__(self, parent: grain.DatasetIterator, row_length: int, whole: bool = False,
               segments: bool = False):
    super().__init__(parent)
    self._row_length, self._whole, self._segments = row_length, whole, segments
    self._element = None           # the conversation being cut into rows
    self._element_state = None     # parent state just before `_element` was read
    self._offset = 0               # tokens of `_element` already emitted

  def __next__(self) -> dict[str, np.ndarray]:
    pieces, need = {}, self._row_length     # every per-token array of the documents
    while need:
      if self._element is None:
        self._element_state = self._parent.get_state()
        try:
          self._element, self._offset = next(self._parent), 0
        except StopIteration:
          break
      length = len(self._element['tokens'])
      if self._whole and not self._offset and need < length <= self._row_length:
        break                              # it opens the next row, whole
      piece = slice(self._offset, self._offset + need)
      for k, v in self._element.items():
        pieces.setdefault(k, []).append(v[piece])
      taken = len(pieces['tokens'][-1])
      if self._segments:       # the piece's number in the row, from 1; padding is 0
        pieces.setdefault('segment', []).append(np.full(taken, len(pieces['tokens']), np.int32))
      need -= taken
      self._offset += taken
      if self._offset >= len(self._element['tokens']):
        self._element = None
    if need == self._row_length:
      raise StopIteration
    real = np.zeros(self._row_length, np.float32)
    real[:self._row_length - need] = 1.0
    row = {k: np.concatenate(v + [np.zeros(need, v[0].dtype)]) for k, v in pieces.items()}
    return {**row, 'real': real}

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

def _source_seed(seed: int, source: str, sources: int) -> int:
  # One source keeps the seed itself, so runs from before mixtures see the same batches.
  return seed if sources == 1 else _draw(f'{seed}:{source}')


def _tag(source: int, index: int) -> tuple[int, int]:
  return source, index


def _documents(data_config, split: str, *, seed: int, process_index: int, process_count: int,
               shuffle: bool, repeat: bool) -> tuple[grain.MapDataset, list]:
  """(source number, record index) of this process's documents, mixed by weight, and the
  sources [(name, records)] the numbers refer to."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} must be in [0, {process_count}).')
  weights = mixture(data_config)
  parts, sources = [], []
  for number, source in enumerate(weights):
    records = _records(data_config, source, split)
    indices = grain.MapDataset.range(len(records))[process_index::process_count]
    if len(indices) == 0:
      raise ValueError(f'The {split!r} split of {source!r} has {len(records)} documents, '
                       f'none for process {process_index} of {process_count}; add documents '
                       f'or use a source with a non-empty {split!r} split.')
    if shuffle:
      indices = indices.shuffle(_source_seed(seed, source, len(weights)))
    if repeat:
      indices = indices.repeat()
    parts.append(indices.map(functools.partial(_tag, number)))
    sources.append((source, records))
  if len(parts) == 1:
    return parts[0], sources
  # Without repeat the mixture ends when its first source runs out.
  return grain.MapDataset.mix(parts, list(weights.values())), sources


def _rows(data_config, tokenizer, split: str, *, seed: int, process_index: int,
          process_count: int, shuffle: bool, repeat: bool) -> grain.IterDataset:
  """Packed rows of seq_len + 1 tokens from this process's shard: the fields of _row_fields."""
  documents, sources = _documents(data_config, split, seed=seed, process_index=process_index,
                                  process_count=process_count, shuffle=shuffle, repeat=repeat)
  # BPE-dropout and answer weights on the training split only: evaluation reads the plain
  # pieces and every token alike.
  train = split == 'train'
  featurize = _Featurize(data_config, tokenizer, sources, seed,
                         getattr(data_config, 'subword_dropout', 0.0) if train else 0.0,
                         getattr(data_config, 'answer_weight', 1.0) if train else 1.0)
  examples = documents.map(featurize).to_iter_dataset(_READ_OPTIONS)
  return _PackIterDataset(examples, data_config.seq_len + 1, whole=packs_whole(data_config),
                          segments=getattr(data_config, 'document_mask', False))


def batch_fields(data_config) -> dict[str, np.dtype]:
  """The fields of lm_dataset's batches and their dtypes (tomk.aot compiles for them)."""
  rows = {k: np.zeros((1, 2), dtype) for k, dtype in _row_fields(data_config).items()}
  return {k: v.dtype for k, v in _lm_batch(rows).items()}


def _local_batch_size(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f'global_batch_size={global_batch_size} is not divisible by '
                     f'process_count={process_count}; use a multiple of {process_count}.')
  return global_batch_size // process_count


def _lm_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Rows of L+1 tokens -> next-token prediction: targets[t] = inputs[t+1] of the row.

  Per-token values of what is predicted align with targets; a reaction, read from the
  state up to the token that opens its turn, aligns with inputs.
  """
  tokens = rows['tokens']
  batch = {'inputs': tokens[:, :-1], 'targets': tokens[:, 1:],
           'weights': (rows['real'] * rows['weight'])[:, 1:],
           'rewards': rows['rewards'][:, 1:],
           'self_mask': rows['self'][:, 1:]}
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
  padding, data.answer_weight on a story's answers (training split), else 1; rewards[b, t] is
  the reward of the turn that targets[b, t] belongs to; self_mask[b, t] is 1 where
  targets[b, t] is a token the perspective owner said. With data.reaction also
  'reaction' and 'reaction_mask' (see the module docstring); with data.document_mask
  'segments': int32[B, L], which document of the row inputs[b, t] belongs to (0 on
  padding; routing.attention_mask). Without repeat, a last partial batch is dropped.
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
  padding = {k: np.zeros(length, dtype) for k, dtype in _row_fields(data_config).items()}
  taken = list(itertools.islice(iter(rows), batch_size * num_batches))
  taken += [padding] * (batch_size * num_batches - len(taken))
  return [_lm_batch({k: np.stack([r[k] for r in taken[i:i + batch_size]]) for k in padding})
          for i in range(0, len(taken), batch_size)]
