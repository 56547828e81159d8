"""False-belief stories in the ToMi world model (SPEC §5; Le et al. 2019; Hi-ToM).

The world: one room, a few containers, objects inside them, and agents who enter,
exit and move objects. The rule that makes beliefs:

  An agent observes an event only while present in the room, and everyone present
  sees who else is present. So a chain of agents (A, B, …) - "A thinks B thinks … the
  object is at L" - holds the object's location at the last placement or move that
  *all* agents of the chain witnessed together. An absent agent keeps its stale
  belief; an agent who re-enters sees nobody's past moves (containers are closed).

This is paper 001's stage 3 "early perspective-taking" (§2.3.3) in miniature: what an
agent can perceive from where it is decides what it believes. Orders 1-2 are ToMi's
questions; orders 3-4 are Hi-ToM-style stress tests.

Events are tuples: ('enter', agent), ('exit', agent), ('place', object, container),
('move', agent, object, from, to) and the distractor ('chat', agent, phrase index);
distractors also move a second object and let a latecomer come and go, which changes
no belief about the queried object.

Each story moves the queried object exactly once, from its first container to a
second, so every question has two candidates, the first and the second container,
and chance is 50 %. A question is `tom` when its answer differs from where the object
really is, i.e. when answering it needs a false belief (orders ≥ 1 only).

SPEC §5 "Balance what is hard": ToMi's natural mix holds few first-order false-belief
questions, and a small LM learns a heuristic that ignores them. `generate` takes
weights over story types and question types and a `tom_fraction` so that a config can
balance them (see NATURAL and BALANCED).
"""
from __future__ import annotations

import itertools

from tomk.data.conversation import Conversation
from tomk.socialworld import vocab as vocab_lib

STORY_TYPES = ('true_belief', 'false_belief', 'second_order_false_belief')
QUESTION_TYPES = ('memory', 'reality', 'first_order', 'second_order', 'third_order',
                  'fourth_order')
ORDER = {'memory': 0, 'reality': 0, 'first_order': 1, 'second_order': 2,
         'third_order': 3, 'fourth_order': 4}

# ToMi's four question types, every story type and question equally likely: about 7 %
# of questions are first-order false-belief ones (printed by the tests), as in ToMi.
NATURAL = dict(
    story_weights={t: 1.0 for t in STORY_TYPES},
    question_weights={'memory': 1.0, 'reality': 1.0, 'first_order': 1.0,
                      'second_order': 1.0},
    tom_fraction=None)
# Balanced by question type, and half of all belief questions need a false belief.
BALANCED = dict(
    story_weights={t: 1.0 for t in STORY_TYPES},
    question_weights={'memory': 1.0, 'reality': 1.0, 'first_order': 1.0,
                      'second_order': 1.0},
    tom_fraction=0.5)
# Hi-ToM-style stress test: higher orders, half of them tom.
HIGHER_ORDER = dict(
    story_weights={t: 1.0 for t in STORY_TYPES},
    question_weights={'third_order': 1.0, 'fourth_order': 1.0},
    tom_fraction=0.5)

# Things agents do that change nobody's beliefs: they see nothing inside containers.
_CHATTER = ('{} sat down for a moment.', '{} hummed a tune.', '{} checked the clock.',
            '{} opened the window.', '{} stretched.', '{} sneezed.')

# The questions of ToMi; `more_questions` asks each of them about every story.
_MORE_QUESTIONS = ('memory', 'reality', 'first_order', 'second_order')

_MAX_TRIES = 30       # stories redrawn until one holds a question of the wanted label
_CHAINS: dict = {}    # (number of agents, order) -> index tuples, built on first use


def _chain_indices(n_agents: int, order: int) -> tuple:
  """Index tuples of length `order` over n agents, no agent twice in a row."""
  key = (n_agents, order)
  if key not in _CHAINS:
    _CHAINS[key] = tuple(c for c in itertools.product(range(n_agents), repeat=order)
                         if all(c[i] != c[i + 1] for i in range(order - 1)))
  return _CHAINS[key]


