"""Evaluation (SPEC §6): the CLI on a smoke run, the scorer against model.apply, ranking."""
import json
import math
import os
import re
import subprocess
import sys
import time

import jax
import ml_collections
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import PRETRAIN_SMOKE, REPO
from tomk import checkpoints
from tomk import config as config_lib
from tomk import evaluation
from tomk.evaluation import perspective, scoring, theory_of_mind
from tomk.model import STREAMS
from tomk.socialworld import scenarios, stories


PER_LABEL = config_lib.smoke(config_lib.base()).evaluation.stories_per_label


@pytest.fixture(scope='module')
def evaluated_run(pretrain_smoke):
  """The pretrain smoke run (conftest), then `python -m tomk.evaluate` on it:
  (workdir, stdout, seconds)."""
  workdir = pretrain_smoke[0]
  os.remove(os.path.join(workdir, 'eval.json'))      # training wrote one: the CLI must too
  start = time.perf_counter()
  result = subprocess.run([sys.executable, '-m', 'tomk.evaluate', f'--workdir={workdir}'],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))
  seconds = time.perf_counter() - start
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result.stdout, seconds


@PRETRAIN_SMOKE
def test_cli_prints_the_table_and_writes_eval_json(evaluated_run):
  workdir, stdout, seconds = evaluated_run
  print(stdout, f'\npython -m tomk.evaluate took {seconds:.1f} s')
  results = json.load(open(os.path.join(workdir, 'eval.json')))
  assert results['step'] == 20 and results['seed'] == 2411
  assert 'Theory of Mind' in stdout and 'Perspective-taking' in stdout
  tom = results['theory_of_mind']
  assert set(tom) == {'test', 'heldout'}
  for question_type in stories.QUESTION_TYPES:
    assert question_type in stdout
  for split in tom:
    assert set(tom[split]) == set(STREAMS)
    for stream in STREAMS:
      assert set(tom[split][stream]) == set(theory_of_mind.ROWS)
      for label, m in tom[split][stream].items():
        if label == theory_of_mind.WITNESS and m['n'] == 0:    # a subset: may be empty
          assert m['accuracy'] is None
          continue
        assert m['n'] > 0, (split, stream, label)
        assert 0.0 <= m['accuracy'] <= 1.0
      assert tom[split][stream]['all']['n'] == PER_LABEL * len(theory_of_mind.LABELS)
  views = results['perspective']
  assert set(views) == {'chitchat_partner_turns', 'scenario_partner_turns', 'scenario_reaction',
                        'next_turn', 'reaction_sign'}
  assert set(views['chitchat_partner_turns']) == {'validation'}
  assert set(views['next_turn']) == {'test', 'heldout'}
  assert set(views['reaction_sign']) == {'test'}
  for by_stream in views['reaction_sign'].values():
    for m in by_stream.values():      # every family has offers or tips of both signs
      assert set(m['families']) == set(scenarios.FAMILIES)
      assert sum(f['n'] for f in m['families'].values()) == m['n']
  for measure, by_split in views.items():
    for split, by_stream in by_split.items():
      for stream in STREAMS:
        m = by_stream[stream]
        assert m['n'] > 0 and 0.0 <= m['accuracy'] <= 1.0, (measure, split, stream)
        if 'nll' in m:
          assert m['tokens'] >= m['n'] and math.isfinite(m['nll']) and m['nll'] > 0


@pytest.fixture(scope='module')
def trained(evaluated_run):
  return checkpoints.load_run(evaluated_run[0])


@PRETRAIN_SMOKE
def test_scorer_matches_model_apply_on_one_example(trained):
  _, model, tokenizer, params, _ = trained
  example = stories.generate('test', seed=7, n=1, question_weights={'first_order': 1.0})[0]
  prompt, continuation = stories.prompt(example), stories.continuation(example)
  prompt_ids, tokens = tokenizer.encode(prompt), tokenizer.encode(prompt + continuation)
  assert tokens[:len(prompt_ids)] == prompt_ids and len(tokens) > len(prompt_ids)
  # Batched with a short filler sequence and padded by 37 tokens: none of that may leak in.
  scorer = scoring.Scorer(model, params, tokenizer, batch_size=4, lengths=(len(tokens) + 37,))
  scored = scorer.continuations(['Hi.', prompt], [' there', continuation])
  logits = jax.jit(model.apply)(params, jnp.asarray(tokens[:-1])[None])
  for stream in STREAMS:
    log_probs = np.asarray(jax.nn.log_softmax(logits[stream][0], -1))
    direct = sum(log_probs[t - 1, tokens[t]] for t in range(len(prompt_ids), len(tokens)))
    np.testing.assert_allclose(scored[stream][1], direct, rtol=1e-5, atol=1e-5)


