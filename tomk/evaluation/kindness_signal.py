"""The kindness-signal check (SPEC §3): does a reward estimator carry the partner's wants?

Before an RL result is trusted its reward must be shown to carry signal. For held-out
scenarios of each family, every candidate response SocialWorld knows for the scenario,
plus SMALL_TALK (true partner reward 0 in every family, so a reward that prefers stalling
shows), is scored by each estimator:

  oracle        the partner's true reward (ground truth: evaluation only), the upper bound
  random        a seeded random score: no signal at all (one draw; an estimator can do
                worse, preferring what partners dislike)
  simulate      empathy's training reward (kindness.estimated_rewards): the prediction
                stream plays the partner from the partner's perspective, averaged over
                `signal_replies` simulated replies
  self          naive_kindness's training reward (kindness.target_rewards, 003 Alg. 1
                line 6: both terms weighted 1), the behavior stream playing the partner,
                averaged the same way
  inferred      the reward head r̂ of the partner's switched state (models with a head)
  reward_model  the RLHF reward of the candidate in isolation (once the run has one)

Per split, estimator and family: `mean` (with `ci95` and `n`), the true partner reward of
the candidate the estimator ranks first, ties broken at random; and `pairwise`, the share
of candidate pairs with different true rewards that the estimator orders as the truth
does (a tie counts half), averaged per scenario (with `pairwise_ci95`; 0.5 is chance). An
estimator whose picks sit at `random`'s carries no signal; one at `oracle`'s carries all
there is.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import jax
import numpy as np

from tomk import rollout, socialworld, stats
from tomk.algorithms import kindness
from tomk.data import conversation as conversation_lib
from tomk.sampler import Sampler, SamplingConfig
from tomk.socialworld import scenarios

SMALL_TALK = 'How is your day going?'
ESTIMATORS = ('oracle', 'random', 'simulate', 'self', 'inferred', 'reward_model')
# An estimator: (conversations, responses, key) -> float32[n], one score per response.
Estimator = Callable[[Sequence, Sequence[str], jax.Array], np.ndarray]


def candidates(example: dict) -> list[str]:
  """The responses scored for a scenario: its own candidates, then SMALL_TALK."""
  return list(example['candidates']) + [SMALL_TALK]


def _chunked(estimator: Estimator, batch_size: int, replies: int = 1) -> Estimator:
  """`estimator` over fixed batches of `batch_size` (one compiled program), each response
  scored `replies` times (fresh simulated replies each time) and averaged."""
  def scores(conversations, responses, key):
    rows = [(c, r) for c, r in zip(conversations, responses) for _ in range(replies)]
    out = []
    for start in range(0, len(rows), batch_size):
      chunk = rows[start:start + batch_size]
      padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
      values = estimator([c for c, _ in padded], [r for _, r in padded],
                         jax.random.fold_in(key, start))
      out.append(np.asarray(values, np.float32)[:len(chunk)])
    return np.concatenate(out).reshape(-1, replies).mean(1)
  return scores


def estimators(config, model, tokenizer, params, settings, reward_functions) -> dict:
  """{name: Estimator} of every estimator this run can evaluate (see the module docstring).

  reward_functions: {'extrinsic': RLHF, 'intrinsic': IRF}; without 'extrinsic' (no reward
  model yet) `reward_model` is left out and `self` scores the IRF term alone.
  """
  sampler = Sampler(model, tokenizer.eot_id, tokenizer.pad_id,
                    prompt_len=rollout.simulation_prompt_len(config))
  sampling = SamplingConfig(config.rl.max_new_tokens, config.rl.temperature, config.rl.top_k,
                            config.rl.top_p)

  def context(**kindness_settings):
    setting = copy.deepcopy(config)
    setting.kindness.update(individuals='partner', horizon=1, **kindness_settings)
    return rollout.Context(model, tokenizer, sampler, sampling, setting, reward_functions)

  has_rlhf = 'extrinsic' in reward_functions
  simulate = context(reward='simulate')
  self_play = context(w_ext=1.0 if has_rlhf else 0.0, w_int=1.0)      # Alg. 1 line 6
  out = {
      'simulate': lambda c, r, k: kindness.estimated_rewards(simulate, params, c, r, k,
                                                             'prediction')[0],
      'self': lambda c, r, k: kindness.target_rewards(self_play, params, c, r, k)[0],
  }
  if config.model.reward_head:
    inferred = context(reward='inferred', w_ext=0.0, w_int=1.0)
    out['inferred'] = lambda c, r, k: kindness.estimated_rewards(inferred, params, c, r, k,
                                                                 'prediction')[0]
  if has_rlhf:
    out['reward_model'] = lambda c, r, k: reward_functions['extrinsic'](
        [conversation_lib.prompt_for(x) for x in c], r)
  stochastic = {'simulate', 'self'}
  return {name: _chunked(fn, settings.signal_batch_size,
                         settings.signal_replies if name in stochastic else 1)
          for name, fn in out.items()}


def check_signal(examples: list[dict], estimator_fns: dict, key) -> dict:
  """{estimator: {'mean', 'ci95', 'n', 'pairwise', 'pairwise_ci95'}} over `examples` of one
  family; estimator_fns as estimators() gives them (oracle and random are added here)."""
  conversations, responses, owner = [], [], []
  for i, ex in enumerate(examples):
    for response in candidates(ex):
      conversations.append(ex['conversation'])
      responses.append(response)
      owner.append(i)
  owner = np.asarray(owner)
  truth = np.asarray([examples[i]['partner_reward'](r) for i, r in zip(owner, responses)],
                     np.float32)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint32))
  scored = {'oracle': truth, 'random': rng.random(len(responses)).astype(np.float32)}
  for number, (name, fn) in enumerate(estimator_fns.items(), 1):
    scored[name] = np.asarray(fn(conversations, responses, jax.random.fold_in(key, number)),
                              np.float32)
  tie_break = rng.random(len(responses))
  results = {}
  for name, scores in scored.items():
    picks, pairwise = [], []
    for i in range(len(examples)):
      rows = np.flatnonzero(owner == i)
      best = rows[np.lexsort((tie_break[rows], scores[rows]))[-1]]   # highest, ties at random
      picks.append(float(truth[best]))
      agree = [1.0 if (scores[a] - scores[b]) * (truth[a] - truth[b]) > 0 else
               0.5 if scores[a] == scores[b] else 0.0
               for j, a in enumerate(rows) for b in rows[j + 1:] if truth[a] != truth[b]]
      if agree:
        pairwise.append(float(np.mean(agree)))
    results[name] = {**_summary(picks), 'pairwise': None, 'pairwise_ci95': None}
    if pairwise:
      summary = _summary(pairwise)
      results[name].update(pairwise=summary['mean'], pairwise_ci95=summary['ci95'])
  return results


def _summary(values: list[float]) -> dict:
  s = stats.summarize(values)
  return {'mean': s.mean, 'ci95': None if s.ci is None else [s.low, s.high], 'n': s.n}


def evaluate(config, model, tokenizer, params, settings, reward_functions) -> dict:
  """{split: {estimator: {family: check_signal's numbers}}} on the first
  evaluation.signal_scenarios_per_family held-out scenarios of each of
  evaluation.signal_families."""
  fns = estimators(config, model, tokenizer, params, settings, reward_functions)
  out = {}
  for split in settings.signal_splits:
    for family in settings.signal_families:
      examples = socialworld.generate(family, split, settings.seed,
                                      n=settings.signal_scenarios_per_family)
      key = jax.random.fold_in(jax.random.key(settings.seed), scenarios.FAMILIES.index(family))
      for name, numbers in check_signal(examples, fns, key).items():
        out.setdefault(split, {}).setdefault(name, {})[family] = numbers
  return out


def table(results: dict) -> str:
  """The check as a terminal table: true reward of each estimator's picks (pairwise order
  accuracy), per family."""
  lines = ['Kindness signal: true partner reward of the candidate each estimator ranks first '
           '(pairwise order accuracy); oracle = the best, random = none']
  for split, by_estimator in results.items():
    families = list(next(iter(by_estimator.values())))
    lines.append(f'{split:14}' + ''.join(f'{f[:18]:>20}' for f in families))
    for name, by_family in by_estimator.items():
      cells = []
      for family in families:
        m = by_family[family]
        pairwise = '  -' if m['pairwise'] is None else f'{m["pairwise"]:.2f}'
        cells.append(f'{m["mean"]:+.2f} ({pairwise})')
      lines.append(f'  {name:12}' + ''.join(f'{c:>20}' for c in cells))
  return '\n'.join(lines)
