"""Preference pairs from an isolated-response rater, for the RLHF reward model (SPEC §5).

Real raters see a response in isolation: they cannot know what this partner wants,
so they reward what they can see - politeness, fluency, staying on topic. This rater
does the same and never looks at hidden state. A reward model trained on its pairs
is the extrinsic reward of the `rlhf` baseline; that it ignores the partner's real
wants (the content of a pair is drawn independently of its style) is the gap the
kindness algorithms are measured against.

Each pair also records both responses' true partner rewards, for analysis only (how
often does the rater agree with the partner?); a reward-model builder must drop them.
"""
from __future__ import annotations

import functools
import re

from tomk.data.conversation import prompt_for
from tomk.socialworld import scenarios
from tomk.socialworld import vocab as vocab_lib

# Scenario families whose prompts the rater sees.
FAMILIES = scenarios.FAMILIES

_POLITE = re.compile(r'\b(?:please|thank|thanks|of course|happy to|glad|hope|enjoy|'
                     r'sure|let me know)\b', re.I)
_RUDE = re.compile(r'\b(?:whatever|ugh|go away|stop bothering|not my problem|'
                   r'get it yourself|annoying)\b', re.I)
_WORD = re.compile(r"[a-z']+")
_STOP = frozenset('the a an and or is are am i you me my your it of to in on for '
                  'with at be can could do did some there here this that we have '
                  'not no so now what sam'.split())

_STYLES = {
    'polite': ('Of course! {Core}. I hope that helps.',
               'Happy to help. {Core}. Thank you for asking!',
               'Sure thing, {core}. Let me know if you need anything else.'),
    'plain': ('{Core}.', 'Okay. {Core}.'),
    'rude': ('Whatever. {Core}. Stop bothering me.', 'Ugh, fine. {Core}. Go away.'),
    'disfluent': ('{core} {core}', 'um {core} um'),
    'off_topic': ('Did you see the match last night?', 'I think it might rain later.',
                  'My cousin is learning to play the drums.'),
}
STYLES = tuple(_STYLES)


def score(prompt: str, response: str) -> float:
  """The rater's score: polite, fluent and on topic is high. No hidden state."""
  value = min(2, len(_POLITE.findall(response))) - 2 * min(2, len(_RUDE.findall(response)))
  words = _WORD.findall(response.lower())
  value += 1.0 if response[:1].isupper() else -1.0
  value += 0.5 if response.rstrip()[-1:] in '.!?' else -0.5
  value -= sum(a == b for a, b in zip(words, words[1:]))   # stutters: "the the"
  if len(words) > 1 and len(set(words)) < 0.7 * len(words):
    value -= 1.0                                            # says things twice
  value += 1.0 if _topic(prompt) & (set(words) - _STOP) else 0.0
  return float(value)


@functools.lru_cache(maxsize=256)   # a pair scores several responses to one prompt
def _topic(prompt: str) -> frozenset:
  return frozenset(_WORD.findall(prompt.lower())) - _STOP


def _cores(example: dict) -> list[str]:
  """What a response can do in this scene, before style: offer, inform or refuse."""
  hidden = example['hidden']
  if hidden['kind'] == 'location':
    cores = [f'your {hidden["object"]} is in the {c}' for c in hidden['containers']]
  else:
    cores = [f'here is some {x}' for x in hidden['options']]
  return cores + ['I cannot help with that right now']


def _styled(rng, style: str, core: str) -> str:
  template = vocab_lib.choice(rng, _STYLES[style])
  return template.format(core=core, Core=core[:1].upper() + core[1:])


def _pair(rng, vocab, index, split, seed, noise, model_name):
  family = vocab_lib.choice(rng, FAMILIES)
  example = scenarios.make_example(rng, vocab, index, family, split, seed, model_name)
  prompt = prompt_for(example['conversation'])
  cores = _cores(example)
  while True:   # two responses the rater can tell apart; content drawn blind to style
    first = _styled(rng, vocab_lib.choice(rng, STYLES), vocab_lib.choice(rng, cores))
    second = _styled(rng, vocab_lib.choice(rng, STYLES), vocab_lib.choice(rng, cores))
    first_score, second_score = score(prompt, first), score(prompt, second)
    if first_score != second_score:
      break
  if (first_score < second_score) != (rng.random() < noise):
    first, second, first_score, second_score = second, first, second_score, first_score
  reward = example['partner_reward']
  return {
      'id': f'rater-{split}-{seed}-{index}',
      'family': 'rater',
      'scenario': family,
      'prompt': prompt,
      'chosen': first,
      'rejected': second,
      'chosen_score': first_score,
      'rejected_score': second_score,
      # Analysis only, never a training signal:
      'chosen_partner_reward': reward(first),
      'rejected_partner_reward': reward(second),
  }


def generate(split: str = 'train', seed: int = 0, n: int = 1000, start: int = 0,
             noise: float = 0.0, model_name: str = vocab_lib.MODEL_NAME) -> list[dict]:
  """n preference pairs {prompt, chosen, rejected, ...} over all scenario families.

  prompt is the scenario rendered from the model's perspective up to its turn
  (conversation.prompt_for); chosen/rejected are response texts to append to it.
  noise: the chance that the rater's choice is flipped (raters disagree).
  """
  def make(rng, vocab, index):
    return _pair(rng, vocab, index, split, seed, noise, model_name)
  return vocab_lib.seeded_examples(make, 'rater', split, seed, n, start)
