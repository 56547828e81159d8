"""SocialWorld as training data: tfds builders, training text, and the data mixture.

Builders are built small (TRAIN_SIZE train examples per family) into the same session
data dir as test_data*.py, so chitchat is built once. Training text is read back the
way the pipeline renders it (features.rendered) and checked for held-out words and
ground truth.
"""
import collections
import itertools
import json
import re
import time
import types

import ml_collections
import numpy as np
import pytest

import tomk.socialworld as sw
from tomk import config as config_lib
from tomk.data import conversation
from tomk.data import features
from tomk.data import pipeline
from tomk.data import sources as data_sources
from tomk.socialworld import builders
from tomk.socialworld import scenarios
from tomk.socialworld import stories
from tomk.socialworld import vocab

TRAIN_SIZE = 600                  # the other splits get 100 each
MIXTURE = 'chitchat:1,story:2,preference_story:0.5,scenarios:1'


def _config(data_dir, **overrides):
  config = config_lib.base().data
  config.update(mixture=MIXTURE, story_mix='balanced', socialworld_train_size=TRAIN_SIZE,
                data_dir=data_dir, vocab_size=512, seq_len=128)
  config.update(overrides)
  return config


@pytest.fixture(scope='session')
def sources(data_dir):
  """{family: {split: records}}, every family built once (stories in the balanced mix)."""
  start = time.perf_counter()
  out = {f: {split: builders.load(f, split, data_dir, train_size=TRAIN_SIZE)
             for split in builders.SPLITS} for f in builders.FAMILIES}
  print(f'built {len(out)} SocialWorld configs in {time.perf_counter() - start:.1f} s')
  return out


@pytest.fixture(scope='session')
def mixture_tokenizer(data_dir, sources):
  del sources  # built first
  return pipeline.tokenizer_for(_config(data_dir))


def _training_texts(data_dir, family, split, seed=0):
  """Every record's training text, rendered by the pipeline as it trains on it."""
  config = _config(data_dir, mixture=family)
  records = data_sources.records_of(config, family, split)
  segments = features.rendered
  return [''.join(segments(config, family, records[i], i, seed)) for i in range(len(records))]


def _take(dataset, n):
  return list(itertools.islice(iter(dataset), n))


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --- Builders -------------------------------------------------------------------------------

def test_default_configs_have_the_documented_sizes():
  configs = {c.name: dict(c.sizes) for c in builders.SocialWorld.BUILDER_CONFIGS}
  assert set(configs) == {'story-natural', 'story-balanced', 'story-higher_order',
                          'preference_story', 'rater', *scenarios.FAMILIES}
  assert configs['story-balanced'] == dict(train=50_000, validation=1_000, test=2_000,
                                           heldout=2_000)
  assert all(sizes['train'] >= 10_000 for sizes in configs.values())
  assert builders.builder_config('story') is builders.builder_config('story', 'balanced')
  small = dict(builders.builder_config('story', train_size=TRAIN_SIZE).sizes)
  assert small == dict(train=TRAIN_SIZE, validation=100, test=100, heldout=100)


def test_builders_hold_the_generator_examples_split_by_split(sources):
  options = builders.story_options('balanced')
  for family, splits in sources.items():
    assert {s: len(r) for s, r in splits.items()} == dict(
        train=TRAIN_SIZE, validation=100, test=100, heldout=100), family
    kwargs = options if family == 'story' else {}
    for split, generator_split, start in [('train', 'train', 0), ('test', 'test', 0),
                                          ('heldout', 'heldout', 0),
                                          ('validation', 'test', 100)]:
      index = 37
      want = sw.generate(family, generator_split, 0, 1, start + index, **kwargs)[0]
      got = builders.example(splits[split][index])
      assert got['id'] == want['id'], (family, split)
      if family in builders.STORY_FAMILIES:
        assert stories.text(got) == stories.text(want)
      elif family == 'rater':
        assert got == {k: want[k] for k in got}
      else:
        assert got['conversation'] == want['conversation']
        assert got['hidden'] == want['hidden']
        response = want['candidates'][0]
        assert got['partner_reward'](response) == want['partner_reward'](response)
        assert got['reaction'](response) == want['reaction'](response)


