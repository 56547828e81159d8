"""Rungs of the kindness experiment's positive control (configs/oracle_control.py): can the
RL machinery raise the partners' true reward when it is handed that reward?

  python -m tomk.main --config=configs/oracle_control_ladder.py:0.7,20,3e-4 \
      --workdir=runs/rung-0.7_20_3e-4 --branch_from=runs/empathy-signal

arg = 'temperature,top_k,learning_rate' of the last stage's rollouts and optimizer; the last
stage starts from the pretrain policy (curriculum pretrain → reward_model → oracle_control),
so a branch from a run of configs/empathy.py trains only it. Measured 2026-12-01, seed 0,
branched from `configs/empathy.py` (runs/empathy-signal), 60 steps; greedy responses' true
partner reward on the test scenarios, pooled over the six families (n = 60), before → after,
and the rollouts' true reward at the logged steps:

  configs/oracle_control.py (from imitation), T 1.0, lr 3e-4   0.075 → 0.017   rollouts −0.13 … +0.06
  from pretrain, T 1.0, lr 3e-4                                0.050 → −0.025  rollouts 0.00 (one −0.02)
  from finetune, T 1.0, lr 3e-4                               −0.008 → 0.000   rollouts 0.00
  from pretrain, T 0.7, top-k 20, lr 3e-4 (0.7,20,3e-4)        0.050 → 0.125   rollouts −0.08 … +0.09,
                                                                paired +0.075 ± 0.121 (n = 60)
  from pretrain, T 0.7, top-k 20, lr 3e-3 (0.7,20,3e-3)        0.050 → 0.042   rollouts 0.00 (collapsed)

Scored on 100 test scenarios a family instead (n = 600, --config.evaluation.scenarios_per_family=100,
paired against the pretrain stage: python -m tomk.compare W W --paired --stage_a=pretrain):

  from pretrain, T 0.7, top-k 20, lr 3e-4, 60 steps of batch 16     paired +0.032 ± 0.044
  the same, 150 steps of batch 32 (branched from the run above)      paired +0.014 ± 0.045,
                                                                      rollouts −0.09 … +0.16
  0.7,20,3e-4,60: an 'offer' stage first (rlhf on names_an_option,    pretrain → offer +0.039 ± 0.049
  60 steps of batch 16; the share of samples naming an option         offer → control  +0.027 ± 0.027
  0.19 → 0.25–0.38), then the control (60 steps)                      pretrain → control +0.066 ± 0.043
  the same with 150 control steps (--config.stages.oracle_control.steps=150)  offer → control +0.004 ± 0.026

At temperature 1 the samples rarely name an item, so the reward has no variance; at 0.7
with top-k 20 it has some (reward std 0.24–0.43 at most logged steps) and the true reward
moves up, within its CI of 0. A ten-fold learning rate collapses the rollouts. (The first
three rows: `--config.curriculum=...` on configs/oracle_control.py.)
"""
import re

import numpy as np

from configs import oracle_control

# 'We have tea and coffee.', 'The options are tea or coffee.', 'There is tea or coffee.', or a
# list 'We have a, b and c.': the options a SocialWorld partner's request names.
_OPTIONS = re.compile(r'(?:We have|The options are|There is) ([^.?!]+)[.?!]')


def names_an_option(prompts, responses):
  """1 where the response names one of the options the conversation lists, else 0: a
  reward for offering something at all (which one, the partner's wants decide). It reads
  only the text, as any reward function: rewards.extrinsic=configs.oracle_control_ladder:names_an_option."""
  out = []
  for prompt, response in zip(prompts, responses):
    found = _OPTIONS.findall(prompt)
    options = re.split(r',\s*|\s+(?:and|or)\s+', found[-1]) if found else []
    said = response.lower()
    out.append(float(any(o.strip() and re.search(rf'\b{re.escape(o.strip().lower())}\b', said)
                         for o in options)))
  return np.asarray(out, np.float32)


_KEYS = ('rehearse', 'demonstrate', 'families', 'steps', 'batch', 'samples', 'kl')


def _rung(arg):
  """'T,top_k,lr[,offer_steps][,key=value...]' -> (T, top_k, lr, offer_steps, {key: value})."""
  items = arg.split(',')
  settings = dict(item.split('=', 1) for item in items if '=' in item)
  unknown = set(settings) - set(_KEYS)
  if unknown:
    raise ValueError(f'configs/oracle_control_ladder.py: unknown rung settings {sorted(unknown)}; '
                     f'it knows {", ".join(_KEYS)}.')
  positional = [item for item in items if '=' not in item]
  if len(positional) not in (3, 4):
    raise ValueError('configs/oracle_control_ladder.py needs a rung: '
                     '"temperature,top_k,learning_rate[,offer_steps][,key=value...]", e.g. '
                     '0.7,20,3e-4 or 0.7,20,3e-4,rehearse=300,families=preference_offer.')
  temperature, top_k, learning_rate, *offer = positional
  return float(temperature), int(top_k), float(learning_rate), offer, settings


def get_config(arg=None):
  if not arg or arg == 'smoke':
    _rung('')
  temperature, top_k, learning_rate, offer, settings = _rung(arg)
  config = oracle_control.get_config()
  # Every rung is scored on the same 100 test (and held-out) scenarios a family, for
  # paired comparisons: python -m tomk.compare W W --paired --stage_a=<its start>.
  config.evaluation.update(scenarios_per_family=100, signal_scenarios_per_family=0)
  stages = ['pretrain', 'reward_model']
  rl = {'temperature': temperature, 'top_k': top_k}
  if 'families' in settings:
    rl['families'] = settings['families'].replace('+', ',')
  if 'samples' in settings:
    rl['num_samples'] = int(settings['samples'])
  if 'kl' in settings:
    rl['kl_coef'] = float(settings['kl'])
  optimizer = {p: {'learning_rate': learning_rate, 'warmup_steps': 5}
               for p in ('perception', 'behavior', 'prediction')}
  stage = config.stages.oracle_control
  stage.rl, stage.optimizer = rl, optimizer
  stage.steps = int(settings.get('steps', stage.steps))
  stage.batch_size = int(settings.get('batch', stage.batch_size))
  if 'rehearse' in settings:
    # Language-model training on the scenarios alone, each shown with three of its
    # responses (offers of either item, a refusal, ...), each followed by the partner's
    # true reaction: a policy that names the options at all, chosen without regard to the
    # partner (the responses are the scenario's candidates in random order).
    config.stages.rehearse = dict(
        algorithm='pretrain', steps=int(settings['rehearse']), batch_size=8,
        data={'mixture': 'scenarios:1', 'scenario_responses': 3})
    stages.append('rehearse')
  if 'demonstrate' in settings:
    # The supervised ceiling: language-model training on the scenarios alone, each shown
    # with its warmest response (data.scenario_response='warmest': the one the partner's
    # reaction reads most kindly), i.e. demonstrations of the kind choice.
    config.stages.demonstrate = dict(
        algorithm='pretrain', steps=int(settings['demonstrate']), batch_size=8,
        data={'mixture': 'scenarios:1', 'scenario_response': 'warmest'})
    stages.append('demonstrate')
  if offer:
    # A stage before the control that rewards naming any option (names_an_option): a policy
    # that offers something, for the control to rank the offers.
    config.stages.offer = dict(algorithm='rlhf', steps=int(offer[0]), batch_size=stage.batch_size,
                               rl=rl, optimizer=optimizer,
                               rewards={'extrinsic': 'configs.oracle_control_ladder:names_an_option'})
    stages.append('offer')
  config.curriculum = ','.join(stages + ['oracle_control'])
  return config
