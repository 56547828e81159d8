"""SocialWorld false-belief stories, vocabularies, splits, determinism and speed.

Answers are checked against beliefs recomputed here from the event list by a
different route than the generator's: a mind is the list of events its owner
witnessed, and "A thinks B thinks ..." is B's mind inside A's mind.
"""
import collections
import json
import re
import time

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

import tomk.socialworld as sw
from tomk.data import conversation as conv
from tomk.socialworld import preferences
from tomk.socialworld import scenarios
from tomk.socialworld import stories
from tomk.socialworld import vocab


# -- An independent world model -------------------------------------------------------

def witnessed(events):
  """[(event, who was present)], checking that the world stays physically possible."""
  present, where, out = set(), {}, []
  for event in events:
    kind = event[0]
    if kind == 'enter':
      assert event[1] not in present, f'{event} while already inside'
      present.add(event[1])
    elif kind == 'exit':
      assert event[1] in present, f'{event} while outside'
      present.discard(event[1])
    elif kind == 'place':
      assert event[1] not in where, f'{event}: placed twice'
      where[event[1]] = event[2]
    elif kind == 'move':
      _, mover, obj, source, target = event
      assert mover in present, f'{mover} moved the {obj} from outside the room'
      assert where[obj] == source != target, f'{event} but the {obj} is in {where[obj]}'
      where[obj] = target
    else:
      assert kind == 'chat' and event[1] in present, event
    out.append((event, frozenset(present)))
  return out


def location_in(mind, obj):
  """Where the object is at the end of a list of witnessed events."""
  at = None
  for event, _ in mind:
    if event[0] == 'place' and event[1] == obj:
      at = event[2]
    elif event[0] == 'move' and event[2] == obj:
      at = event[4]
  return at


def belief(events, chain, obj):
  """Where chain[0] thinks chain[1] thinks ... the object is (chain () = reality)."""
  mind = witnessed(events)
  for agent in chain:
    # What `agent` saw, within what the outer minds saw: the events at which the
    # outer agents saw `agent` present.
    mind = [(e, present) for e, present in mind if agent in present]
  return location_in(mind, obj)


def first_location(events, obj):
  return next(e[2] for e in events if e[0] == 'place' and e[1] == obj)


# -- Stories --------------------------------------------------------------------------

MIXES = {'natural': stories.NATURAL, 'balanced': stories.BALANCED,
         'higher_order': stories.HIGHER_ORDER}


@pytest.mark.parametrize('mix', sorted(MIXES))
@pytest.mark.parametrize('seed', [0, 7, 123])
def test_story_answers_equal_recomputed_beliefs(mix, seed):
  for ex in stories.generate('train', seed, 400, **MIXES[mix]):
    events, obj = ex['events'], ex['object']
    reality = belief(events, (), obj)
    start = first_location(events, obj)
    if ex['question_type'] == 'memory':
      assert ex['answer'] == start, ex
    elif ex['question_type'] == 'reality':
      assert ex['answer'] == reality, ex
    else:
      assert len(ex['chain']) == ex['order'] == stories.ORDER[ex['question_type']]
      assert ex['answer'] == belief(events, ex['chain'], obj), ex
      for name in ex['chain']:
        assert name in ex['question']
    # tom iff answering needs a false belief: the answer is not where the object is.
    assert ex['tom'] == (ex['order'] > 0 and ex['answer'] != reality), ex
    assert sorted(ex['candidates']) == sorted({start, reality}), ex
    assert ex['answer'] in ex['candidates']
    assert ex['story'] == [stories.event_text(e, ex['room']) for e in events]
    # The story's other questions, answered in its training text, from the same events.
    assert sorted(q['question_type'] for q in ex['more']) == sorted(
        {'memory', 'reality', 'first_order', 'second_order'} - {ex['question_type']})
    for q in ex['more']:
      expected = {'memory': start, 'reality': reality}.get(q['question_type'])
      assert q['answer'] == (expected or belief(events, q['chain'], obj)), (q, ex)
      assert len(q['chain']) == stories.ORDER[q['question_type']]
      assert f'Q: {q["question"]} A: {q["answer"]}' in stories.text(ex)