@PRETRAIN_SMOKE
def test_probe_scores_the_parameters_it_is_given_with_one_compilation(trained):
  config, model, tokenizer, params, _ = trained
  settings = ml_collections.ConfigDict(config.evaluation.to_dict())
  settings.update(probe_stories_per_label=1, lengths=(320,))
  probe = theory_of_mind.Probe(model, tokenizer, settings)
  assert len(probe.examples) == len(theory_of_mind.LABELS)
  other = jax.tree.map(lambda x: x * 1.5, params)
  prompts = [stories.prompt(ex) for ex in probe.examples]
  answers = [stories.continuation(ex) for ex in probe.examples]
  for p in (params, other, params):
    scalars = probe(p)
    fresh = scoring.Scorer(model, p, tokenizer, settings.batch_size, settings.lengths,
                           streams=('prediction',))
    expected = theory_of_mind.evaluate(fresh, probe.examples)['prediction']
    assert scalars == {f'tom/{name}': m['accuracy'] for name, m in expected.items()
                       if m['n']}     # a row without stories (the witness subset can be) is left out
    np.testing.assert_allclose(probe.scorer.continuations(prompts, answers)['prediction'],
                               fresh.continuations(prompts, answers)['prediction'], rtol=1e-5)
  assert set(probe.scorer.streams) == {'prediction'} and probe.scorer.traces == 1
  line = theory_of_mind.probe_line(scalars)
  assert line.startswith('memory ') and 'first_order ' in line and 'all ' in line


# --- Hand-built: a byte tokenizer and a model that likes one letter per stream -----------------

class ByteTokenizer:
  """One id per byte; with `merge`, the text ': ' is one id (999), as a BPE merge would be."""

  def __init__(self, merge=False):
    self.merge = merge

  def encode(self, text):
    ids = list(text.encode())
    if self.merge:
      out, i = [], 0
      while i < len(ids):
        if ids[i:i + 2] == list(b': '):
          out.append(999)
          i += 2
        else:
          out.append(ids[i])
          i += 1
      ids = out
    return ids

  def encode_batch(self, texts):
    return [self.encode(t) for t in texts]


class LetterModel:
  """Every position predicts its stream's favourite byte with high probability."""

  def __init__(self, favourites):
    self.favourites = favourites

  def apply(self, params, tokens, streams=STREAMS, readout_at=None):
    del params
    shape = tokens.shape if readout_at is None else readout_at.shape
    return {s: jnp.broadcast_to(jax.nn.one_hot(ord(self.favourites[s]), 1000) * 5.0,
                                shape + (1000,)) for s in streams}


def test_ranking_picks_the_candidate_with_the_higher_likelihood():
  np.testing.assert_array_equal(
      scoring.two_candidate_accuracy([-1.0, -3.0, -2.0], [-2.0, -1.0, -2.0]), [1.0, 0.0, 0.5])
  example = {'id': 'hand-built', 'story': ['The key is in the tin.', 'Ada moved the key.'],
             'question': 'Where is the key really?', 'answer': 'box',
             'candidates': ['tin', 'box'], 'question_type': 'reality', 'tom': False,
             'story_type': 'true_belief'}
  scorer = scoring.Scorer(LetterModel({'behavior': 'b', 'prediction': 't'}), None,
                          ByteTokenizer(), batch_size=2, lengths=(128,))
  results = theory_of_mind.evaluate(scorer, [example])
  # ' box' holds the behavior's favourite 'b', ' tin' the prediction's 't' (once each).
  assert results['behavior']['reality/no_tom'] == {'accuracy': 1.0, 'n': 1}
  assert results['prediction']['reality/no_tom'] == {'accuracy': 0.0, 'n': 1}
  assert results['behavior']['first_order/tom'] == {'accuracy': None, 'n': 0}


class StoryTypeScorer:
  """A 'model' that knows whether a story holds a false belief but not whose: for every
  question of a false-belief story it favours the object's first place, otherwise its last."""

  streams = ('prediction',)

  def __init__(self, story_examples):
    self.by_prompt = {stories.prompt(ex): ex for ex in story_examples}

  def continuations(self, prompts, continuations):
    scores = []
    for prompt, continuation in zip(prompts, continuations):
      ex = self.by_prompt[prompt]
      text = ' '.join(ex['story'])
      first = re.search(rf'The {ex["object"]} is in the (\w+)\.', text).group(1)
      last = (re.findall(rf'moved the {ex["object"]} to the (\w+)\.', text) or [first])[-1]
      favoured = first if ex['story_type'] != 'true_belief' else last
      scores.append(float(continuation == ' ' + favoured))
    return {'prediction': np.array(scores)}


