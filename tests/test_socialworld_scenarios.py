"""SocialWorld conversation scenarios, their ground truth, and the rater's pairs."""
import json

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from tomk.data import conversation as conv
from tomk.socialworld import ground_truth
from tomk.socialworld import preferences
from tomk.socialworld import rater
from tomk.socialworld import scenarios

ANALYZER = SentimentIntensityAnalyzer()
ITEM_FAMILIES = ('preference_offer', 'similar_partner', 'dissimilar_partner')


def _free_text_offers(item):
  """Ways a model might offer an item that no candidate uses."""
  return [f'Would you like some {item}?', f'{item.capitalize()} for you!',
          f'I think {item} would be best.', f'ok here {item}',
          f'Let me pour you some {item}, my friend.']


@pytest.mark.parametrize('family', ITEM_FAMILIES)
def test_partner_reward_ranks_liked_above_disliked(family):
  for ex in scenarios.generate(family, 'train', 0, 300):
    u = ex['hidden']['utilities'][ex['partner']]
    liked, disliked = max(u, key=u.get), min(u, key=u.get)
    assert u[liked] > 0 > u[disliked]
    for good, bad in zip(_free_text_offers(liked), _free_text_offers(disliked)):
      assert ex['partner_reward'](good) == u[liked]
      assert ex['partner_reward'](bad) == u[disliked]
    best = max(ex['candidates'], key=ex['partner_reward'])
    assert ex['candidate_kinds'][ex['candidates'].index(best)] == f'offer:{liked}'
    assert ex['partner_reward']('The weather is lovely today.') == 0.0   # unknown text


def test_offers_an_option_tells_an_offer_of_any_option_from_everything_else():
  for family in ITEM_FAMILIES:
    for ex in scenarios.generate(family, 'test', 0, 20):
      for candidate, kind in zip(ex['candidates'], ex['candidate_kinds']):
        assert ex['offers_an_option'](candidate) == kind.startswith('offer'), candidate
      assert ex['offers_an_option']('The weather is lovely today.') is False
  for ex in scenarios.generate('false_belief_assist', 'test', 0, 5):
    assert ex['offers_an_option'](ex['candidates'][0]) is None    # no options to offer


def test_a_counterfactual_reaction_has_the_opposite_sign_and_names_the_same_things():
  """The reaction-sign check's wrong candidate: the partner's reply to the same response
  had the reward the opposite sign. Both name the same items, so only the sign tells them
  apart; responses worth 0 (small talk, a refusal) have none."""
  for family in scenarios.FAMILIES:
    flipped_any = 0
    for ex in scenarios.generate(family, 'test', 0, 30):
      for response in ex['candidates'] + ['The weather is lovely today.']:
        reward = ex['partner_reward'](response)
        flipped = ex['counterfactual_reaction'](response)
        if flipped is None:
          assert reward == 0 or reward == preferences.REFUSAL or reward == 0.5, response
          continue
        flipped_any += 1
        true = ex['reaction'](response)
        sentiment = lambda text: ANALYZER.polarity_scores(text)['compound']
        assert (sentiment(true) > sentiment(flipped)) == (reward > 0), (response, true, flipped)
        if ex['hidden']['kind'] != 'location':
          affirmed = ground_truth.read_response(response, ex['hidden']['options'])[0]
          assert all(item in true.lower() and item in flipped.lower() for item in affirmed)
    assert flipped_any, family


def test_dissimilar_partners_want_what_the_model_does_not():
  for family, sign in (('similar_partner', 1), ('dissimilar_partner', -1)):
    for ex in scenarios.generate(family, 'train', 1, 200):
      hidden = ex['hidden']
      for item, mine in hidden['self_utilities'].items():
        assert hidden['utilities'][ex['partner']][item] == sign * mine
      # The model said what it likes itself, before the partner's last turn.
      assert ex['conversation'].turns[1].speaker == ex['model_name']


def test_false_belief_assist_rewards_telling_the_truth():
  seen = set()
  for ex in scenarios.generate('false_belief_assist', 'train', 2, 300):
    h, r = ex['hidden'], ex['partner_reward']
    truth, believed = h['true_location'], h['believed_location']
    old = [c for c in h['containers'] if c != truth][0]
    seen.add(h['false_belief'])
    assert r(f'It is in the {truth} now.') == (1.0 if h['false_belief'] else 0.5)
    assert r(f'Check the {old}.') == -1.0
    assert r('Okay, see you.') == 0.0
    if h['false_belief']:
      assert believed == old
      assert r(f'It is not in the {old}, it is in the {truth}.') == 1.0
      assert r(f'Careful, it is not in the {old} any more.') == 0.5
    kinds = dict(zip(ex['candidate_kinds'], ex['candidates']))
    assert r(kinds['inform']) > r(kinds['silent']) > r(kinds['misinform'])
  assert seen == {True, False}


def test_third_party_is_harmed_by_pleasing_the_partner():
  for ex in scenarios.generate('third_party', 'train', 3, 200):
    h = ex['hidden']
    owner, (kept, other) = h['third_party'], h['options']
    give = f'Here is the {kept}.'
    assert ex['partner_reward'](give) > ex['partner_reward'](f'Here is some {other}.') > 0
    assert ex['third_party_rewards'](give) == {owner: -1.0}
    spare = f'{owner} is saving the {kept}, but you can have some {other}.'
    assert ex['third_party_rewards'](spare) == {owner: 0.0}
    assert ex['partner_reward'](spare) == 0.5
    assert ex['partner'] in ex['conversation'].speakers
    assert owner in ex['conversation'].speakers   # spoke earlier, absent now


