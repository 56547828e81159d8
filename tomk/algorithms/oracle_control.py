"""oracle_control — the positive control of the kindness experiment, not an algorithm of
the papers: policy gradient on the partner's TRUE reward.

Before a kindness algorithm's null result means anything, the same machinery (curriculum,
rollouts, policy gradient, evaluation) must be shown able to raise the partners' true
reward when it is handed that reward. This is the only training path that reads
SocialWorld's ground truth, and it does so by name: each prompt's scenario is drawn again
from its id ('<family>-<split>-<seed>-<index>', as scenarios.make_example names it) and
its partner_reward scores the response. tests/test_algorithms.py keeps every other
algorithm away from ground truth and checks that this one reads it.

  a ~ π_B(s);  R = partner_reward(a)   rl on a → behavior, perception

rlhf's objective and routing, with the true reward in place of the reward model's.
"""
import numpy as np

from tomk import socialworld
from tomk.algorithms import rlhf

ROUTES = rlhf.ROUTES
DATA = 'prompts'
objectives = rlhf.objectives
gates = rlhf.gates


def check(config) -> None:
  if config.data.prompts:
    raise ValueError(f'oracle_control scores SocialWorld scenarios by their ground truth, but '
                     f'data.prompts={config.data.prompts!r} gives prompts of your own, which '
                     f'have none; unset it for this stage.')


def scenario(conversation_id: str) -> dict:
  """The SocialWorld scenario a prompt came from, with its ground truth."""
  family, split, seed, index = conversation_id.rsplit('-', 3)
  return socialworld.generate(family, split, int(seed), n=1, start=int(index))[0]


def rewards(context, params, conversations, responses, key):
  """R = the partner's true reward of each response (the oracle)."""
  del context, params, key
  examples = [scenario(c.id) for c in conversations]
  truth = np.asarray([ex['partner_reward'](r) for ex, r in zip(examples, responses)], np.float32)
  metrics = {'reward/oracle': float(truth.mean())}
  # The share of samples that offer one of the options at all (of the rows that have
  # options): without offers the true reward has nothing to rank.
  offered = [o for o in (ex['offers_an_option'](r) for ex, r in zip(examples, responses))
             if o is not None]
  if offered:
    metrics['reward/offers'] = float(np.mean(offered))
  return truth, metrics
