"""The words of SocialWorld: names, rooms, containers, objects and items (SPEC §5).

Two disjoint vocabularies. TRAIN fills the 'train' and 'test' splits; HELDOUT fills
'heldout', so an evaluation can ask whether a skill transfers to agents, objects and
containers the model never saw in training (no held-out word occurs in training text).

Every word here is absent from VADER's lexicon (checked in the tests), so the sentiment
of a partner's reaction comes from the reaction's phrasing, never from a name like
"Joy" or an item like "honey".

Items are grouped by what a partner asks for ('drink', 'snack', 'meal'). The model's
own tastes, the 'self' preference profile that the self-similarity assumption of paper
003 (Eq. 2) projects onto others, are fixed per vocabulary: within each category the
items at even positions are the ones the model likes. dissimilar_partner scenarios
are built against this profile.
"""
from __future__ import annotations

import dataclasses
import gc
import random
import zlib

MODEL_NAME = 'Sam'   # default speaker name of the model; in neither vocabulary


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  names: tuple[str, ...]
  rooms: tuple[str, ...]
  containers: tuple[str, ...]
  objects: tuple[str, ...]
  items: dict          # category -> tuple of items (mass nouns: "some tea")

  @property
  def all_items(self) -> tuple[str, ...]:
    return tuple(i for group in self.items.values() for i in group)

  @property
  def self_likes(self) -> frozenset:
    """Items the model itself likes: the default 'self' profile (even positions)."""
    return frozenset(i for group in self.items.values() for i in group[::2])

  def self_utility(self, item: str) -> float:
    """The model's own utility for `item`: +1 liked, -1 disliked (odd positions)."""
    return 1.0 if item in self.self_likes else -1.0

  def words(self) -> tuple[str, ...]:
    """Every name, room, container, object and item, for leak checks."""
    return self.names + self.rooms + self.containers + self.objects + self.all_items


TRAIN = Vocabulary(
    names=('Leo', 'Ava', 'Noah', 'Emma', 'Liam', 'Olivia', 'Lucas', 'Zoe', 'Ethan',
           'Chloe', 'Owen', 'Nora', 'Jack', 'Lily', 'Ben', 'Ella', 'Max', 'Ruby',
           'Adam', 'Isla', 'Finn', 'Maya', 'Oscar', 'Amelia', 'Henry', 'Ivy', 'Luna',
           'Omar', 'Priya', 'Ravi', 'Sofia', 'Mateo', 'Hana', 'Kenji', 'Aisha', 'Yusuf',
           'Elena', 'Tomas', 'Ingrid', 'Lars', 'Chen', 'Fatima', 'Diego', 'Carmen',
           'Hugo', 'Clara', 'Felix', 'Anya', 'Eli', 'Aria', 'Leon', 'Nina', 'Jonah', 'Sara',
           'Theo', 'Alma', 'Kai', 'Rosa', 'Ari', 'Lena', 'Joel', 'Vera', 'Malik', 'Nadia',
           'Sean', 'Tara', 'Dev', 'Ines', 'Jude', 'Amir', 'Lea', 'Cole', 'Dina', 'Raj',
           'Mona', 'Vince', 'Tess', 'Ezio', 'Nils', 'Ayla', 'Boris', 'Cleo', 'Dario', 'Esme',
           'Farid', 'Gia', 'Hamid', 'Iris', 'Jasper', 'Kira', 'Lorenzo', 'Maren', 'Nico',
           'Oona', 'Pablo', 'Quinn', 'Rhea', 'Silas', 'Talia', 'Umar', 'Viggo', 'Wren',
           'Xavi', 'Yuki', 'Zora'),
    rooms=('kitchen', 'garden', 'hallway', 'bedroom', 'office', 'attic', 'basement',
           'lounge', 'bathroom', 'cellar', 'workshop', 'playroom'),
    containers=('basket', 'box', 'drawer', 'cupboard', 'suitcase', 'envelope',
                'bucket', 'crate', 'bag', 'bin', 'tub', 'barrel', 'bowl', 'carton', 'case',
                'closet', 'jug', 'kettle', 'pot', 'pail', 'purse', 'sack', 'cabinet',
                'canister', 'caddy', 'crib', 'hatbox', 'wardrobe', 'toolbox', 'tray', 'vase',
                'urn', 'pitcher', 'backpack', 'briefcase', 'basin', 'bottle', 'cooler',
                'freezer', 'fridge', 'oven', 'sink', 'bathtub', 'dresser', 'nightstand',
                'pantry'),
    objects=('apple', 'ball', 'book', 'scarf', 'wallet', 'hat', 'pen', 'spoon',
             'glove', 'cup', 'phone', 'lemon', 'carrot', 'sock', 'candle', 'torch',
             'kite', 'brush', 'comb', 'button', 'coin', 'key', 'ring', 'sticker', 'marker',
             'crayon', 'ruler', 'stapler', 'battery', 'bell', 'candy', 'feather', 'leaf',
             'shell', 'stone', 'whisk', 'ladle', 'fork', 'napkin', 'towel', 'pillow',
             'blanket', 'mitten', 'sandal', 'slipper', 'boot', 'belt', 'tie', 'badge',
             'magnet', 'puzzle', 'rattle', 'kazoo', 'paintbrush', 'teapot', 'lightbulb'),
    items={
        'drink': ('tea', 'coffee', 'cocoa', 'lemonade', 'juice', 'milk', 'soda',
                  'water'),
        'snack': ('chocolate', 'popcorn', 'toffee', 'granola', 'fudge', 'licorice',
                  'cheese', 'yogurt'),
        'meal': ('pizza', 'soup', 'pasta', 'curry', 'salad', 'sushi', 'rice',
                 'noodles', 'tacos', 'oatmeal'),
    })

