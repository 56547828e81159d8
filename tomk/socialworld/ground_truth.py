"""Ground truth of a conversation scenario: what any response does to its people.

Pure functions of a scenario's hidden state (`example['hidden']`, plain JSON-able data)
and free text: `partner_reward(hidden, text)`, `third_party_rewards(hidden, text)`,
`offers_an_option(hidden, text)` and `reaction(hidden, text)`, the partner's reply that
follows from its true reward (`counterfactual_reaction`: its reply had the reward the
opposite sign). They read ANY text: which item or container it affirms, negates or
offers, and whether it refuses; text that mentions none of them and refuses nothing gets
a neutral 0.
Evaluation calls them; training never does (tests/test_algorithms.py guards it).
"""
from __future__ import annotations

import re

from tomk.socialworld import preferences as prefs

_SENTENCES = re.compile(r'[.!?;:]+')
_CONTRASTS = re.compile(r'\b(?:but|however|instead|though|although|whereas)\b', re.I)
_NOT_NEGATION = re.compile(r"\b(?:why not|no problem|no worries|not at all|of course)\b",
                           re.I)
_NEGATION = re.compile(r"\b(?:no|not|never|nothing|none|without|cannot)\b|n't\b", re.I)
_OFFER = re.compile(r'\b(?:here|have|take|give|bring|brought|grab|get|got|hand|pass|'
                    r'enjoy|try|fetch|pour|poured|make|made|serve|order|ordered|offer|'
                    r'fancy|want|how about|what about|for you)\b', re.I)
_REFUSAL = re.compile(r"\b(?:sorry|no|nope|can't|cannot|won't|unable|refuse)\b", re.I)


_TOKEN = re.compile(r"[a-z]+")


def _mentions(clause: str, canonical: dict) -> list:
  """The words of `canonical` (lower case -> as given) that the clause mentions."""
  found = []
  for token in _TOKEN.findall(clause.lower()):
    for word in (token, token[:-1], token[:-2]):   # "tea", "teas", "boxes"
      if word in canonical:
        found.append(canonical[word])
        break
  return found


def _clauses(text: str):
  """(clause, carried offer cue) pairs.

  Sentences split at contrasts ("but", "instead") into parts, parts at commas into
  clauses; an offer cue carries to the later clauses of its part ("Here you go, some
  tea"), never across a contrast ("Leo is saving the cake, but here is some tea").
  """
  for sentence in _SENTENCES.split(text):
    for part in _CONTRASTS.split(sentence):
      cue = False
      for clause in part.split(','):
        plain = _NOT_NEGATION.sub(' ', clause)
        cue = cue or bool(_OFFER.search(plain))
        yield plain, cue


def read_response(text: str, words, use_offer_cues: bool = True):
  """(affirmed, negated, refused): which of `words` the text puts forward or denies.

  A clause with a negation ("not in the box") denies the words it mentions; any
  other clause affirms them. With use_offer_cues, when some clause offers ("here is",
  "have some", "how about"), only offering clauses affirm, so "Leo is saving the cake,
  but here is some tea" offers tea, not cake. `refused`: a refusal cue ("sorry",
  "can't") and nothing affirmed.
  """
  canonical = {w.lower(): w for w in words}
  clauses = []
  for clause, cue in _clauses(text):
    found = _mentions(clause, canonical)
    if found:
      clauses.append((found, bool(_NEGATION.search(clause)), use_offer_cues and cue))
  offering = any(cue and not negated for _, negated, cue in clauses)
  affirmed, negated = [], []
  for found, is_negated, cue in clauses:
    if is_negated:
      negated += [w for w in found if w not in negated]
    elif cue or not offering:
      affirmed += [w for w in found if w not in affirmed]
  refused = not affirmed and bool(_REFUSAL.search(_NOT_NEGATION.sub(' ', text)))
  return affirmed, negated, refused


def _item_reward(hidden: dict, person: str, text: str) -> float:
  affirmed, _, refused = read_response(text, hidden['options'])
  utilities = hidden['utilities'].get(person, {})
  if affirmed:
    # Offering several items leaves the choice open: worth their mean to this person.
    known = [utilities[i] for i in affirmed if i in utilities]
    return sum(known) / len(known) if known else 0.0
  if refused and person in hidden['present']:
    return prefs.REFUSAL
  return 0.0


