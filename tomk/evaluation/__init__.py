"""Evaluation of a trained run (SPEC §6): Theory of Mind, perspective-taking, kindness.

  results = evaluation.run(workdir)            # the latest checkpoint; writes eval.json
  results = evaluation.run(workdir, stage=S)   # the end of stage S; writes eval/S.json
  python -m tomk.evaluate --workdir=W [--step=N] [--stage=S]

Training evaluates every stage of a curriculum as it ends (eval/<stage>.json; the
last one is also eval.json), and tomk.report tabulates them side by side.

Every number comes with its number of examples `n`, and every example is drawn from
`config.evaluation.seed`, which does not follow the training seed, so runs of any seed
are scored on the same stories and conversations. eval.json:

  {'step': int (of the stage's checkpoint), 'stage': str, 'seed': evaluation seed,
   'train_seed': int,
   'theory_of_mind': {split: {stream: {'memory/no_tom' | 'first_order/tom' | ... | 'all':
                                       {'accuracy', 'n'}}}},
   'perspective': {'chitchat_partner_turns': {'validation': {stream: measure}},
                   'scenario_partner_turns': {split: {stream: measure}},
                   'scenario_reaction': {split: {stream: measure}},
                   'next_turn': {split: {stream: {'accuracy', 'n'}}},
                   'reaction_sign': {first split: {stream: {'accuracy', 'n',
                                                            'families': {family: {...}}}}}},
   'kindness': {split: {family: {'partner_reward', 'third_party_harm_rate', 'offer_rate',
                                 'liked_rate', 'reward_model', 'self_prediction', 'n',
                                 'example'}}}}

with measure = {'nll' (per token), 'accuracy' (next token), 'tokens', 'n' (conversations)}.
"""
from __future__ import annotations

import json
import time

import jax
import ml_collections

from tomk import algorithms, checkpoints, curriculum, rollout, rundir
from tomk.algorithms import reward_model
from tomk.data import sources
from tomk.socialworld import scenarios
from tomk.evaluation import kindness
from tomk.evaluation import kindness_signal
from tomk.evaluation import perspective
from tomk.evaluation import scoring
from tomk.evaluation import theory_of_mind
from tomk.model import STREAMS

CHITCHAT_SPLIT = 'validation'
# The key of evaluate()'s results holding kindness's per-scenario rows; save() writes them
# beside the stage's evaluation (eval/<stage>.scenarios.jsonl), not into it.
SCENARIOS = 'kindness_scenarios'


def check(config) -> None:
  """Errors for config.evaluation."""
  settings = config.evaluation
  unknown = [f for f in settings.signal_families if f not in scenarios.FAMILIES]
  if unknown:
    raise ValueError(f'evaluation.signal_families names {unknown}; choose among '
                     f'{", ".join(scenarios.FAMILIES)}.')
  for key in ('signal_scenarios_per_family', 'signal_replies', 'signal_batch_size'):
    minimum = 0 if key == 'signal_scenarios_per_family' else 1
    if not (isinstance(settings[key], int) and settings[key] >= minimum):
      raise ValueError(f'evaluation.{key}={settings[key]!r}: set it to an integer >= {minimum}.')
  probe = settings.probe_stories_per_label
  if not (isinstance(probe, int) and 0 <= probe <= settings.stories_per_label):
    raise ValueError(f'evaluation.probe_stories_per_label={probe!r} is a number of test stories '
                     f'per row, the first of the evaluation\'s: set it to an integer from 0 (no '
                     f'probe while training) to evaluation.stories_per_label='
                     f'{settings.stories_per_label}.')


def human_conversations(data_config) -> ml_collections.ConfigDict:
  """data_config reading real people: its own JSONL source, else chitchat.

  A run trained on SocialWorld alone, or on a mixture, is still scored on chitchat,
  so perspective-taking on real people compares across runs.
  """
  data = ml_collections.ConfigDict(data_config.to_dict())
  if not sources.is_jsonl(data.source):
    data.source = 'chitchat'
  data.mixture = ''
  return data