def _plot(rng, story_type, a, b, obj, c1, c2):
  """The events that make the story type; a = protagonist, b = the other main agent."""
  move = ('move', b, obj, c1, c2)
  if story_type == 'true_belief':
    # a sees the move; exits before or after it do not matter (defeats "who exited").
    variant = vocab_lib.below(rng, 3)
    if variant == 0:
      return [move]
    if variant == 1:
      return [move, ('exit', a)]
    return [('exit', a), ('enter', a), move]
  if story_type == 'false_belief':
    # a misses the move; sometimes comes back (defeats "who is in the room at the end").
    plot = [('exit', a), move]
    if rng.random() < 0.5:
      plot.append(('enter', a))
    return plot
  if story_type == 'second_order_false_belief':
    # a moves the object while b is out, then leaves; b returns none the wiser: a knows
    # the truth but b thinks a thinks it never moved.
    return [('exit', b), ('move', a, obj, c1, c2), ('exit', a), ('enter', b)]
  raise ValueError(f'Unknown story type {story_type!r}; use one of {STORY_TYPES}.')


def _story(rng, vocab, story_type, max_observers, distractor_rate):
  """(events, belief records, agents at the placement, room, obj, c1, c2)."""
  n_observers = vocab_lib.below(rng, max_observers + 1)
  names = vocab_lib.sample(rng, vocab.names, 3 + n_observers)
  a, b, latecomer, observers = names[0], names[1], names[2], names[3:]
  room = vocab_lib.choice(rng, vocab.rooms)
  c1, c2, c3 = vocab_lib.sample(rng, vocab.containers, 3)
  obj, obj2 = vocab_lib.sample(rng, vocab.objects, 2)
  plot = _plot(rng, story_type, a, b, obj, c1, c2)
  move_at = next(i for i, e in enumerate(plot) if e[0] == 'move')

  # Each observer may leave once (and maybe come back); in a true-belief story only
  # after the move, so that every witness of the placement also sees the move.
  leave, back = {}, {}
  first_gap = move_at + 1 if story_type == 'true_belief' else 0
  for o in observers:
    if rng.random() < 0.6:
      leave[o] = first_gap + vocab_lib.below(rng, len(plot) + 1 - first_gap)
      if rng.random() < 0.3:
        back[o] = leave[o] + vocab_lib.below(rng, len(plot) + 1 - leave[o])

  opening = [a, b] + observers
  vocab_lib.shuffle(rng, opening)
  events = [('enter', x) for x in opening]
  present = set(opening)
  obj2_at = None    # the distractor object stays out of the story until placed
  if rng.random() < distractor_rate:
    obj2_at = vocab_lib.choice(rng, (c1, c2, c3))
    events.append(('place', obj2, obj2_at))
  events.append(('place', obj, c1))
  records = [(frozenset(present), c1)]   # (who witnessed, where the object went)

  for gap in range(len(plot) + 1):
    for o in observers:
      if leave.get(o) == gap:
        events.append(('exit', o))
        present.discard(o)
      if back.get(o) == gap:
        events.append(('enter', o))
        present.add(o)
    if rng.random() < distractor_rate:
      event = _distractor(rng, present, latecomer, obj2, obj2_at, (c1, c2, c3))
      events.append(event)
      if event[0] in ('place', 'move'):
        obj2_at = event[-1]
      _update_presence(event, present)
    if gap < len(plot):
      event = plot[gap]
      events.append(event)
      if event[0] == 'move':
        records.append((frozenset(present), event[4]))
      _update_presence(event, present)
  return events, records, (a, b) + tuple(observers), room, obj, c1, c2


def _update_presence(event, present: set):
  if event[0] == 'enter':
    present.add(event[1])
  elif event[0] == 'exit':
    present.discard(event[1])


def _distractor(rng, present, latecomer, obj2, obj2_at, containers):
  """An event that leaves every belief about the queried object unchanged."""
  kind = vocab_lib.below(rng, 3)
  if kind == 0 or not present:
    return ('exit', latecomer) if latecomer in present else ('enter', latecomer)
  if kind == 1:
    if obj2_at is None:
      return ('place', obj2, vocab_lib.choice(rng, containers))
    return ('move', vocab_lib.choice(rng, sorted(present)), obj2, obj2_at,
            vocab_lib.choice(rng, [c for c in containers if c != obj2_at]))
  chatter = vocab_lib.below(rng, len(_CHATTER))
  return ('chat', vocab_lib.choice(rng, sorted(present)), chatter)