def test_story_mix_presets_and_overrides():
  assert builders.story_options('balanced') == stories.BALANCED
  assert builders.story_options('natural') == stories.NATURAL
  tuned = builders.story_options('balanced,first_order:3,true_belief:0,tom_fraction:0.7')
  assert tuned['question_weights']['first_order'] == 3.0
  assert 'true_belief' not in tuned['story_weights'] and tuned['tom_fraction'] == 0.7
  assert builders.builder_config('story', 'balanced,first_order:3').name.startswith(
      'story-mix_')
  assert builders.story_options('balanced,every_agent:1') == {**stories.BALANCED,
                                                              'every_agent': True}
  assert builders.story_options('balanced,every_agent:0') == stories.BALANCED
  assert builders.builder_config('story', 'balanced,every_agent:0').name == 'story-balanced'
  simple = builders.story_options('balanced,max_observers:0,distractor_rate:0')
  assert (simple['max_observers'], simple['distractor_rate']) == (0, 0.0)
  assert isinstance(simple['max_observers'], int)
  assert builders.story_options('balanced,max_observers:2,distractor_rate:0.3') == stories.BALANCED
  assert builders.builder_config('story', 'balanced,every_agent:1').name.startswith(
      'story-mix_')
  for bad, message in [('first_order:3', 'must start with a preset'),
                       ('balanced,fifth_order:1', 'unknown key'),
                       ('balanced,first_order:lots', 'key:number')]:
    with pytest.raises(ValueError, match=message):
      builders.story_options(bad)


def test_story_mix_reaches_the_builder(data_dir, sources):
  # The generator's tests check the mixes' proportions; here: the builder uses them.
  natural = builders.load('story', 'train', data_dir, 'natural', TRAIN_SIZE)
  balanced = sources['story']['train']
  for records, mix in ((natural, stories.NATURAL), (balanced, stories.BALANCED)):
    want = sw.generate('story', 'train', 0, 50, **mix)
    assert [stories.text(builders.example(records[i])) for i in range(50)] == [
        stories.text(ex) for ex in want]
  assert builders.example(natural[3])['id'] == builders.example(balanced[3])['id']


# --- Training text --------------------------------------------------------------------------

def _words(text):
  return set(re.findall(r"[A-Za-z]+", text))


def test_no_heldout_word_in_training_text(data_dir, sources):
  del sources
  heldout = set(vocab.HELDOUT.words())
  for family in builders.FAMILIES:
    train_words = set().union(*map(_words, _training_texts(data_dir, family, 'train')))
    assert not heldout & train_words, (family, sorted(heldout & train_words))
    # ...while the held-out split's text is made of them (the check can fail).
    heldout_words = set().union(*map(_words, _training_texts(data_dir, family, 'heldout')))
    assert heldout & heldout_words, family


def test_no_ground_truth_in_training_text(data_dir, sources):
  del sources
  hidden_keys = ('hidden', 'utilities', 'partner_reward', 'true_location', 'believed',
                 'false_belief', 'story_type', 'question_type', 'tom', 'score', 'candidate')
  for family in builders.FAMILIES:
    for text in _training_texts(data_dir, family, 'train'):
      assert not re.search(r'[0-9{}\[\]]', text), (family, text)  # no numbers, no JSON
      lowered = text.lower()
      assert not [k for k in hidden_keys if re.search(rf'\b{k}\b', lowered)], (family, text)


def test_training_text_is_what_the_evaluator_and_partner_produce(data_dir, sources):
  del sources
  for family in builders.FAMILIES:
    texts = _training_texts(data_dir, family, 'train')[:50]
    want = sw.generate(family, 'train', 0, 50,
                       **(builders.story_options('balanced') if family == 'story' else {}))
    for text, ex in zip(texts, want):
      if family in builders.STORY_FAMILIES:
        # The evaluator's prompt + continuation of the right answer, then the story's
        # other questions, each answered.
        assert text.startswith(stories.prompt(ex) + stories.continuation(ex))
        assert text == stories.text(ex)
        assert text.count('\nQ: ') == 1 + len(ex.get('more', ()))
      elif family == 'rater':
        assert text == ex['prompt'] + ex['chosen'] + conversation.EOT
      else:
        # The scenario, one candidate response of the model, the partner's true reaction.
        assert any(text == conversation.render(scenarios.respond(ex, c))
                   for c in ex['candidates']), text
  # Each candidate response is shown for some scenarios, bad ones included.
  texts = _training_texts(data_dir, 'preference_offer', 'train')
  kinds = collections.Counter()
  for text, ex in zip(texts, sw.generate('preference_offer', 'train', 0, len(texts))):
    kinds.update(k for c, k in zip(ex['candidates'], ex['candidate_kinds'])
                 if f'{conversation.SELF} {c}{conversation.EOT}' in text)
  assert kinds['refuse'] > 100 and sum(kinds.values()) == len(texts), kinds


