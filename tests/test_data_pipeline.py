"""Tests of tomk.data.pipeline: batch format, determinism, sharding, state, rewards.

Measured on the 2-core dev box (B=32, L=128, chitchat, one reader thread):
~120 batches/s with the constant reward, ~45 batches/s with VADER sentiment — far
above the few steps/s a 2-core train step reaches. Building chitchat takes ~5 s and
training its 1024-piece tokenizer ~4 s, once per data dir.
"""
import itertools
import re
import json
import time

import grain
import ml_collections
import numpy as np
import pytest

from tomk import config as config_lib
from tomk import rewards
from tomk.data import conversation
from tomk.data import features
from tomk.data import packing
from tomk.data import pipeline


def _config(data_dir, **overrides):
  """base()'s data settings (chitchat, 1,024 pieces, rows of 128) in this session's data dir."""
  config = config_lib.base().data
  config.update(data_dir=data_dir, **overrides)
  return config


@pytest.fixture(scope='session')
def chitchat_tokenizer(data_dir):
  return pipeline.tokenizer_for(_config(data_dir))


def _take(dataset, n):
  return list(itertools.islice(iter(dataset), n))


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --- Batch format ---------------------------------------------------------------------------

def test_batch_format(data_dir, chitchat_tokenizer):
  config = _config(data_dir)
  batch = _take(pipeline.lm_dataset(config, chitchat_tokenizer, 'train', seed=0,
                                    global_batch_size=32), 1)[0]
  assert set(batch) == {'inputs', 'targets', 'weights', 'rewards', 'self_mask'}
  assert {k: v.dtype for k, v in batch.items()} == pipeline.batch_fields(config)
  for key, dtype in [('inputs', np.int32), ('targets', np.int32), ('weights', np.float32),
                     ('rewards', np.float32)]:
    assert batch[key].shape == (32, 128) and batch[key].dtype == dtype, key
  np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])
  assert (batch['weights'] == 1).all()  # repeating data packs full rows
  assert (batch['rewards'] == 1).all()  # constant reward 1.0 on every real token
  text = chitchat_tokenizer.decode(batch['inputs'].ravel())
  assert conversation.EOT in text and conversation.SELF in text


def test_throughput(data_dir, chitchat_tokenizer):
  for reward, minimum in [('constant', 10), ('sentiment', 5)]:
    iterator = iter(pipeline.lm_dataset(_config(data_dir, reward=reward), chitchat_tokenizer,
                                        'train', seed=0, global_batch_size=32))
    next(iterator)
    start = time.perf_counter()
    for _ in range(20):
      next(iterator)
    rate = 20 / (time.perf_counter() - start)
    print(f'{reward}: {rate:.0f} batches/s at B=32, L=128')
    assert rate > minimum, f'{reward} reads only {rate:.1f} batches/s'


# --- Determinism and iterator state ---------------------------------------------------------

def test_same_seed_same_batches_other_seed_other_batches(data_dir, chitchat_tokenizer):
  config = _config(data_dir, seq_len=32)
  make = lambda seed: pipeline.lm_dataset(config, chitchat_tokenizer, 'train', seed=seed,
                                          global_batch_size=8)
  first = _take(make(0), 3)
  _assert_same(first, _take(make(0), 3))
  assert not np.array_equal(first[0]['inputs'], _take(make(1), 1)[0]['inputs'])


def test_iterator_state_resumes_exactly(data_dir, chitchat_tokenizer):
  dataset = pipeline.lm_dataset(_config(data_dir, seq_len=64), chitchat_tokenizer, 'train',
                                seed=3, global_batch_size=8)
  iterator = iter(dataset)
  _take(iterator, 5)
  state = json.loads(json.dumps(iterator.get_state()))  # as a grain/orbax checkpoint stores it
  following = _take(iterator, 4)
  restored = iter(dataset)
  restored.set_state(state)
  _assert_same(following, _take(restored, 4))