def _belief(records, chain):
  for witnesses, where in reversed(records):
    if witnesses.issuperset(chain):
      return where
  raise AssertionError(f'{chain} never saw the object together')  # all see placement


def _draw_chain(rng, records, agents, order, reality, want_tom):
  """A uniformly drawn chain of `order` agents whose label is want_tom, or None."""
  chains = _chain_indices(len(agents), order)
  for _ in range(8):   # rejection sampling: uniform over the chains that qualify
    chain = tuple(agents[i] for i in vocab_lib.choice(rng, chains))
    if want_tom is None or (_belief(records, chain) != reality) == want_tom:
      return chain
  named = [tuple(agents[i] for i in c) for c in chains]
  named = [c for c in named if (_belief(records, c) != reality) == want_tom]
  return vocab_lib.choice(rng, named) if named else None


def event_text(event, room: str) -> str:
  """One story line in ToMi's words; a move does not say where the object was."""
  kind = event[0]
  if kind == 'enter':
    return f'{event[1]} entered the {room}.'
  if kind == 'exit':
    return f'{event[1]} exited the {room}.'
  if kind == 'place':
    return f'The {event[1]} is in the {event[2]}.'
  if kind == 'move':
    return f'{event[1]} moved the {event[2]} to the {event[4]}.'
  return _CHATTER[event[2]].format(event[1])


def question_text(question_type: str, chain: tuple, obj: str) -> str:
  if question_type == 'memory':
    return f'Where was the {obj} at the beginning?'
  if question_type == 'reality':
    return f'Where is the {obj} really?'
  if len(chain) == 1:
    return f'Where will {chain[0]} look for the {obj}?'
  middle = ''.join(f'{x} thinks that ' for x in chain[1:-1])
  return f'Where does {chain[0]} think that {middle}{chain[-1]} looks for the {obj}?'


def _example(rng, vocab, index, split, seed, story_weights, question_weights, tom_fraction,
             max_observers, distractor_rate, more_questions, every_agent):
  question_type = vocab_lib.weighted(rng, question_weights)
  order = ORDER[question_type]
  want_tom = None
  if order and tom_fraction is not None:
    want_tom = rng.random() < tom_fraction
  weights = story_weights
  if want_tom:   # nobody holds a false belief in a true-belief story
    weights = {t: w for t, w in story_weights.items() if t != 'true_belief'} or weights
  for _ in range(_MAX_TRIES):
    story_type = vocab_lib.weighted(rng, weights)
    events, records, agents, room, obj, c1, c2 = _story(
        rng, vocab, story_type, max_observers, distractor_rate)
    if not order:
      chain, answer = (), (c1 if question_type == 'memory' else c2)
      break
    chain = _draw_chain(rng, records, agents, order, c2, want_tom)
    if chain:
      answer = _belief(records, chain)
      break
  else:
    raise ValueError(f'No {question_type} question with tom={want_tom} in '
                     f'{_MAX_TRIES} stories of types {list(weights)}; give weight to '
                     'false_belief stories or raise max_observers.')
  candidates = [c1, c2]
  vocab_lib.shuffle(rng, candidates)
  more = []
  for other in (_MORE_QUESTIONS if more_questions else ()):
    if other == question_type:
      continue
    other_chain = () if not ORDER[other] else _draw_chain(rng, records, agents, ORDER[other],
                                                         c2, None)
    other_answer = {'memory': c1, 'reality': c2}.get(other) or _belief(records, other_chain)
    more.append({'question': question_text(other, other_chain, obj), 'answer': other_answer,
                 'question_type': other, 'chain': other_chain})
  if every_agent:
    asked = {q['chain'] for q in more if q['question_type'] == 'first_order'}
    asked |= {chain} if question_type == 'first_order' else set()
    more += [{'question': question_text('first_order', (x,), obj),
              'answer': _belief(records, (x,)), 'question_type': 'first_order', 'chain': (x,)}
             for x in agents if (x,) not in asked]
  vocab_lib.shuffle(rng, more)
  return {
      'id': f'story-{split}-{seed}-{index}',
      'family': 'story',
      'story': [event_text(e, room) for e in events],
      'question': question_text(question_type, chain, obj),
      'answer': answer,
      'candidates': candidates,
      'story_type': story_type,
      'question_type': question_type,
      'order': order,
      'chain': chain,
      'tom': bool(order) and answer != c2,
      'object': obj,
      'room': room,
      'events': events,
      'more': more,
  }