def evaluate(config, model, tokenizer, params, step: int | None = None,
             log=print, extrinsic=None, keep: dict | None = None,
             reward_functions: dict | None = None) -> dict:
  """All of §6 for `params`; see the module docstring.

  `keep`: an earlier evaluation of the same parameters whose theory_of_mind and
  perspective stand; only kindness, which the reward model (`extrinsic`) scores, is redone.
  `reward_functions` ({'extrinsic', 'intrinsic'}, as training uses them): with them and
  evaluation.signal_scenarios_per_family > 0, the kindness-signal check too.
  """
  settings = config.evaluation
  results = {'step': step, 'seed': settings.seed, 'train_seed': config.seed}
  if keep is not None:
    results.update(theory_of_mind=keep['theory_of_mind'], perspective=keep['perspective'])
  else:
    results.update(_likelihoods(config, model, tokenizer, params, settings, log))
  started = time.perf_counter()
  results['kindness'], results[SCENARIOS] = kindness.evaluate(config, model, tokenizer, params,
                                                              settings, extrinsic)
  log(f'[evaluate] kindness: {time.perf_counter() - started:.1f} s')
  if reward_functions is not None and settings.signal_scenarios_per_family:
    started = time.perf_counter()
    results['kindness_signal'] = kindness_signal.evaluate(config, model, tokenizer, params,
                                                          settings, reward_functions)
    log(f'[evaluate] kindness signal: {time.perf_counter() - started:.1f} s')
  return results


def _likelihoods(config, model, tokenizer, params, settings, log) -> dict:
  """Theory of Mind and perspective-taking: the likelihood of given text, no sampling."""
  switch_names = config.data.switch_names_in_text
  scorer = scoring.Scorer(model, params, tokenizer, settings.batch_size, settings.lengths)
  tom, views = {}, {}
  started = time.perf_counter()
  for split in settings.splits:
    tom[split] = theory_of_mind.evaluate(
        scorer, theory_of_mind.examples(split, settings.seed, settings.stories_per_label))
  log(f'[evaluate] theory of mind: {time.perf_counter() - started:.1f} s')

  started = time.perf_counter()
  window = min(config.data.seq_len + 1, scorer.max_length)
  sequences, masks, groups = perspective.chitchat_windows(
      human_conversations(config.data), tokenizer, CHITCHAT_SPLIT, settings.chitchat_conversations,
      window, settings.windows_per_conversation)
  views['chitchat_partner_turns'] = {
      CHITCHAT_SPLIT: perspective.token_measure(scorer, sequences, masks, groups)}
  for split in settings.splits:
    examples = perspective.scenario_examples(split, settings.seed, settings.scenarios_per_family)
    measures = perspective.scenario_measures(scorer, tokenizer, examples, switch_names)
    views.setdefault('scenario_partner_turns', {})[split] = measures['partner_turns']
    views.setdefault('scenario_reaction', {})[split] = measures['reaction']
    views.setdefault('next_turn', {})[split] = perspective.next_turn(scorer, examples,
                                                                     switch_names)
    if split == settings.splits[0]:       # the simulator's question, on the first split only
      views.setdefault('reaction_sign', {})[split] = perspective.reaction_sign(
          scorer, examples, switch_names)
  log(f'[evaluate] perspective-taking: {time.perf_counter() - started:.1f} s '
      f'(compilations so far: {scorer.traces})')
  if scorer.truncated:
    log(f'[evaluate] warning: {scorer.truncated} stories or conversations were longer than '
        f'{scorer.max_length} tokens and lost their beginning; add a longer padded length '
        f'to evaluation.lengths.')
  return {'theory_of_mind': tom, 'perspective': views}


def _reward_model_trained_by(config, stage: str | None) -> bool:
  """Whether the curriculum has trained its reward model by the end of `stage` (None: the
  last stage; the imported model, scored before the first stage that trains the policy: by
  then)."""
  stages = curriculum.stages(config)
  names = [name for name, _ in stages]
  trains_it = [algorithms.forks_trainer(algorithms.get(c.algorithm)) for _, c in stages]
  if stage is None:
    end = len(stages)
  elif stage in names:
    end = names.index(stage) + 1
  else:
    end = next((i for i, yes in enumerate(trains_it) if not yes), len(stages))
  return any(trains_it[:end])


