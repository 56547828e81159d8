"""Rungs of the kindness experiment's positive control (configs/oracle_control.py): can the
RL machinery raise the partners' true reward when it is handed that reward?

  python -m tomk.main --config=configs/oracle_control_ladder.py:0.7,20,3e-4 \
      --workdir=runs/rung-0.7_20_3e-4 --branch_from=runs/empathy-1024

(runs/empathy-1024: configs/empathy.py at the settings the ladder was measured at,
--config.data.vocab_size=1024 --config.data.scenario_responses=1, which every rung keeps
unless it names vocab; its default since, 4,096 pieces and three responses, came from here.)

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

Rung settings after the positional ones, 'key=value' joined by commas: vocab=N (the
tokenizer's size, whole run), rehearse=N (N steps of language-model training on the
scenarios alone, each shown with three drawn responses and the partner's reaction to each),
demonstrate=N (the same with each scenario's warmest response only,
data.scenario_response='warmest': demonstrations of the kind choice, a supervised ceiling,
in the preference families and false_belief_assist; not in third_party and multi_party),
scenarios=a+b (those two stages' scenario families, all six by default), families=a+b (the
RL stages' families), steps=N and batch=N (the control's), samples=N (per prompt), kl=X.

Measured 2026-12-02, seed 0, branched from a run of configs/empathy.py (runs/empathy);
greedy responses on 100 test scenarios a family. offers: the share that offers one of the
options at all; liked: of those, the share the partner likes (chance 0.5); each for
preference_offer / similar / dissimilar. Paired differences pooled over the six families
(n = 600), from `python -m tomk.compare W W --paired --stage_a=S [--stage=T]`:

  pretrain (configs/empathy.py's, 450 steps)
      offers .15/.16/.11, liked near chance (n = 11–16)
  0.7,20,3e-4,rehearse=300
      offers .09/.06/.14 (greedy: refusals); pretrain → rehearse −0.210 ± 0.046
  0.7,20,3e-4,rehearse=300,families=preference_offer,steps=150,batch=32
      offers .40/.48/.53, liked .47/.50/.60; rehearse → control +0.255 ± 0.049 (refusals
      unlearned), pretrain → control +0.045 ± 0.062
  0.7,20,1e-3,rehearse=300,families=preference_offer,steps=300,batch=32,samples=8
      the rollouts stop offering within 10 steps (offers .72 → 0); offers .09/.06/.13;
      pretrain → control −0.007 ± 0.037
  0.7,20,3e-4,demonstrate=300,families=preference_offer,steps=150,batch=32
      after demonstrate: offers .99/1.0/1.0, liked .48/.62/.58; pretrain → demonstrate
      +0.362 ± 0.070 (false_belief_assist +0.98: "Your X is in the Y now")
      after the control: offers .51/.62/.58, liked .45/.76/.33; demonstrate → control
      −0.138 ± 0.079
  0.7,20,3e-4,demonstrate=1500,steps=10
      offers 1.0/1.0/1.0, liked .50/1.0/1.0
  0.7,20,3e-4,vocab=4096,demonstrate=1500,steps=10 (a run of its own: 4,096 pieces)
      offers 1.0/1.0/1.0, liked .75/1.0/1.0; preference_offer by how the partner showed
      it: acted out 1.00, both said 0.81, liked item said 0.81, only the disliked one 0.43
  0.7,20,3e-4,vocab=4096,rehearse=300,families=preference_offer,steps=300,batch=32
      (branched from the run above) rehearse: offers .01; the rollouts' true reward ≈ 0
      → +0.2 … +0.6; after the control: offers .89/.95/.96, liked .80/.87/.18;
      rehearse → control +0.417 ± 0.065, pretrain → control +0.315 ± 0.076,
      preference_offer +0.62 ± 0.13, dissimilar_partner −0.37 ± 0.15
      seed 1 (--config.seed=1, a run of its own): offers .97/.99/.99, liked .79/.67/.34;
      rehearse → control +0.393 ± 0.070, pretrain → control +0.378 ± 0.075,
      preference_offer +0.66 ± 0.13
      seed 2: offers .95/.99/.99, liked .82/.88/.11; rehearse → control +0.401 ± 0.070,
      pretrain → control +0.305 ± 0.072, preference_offer +0.67 ± 0.13

What it shows. RL moves what the policy can already tell apart: refusals (−0.25) are
unlearned and offers come back, but among offers the partner's liked item is picked at
chance, and with nothing to gain from offering at chance (liked +0.75, disliked −0.75 on
average) a faster update learns to offer nothing (worth 0). Supervised demonstrations of
the kind choice show why: 1,500 steps of them teach similar and dissimilar partners
perfectly, where the item follows from the model's own fixed tastes and the partner's
"same here" or "the opposite", but not preference_offer (0.50, even when the partner has
just said "I love X"), where the liked item must be read from this conversation. The link
that fails is in-context binding of a stated preference to an item, not the RL update. The
tokenizer is part of it: at 1,024 pieces an item is 2–4 pieces ('licorice' is '▁l ic or
ice'); at 4,096 each is one, and the same demonstrations then teach preference_offer to 0.75
(every reveal but "I am not keen on X", which needs the other item, at chance). And the
control climbs: RL on the true reward, from a rehearsal stage of a 4,096-piece run, picks the
liked item on preference_offer 0.80 of the time and raises the pooled true reward by +0.42
over its start; trained on preference_offer alone it offers dissimilar partners what the
model itself likes (liked 0.18): self-similarity, learned.
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


_KEYS = ('vocab', 'rehearse', 'demonstrate', 'scenarios', 'families', 'steps', 'batch', 'samples',
         'kl')


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
  # The rungs were measured on configs/empathy.py as it was before its defaults took what
  # they found (4,096 pieces, three responses a scenario, 150 × 32 control steps): they keep
  # those earlier settings, so each rung still trains as its figures say.
  config.data.scenario_responses = 1
  # The tokenizer's size, for the whole run (every stage, pretraining included): at 1,024
  # pieces (256 of them bytes) an item is 2–4 pieces ('licorice' is '▁l ic or ice', its
  # first piece shared with 'love').
  config.data.vocab_size = int(settings.get('vocab', 1024))
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
  stage.steps = int(settings.get('steps', 60))
  stage.batch_size = int(settings.get('batch', 16))
  # The language-model stages' scenario families (each weighted alike): all six by default.
  scenarios = ','.join(f'{f}:1' for f in settings.get('scenarios', 'scenarios').split('+'))
  if 'rehearse' in settings:
    # Language-model training on the scenarios alone, each shown with three of its
    # responses (offers of either item, a refusal, ...), each followed by the partner's
    # true reaction: a policy that names the options at all, chosen without regard to the
    # partner (the responses are the scenario's candidates in random order).
    config.stages.rehearse = dict(
        algorithm='pretrain', steps=int(settings['rehearse']), batch_size=8,
        data={'mixture': scenarios, 'scenario_responses': 3})
    stages.append('rehearse')
  if 'demonstrate' in settings:
    # The supervised ceiling: language-model training on the scenarios alone, each shown
    # with its warmest response (data.scenario_response='warmest': the one the partner's
    # reaction reads most kindly), i.e. demonstrations of the kind choice.
    config.stages.demonstrate = dict(
        algorithm='pretrain', steps=int(settings['demonstrate']), batch_size=8,
        data={'mixture': scenarios, 'scenario_response': 'warmest'})
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