def test_stories_end_with_eos_and_tokenize_round_trip(data_dir, mixture_tokenizer):
  config = _config(data_dir, mixture='story')

  documents, srcs = data_sources.documents(config, 'train', seed=0, process_index=0,
                                        process_count=1, shuffle=False, repeat=False)
  featurize = features.Featurize(config, mixture_tokenizer, srcs, seed=0)
  tokens = featurize(documents[0])['tokens']
  assert tokens[-1] == mixture_tokenizer.eos_id
  text = _training_texts(data_dir, 'story', 'train')[0]
  assert mixture_tokenizer.decode(tokens[:-1]) == text
  assert mixture_tokenizer.eos_id not in tokens[:-1]


def test_subword_dropout_splits_training_stories_only(data_dir, mixture_tokenizer):

  def first_rows(split, **overrides):
    config = _config(data_dir, mixture='story', **overrides)
    rows = pipeline.packed_rows(config, mixture_tokenizer, split, seed=0, process_index=0,
                          process_count=1, shuffle=False, repeat=False)
    return [r['tokens'].tolist() for r in itertools.islice(iter(rows), 4)]
  plain, split = first_rows('train'), first_rows('train', subword_dropout=0.1)
  assert split != plain and split == first_rows('train', subword_dropout=0.1)
  # The same text in more, smaller pieces (rows are cut after the same number of tokens).
  text = lambda rows: mixture_tokenizer.decode(sum(rows, []))
  assert text(plain).startswith(text(split))
  assert first_rows('test', subword_dropout=0.1) == first_rows('test')


def test_a_name_has_the_same_pieces_in_the_story_and_in_the_question(data_dir,
                                                                     mixture_tokenizer):
  """The question's agents are found in the story token for token, held-out names too.

  (Story lines once stood on lines of their own: a name opening a line lost its
  word-start mark and became other pieces than in the question.)
  """
  tok = mixture_tokenizer
  for split in ('train', 'heldout'):
    for ex in sw.generate('story', split, 0, 40, **builders.story_options('balanced')):
      story, question = stories.prompt(ex).split('\nQ: ')
      story_ids, question_ids = tok.encode(story), tok.encode(question)
      for name in ex['chain']:
        name_ids = tok.encode(' ' + name)
        assert _holds(question_ids, name_ids), (name, question)
        assert _holds(story_ids, name_ids), (name, split, story)


def _holds(ids, part):
  return any(ids[i:i + len(part)] == part for i in range(len(ids) - len(part) + 1))


def _first_batch(data_dir, tokenizer, split, **overrides):
  config = _config(data_dir, **overrides)
  return next(iter(pipeline.lm_dataset(config, tokenizer, split, seed=0, global_batch_size=4)))