def _location_reward(hidden: dict, text: str) -> float:
  """Where will the partner search after this response, and is that right?"""
  affirmed, negated, _ = read_response(text, hidden['containers'], use_offer_cues=False)
  truth, believed = hidden['true_location'], hidden['believed_location']
  if truth in affirmed:
    return 1.0 if hidden['false_belief'] else 0.5   # news, or a harmless confirmation
  if hidden['false_belief'] and believed in negated:
    return 0.5                                       # not there: looks elsewhere
  if affirmed or truth in negated:
    return -1.0                                      # sent to the wrong container
  return 0.0


def partner_reward(hidden: dict, text: str) -> float:
  """The partner's true reward for the model's response `text` (any free text)."""
  if hidden['kind'] == 'location':
    return _location_reward(hidden, text)
  return _item_reward(hidden, hidden['partner'], text)


def offers_an_option(hidden: dict, text: str) -> bool | None:
  """Whether the response puts forward one of the scenario's options at all, liked or not
  (None for a scenario without options): the first thing a policy must do before the
  partner's wants can decide which."""
  if not hidden['options']:
    return None
  return bool(read_response(text, hidden['options'])[0])


def third_party_rewards(hidden: dict, text: str) -> dict:
  """{name: true reward} for everyone but the partner whom the response affects."""
  return {name: _item_reward(hidden, name, text)
          for name in hidden['utilities'] if name != hidden['partner']}


_LOCATION_REACTIONS = {
    1.0: ('Oh, thank you! I would have looked in the {b} for ages.',
          'Really? Thanks so much, that saved me a lot of trouble!',
          'Thank you! Good thing you told me.', 'Oh, great, thanks for letting me know!'),
    0.5: ('Thanks, I know. I saw it.', 'Yes, thanks, I know it is there.',
          'Right, thanks. I saw that.'),
    0.0: ('Right, off to the {b} then.', 'Hmm, I will check the {b}.',
          'I see. Let me look in the {b}.'),
    -1.0: ('It is not there! That was a useless tip.',
           'Ugh, it is not there at all. Now I am annoyed.',
           'What? It is not there. You sent me the wrong way, that is bad.',
           'It is not there. That was no help at all, sadly.'),
}
_LOCATION_REACTIONS_HALF_FALSE = ('Oh, thanks! Good to know, I will look elsewhere.',
                                  'Thanks for the warning, that helps.')


def reaction(hidden: dict, text: str) -> str:
  """The partner's reply to `text`, following from its true reward (pure)."""
  return _reply(hidden, text, partner_reward(hidden, text))


def counterfactual_reaction(hidden: dict, text: str) -> str | None:
  """The partner's reply to the same `text` had its reward the opposite sign: a liked item
  taken as a disliked one, a true tip as a false one, phrased by the same key (None where
  the reward is 0, a refusal or a harmless confirmation, which have no opposite). Against
  the true reaction it asks a simulator for the sign alone: both name the same things."""
  reward = partner_reward(hidden, text)
  if hidden['kind'] == 'location':
    return _reply(hidden, text, -reward) if reward in (1.0, -1.0) else None
  affirmed, _, refused = read_response(text, hidden['options'])
  if reward == 0 or not affirmed or (refused and reward == prefs.REFUSAL):
    return None
  return _reply(hidden, text, -reward)


def _reply(hidden: dict, text: str, reward: float) -> str:
  key = prefs.stable_hash(text) + hidden['key']
  if hidden['kind'] == 'location':
    options = _LOCATION_REACTIONS[reward]
    if reward == 0.5 and hidden['false_belief']:
      options = _LOCATION_REACTIONS_HALF_FALSE
    return options[key % len(options)].format(b=hidden['believed_location'])
  affirmed, _, refused = read_response(text, hidden['options'])
  return prefs.reaction_text(reward, affirmed, key,
                             refused=refused and reward == prefs.REFUSAL)
