"""Where training text comes from: sources, their splits, and mixtures of them.

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
pattern (documents()), so a restored iterator (state {'next_index': n}) continues exactly.

Splits. 'train', 'validation', 'test' for every source, and 'heldout': SocialWorld's
held-out vocabulary (names, rooms, containers, objects, items never in training text);
conversation sources have no held-out vocabulary and give their 'test' split.

The RL algorithms read no text: their prompts are SocialWorld scenarios drawn for each
step (scenario_prompts).
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Any, Callable, Sequence

import grain
import numpy as np

from tomk import config as config_lib, socialworld
from tomk.data import chitchat
from tomk.data import conversation
from tomk.data import jsonl
from tomk.socialworld import builders
from tomk.socialworld import scenarios

SPLITS = ('train', 'validation', 'test', 'heldout')
SOCIALWORLD = builders.FAMILIES


def seeded_int(key: str) -> int:
  """A deterministic pseudo-random integer from a string (the same in every process)."""
  return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def data_dir(data_config) -> str:
  """data_config.data_dir, or $TOMK_DATA_DIR, or ~/.cache/tomk."""
  return data_config.data_dir or chitchat.default_data_dir()


def is_jsonl(source: str) -> bool:
  return source.endswith('.jsonl')


def check_source(source: str, field: str = 'data.source') -> None:
  if source != 'chitchat' and not is_jsonl(source) and source not in SOCIALWORLD:
    raise ValueError(f"{field}={source!r}: use 'chitchat' or a path ending in .jsonl "
                     f"(one conversation per line, see tomk/data/jsonl.py), or a SocialWorld "
                     f"family {SOCIALWORLD} ('scenarios' in a mixture: all six scenario "
                     f"families).")
  if is_jsonl(source):
    path = source.format(split='train') if '{split}' in source else source
    if not os.path.isfile(path):   # (a missing split of '{split}' files: _jsonl_split)
      raise ValueError(f'{field}={source!r}: {path} is not a file; give the path of a JSONL '
                       f'file of conversations (one per line, see tomk/data/jsonl.py).')


def check_story_mix(data_config) -> None:
  try:
    builders.story_options(data_config.story_mix)
  except ValueError as e:
    raise ValueError(f'data.{e}') from None


def _jsonl_split(source: str, split: str) -> list[conversation.Conversation]:
  if '{split}' in source:
    path = source.format(split=split)
    if not os.path.exists(path):
      raise ValueError(f'data.source={source!r} names one file per split, but the {split!r} '
                       f'file {path} does not exist; create it or drop {{split}} from the path '
                       f'to split one file 90/5/5 by conversation id.')
    return jsonl.read_conversations(path)
  return [c for c in jsonl.read_conversations(source) if chitchat.split_for(c.id) == split]


def split_conversations(source: str, split: str,
                        directory: str) -> tuple[Sequence[Any], Callable]:
  """(random-access records, record -> Conversation) of one split of a conversation source."""
  if split not in SPLITS:
    raise ValueError(f'Unknown split {split!r}; use one of {SPLITS}.')
  split = 'test' if split == 'heldout' else split   # no held-out vocabulary in real talk
  if source == 'chitchat':
    return chitchat.load(split, directory), chitchat.to_conversation
  return _jsonl_split(source, split), lambda c: c


def conversations(data_config, split: str) -> tuple[Sequence[Any], Callable]:
  """(random-access records, record -> Conversation) of one split of data_config.source."""
  source = data_config.source
  check_source(source)
  if source in SOCIALWORLD:
    raise ValueError(f'data.source={source!r} is SocialWorld, not conversations; read it '
                     f'with tomk.socialworld.builders.load.')
  return split_conversations(source, split, data_dir(data_config))


def mixture(data_config) -> dict[str, float]:
  """{source: weight}, weights summing to 1: data.mixture, or data.source alone."""
  spec = data_config.mixture
  if not spec:
    check_source(data_config.source)
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
      check_source(n, 'a data.mixture entry')
      weights[n] = weights.get(n, 0.0) + weight / len(names)
  total = sum(weights.values())
  if not total > 0:
    raise ValueError(f'data.mixture={spec!r} gives every source weight 0; give one a '
                     f'positive weight.')
  return {n: w / total for n, w in weights.items() if w > 0}


def records_of(data_config, source: str, split: str) -> Sequence[Any]:
  if source in SOCIALWORLD:
    if split not in SPLITS:
      raise ValueError(f'Unknown split {split!r}; use one of {SPLITS}.')
    return builders.load(source, split, data_dir(data_config), data_config.story_mix,
                         data_config.socialworld_train_size)
  return split_conversations(source, split, data_dir(data_config))[0]


class Branches(Sequence[Any]):
  """Each record k times in a row (data.scenario_responses): document i is record i // k,
  shown with response i % k (features.Featurize)."""

  def __init__(self, records: Sequence[Any], k: int):
    self.records, self.k = records, k

  def __len__(self) -> int:
    return len(self.records) * self.k

  def __getitem__(self, i):
    return self.records[int(i) // self.k]

  def __getitems__(self, indices):
    return read(self.records, [int(i) // self.k for i in indices])


def read(records: Sequence[Any], indices: list[int]) -> list[Any]:
  # array_record reads many records at once ~4x faster than one by one.
  if hasattr(records, '__getitems__'):
    return records.__getitems__(indices)
  return [records[i] for i in indices]


def source_name(data_config, source: str) -> str:
  """Names the tokenizer cache: the corpus, and for files a hash of their content."""
  if source == 'chitchat':
    return 'chitchat'
  if source in SOCIALWORLD:
    config = builders.builder_config(source, data_config.story_mix,
                                     data_config.socialworld_train_size)
    return f'socialworld-{config.name}-{config.version}'
  train_file = source.format(split='train') if '{split}' in source else source
  with open(train_file, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:10]
  stem = os.path.splitext(os.path.basename(train_file))[0]
  return f'{stem}-{digest}'


# --- Documents of a split, mixed by weight ---------------------------------------------------

def _source_seed(seed: int, source: str, sources: int) -> int:
  # One source keeps the seed itself, so runs from before mixtures see the same batches.
  return seed if sources == 1 else seeded_int(f'{seed}:{source}')


def _tag(source: int, index: int) -> tuple[int, int]:
  return source, index


def documents(data_config, split: str, *, seed: int, process_index: int, process_count: int,
              shuffle: bool, repeat: bool) -> tuple[grain.MapDataset, list]:
  """(source number, record index) of this process's documents, mixed by weight, and the
  sources [(name, records)] the numbers refer to."""
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} must be in [0, {process_count}).')
  weights = mixture(data_config)
  parts, sources = [], []
  for number, source in enumerate(weights):
    records = records_of(data_config, source, split)
    if source in scenarios.FAMILIES and data_config.scenario_responses > 1:
      records = Branches(records, data_config.scenario_responses)
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


def check_families(families: str) -> None:
  """An error unless rl.families is a comma-separated list of scenario families."""
  unknown = [f for f in families.split(',') if f not in scenarios.FAMILIES]
  if unknown:
    raise ValueError(f'rl.families names {unknown}; use a comma-separated list of '
                     f'{",".join(scenarios.FAMILIES)}.')


def drawn(records: Sequence[Any], seed: int, step: int, count: int) -> list:
  """`count` of `records` for a step: each epoch is a permutation seeded by (seed, epoch), a
  pure function of (seed, step), so a resumed run draws the same without iterator state."""
  out, orders = [], {}
  for i in range(step * count, (step + 1) * count):
    epoch, position = divmod(i, len(records))
    if epoch not in orders:
      orders[epoch] = np.random.default_rng([seed, epoch]).permutation(len(records))
    out.append(records[orders[epoch][position]])
  return out


def check_user_files(data_config) -> None:
  """Errors naming the file and line of any malformed record of the user's prompts or
  preference pairs (each file is read once here, before anything runs)."""
  c = config_lib.Checker()
  for key, read in (('prompts', jsonl.read_prompts), ('preference_pairs', jsonl.read_pairs)):
    if data_config[key]:
      c.run(read, data_config[key])
  c.done()


def scenario_prompts(families: Sequence[str], split: str, seed: int, step: int, count: int):
  """`count` scenario examples for a step: a pure function of (seed, step), so a resumed
  run sees the same prompts without any iterator state."""
  out = []
  for i in range(count):
    family = families[(step * count + i) % len(families)]
    out += socialworld.generate(family, split, seed, n=1, start=step * count + i)
  return out