def generate(split: str = 'train', seed: int = 0, n: int = 1000, start: int = 0,
             story_weights: dict | None = None, question_weights: dict | None = None,
             tom_fraction: float | None = None, max_observers: int = 2,
             distractor_rate: float = 0.3, more_questions: bool = True,
             every_agent: bool = False) -> list[dict]:
  """n false-belief story examples; see the module docstring and NATURAL / BALANCED.

  Args:
    split: 'train' or 'test' (train vocabulary) or 'heldout' (held-out vocabulary).
    seed, start: example i depends only on (split, seed, i); start..start+n-1 drawn.
    story_weights: {story type: weight}; default uniform.
    question_weights: {question type: weight}; default ToMi's four, uniform.
    tom_fraction: None draws questions as they come; a number makes that share of
      belief questions (orders ≥ 1) need a false belief.
    max_observers: extra agents who witness the placement and may leave at any time.
    distractor_rate: chance of a distractor event in each gap of the plot.
    more_questions: also ask ToMi's other question types about the same story ('more',
      in random order after the drawn question; they follow the natural mix, not the
      weights). Training text answers them all: several answers a story.
    every_agent: also ask where each agent who saw the object placed will look for it
      (a first-order question per agent, in 'more'): within one story the answer then
      turns on who saw the move, which no story-level shortcut can tell.
  """
  story_weights = story_weights or NATURAL['story_weights']
  question_weights = question_weights or NATURAL['question_weights']
  for name, weights, known in (('story_weights', story_weights, STORY_TYPES),
                               ('question_weights', question_weights, QUESTION_TYPES)):
    unknown = set(weights) - set(known)
    if unknown:
      raise ValueError(f'{name} has unknown keys {sorted(unknown)}; use {known}.')
    if not sum(weights.values()) > 0 or min(weights.values()) < 0:
      raise ValueError(f'{name} must be non-negative with a positive sum, got {weights}.')

  def make(rng, vocab, index):
    return _example(rng, vocab, index, split, seed, story_weights, question_weights,
                    tom_fraction, max_observers, distractor_rate, more_questions, every_agent)
  return vocab_lib.seeded_examples(make, 'story', split, seed, n, start)


# -- Text for the LM ---------------------------------------------------------------

def prompt(example: dict) -> str:
  """The story and question, up to the answer: the text a candidate is scored after.

  The story is one paragraph. Its lines once stood on lines of their own, and a name
  opening a line then came without the word-start mark '▁' that SentencePiece gives a
  word after a space: 'Priya' in the story was one piece, in the question ' P' 'riya'
  (measured), so the model had to learn that the two were one person before it could
  ask what that person saw. Every sentence now opens with a space, the first too, so a
  name has the same pieces everywhere, unseen held-out names included.
  """
  return ''.join(' ' + line for line in example['story']) + f'\nQ: {example["question"]} A:'


def continuation(example: dict, candidate: str | None = None) -> str:
  """' ' + the candidate container (default: the right answer)."""
  return ' ' + (example['answer'] if candidate is None else candidate)


def pieces(example: dict) -> list[str]:
  """text() cut around each answer: story and questions at even places, answers at odd.

  The pieces encode to the same tokens as the whole text (an answer starts at a space),
  so a pipeline can tell an answer's tokens apart (data.answer_weight).
  """
  out = [prompt(example), continuation(example)]
  for q in example.get('more', ()):
    out += [f'\nQ: {q["question"]} A:', ' ' + q['answer']]
  return out


def text(example: dict) -> str:
  """The whole example as plain LM text: the story, then each question and its answer.

  The drawn question comes first, so an evaluation prompt (story, one question) is a
  prefix of the training text; the story's other questions ('more') follow.
  """
  return ''.join(pieces(example))


def conversation(example: dict, model_name: str = vocab_lib.MODEL_NAME,
                 narrator: str = 'Narrator', with_answer: bool = True) -> Conversation:
  """The narrator tells the story and asks; the model (perspective owner) answers."""
  turns = [(narrator, ' '.join(example['story']) + ' ' + example['question'])]
  if with_answer:
    turns.append((model_name, example['answer']))
  return Conversation.of(turns, perspective=model_name, id=example['id'])
