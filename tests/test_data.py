"""Tests of tomk.data's tokenizer, chitchat builder, JSONL reader and tomk.rewards.

The pipeline's tests are in test_data_pipeline.py; both build chitchat once into the
same pytest temp dir (never the user's home).
"""
import json
import os

import numpy as np
import pytest

from tomk import rewards
from tomk.data import chitchat
from tomk.data import conversation
from tomk.data import jsonl
from tomk.data import tokenizer as tokenizer_lib


@pytest.fixture(scope='session')
def chitchat_sources(data_dir):
  return {split: chitchat.load(split, data_dir) for split in chitchat.SPLITS}


# --- Tokenizer ------------------------------------------------------------------------------

_TEXTS = ['<self> Hello there, how are you today?<eot>',
          '<other> Alice: I am fine, thanks! And you?<eot>',
          '<self> Great. Did you see the game last night?<eot>',
          '<other> Alice: Yes, it was amazing; 3 goals in 10 minutes.<eot>'] * 20


@pytest.fixture(scope='module')
def small_tokenizer(tmp_path_factory):
  cache = str(tmp_path_factory.mktemp('tokenizers'))
  return tokenizer_lib.load_or_train(lambda: _TEXTS, 400, cache, 'small')


def test_tokenizer_round_trip_any_text(small_tokenizer):
  for text in ['<self> Hello  there<eot>', 'héllo wörld 😀 — 漢字', '  two  spaces ', '']:
    assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_tokenizer_role_tokens_are_single_ids(small_tokenizer):
  tok = small_tokenizer
  ids = tok.encode('<self> hi<eot><other> Bob: yo<eot>')
  assert ids[0] == tok.self_id and ids.count(tok.eot_id) == 2 and tok.other_id in ids
  assert len({tok.pad_id, tok.self_id, tok.other_id, tok.eot_id}) == 4
  assert tok.pad_id == 0


def test_tokenizer_turns_encode_like_the_whole_text(small_tokenizer):
  # The pipeline tokenizes turn by turn; a sampler encodes the whole prompt at once.
  turns = ['<self> Hello there<eot>', '<other> Alice: fine, thanks!<eot>', '<self> ok 12<eot>']
  assert sum(small_tokenizer.encode_batch(turns), []) == small_tokenizer.encode(''.join(turns))


@pytest.mark.parametrize('speaker', ['Model', 'Alice'])
def test_prompt_tokens_are_a_prefix_of_the_finished_conversation(small_tokenizer, speaker):
  # A reply generated after the prompt must continue it as training text does: the
  # turn opening's trailing space belongs to the reply's first word, not a lone '▁'.
  c = conversation.Conversation(
      (conversation.Turn('Alice', 'Could you pass the salt?'),), perspective='Model')
  prompt = conversation.prompt_for(c, speaker)
  assert prompt.endswith(' ')
  finished = small_tokenizer.encode(prompt + 'Sure, here it is.<eot>')
  tokens = small_tokenizer.encode_prompt(prompt)
  assert finished[:len(tokens)] == tokens and len(finished) > len(tokens)
  assert small_tokenizer.encode(prompt) != tokens     # encode() would end with a lone '▁'
  assert small_tokenizer.decode(finished[len(tokens):]) == ' Sure, here it is.<eot>'


def test_bpe_dropout_is_seeded_and_keeps_the_text(small_tokenizer):
  texts = ['<self> Where is the basket? The trunk holds a satchel.<eot>', 'Henry entered.']
  plain = small_tokenizer.encode_batch(texts)
  draws = [small_tokenizer.encode_dropout(texts, 0.1, seed) for seed in range(8)]
  assert draws[3] == small_tokenizer.encode_dropout(texts, 0.1, 3)      # the same seed, ids
  assert any(d != plain for d in draws)                                  # words come apart
  assert all(len(a) >= len(b) for d in draws for a, b in zip(d, plain))  # only ever finer
  for d in draws:
    assert [small_tokenizer.decode(ids) for ids in d] == texts
    assert d[0][0] == small_tokenizer.self_id and d[0][-1] == small_tokenizer.eot_id
  assert small_tokenizer.encode_dropout(texts, 0.0, 5) == plain


def test_tokenizer_decode_drops_padding(small_tokenizer):
  ids = small_tokenizer.encode('<self> Hello<eot>')
  assert small_tokenizer.decode(ids + [small_tokenizer.pad_id] * 3) == '<self> Hello<eot>'


def test_tokenizer_cache_is_reused(small_tokenizer):
  mtime = os.path.getmtime(small_tokenizer.path)

  def must_not_train():
    raise AssertionError('the cached tokenizer should have been loaded, not retrained')

  cache_dir = os.path.dirname(small_tokenizer.path)
  again = tokenizer_lib.load_or_train(must_not_train, 400, cache_dir, 'small')
  assert again.path == small_tokenizer.path and os.path.getmtime(again.path) == mtime
  assert again.encode('<self> Hello<eot>') == small_tokenizer.encode('<self> Hello<eot>')
  assert [f for f in os.listdir(cache_dir) if '.tmp-' in f] == []


def test_tokenizer_training_is_deterministic(tmp_path, small_tokenizer):
  other = tokenizer_lib.load_or_train(lambda: _TEXTS, 400, str(tmp_path), 'small')
  with open(other.path, 'rb') as a, open(small_tokenizer.path, 'rb') as b:
    assert a.read() == b.read()


