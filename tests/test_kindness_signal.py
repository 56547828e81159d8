"""The kindness-signal check measures what it says: an estimator that knows the partner's
wants picks as the oracle does, a blind one as at random (scripted estimators); and a
real run's check has every estimator, at the stages it runs at."""
import jax
import numpy as np

from tomk import socialworld
from tomk.evaluation import kindness_signal


def _examples(family, n=40):
  return socialworld.generate(family, 'test', 2411, n=n)


def test_small_talk_is_worth_nothing_to_every_partner():
  for family in kindness_signal.scenarios.FAMILIES:
    for ex in _examples(family, 5):
      assert ex['partner_reward'](kindness_signal.SMALL_TALK) == 0.0
      assert kindness_signal.candidates(ex)[-1] == kindness_signal.SMALL_TALK


def test_a_knowing_estimator_picks_like_the_oracle_and_a_blind_one_like_random():
  examples = _examples('preference_offer')
  by_response = {}

  def knowing(conversations, responses, key):
    """Reads the partner's wants the way a perfect simulator would (a test stand-in)."""
    del key
    truth = []
    for c, r in zip(conversations, responses):
      ex = next(e for e in examples if e['conversation'] is c)
      truth.append(ex['partner_reward'](r))
    by_response.update(zip(responses, truth))
    return np.asarray(truth) * 2.0 + 1.0        # any increasing function of the truth

  def blind(conversations, responses, key):
    del conversations, key
    return np.zeros(len(responses))

  def stalling(conversations, responses, key):
    """Prefers small talk, as a reward that scores the partner's mood after it would."""
    del conversations, key
    return np.asarray([1.0 if r == kindness_signal.SMALL_TALK else 0.0 for r in responses])

  results = kindness_signal.check_signal(
      examples, {'knowing': knowing, 'blind': blind, 'stalling': stalling}, jax.random.key(0))
  oracle, random, knowing, blind = (results[k] for k in ('oracle', 'random', 'knowing', 'blind'))
  assert knowing['mean'] == oracle['mean'] and knowing['pairwise'] == oracle['pairwise'] == 1.0
  assert oracle['n'] == len(examples) and oracle['ci95'][0] <= oracle['mean'] <= oracle['ci95'][1]
  assert blind['pairwise'] == 0.5                  # every pair tied: half right
  # A blind pick is a random pick: far below the oracle, within the random bound's reach.
  assert oracle['mean'] - blind['mean'] > 0.5
  assert abs(blind['mean'] - random['mean']) < 0.5 and random['pairwise'] < 0.75
  assert results['stalling']['mean'] == 0.0        # small talk, every time
  assert set(by_response.values()) > {0.0}


def test_estimators_average_simulated_replies_over_fixed_batches():
  calls = []

  def noisy(conversations, responses, key):
    calls.append(len(responses))
    return np.asarray([len(r) for r in responses], np.float32) + jax.random.uniform(
        key, (len(responses),))
  scores = kindness_signal._chunked(noisy, batch_size=8, replies=3)(
      ['c'] * 5, ['a', 'bb', 'ccc', 'dddd', 'eeeee'], jax.random.key(1))
  assert calls == [8, 8]                            # 15 rows, one shape
  np.testing.assert_array_less(np.abs(scores - np.arange(1, 6) - 0.5), 0.5)