HELDOUT = Vocabulary(
    names=('Ezra', 'Ottilie', 'Tariq', 'Sven', 'Greta', 'Otto', 'Mabel', 'Rufus',
           'Wanda', 'Bruno', 'Petra', 'Casimir', 'Yara', 'Zane', 'Ilse', 'Isidore'),
    rooms=('porch', 'study', 'garage', 'library', 'gym', 'studio'),
    containers=('chest', 'tin', 'hamper', 'locker', 'satchel', 'jar', 'trunk', 'pouch'),
    objects=('marble', 'compass', 'whistle', 'ribbon', 'thimble', 'pinecone', 'locket',
             'spanner'),
    items={
        'drink': ('kombucha', 'cider', 'matcha', 'chai'),
        'snack': ('nougat', 'halva', 'marzipan', 'pretzels'),
        'meal': ('paella', 'risotto', 'goulash', 'ramen', 'falafel', 'couscous'),
    })

SPLITS = ('train', 'test', 'heldout')


def vocabulary(split: str) -> Vocabulary:
  """The vocabulary a split draws from: TRAIN for 'train'/'test', HELDOUT for 'heldout'."""
  if split in ('train', 'test'):
    return TRAIN
  if split == 'heldout':
    return HELDOUT
  raise ValueError(f'Unknown SocialWorld split {split!r}; use one of {SPLITS}.')


# -- Seeded draws -----------------------------------------------------------------
# Seeding a random.Random costs ~10 µs, as much as building a whole story, so one
# generator is seeded per block of BLOCK examples rather than per example. Example i
# still depends only on (family, split, seed, i): generate(start=s, n=k) equals
# generate(n=s+k)[s:], which is what per-process sharding needs.
BLOCK = 64


def _block_rng(family: str, split: str, seed: int, block: int) -> random.Random:
  salt = zlib.crc32(f'{family}/{split}'.encode())   # stable across processes
  return random.Random((salt << 96) | ((seed & (2**48 - 1)) << 48) | block)


def seeded_examples(make_one, family: str, split: str, seed: int, n: int,
                    start: int = 0) -> list:
  """[make_one(rng, vocabulary(split), index) for index in start .. start+n-1]."""
  vocab = vocabulary(split)
  out = []
  index = start
  # Examples are many small dicts and lists without reference cycles; the cyclic
  # collector would rescan all of them again and again (a third of the time).
  collecting = gc.isenabled()
  gc.disable()
  try:
    while index < start + n:
      block = index // BLOCK
      rng = _block_rng(family, split, seed, block)
      for i in range(block * BLOCK, min((block + 1) * BLOCK, start + n)):
        example = make_one(rng, vocab, i)   # earlier ones in a block: drawn, dropped
        if i >= index:
          out.append(example)
      index = (block + 1) * BLOCK
  finally:
    if collecting:
      gc.enable()
  return out


# random.Random's choice/sample/shuffle/randrange are Python code around getrandbits
# and cost more than the rest of a story; these draw from the C-level random() only.

def below(rng: random.Random, n: int) -> int:
  """A uniform integer in [0, n)."""
  return int(rng.random() * n)


def choice(rng: random.Random, seq):
  return seq[int(rng.random() * len(seq))]


def sample(rng: random.Random, seq, k: int) -> list:
  """k distinct elements of seq (k much smaller than len(seq)), in random order."""
  n, picked = len(seq), []
  while len(picked) < k:
    i = int(rng.random() * n)
    if i not in picked:
      picked.append(i)
  return [seq[i] for i in picked]


def shuffle(rng: random.Random, items: list) -> None:
  for i in range(len(items) - 1, 0, -1):
    j = int(rng.random() * (i + 1))
    items[i], items[j] = items[j], items[i]


def weighted(rng: random.Random, weights: dict):
  """A key of `weights`, drawn in proportion to its value."""
  r = rng.random() * sum(weights.values())
  for key, w in weights.items():
    r -= w
    if r < 0:
      return key
  return key   # float round-off at the top end