def test_every_agent_adds_each_witness_of_the_placement_once_with_its_belief():
  every = stories.generate('train', 3, 200, every_agent=True, **stories.BALANCED)
  for ex in every:
    events, obj = ex['events'], ex['object']
    placed = next(p for e, p in witnessed(events) if e[:2] == ('place', obj))
    asked = [q['chain'] for q in ex['more'] if q['question_type'] == 'first_order']
    asked += [ex['chain']] if ex['question_type'] == 'first_order' else []
    assert sorted(asked) == sorted((x,) for x in placed), ex
    for q in ex['more']:
      if q['question_type'] == 'first_order':
        assert q['answer'] == belief(events, q['chain'], obj), (q, ex)
        assert f'Q: {q["question"]} A: {q["answer"]}' in stories.text(ex)
  # Within a story the answers turn on who saw the move: both kinds occur in one story.
  def answers(ex):
    return {q['answer'] for q in ex['more'] if q['question_type'] == 'first_order'}
  assert sum(len(answers(ex)) == 2 for ex in every) > 50


def test_story_types_mean_what_they_say():
  for ex in stories.generate('train', 3, 600, question_weights={'first_order': 1.0}):
    events, obj = ex['events'], ex['object']
    agents = [e[1] for e in events[:next(i for i, e in enumerate(events)
                                         if e[:2] == ('place', obj))] if e[0] == 'enter']
    reality = belief(events, (), obj)
    wrong = {a for a in agents if belief(events, (a,), obj) != reality}
    if ex['story_type'] == 'true_belief':
      assert not wrong, ex     # everyone who saw the placement saw the move
    else:
      assert wrong, ex         # somebody missed the move


def test_balance_by_question_type_and_tom():
  def share(examples):
    counts = collections.Counter((e['question_type'], e['tom']) for e in examples)
    return {k: v / len(examples) for k, v in counts.items()}
  natural = share(stories.generate('train', 1, 4000, **stories.NATURAL))
  balanced = share(stories.generate('train', 1, 4000, **stories.BALANCED))
  print(f'\nfirst-order false-belief share: natural {natural[("first_order", True)]:.3f}, '
        f'balanced {balanced[("first_order", True)]:.3f}')
  assert natural[('first_order', True)] < 0.1
  assert balanced[('first_order', True)] == pytest.approx(0.125, abs=0.025)
  assert balanced[('first_order', False)] == pytest.approx(0.125, abs=0.025)
  only = stories.generate('train', 2, 300, question_weights={'second_order': 1.0},
                          tom_fraction=1.0,
                          story_weights={'false_belief': 1.0})
  assert all(e['question_type'] == 'second_order' and e['tom'] for e in only)
  assert {e['story_type'] for e in only} == {'false_belief'}
  with pytest.raises(ValueError, match='question_weights'):
    stories.generate('train', 0, 1, question_weights={'third': 1.0})


def test_candidate_order_is_not_a_cue():
  examples = stories.generate('train', 4, 2000, **stories.BALANCED)
  first = sum(e['answer'] == e['candidates'][0] for e in examples) / len(examples)
  assert first == pytest.approx(0.5, abs=0.05)


def test_story_text_forms():
  ex = stories.generate('test', 0, 1)[0]
  assert stories.text(ex).startswith(stories.prompt(ex) + stories.continuation(ex) + '\nQ: ')
  alone = stories.generate('test', 0, 1, more_questions=False)[0]
  assert stories.text(alone) == stories.prompt(alone) + stories.continuation(alone)
  assert stories.prompt(ex).endswith(' A:')
  assert stories.continuation(ex, ex['candidates'][0]) == ' ' + ex['candidates'][0]
  c = stories.conversation(ex)
  assert c.turns[-1] == conv.Turn('Sam', ex['answer']) and c.perspective == 'Sam'
  assert conv.render(c).endswith(f'{conv.SELF} {ex["answer"]}{conv.EOT}')


def test_preference_story_answer_is_the_preferred_item():
  for ex in preferences.generate('train', 5, 500):
    u = ex['utilities']
    assert ex['answer'] == max(ex['candidates'], key=u.get)
    assert len(set(ex['candidates'])) == 2 and ex['agent'] in ex['question']


