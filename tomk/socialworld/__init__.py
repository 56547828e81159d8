"""SocialWorld: seeded text worlds whose hidden mental states and rewards are known.

SPEC §5. Every family is drawn with one call,

  generate(family, split='train', seed=0, n=1000, start=0, **options)

where split is 'train' or 'test' (training vocabulary) or 'heldout' (names, rooms,
containers, objects and items never seen in training), and example i depends only
on (family, split, seed, i). Families:

  'story'              false-belief stories, orders 0-4 (stories.py; options:
                       story_weights, question_weights, tom_fraction, ...)
  'preference_story'   tastes acted out or told, then a choice (preferences.py)
  scenario families    conversations with ground-truth partner reward (scenarios.py)
  'rater'              preference pairs from an isolated-response rater (rater.py)
"""
from tomk.socialworld import preferences
from tomk.socialworld import rater
from tomk.socialworld import scenarios
from tomk.socialworld import stories
from tomk.socialworld import vocab

FAMILIES = ('story', 'preference_story') + scenarios.FAMILIES + ('rater',)
SPLITS = vocab.SPLITS


def generate(family: str, split: str = 'train', seed: int = 0, n: int = 1000,
             start: int = 0, **options) -> list[dict]:
  """n examples of `family`; see the module docstring."""
  if family == 'story':
    return stories.generate(split, seed, n, start, **options)
  if family == 'preference_story':
    return preferences.generate(split, seed, n, start, **options)
  if family == 'rater':
    return rater.generate(split, seed, n, start, **options)
  if family in scenarios.FAMILIES:
    return scenarios.generate(family, split, seed, n, start, **options)
  raise ValueError(f'Unknown SocialWorld family {family!r}; use one of {FAMILIES}.')