def run(workdir: str, step: int | None = None, log=print, stage: str | None = None,
        keep: dict | None = None, signal: bool = True) -> dict:
  """Evaluates a run's latest (or given) checkpoint, of the last stage or the one `stage`
  ended with; writes eval.json (eval/<stage>.json) and prints the tables. `keep`: see
  evaluate; `signal`: whether to run the kindness-signal check (when it is on).

  The reward-model score needs the run's reward model: a stage evaluated before its
  reward_model stage has none (also in a branch, which holds the reward model already).
  """
  config, model, tokenizer, params, step = checkpoints.load_run(workdir, step, stage)
  extrinsic = None
  if reward_model.trained(workdir) and _reward_model_trained_by(config, stage):
    extrinsic = rollout.reward_function('reward_model', workdir, tokenizer)
  results = evaluate(config, model, tokenizer, params, step, log=log, extrinsic=extrinsic,
                     keep=keep,
                     reward_functions=rollout.reward_functions(config, workdir, tokenizer,
                                                               trained_only=True)
                     if signal else None)
  results['stage'] = stage or curriculum.stages(config)[-1][0]
  save(workdir, results, stage)
  if jax.process_index() == 0:
    log(table(results))
    log(kindness.table(results['kindness']))
    if 'kindness_signal' in results:
      log(kindness_signal.table(results['kindness_signal']))
  del results[SCENARIOS]             # saved beside the evaluation, not returned with it
  return results


def load(workdir: str, stage: str | None = None) -> dict | None:
  """The saved results (rundir.eval_path), or None if there are none."""
  return rundir.read_json(rundir.eval_path(workdir, stage))


def save(workdir: str, results: dict, stage: str | None = None) -> None:
  """Writes results to rundir.eval_path(workdir, stage), and a stage's per-scenario rows
  (results[SCENARIOS]) to rundir.scenarios_path, atomically; only process 0 writes."""
  if jax.process_index() != 0:
    return
  results = dict(results)
  rows = results.pop(SCENARIOS, None)
  # The rows first: eval/<stage>.json marks the stage evaluated (a run killed between the
  # two files evaluates it again rather than go on without its rows).
  if rows is not None and stage is not None:
    rundir.write_text(rundir.scenarios_path(workdir, stage), ''.join(
        json.dumps({**row, 'step': results['step']}, sort_keys=True) + '\n' for row in rows))
  rundir.write_json(rundir.eval_path(workdir, stage), results)


# --- The table ----------------------------------------------------------------------------------

def _accuracy(m: dict) -> str:
  return '   -' if m['accuracy'] is None else f'{m["accuracy"]:.2f}'


def table(results: dict) -> str:
  """The results as two terminal tables: ToM rows × (stream, split) and perspective rows."""
  tom = results['theory_of_mind']
  splits = list(tom)
  columns = [(stream, split) for stream in STREAMS for split in splits]
  width = 16
  lines = [f'Theory of Mind at step {results["step"]}: accuracy (n) of two-candidate ranking, '
           f'chance 0.50; evaluation seed {results["seed"]}',
           f'{"":20}' + ''.join(f'{stream:{width * len(splits)}}' for stream in STREAMS),
           f'{"question":20}' + ''.join(f'{split:{width}}' for _, split in columns)]
  for name in theory_of_mind.ROWS:
    # .get: an eval.json kept from before a row was added lacks it.
    cells = [tom[split][stream].get(name, {'accuracy': None, 'n': 0})
             for stream, split in columns]
    lines.append(f'{name:20}' + ''.join(f'{_accuracy(m) + " (" + str(m["n"]) + ")":{width}}'
                                        for m in cells))
  lines += ['', 'Perspective-taking: the partner\'s turns, NLL per token / next-token accuracy '
            '(conversations); next turn, reaction sign: accuracy (n), chance 0.50',
            f'{"":38}' + ''.join(f'{stream:26}' for stream in STREAMS)]
  for measure, by_split in results['perspective'].items():
    for split, by_stream in by_split.items():
      cells = []
      for stream in STREAMS:
        m = by_stream[stream]
        if 'nll' in m:
          nll = '   -' if m['nll'] is None else f'{m["nll"]:.3f}'
          cells.append(f'{nll} / {_accuracy(m)} ({m["n"]})')
        else:
          cells.append(f'{_accuracy(m)} ({m["n"]})')
      lines.append(f'{measure:26}{split:12}' + ''.join(f'{c:26}' for c in cells))
  return '\n'.join(lines)