def test_packing_state_round_trips_at_every_row():
  # Conversations of 1..7 tokens cut into rows of 5: rows end mid-conversation and on
  # boundaries, so both kinds of state are saved and restored.
  def element(i):
    n = i % 7 + 1
    return {'tokens': np.arange(n, dtype=np.int32) + 100 * i,
            'rewards': np.full(n, i, np.float32)}
  parent = grain.MapDataset.range(40).map(element).to_iter_dataset()
  packed = packing.PackIterDataset(parent, 5)
  rows = list(packed)
  stream = np.concatenate([element(i)['tokens'] for i in range(40)])
  np.testing.assert_array_equal(np.concatenate([r['tokens'] for r in rows])[:len(stream)],
                                stream)
  assert rows[-1]['real'].sum() == len(stream) - 5 * (len(rows) - 1)
  _assert_state_round_trips_at_every_row(packed, rows)


def _assert_state_round_trips_at_every_row(packed, rows):
  iterator = iter(packed)
  for k in range(len(rows)):
    restored = iter(packed)
    restored.set_state(json.loads(json.dumps(iterator.get_state())))
    _assert_same(rows[k:], list(restored))
    next(iterator)


def test_whole_packing_never_cuts_a_document_that_fits_a_row():
  # Documents of 1..7 tokens in rows of 5: those of up to 5 tokens each sit in one row,
  # longer ones are cut; nothing is lost or reordered, and the state round-trips.
  def element(i):
    n = i % 7 + 1
    return {'tokens': np.arange(n, dtype=np.int32) + 100 * i + 1}
  parent = grain.MapDataset.range(40).map(element).to_iter_dataset()
  packed = packing.PackIterDataset(parent, 5, whole=True)
  rows = list(packed)
  real = np.concatenate([r['tokens'][r['real'] > 0] for r in rows])
  np.testing.assert_array_equal(real, np.concatenate([element(i)['tokens'] for i in range(40)]))
  documents = [set(r['tokens'][r['real'] > 0] // 100) for r in rows]
  for i in range(40):
    holding = [k for k, d in enumerate(documents) if i in d]
    assert len(holding) == (1 if i % 7 + 1 <= 5 else 2), (i, holding)
  assert sum(r['real'].sum() < 5 for r in rows[:-1]) > 0        # rows were padded
  _assert_state_round_trips_at_every_row(packed, rows)


def test_document_segments_number_each_piece_of_a_row():
  # Tokens 100 * i + 1 ...: a token's document is token // 100, in both kinds of packing.
  def element(i):
    n = i % 7 + 1
    return {'tokens': np.arange(n, dtype=np.int32) + 100 * i + 1,
            **{k: np.ones(n, np.float32) for k in ('rewards', 'self', 'weight')}}
  parent = grain.MapDataset.range(40).map(element).to_iter_dataset()
  for whole in (False, True):
    packed = packing.PackIterDataset(parent, 5, whole=whole,
                                       segments=True)
    rows = list(packed)
    for r in rows:
      real = r['real'] > 0
      assert (r['segment'][~real] == 0).all()
      documents = r['tokens'][real] // 100
      # Numbered 1, 2, ... in order of appearance, one number per document.
      expected = np.cumsum(np.r_[True, documents[1:] != documents[:-1]])
      np.testing.assert_array_equal(r['segment'][real], expected)
    _assert_state_round_trips_at_every_row(packed, rows)
  batch = pipeline.lm_batch(
      {k: np.stack([r[k] for r in rows[:2]]) for k in rows[0]})
  np.testing.assert_array_equal(batch['segments'], np.stack([r['segment'][:-1] for r in rows[:2]]))
  assert 'segments' not in pipeline.lm_batch( 
      {k: np.stack([r[k] for r in rows[:2]]) for k in rows[0] if k != 'segment'})


# --- Sharding across processes --------------------------------------------------------------

def _marked_conversations(path, n):
  """n conversations, each turn carrying the conversation's marker 'zq{i}zq'."""
  with open(path, 'w', encoding='utf-8') as f:
    for i in range(n):
      turns = [{'speaker': 'Ann' if t % 2 else 'Bo', 'text': f'zq{i}zq says hello number {t}'}
               for t in range(4)]
      f.write(json.dumps({'id': f'c{i}', 'turns': turns}) + '\n')


def test_processes_read_disjoint_conversations_and_half_the_batch(tmp_path):
  path = str(tmp_path / 'convs-{split}.jsonl')
  _marked_conversations(path.format(split='train'), 30)
  config = _config(str(tmp_path), source=path, vocab_size=400, seq_len=32)
  tokenizer = pipeline.tokenizer_for(config)
  seen = []
  for process_index in (0, 1):
    batches = list(pipeline.lm_dataset(config, tokenizer, 'train', seed=0, global_batch_size=4,
                                       process_index=process_index, process_count=2,
                                       repeat=False))
    assert batches and all(b['inputs'].shape == (2, 32) for b in batches)
    text = ' '.join(tokenizer.decode(row) for b in batches for key in ('inputs', 'targets')
                    for row in b[key])
    seen.append({int(m) for m in re.findall(r'zq(\d+)zq', text)})
  assert not seen[0] & seen[1]
  assert len(seen[0]) + len(seen[1]) >= 26  # the last partial batch of each is dropped
  with pytest.raises(ValueError, match='not divisible by process_count=2'):
    pipeline.lm_dataset(config, tokenizer, 'train', seed=0, global_batch_size=5,
                        process_index=0, process_count=2)


def test_random_perspective_is_deterministic_and_uses_both_speakers():
  c = conversation.Conversation.of([('Ann', 'hi'), ('Bo', 'yo')])
  owner = features.perspective_owner
  owners = [owner(c, i, 'random', 0) for i in range(50)]
  assert owners == [owner(c, i, 'random', 0) for i in range(50)]
  assert set(owners) == {'Ann', 'Bo'}


def test_other_perspective_is_never_the_first_speaker_when_there_is_another():
  owner = features.perspective_owner
  three = conversation.Conversation.of([('Ann', 'hi'), ('Bo', 'yo'), ('Cy', 'hey')])
  owners = [owner(three, i, 'other', 0) for i in range(50)]
  assert set(owners) == {'Bo', 'Cy'}
  assert owner(conversation.Conversation.of([('Ann', 'hi')]), 0, 'other', 0) == 'Ann'


# --- Rewards aligned with turns -------------------------------------------------------------

def test_sentiment_rewards_follow_the_turn_of_each_target(tmp_path):
  path = str(tmp_path / 'mood-{split}.jsonl')
  turns = [('Ann', 'I love this, it is wonderful and great!'),
           ('Bo', 'I hate this. It is terrible and awful.'),
           ('Ann', 'The meeting is at noon.')] * 3
  with open(path.format(split='train'), 'w') as f:
    f.write(json.dumps({'id': 'm', 'turns': [{'speaker': s, 'text': t} for s, t in turns]}))
  config = _config(str(tmp_path), source=path, vocab_size=400, seq_len=16,
                   perspective='first', reward='sentiment')
  tokenizer = pipeline.tokenizer_for(config)
  # Expected: each token of a turn carries that turn's score; one conversation repeats.
  segments = [text for _, text in conversation.render_segments(
      conversation.switch(conversation.Conversation.of(turns), 'Ann'))]
  scores = rewards.sentiment()([''] * len(segments), segments)
  assert scores[0] > 0.5 and scores[1] < -0.5 and scores[2] == 0
  ids = tokenizer.encode_batch(segments)
  stream_tokens = np.concatenate([np.array(x) for x in ids])
  stream_rewards = np.concatenate([np.full(len(x), s) for x, s in zip(ids, scores)])
  batch = _take(pipeline.lm_dataset(config, tokenizer, 'train', seed=0, global_batch_size=4),
                1)[0]
  for row in range(4):
    positions = (row * 17 + 1 + np.arange(16)) % len(stream_tokens)
    np.testing.assert_array_equal(batch['targets'][row], stream_tokens[positions])
    np.testing.assert_allclose(batch['rewards'][row], stream_rewards[positions], rtol=1e-6)
  assert batch['rewards'].max() > 0.5 and batch['rewards'].min() < -0.5


def test_reactions_sit_at_the_self_token_opening_each_answering_turn(tmp_path):
  path = str(tmp_path / 'react-{split}.jsonl')
  turns = [('Ann', 'Hello there.'), ('Bo', 'Here is some tea for you.'),
           ('Ann', 'I love it, thank you so much!'), ('Bo', 'And some cake.'),
           ('Ann', 'I hate cake. Awful.')]
  with open(path.format(split='train'), 'w') as f:
    f.write(json.dumps({'id': 'r', 'turns': [{'speaker': s, 'text': t} for s, t in turns]}))
  config = _config(str(tmp_path), source=path, vocab_size=400, seq_len=16,
                   perspective='first', reaction='sentiment')
  tokenizer = pipeline.tokenizer_for(config)
  segments = [text for _, text in conversation.render_segments(
      conversation.switch(conversation.Conversation.of(turns), 'Ann'))]
  ids = tokenizer.encode_batch(segments)
  scores = rewards.sentiment()([''] * len(segments), segments)
  stream = np.concatenate([np.array(x) for x in ids])
  reaction, marked = np.zeros(len(stream)), np.zeros(len(stream))
  starts = np.cumsum([0] + [len(x) for x in ids[:-1]])
  for turn in (2, 4):            # Ann answering Bo; her opening turn answers no one
    reaction[starts[turn]], marked[starts[turn]] = scores[turn], 1.0
  assert scores[2] > 0.5 and scores[4] < -0.5
  batch = _take(pipeline.lm_dataset(config, tokenizer, 'train', seed=0, global_batch_size=4),
                1)[0]
  for row in range(4):           # aligned with inputs: the head reads up to the <self> token
    positions = (row * 17 + np.arange(16)) % len(stream)
    np.testing.assert_array_equal(batch['inputs'][row], stream[positions])
    np.testing.assert_allclose(batch['reaction'][row], reaction[positions], rtol=1e-6)
    np.testing.assert_array_equal(batch['reaction_mask'][row], marked[positions])
  opened = batch['inputs'][batch['reaction_mask'] > 0]
  assert len(opened) and (opened == tokenizer.self_id).all()


# --- Evaluation batches ---------------------------------------------------------------------

def test_eval_batches_are_fixed_and_padded_when_the_split_runs_out(tmp_path):
  path = str(tmp_path / 'ev-{split}.jsonl')
  for split, n in [('train', 10), ('validation', 3)]:
    _marked_conversations(path.format(split=split), n)
  config = _config(str(tmp_path), source=path, vocab_size=400, seq_len=32)
  tokenizer = pipeline.tokenizer_for(config)
  make = lambda: pipeline.eval_batches(config, tokenizer, 'validation', global_batch_size=4,
                                       num_batches=6)
  batches = make()
  _assert_same(batches, make())
  assert len(batches) == 6 and all(b['inputs'].shape == (4, 32) for b in batches)
  weights = np.stack([b['weights'] for b in batches])
  assert weights[0].all() and not weights[-1].any()  # 3 short conversations fill ~2 rows
  assert np.isin(weights, [0.0, 1.0]).all()
  padded = weights == 0
  assert (np.stack([b['targets'] for b in batches])[padded] == tokenizer.pad_id).all()
  # With document masks: the same batches plus segments, 0 on padded inputs only, and the
  # fields tomk.aot compiles for.
  config.document_mask = True
  masked = make()
  for plain, b in zip(batches, masked):
    assert set(b) == set(plain) | {'segments'}
    assert {k: v.dtype for k, v in b.items()} == pipeline.batch_fields(config)
    _assert_same([plain], [{k: v for k, v in b.items() if k != 'segments'}])
  segments = np.stack([b['segments'] for b in masked])
  inputs = np.stack([b['inputs'] for b in masked])
  np.testing.assert_array_equal(segments > 0, inputs != tokenizer.pad_id)
  assert segments.max() >= 2                    # rows hold several conversations


def test_unknown_source_and_perspective_name_the_fix(data_dir, chitchat_tokenizer):
  with pytest.raises(ValueError, match=r"'chitchat' or a path ending in \.jsonl"):
    pipeline.tokenizer_for(_config(data_dir, source='convs.csv'))
  with pytest.raises(ValueError, match='perspective'):
    pipeline.lm_dataset(_config(data_dir, perspective='last'), chitchat_tokenizer, 'train',
                        seed=0, global_batch_size=2)