# -- Vocabularies and splits ----------------------------------------------------------

def test_vocabularies_are_disjoint_single_words_without_sentiment():
  lexicon = SentimentIntensityAnalyzer().lexicon
  train, heldout = set(vocab.TRAIN.words()), set(vocab.HELDOUT.words())
  assert not train & heldout
  for word in train | heldout:
    assert re.fullmatch(r'[A-Za-z]+', word), word   # scenarios.read_response needs it
    assert word.lower() not in lexicon, word
  assert vocab.MODEL_NAME not in train | heldout
  for v in (vocab.TRAIN, vocab.HELDOUT):
    for group in v.items.values():
      assert {i for i in group if v.self_utility(i) > 0} == set(group[::2])
  with pytest.raises(ValueError, match='split'):
    vocab.vocabulary('dev')


def _texts(ex) -> list[str]:
  """Every piece of text an example can put in front of a model."""
  if ex['family'] == 'rater':
    return [ex['prompt'], ex['chosen'], ex['rejected']]
  if 'conversation' in ex:
    out = [t.text for t in ex['conversation'].turns]
    out += [t.speaker for t in ex['conversation'].turns] + ex['candidates']
    return out + [ex['reaction'](c) for c in ex['candidates']]
  return ex['story'] + [ex['question'], ex['answer']] + ex['candidates']


def _words(v):
  return set(v.names + v.containers + v.objects + v.rooms + v.all_items)


def _pattern(words):
  return re.compile(r'\b(?:' + '|'.join(sorted(words)) + r')\b', re.I)


def test_no_heldout_word_in_training_text_and_vice_versa():
  heldout_words = _pattern(_words(vocab.HELDOUT))
  train_words = _pattern(_words(vocab.TRAIN))
  n = {'story': 1500, 'rater': 300}
  for family in sw.FAMILIES:
    for split in ('train', 'test'):
      for ex in sw.generate(family, split, 11, n.get(family, 300)):
        for text in _texts(ex):
          assert not heldout_words.search(text), (family, split, text)
    for ex in sw.generate(family, 'heldout', 11, 100):
      for text in _texts(ex):
        names_and_things = train_words.findall(text)
        assert not names_and_things, (family, text, names_and_things)


def _plain(ex):
  if 'conversation' in ex:
    return json.dumps(scenarios.to_record(ex), sort_keys=True)
  return json.dumps(ex, sort_keys=True, default=list)


@pytest.mark.parametrize('family', sw.FAMILIES)
def test_determinism_by_seed_and_sharding(family):
  a = [_plain(e) for e in sw.generate(family, 'train', 3, 150)]
  assert a == [_plain(e) for e in sw.generate(family, 'train', 3, 150)]
  assert a[70:150] == [_plain(e) for e in sw.generate(family, 'train', 3, 80, start=70)]
  b = [_plain(e) for e in sw.generate(family, 'train', 4, 150)]
  test = [_plain(e) for e in sw.generate(family, 'test', 3, 150)]
  assert sum(x != y for x, y in zip(a, b)) > 100
  assert sum(x != y for x, y in zip(a, test)) > 100
  with pytest.raises(ValueError, match='family'):
    sw.generate('stories')


def test_generation_speed():
  """Printed, not asserted: the machine is shared."""
  print()
  for family in sw.FAMILIES:
    n = 1000 if family == 'rater' else 5000
    sw.generate(family, 'train', 0, 64)   # warm caches
    t = time.perf_counter()
    sw.generate(family, 'train', 0, n)
    rate = n / (time.perf_counter() - t)
    print(f'socialworld {family:22s} {rate:9.0f} examples/s')
  t = time.perf_counter()
  stories.generate('train', 0, 5000, **stories.BALANCED)
  print(f'socialworld story (BALANCED)      {5000 / (time.perf_counter() - t):9.0f} examples/s')


def test_heldout_names_are_not_chitchat_speaker_names():
  # Chitchat speakers are given names from chitchat.NAMES; a held-out name among them
  # would reach training text through the chitchat part of a mixture.
  from tomk.data import chitchat
  from tomk.socialworld import vocab
  assert not set(vocab.HELDOUT.names) & set(chitchat.NAMES)