def test_tokenizer_too_small_vocab_names_the_fix(tmp_path):
  with pytest.raises(ValueError, match='vocab_size >= 320'):
    tokenizer_lib.load_or_train(lambda: _TEXTS, 256, str(tmp_path), 'tiny')


# --- Chitchat -------------------------------------------------------------------------------

def test_chitchat_splits_cover_all_conversations_once(chitchat_sources):
  sizes = {split: len(source) for split, source in chitchat_sources.items()}
  assert sum(sizes.values()) == 7168
  assert 0.87 < sizes['train'] / 7168 < 0.93, sizes
  assert 0.03 < sizes['validation'] / 7168 < 0.07 and 0.03 < sizes['test'] / 7168 < 0.07, sizes
  ids = {split: {chitchat.to_conversation(source[i]).id for i in range(len(source))}
         for split, source in chitchat_sources.items()}
  assert sum(len(v) for v in ids.values()) == 7168  # no id twice, so no id in two splits
  for split, split_ids in ids.items():
    assert all(chitchat.split_for(i) == split for i in split_ids)


def test_chitchat_speakers_get_distinct_human_names(chitchat_sources):
  import chitchat_dataset  # pylint: disable=g-import-not-at-top
  raw = chitchat_dataset.Dataset()
  source = chitchat_sources['validation']
  two_speakers = 0
  for i in range(len(source)):
    c = chitchat.to_conversation(source[i])
    senders = [m['sender'] for group in raw[c.id]['messages'] for m in group]
    assert [t.text for t in c.turns] == [m['text'] for g in raw[c.id]['messages'] for m in g]
    # One name per sender, and different senders never share a name.
    assert len(c.speakers) == len(set(senders))
    assert all(s in chitchat.NAMES for s in c.speakers)
    two_speakers += len(c.speakers) == 2
  assert two_speakers > 100


def test_chitchat_names_are_deterministic_and_distinct():
  names = chitchat.speaker_names('conv-1', ['uuid-a', 'uuid-b', 'uuid-a'])
  assert names == chitchat.speaker_names('conv-1', ['uuid-a', 'uuid-b'])
  assert len(set(names.values())) == 2
  assert len(chitchat.NAMES) == len(set(chitchat.NAMES)) >= 200


def test_chitchat_default_data_dir_follows_env(monkeypatch, tmp_path):
  monkeypatch.setenv('TOMK_DATA_DIR', str(tmp_path))
  assert chitchat.default_data_dir() == str(tmp_path)


# --- JSONL ----------------------------------------------------------------------------------

def _write(path, lines):
  path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  return str(path)


def test_jsonl_reads_conversations_and_skips_blank_lines(tmp_path):
  path = _write(tmp_path / 'c.jsonl', [
      json.dumps({'id': 'a', 'turns': [{'speaker': 'Ann', 'text': 'Hi'},
                                       {'speaker': 'Bo', 'text': 'Hey'}]}),
      '',
      json.dumps({'turns': [{'speaker': 'Cy', 'text': 'Yo'}]})])
  a, b = jsonl.read_conversations(path)
  assert a == conversation.Conversation.of([('Ann', 'Hi'), ('Bo', 'Hey')], id='a')
  assert b.id == '3' and b.speakers == ('Cy',)


@pytest.mark.parametrize('bad_line, what', [
    ('{"id": "x", "turns": [', 'not valid JSON'),
    ('[1, 2]', 'JSON object'),
    ('{"id": "x"}', '"turns" must be a list'),
    ('{"id": "x", "turns": [{"speaker": "Ann"}]}', 'turn 0'),
])
def test_jsonl_malformed_line_names_file_and_line(tmp_path, bad_line, what):
  good = json.dumps({'id': 'ok', 'turns': [{'speaker': 'Ann', 'text': 'Hi'}]})
  path = _write(tmp_path / 'bad.jsonl', [good, '', bad_line])
  with pytest.raises(ValueError) as error:
    jsonl.read_conversations(path)
  assert f'{path}:3' in str(error.value) and what in str(error.value)


# --- Rewards --------------------------------------------------------------------------------

def test_constant_reward():
  r = rewards.get('constant', value=0.5)(['p1', 'p2'], ['a', 'b'])
  assert r.dtype == np.float32 and r.tolist() == [0.5, 0.5]


def test_sentiment_reward_reads_the_words_not_the_labels():
  fn = rewards.get('sentiment')
  r = fn(['', '', ''], ['<other> Joy: I love this, it is wonderful!<eot>',
                        '<self> I hate this. It is terrible.<eot>',
                        '<other> Joy: the meeting is at noon<eot>'])
  assert r.dtype == np.float32 and r.shape == (3,)
  assert r[0] > 0.5 and r[1] < -0.5 and r[2] == 0.0  # 'Joy' (a name) is not scored
  assert rewards.strip_roles('<other> Joy: the meeting<eot>') == 'the meeting'
  assert rewards.strip_roles('Bob: fine <eot>') == 'fine'


def test_unknown_reward_lists_choices():
  with pytest.raises(ValueError, match=r"\['constant', 'sentiment'\]"):
    rewards.get('kindness')