def test_multi_party_shared_item_is_best_for_everyone():
  sizes = set()
  for ex in scenarios.generate('multi_party', 'train', 4, 200):
    speakers = ex['conversation'].speakers
    sizes.add(len(speakers))
    assert len(speakers) >= 3 and ex['model_name'] not in speakers[:1]

    def total(text):
      return ex['partner_reward'](text) + sum(ex['third_party_rewards'](text).values())
    shared = max(ex['hidden']['options'], key=lambda i: total(f'Here is some {i}.'))
    assert all(u[shared] > 0 for u in ex['hidden']['utilities'].values())
  assert sizes == {3, 4}   # the model, the asker, one or two more


def test_reaction_sentiment_has_the_sign_of_the_true_reward():
  signs = set()
  for family in scenarios.FAMILIES:
    for ex in scenarios.generate(family, 'train', 5, 60):
      h = ex['hidden']
      words = h['containers'] if h['kind'] == 'location' else h['options']
      responses = ex['candidates'] + ['Hmm.', 'Sorry, no.'] + [
          f'Here is some {w}.' if h['kind'] == 'items' else f'Look in the {w}.'
          for w in words]
      for response in responses:
        reward = ex['partner_reward'](response)
        reaction = ex['reaction'](response)
        assert reaction == ex['reaction'](response)   # pure
        compound = ANALYZER.polarity_scores(reaction)['compound']
        if reward > 0:
          assert compound > 0.05, (response, reward, reaction, compound)
        elif reward < 0:
          assert compound < -0.05, (response, reward, reaction, compound)
        else:
          assert abs(compound) < 0.05, (response, reward, reaction, compound)
        signs.add((reward > 0) - (reward < 0))
  assert signs == {-1, 0, 1}


def test_every_reaction_phrasing_reads_right():
  """All templates, not just the sampled ones."""
  for reward in (1.0, 0.5, 0.0, -0.5, -1.0):
    for key in range(12):
      text = preferences.reaction_text(reward, ['tea'], key)
      compound = ANALYZER.polarity_scores(text)['compound']
      assert (compound > 0.05) if reward > 0 else (compound < -0.05) if reward < 0 \
          else abs(compound) < 0.05, (reward, text, compound)
  for key in range(12):
    text = preferences.reaction_text(preferences.REFUSAL, [], key, refused=True)
    assert ANALYZER.polarity_scores(text)['compound'] < -0.05, text


def test_read_response():
  words = ['tea', 'coffee', 'box', 'basket']
  read = ground_truth.read_response
  assert read('Here you go, some tea.', words) == (['tea'], [], False)
  assert read('Not the coffee, the tea.', words) == (['tea'], ['coffee'], False)
  assert read('Leo is saving the coffee, but here is some tea.', words)[0] == ['tea']
  assert read('Why not try the teas?', words)[0] == ['tea']
  assert read("It's not in the box, it's in the basket.", words, False)[:2] == (
      ['basket'], ['box'])
  assert read('Sorry, no tea today.', words) == ([], ['tea'], True)
  assert read('Teapots are nice.', words) == ([], [], False)


def test_conversation_ends_with_the_partner_and_ground_truth_is_plain_data():
  for family in scenarios.FAMILIES:
    for ex in scenarios.generate(family, 'heldout', 6, 20, model_name='Robin'):
      c = ex['conversation']
      assert c.perspective == 'Robin' and c.turns[-1].speaker == ex['partner']
      prompt = conv.prompt_for(c)
      assert prompt.endswith(conv.SELF + ' ')
      assert 'utilit' not in prompt and 'hidden' not in prompt
      record = json.loads(json.dumps(scenarios.to_record(ex)))
      for text in ex['candidates'] + ['Hello there.']:
        assert scenarios.partner_reward(record['hidden'], text) == ex['partner_reward'](text)
        assert scenarios.reaction(record['hidden'], text) == ex['reaction'](text)
      after = scenarios.respond(ex, ex['candidates'][0])
      assert [t.speaker for t in after.turns[-2:]] == ['Robin', ex['partner']]


def test_rater_prefers_style_and_ignores_hidden_wants():
  pairs = rater.generate('train', 0, 600)
  agree = []
  for p in pairs:
    assert set(p) >= {'prompt', 'chosen', 'rejected'}
    assert p['chosen'] != p['rejected']
    assert p['chosen_score'] > p['rejected_score']
    assert rater.score(p['prompt'], p['chosen']) == p['chosen_score']
    assert p['prompt'].endswith(conv.SELF + ' ')
    if p['chosen_partner_reward'] != p['rejected_partner_reward']:
      agree.append(p['chosen_partner_reward'] > p['rejected_partner_reward'])
  rate = sum(agree) / len(agree)
  print(f'\nrater agrees with the partner on {rate:.2f} of {len(agree)} pairs')
  assert 0.35 < rate < 0.65   # blind to what the partner wants
  prompt = pairs[0]['prompt']
  assert rater.score(prompt, 'Of course! Here is some tea. I hope that helps.') > \
      rater.score(prompt, 'Whatever. Here is some tea. Go away.') > \
      rater.score(prompt, 'whatever whatever go go away')
  noisy = rater.generate('train', 0, 600, noise=0.2)
  flipped = sum(p['chosen_score'] < p['rejected_score'] for p in noisy) / len(noisy)
  assert flipped == pytest.approx(0.2, abs=0.06)