def _runs(mask):
  """(start, end) of each run of True in a row."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
  return zip(edges[::2], edges[1::2])


def test_answer_weight_weighs_the_answers_of_training_stories(data_dir, mixture_tokenizer):

  def first_batch(split, **overrides):
    return _first_batch(data_dir, mixture_tokenizer, split, mixture='story', **overrides)
  plain, weighted = first_batch('train'), first_batch('train', answer_weight=5.0)
  np.testing.assert_array_equal(plain['targets'], weighted['targets'])
  assert set(np.unique(plain['weights'])) <= {0.0, 1.0}
  answers = weighted['weights'] == 5.0
  assert set(np.unique(weighted['weights'][~answers])) <= {0.0, 1.0}
  # Exactly the answers' tokens: each weighted run of targets decodes to ' container'
  # and follows ' A:'.
  text = lambda ids: mixture_tokenizer.decode(ids.tolist())
  assert answers.any(axis=1).sum() >= 2
  for row in range(answers.shape[0]):
    t = weighted['targets'][row]
    for start, end in _runs(answers[row]):
      answer = text(t[start:end])
      assert re.fullmatch(r' [a-z ]+', answer), answer
      if start >= 2:
        assert text(t[:start]).endswith(' A:'), text(t[:start])[-20:]
  # A story's pieces are its text, and encode to its tokens.
  ex = sw.generate('story', 'train', 0, 1, **builders.story_options('balanced'))[0]
  pieces = stories.pieces(ex)
  assert ''.join(pieces) == stories.text(ex)
  assert sum(mixture_tokenizer.encode_batch(pieces), []) == mixture_tokenizer.encode(
      stories.text(ex))
  # Evaluation reads every token alike.
  np.testing.assert_array_equal(first_batch('test', answer_weight=5.0)['weights'],
                                first_batch('test')['weights'])


def test_reaction_weight_weighs_the_partners_reaction_in_training_scenarios(data_dir,
                                                                           mixture_tokenizer):
  """data.reaction_weight on each scenario's last turn (the partner's reaction), in both the
  loss weights and imitation's self_mask (the partner's turns, seen from its side)."""
  def first_batch(split, **overrides):
    return _first_batch(data_dir, mixture_tokenizer, split, mixture='preference_offer:1',
                        scenario_perspective='partner', **overrides)
  plain, weighted = first_batch('train'), first_batch('train', reaction_weight=4.0)
  np.testing.assert_array_equal(plain['targets'], weighted['targets'])
  assert set(np.unique(plain['weights'])) <= {0.0, 1.0}
  reaction = weighted['weights'] == 4.0
  assert reaction.any(axis=1).all()
  np.testing.assert_array_equal(weighted['weights'][~reaction], plain['weights'][~reaction])
  # The partner's reaction is its own turn (the name switch): self_mask weighs its words,
  # not the role token opening it, and is as before elsewhere.
  said = plain['self_mask'] == 1
  np.testing.assert_array_equal(weighted['self_mask'][reaction & said], 4.0)
  np.testing.assert_array_equal(weighted['self_mask'][~reaction], plain['self_mask'][~reaction])
  text = lambda ids: mixture_tokenizer.decode(ids.tolist())
  width = reaction.shape[1]
  for row in range(reaction.shape[0]):
    t = weighted['targets'][row]
    for start, end in _runs(reaction[row]):
      # Each weighted run is one whole turn of the partner's, the last of its scenario.
      reply = text(t[start:end])
      assert start == 0 or reply.startswith(conversation.SELF), reply
      assert end == width or reply.endswith(conversation.EOT), reply
      assert conversation.EOT not in reply[:-len(conversation.EOT)], reply
  # Evaluation reads every token alike.
  np.testing.assert_array_equal(first_batch('test', reaction_weight=4.0)['weights'],
                                first_batch('test')['weights'])


# --- The mixture ----------------------------------------------------------------------------

def test_mixture_parsing(data_dir):
  weights = data_sources.mixture(_config(data_dir))
  assert set(weights) == {'chitchat', 'story', 'preference_story', *scenarios.FAMILIES}
  assert weights['story'] == pytest.approx(2 / 4.5)
  assert weights['multi_party'] == pytest.approx(1 / 4.5 / 6)   # 'scenarios' is all six
  assert sum(weights.values()) == pytest.approx(1)
  assert data_sources.mixture(_config(data_dir, mixture='story')) == {'story': 1.0}
  assert data_sources.mixture(_config(data_dir, mixture='')) == {'chitchat': 1.0}
  as_dict = types.SimpleNamespace(**{**_config(data_dir).to_dict(),
                                     'mixture': {'chitchat': 1, 'story': 3}})
  assert data_sources.mixture(as_dict) == {'chitchat': 0.25, 'story': 0.75}
  for overrides, message in [
      (dict(mixture='chitchat:1,stories:2'), "entry='stories': use 'chitchat' or a path"),
      (dict(mixture='chitchat:lots'), 'chitchat:lots must be name:weight'),
      (dict(mixture='chitchat:-1'), 'weight >= 0'),
      (dict(mixture='chitchat:0'), 'weight 0'),
      (dict(source='mine.jsonl'), 'ignored when data.mixture is set')]:
    with pytest.raises(ValueError, match=re.escape(message)):
      data_sources.mixture(_config(data_dir, **overrides))


def test_tokenizer_cache_key_names_the_mixture(data_dir):
  name = lambda **o: pipeline.tokenizer_name(_config(data_dir, **o))
  assert name(mixture='') == 'chitchat'
  assert name().startswith('mix-') and name() != name(mixture='chitchat:1,story:1')
  assert name(mixture='chitchat:2,story:4') == name(mixture='chitchat:1,story:2')
  assert name(story_mix='natural') != name()       # other stories, other text
  assert name(mixture='story').startswith('socialworld-story-balanced')


def test_mixture_gives_the_configured_proportions_deterministically(data_dir, sources):
  del sources
  config = _config(data_dir)
  weights = data_sources.mixture(config)

  def documents(seed, process_index=0, process_count=1):
    docs, srcs = data_sources.documents(
        config, 'train', seed=seed, process_index=process_index,
        process_count=process_count, shuffle=True, repeat=True)
    return [(srcs[k][0], int(i)) for k, i in (docs[j] for j in range(4000))]
  first = documents(0)
  counts = collections.Counter(name for name, _ in first)
  for name, weight in weights.items():
    assert counts[name] / len(first) == pytest.approx(weight, abs=0.01), (name, counts)
  # Every 100 documents already hold the mixture, not just the whole stream.
  window = collections.Counter(name for name, _ in first[1000:1100])
  assert abs(window['story'] - 100 * weights['story']) <= 2, window
  assert documents(0) == first and documents(1) != first
  shards = [set(documents(0, p, 2)) for p in (0, 1)]
  assert not shards[0] & shards[1]


def test_mixture_batches_are_deterministic_and_state_round_trips(data_dir,
                                                                 mixture_tokenizer):
  config = _config(data_dir, seq_len=64)
  make = lambda seed: pipeline.lm_dataset(config, mixture_tokenizer, 'train', seed=seed,
                                          global_batch_size=8)
  first = _take(make(0), 3)
  _assert_same(first, _take(make(0), 3))
  assert not np.array_equal(first[0]['inputs'], _take(make(1), 1)[0]['inputs'])
  iterator = iter(make(5))
  _take(iterator, 7)
  state = json.loads(json.dumps(iterator.get_state()))   # as a checkpoint stores it
  following = _take(iterator, 4)
  restored = iter(make(5))
  restored.set_state(state)
  _assert_same(following, _take(restored, 4))


def test_mixture_eval_batches_cover_validation_and_heldout(data_dir, mixture_tokenizer):
  config = _config(data_dir)
  for split in ('validation', 'heldout'):
    batches = pipeline.eval_batches(config, mixture_tokenizer, split, global_batch_size=8,
                                    num_batches=4)
    assert len(batches) == 4 and all(b['weights'].all() for b in batches)
  text = ' '.join(mixture_tokenizer.decode(row) for b in batches for row in b['inputs'])
  assert _words(text) & set(vocab.HELDOUT.words())


def test_mixture_throughput(data_dir, mixture_tokenizer):
  config = _config(data_dir, seq_len=128)
  iterator = iter(pipeline.lm_dataset(config, mixture_tokenizer, 'train', seed=0,
                                      global_batch_size=32))
  next(iterator)
  start = time.perf_counter()
  for _ in range(20):
    batch = next(iterator)
  rate = 20 / (time.perf_counter() - start)
  print(f'mixture: {rate:.0f} batches/s at B=32, L=128')
  assert batch['inputs'].shape == (32, 128) and (batch['rewards'] == 1).all()
  assert rate > 5, f'the mixture reads only {rate:.1f} batches/s'


def test_own_jsonl_conversations_mix_with_socialworld(data_dir, sources, tmp_path):
  del sources
  path = str(tmp_path / 'mine-{split}.jsonl')
  for split in ('train', 'validation'):
    with open(path.format(split=split), 'w') as f:
      for i in range(20):
        turns = [{'speaker': 'Ann', 'text': f'zq marker {i}'}, {'speaker': 'Bo', 'text': 'ok'}]
        f.write(json.dumps({'id': f'c{i}', 'turns': turns}) + '\n')
  config = _config(str(tmp_path), mixture=f'{path}:1,story:1', seq_len=64)
  config.data_dir = data_dir     # SocialWorld from the session's builds
  tokenizer = pipeline.tokenizer_for(config)
  assert tokenizer.path.endswith(f'{pipeline.tokenizer_name(config)}-512.model')
  batch = _take(pipeline.lm_dataset(config, tokenizer, 'train', seed=0,
                                    global_batch_size=8), 1)[0]
  text = ' '.join(tokenizer.decode(row) for row in batch['inputs'])
  assert 'zq marker' in text and 'Q: Where' in text


def test_scenarios_from_the_partners_perspective_end_with_their_own_reaction():
  example = scenarios.generate('preference_offer', 'train', 0, n=1)[0]
  record = builders._record('preference_offer', example)
  model_view = builders.training_segments('preference_offer', record, draw=0)
  partner_view = builders.training_segments('preference_offer', record, draw=0,
                                            perspective='partner')
  partner, me = example['partner'], example['model_name']
  assert len(model_view) == len(partner_view)
  assert model_view[-1].startswith(f'<other> {partner}:') and model_view[-2].startswith('<self>')
  assert partner_view[-1] == f'<self> {record["reactions"][0]}<eot>'
  assert partner_view[-2].startswith(f'<other> {me}: {record["candidates"][0]}')
  with pytest.raises(ValueError, match='scenario_perspective'):
    builders.training_segments('preference_offer', record, perspective='self')


def test_scenario_responses_show_one_scenario_with_several_responses():
  """data.scenario_responses = k: documents i·k … i·k + k−1 are scenario i, each with
  another candidate response and the partner's reaction to it; k = 1 is the one draw."""
  class Bytes:                 # one id per byte: the featurized document decodes to its text
    self_id, eos_id = -1, 0
    self_opening = (self_id,)
    def encode_batch(self, texts):
      return [list(t.encode()) for t in texts]

  examples = scenarios.generate('preference_offer', 'train', 0, n=2)
  plain = [builders._record('preference_offer', e) for e in examples]
  records = [{'record': json.dumps(r)} for r in plain]
  branches = data_sources.Branches(records, 3)
  assert len(branches) == 6 and branches[4] is branches[3] is branches[5] is records[1]
  config = config_lib.base().data

  def text(documents, index):
    featurize = features.Featurize(config, Bytes(), documents, seed=0)
    return bytes(featurize((0, index))['tokens'].tolist()).decode()
  docs = [text([('preference_offer', branches)], i) for i in range(3, 6)]
  prefix = features.rendered(config, 'preference_offer', records[1], 1, seed=0)[:-2]
  assert all(d.startswith(''.join(prefix)) for d in docs)        # the same conversation
  assert len(set(docs)) == 3                                      # three responses
  assert {d.rsplit('<other>', 1)[1] for d in docs} == {
      f' {examples[1]["partner"]}: {r}<eot>' for r in plain[1]['reactions']}
  assert text([('preference_offer', records)], 1) == docs[0]      # k = 1: the first of them


@pytest.mark.parametrize('family', ['preference_offer', 'dissimilar_partner'])
def test_warmest_scenario_response_shows_the_kind_choice(family):
  """data.scenario_response='warmest' shows the candidate whose partner reaction reads
  warmest: read from the reaction's text alone, it is the partner's best response by ground
  truth (the liked item), on every scenario here."""
  config = config_lib.base().data
  config.scenario_response = 'warmest'
  examples = scenarios.generate(family, 'train', 0, n=20)
  for index, example in enumerate(examples):
    record = {'record': json.dumps(builders._record(family, example))}
    shown = features.rendered(config, family, record, index, seed=0)[-2]
    best = max(example['candidates'], key=example['partner_reward'])
    assert shown.endswith(f'{best}<eot>'), (shown, best)
    # The tokenizer's text (pipeline.tokenizer_for) pins the drawn response whatever the
    # setting: its cache name does not cover it.
    drawn = config_lib.base().data
    assert (features.rendered(config, family, record, index, seed=0, scenario_response='drawn')
            == features.rendered(drawn, family, record, index, seed=0))
  config.scenario_response = 'kindest'
  with pytest.raises(ValueError, match="data.scenario_response='kindest'"):
    features.check(config)
