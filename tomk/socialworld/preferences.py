"""Agents with hidden preferences, revealed only indirectly (SPEC §5).

An agent's utilities over items are hidden state: they decide how it reacts, but
training text only ever shows them the way people show them - said earlier in a
conversation ("I can't stand coffee") or acted out ("Ava picked the tea over the
coffee"). Paper 001 stage 5b (§2.3.5): others have distinct desires, and predicting
them means reading them off what others say and do.

Reactions: `reaction_text` turns a true reward into what the agent says next, with
varied phrasings whose sentiment VADER reads with the reward's sign (tested), so a
simulated partner's reply carries its true reward the way a person's would.

This module also makes the 'preference_story' family: short stories that act out two
agents' opposite tastes, then ask which of two items one of them will pick.
"""
from __future__ import annotations

import zlib

from tomk.socialworld import vocab as vocab_lib

LOVE, LIKE, NEUTRAL, DISLIKE, HATE = 1.0, 0.5, 0.0, -0.5, -1.0
REFUSAL = -0.25     # asked for something and got nothing: a small letdown


def _cap(s: str) -> str:
  return s[:1].upper() + s[1:]


# -- Revealing utilities -------------------------------------------------------------

_SAY = {   # first person, said in conversation
    LOVE: ('I love {x}.', '{X} is my favourite.', 'I could have {x} every day.',
           'Nothing beats {x} for me.'),
    LIKE: ('I quite like {x}.', '{X} is nice.', 'I am happy with {x}.'),
    NEUTRAL: ('I can take or leave {x}.', '{X} is alright, I suppose.'),
    DISLIKE: ('I am not keen on {x}.', '{X} is not really my thing.'),
    HATE: ('I can\'t stand {x}.', 'Honestly, I hate {x}.', '{X}? Never for me, please.'),
}
_TELL = {  # third person, told in a story
    LOVE: ('{n} loves {x}.', '{n} says {x} is the best.'),
    LIKE: ('{n} likes {x}.',),
    NEUTRAL: ('{n} does not care about {x}.',),
    DISLIKE: ('{n} is not keen on {x}.',),
    HATE: ('{n} hates {x}.', '{n} can\'t stand {x}.'),
}
_ACT = ('{n} picked the {x} over the {y}.', '{n} passed on the {y} and took the {x}.',
        'Offered the {y} or the {x}, {n} chose the {x}.', '{n} pushed the {y} away and '
        'took the {x}.')


def say(rng, item: str, utility: float) -> str:
  """The agent states its utility for `item` in its own words."""
  return _cap(vocab_lib.choice(rng, _SAY[utility]).format(x=item, X=_cap(item)))


def tell(rng, name: str, item: str, utility: float) -> str:
  """A narrator states `name`'s utility for `item`."""
  return vocab_lib.choice(rng, _TELL[utility]).format(n=name, x=item)


def act(rng, name: str, better: str, worse: str) -> str:
  """`name` is seen choosing `better` over `worse`: a preference acted out."""
  return vocab_lib.choice(rng, _ACT).format(n=name, x=better, y=worse)


# -- Reactions that follow from the true reward --------------------------------------

_REACT = {
    'love': ('Oh, {x}! I love it, thank you so much!', '{X}, perfect! You\'re the best, '
             'thanks!', 'Yes, {x} is exactly what I wanted. Thank you!',
             'Wonderful, {x}! That made my day.', 'Ah, {x}, my favourite! Thanks a lot!'),
    'like': ('Thanks, {x} is nice.', 'Oh, {x}. That\'s good, thank you.',
             '{X} works for me, thanks.', 'Nice, I like {x}. Thanks!'),
    'neutral': ('Hmm, I see.', 'Oh, {x}. I see.', 'Hmm, {x}.', 'Right.',
                'Hmm, let me think about it.'),
    'refusal': ('Oh. That\'s a shame.', 'Oh well, that\'s disappointing.',
                'Hmm, too bad. I was really hoping for something.', 'Oh. That\'s a pity.'),
    'dislike': ('Hmm, {x}? That\'s a bit disappointing.', '{X}? Not great, I\'m afraid.',
                'Oh, {x}. I\'m not fond of it, sorry.', 'Oh, {x}. Meh, I dislike it a bit.'),
    'hate': ('Ugh, {x}? I hate it. No thanks.', 'Oh no, I can\'t stand {x}. That\'s awful.',
             '{X}? Seriously? I really hate that stuff.', 'Yuck, {x}! That\'s the worst.'),
}


def reaction_kind(reward: float, refused: bool = False) -> str:
  if refused:
    return 'refusal'
  if reward > 0.6:
    return 'love'
  if reward > 0:
    return 'like'
  if reward == 0:
    return 'neutral'
  if reward >= -0.6:
    return 'dislike'
  return 'hate'


def reaction_text(reward: float, items: list[str], key: int, refused: bool = False) -> str:
  """What the agent says on receiving `items` worth `reward` to it.

  Pure: the phrasing is picked by `key` (a hash of the response), so the same
  response always gets the same reply.
  """
  options = _REACT[reaction_kind(reward, refused)]
  x = ' and '.join(items) if items else 'that'
  return _cap(options[key % len(options)].format(x=x, X=_cap(x)))


def stable_hash(text: str) -> int:
  """A hash that, unlike hash(), is the same in every process."""
  return zlib.crc32(text.encode())


# -- The 'preference_story' family ----------------------------------------------------

def _story_example(rng, vocab, index, split, seed):
  category = vocab_lib.choice(rng, tuple(vocab.items))
  top, mid, bottom = vocab_lib.sample(rng, vocab.items[category], 3)
  name, other = vocab_lib.sample(rng, vocab.names, 2)
  # The other agent's tastes run the opposite way, so "whoever was mentioned" fails.
  ranking = {name: (top, mid, bottom), other: (bottom, mid, top)}
  mode = vocab_lib.choice(rng, ('acted', 'acted', 'stated'))
  lines = []
  for agent, (best, middle, worst) in ranking.items():
    if mode == 'acted':
      lines += [act(rng, agent, best, middle), act(rng, agent, middle, worst)]
    else:
      lines += [tell(rng, agent, best, LOVE), tell(rng, agent, worst, HATE)]
  vocab_lib.shuffle(rng, lines)
  if mode == 'stated':
    pair, question_type = (top, bottom), 'stated'
  else:
    pair = vocab_lib.choice(rng, ((top, mid), (mid, bottom), (top, bottom)))
    question_type = 'transitive' if pair == (top, bottom) else 'direct'
  candidates = list(pair)
  vocab_lib.shuffle(rng, candidates)
  utilities = {top: LOVE, mid: NEUTRAL, bottom: HATE}
  return {
      'id': f'preference_story-{split}-{seed}-{index}',
      'family': 'preference_story',
      'story': lines,
      'question': f'{name} can have the {candidates[0]} or the {candidates[1]}. '
                  f'Which will {name} pick?',
      'answer': pair[0],
      'candidates': candidates,
      'question_type': question_type,
      'agent': name,
      'utilities': utilities,
  }


def generate(split: str = 'train', seed: int = 0, n: int = 1000,
             start: int = 0) -> list[dict]:
  """n 'preference_story' examples: tastes acted out or told, then a choice to predict.

  Fields as a false-belief story's (story, question, answer, candidates), plus
  question_type ('direct': the pair was acted out; 'transitive': only via the middle
  item; 'stated'), agent and its hidden utilities. Render with stories.prompt/text.
  """
  def make(rng, vocab, index):
    return _story_example(rng, vocab, index, split, seed)
  return vocab_lib.seeded_examples(make, 'preference_story', split, seed, n, start)