def test_witness_row_tells_whether_a_model_knows_whose_belief_is_false():
  examples = theory_of_mind.examples('test', seed=3, per_label=10)
  results = theory_of_mind.evaluate(StoryTypeScorer(examples), examples)['prediction']
  first_order_no_tom = [ex for ex in examples
                        if ex['question_type'] == 'first_order' and not ex['tom']]
  witnesses = [ex for ex in first_order_no_tom if ex['story_type'] != 'true_belief']
  assert 0 < len(witnesses) < len(first_order_no_tom)
  # Right on every false belief and every true-belief story, wrong on every witness: a
  # first-order score that looks half learned, and a witness row that says why.
  assert results['first_order/tom'] == {'accuracy': 1.0, 'n': 10}
  assert results[theory_of_mind.WITNESS] == {'accuracy': 0.0, 'n': len(witnesses)}
  assert results['first_order/no_tom']['accuracy'] == pytest.approx(
      1 - len(witnesses) / len(first_order_no_tom))
  assert results['all']['n'] == 10 * len(theory_of_mind.LABELS)
  assert 'witness 0.00' in theory_of_mind.probe_line(
      {f'tom/{row}': m['accuracy'] for row, m in results.items() if m['accuracy'] is not None})


def test_prompt_tokens_that_merge_with_the_continuation_fall_back_to_separate_encoding():
  tokenizer = ByteTokenizer(merge=True)
  scorer = scoring.Scorer(LetterModel({'behavior': 'b', 'prediction': 't'}), None, tokenizer,
                          batch_size=2, lengths=(64,))
  (tokens, prompt_length), = scorer.encode_pairs(['Q: where? A:'], [' box'])
  assert tokens == tokenizer.encode('Q: where? A:') + tokenizer.encode(' box')
  assert prompt_length == len(tokenizer.encode('Q: where? A:'))
  (tokens, prompt_length), = scorer.encode_pairs(['Q: where? A'], [': box'])
  assert tokens == tokenizer.encode('Q: where? A') + tokenizer.encode(': box')


def test_one_compilation_per_padded_length():
  scorer = scoring.Scorer(LetterModel({'behavior': 'b', 'prediction': 't'}), None,
                          ByteTokenizer(), batch_size=4, lengths=(16, 32))
  sequences = [list(range(2, n)) for n in range(4, 33)]
  scores = scorer.token_scores(sequences)
  scorer.token_scores(sequences[::-1])
  assert scorer.traces == 2
  assert [len(s['behavior'][0]) for s in scores] == [len(s) - 1 for s in sequences]
  with pytest.raises(ValueError, match='evaluation.lengths'):
    scorer.token_scores([list(range(40))])


def test_scoring_some_tokens_reads_out_only_those_with_at_most_three_compilations():
  from tomk.model import Model, ModelConfig
  model = Model(ModelConfig(vocab_size=300, d_model=16, num_heads=2, ffn_dim=32, trunk_layers=1,
                            tower_layers=1, max_len=64))
  params = model.init(jax.random.key(0))
  scorer = scoring.Scorer(model, params, ByteTokenizer(), batch_size=2, lengths=(32,))
  rng = np.random.default_rng(0)
  sequences = [list(rng.integers(1, 300, n)) for n in (20, 31, 32, 25, 9, 30)]
  # Batches of two by length: (9, 20) ask for 18 tokens (all 31 positions read out), (25, 30)
  # for 4 (an eighth of 32 suffices), (31, 32) for 10 (a half).
  scored = [np.arange(len(s) - 1) >= len(s) - 1 - k for s, k in
            zip(sequences, (18, 2, 10, 4, 3, 1))]
  full = scorer.token_scores(sequences)
  assert scorer.traces == 1
  some = scorer.token_scores(sequences, scored)
  assert scorer.traces == 3          # an eighth and a half; all was compiled before
  for f, s, wanted in zip(full, some, scored):
    for stream in STREAMS:
      np.testing.assert_allclose(s[stream][0][wanted], f[stream][0][wanted], atol=1e-5)
      np.testing.assert_array_equal(s[stream][1][wanted], f[stream][1][wanted])
      assert np.isnan(s[stream][0][~wanted]).all() and not s[stream][1][~wanted].any()
  with pytest.raises(ValueError, match='one per target'):
    scorer.token_scores(sequences[:1], [np.ones(len(sequences[0]), bool)])


def test_partner_turn_mask_covers_exactly_the_other_speakers_turns():
  from tomk.data import conversation
  c = conversation.Conversation.of([('Ann', 'hi'), ('Bob', 'yo'), ('Ann', 'ok')],
                                   perspective='Ann')
  tokens, partner = perspective.rendered_tokens(ByteTokenizer(), c)
  text = conversation.render(c)
  assert bytes(tokens).decode() == text
  assert bytes(t for t, p in zip(tokens, partner) if p).decode() == '<other> Bob: yo<eot>'
