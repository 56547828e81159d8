"""Rungs of the partner simulator (the prediction stream) of the kindness experiment: can it
learn whether a partner will like what it is given? Each rung is configs/empathy.py up to
the stage the last RL starts from, the simulator trained its way, so it branches from a run
of configs/empathy.py and trains only what differs:

  python -m tomk.main --config=configs/simulator_ladder.py:imitation,600,5 \\
      --workdir=runs/sim-imitation_600_5 --branch_from=runs/empathy

arg = 'imitation,STEPS,WEIGHT': the default imitation stage (⇄ infer_reward) at STEPS steps
in all, the partner's reaction weighted WEIGHT in its loss (data.reaction_weight);
'simulator,STEPS,WEIGHT[,FAMILY...]': after rehearse, one stage of the imitation algorithm
(prediction stream only, imitation's routes) on the named scenario families alone
(default preference_offer), from the partner's side. Measured by the evaluation's
reaction sign (perspective.reaction_sign: the true reaction to a response against the
reaction to the same response had the reward the opposite sign, from the partner's
perspective; chance 0.50), 2026-12-06, seed 0, 30 test scenarios a family (about 70 pairs a
family, ±0.12), prediction stream:

  rung                                       pref_offer similar dissimilar false_b. third  multi
  the default (imitation, 120 steps, 1)          0.47     0.60    0.57     0.71    0.66   0.59
  imitation,600,1                                0.52     0.60    0.63     0.64    0.78   0.62
  imitation,600,5                                0.53     0.60    0.57     0.76    0.62   0.52
  simulator,1500,5 (preference_offer)            0.47     0.48    0.42     0.47    0.34   0.46

None learns the sign in the preference families (README, "The simulator's question alone").
"""
from configs import empathy

RUNGS = ('imitation', 'simulator')


def get_config(arg=None):
  parts = (arg or '').split(',')
  if parts[0] not in RUNGS or len(parts) < 3 or (parts[0] == 'imitation' and len(parts) > 3):
    raise ValueError('configs/simulator_ladder.py needs a rung: imitation,STEPS,WEIGHT or '
                     f'simulator,STEPS,WEIGHT[,FAMILY...], got {arg!r}.')
  rung, steps, weight, families = parts[0], int(parts[1]), float(parts[2]), parts[3:]
  config = empathy.get_config()
  stages = list(empathy.CURRICULUM)
  if rung == 'imitation':
    config.stages.imitation.steps = steps
    config.stages.imitation.data.reaction_weight = weight
  else:
    stages[stages.index('imitation')] = 'simulator'
    config.stages.simulator = dict(
        algorithm='imitation', steps=steps, batch_size=empathy.STAGES['imitation'][1],
        routes=empathy.IMITATION_ROUTES,
        data={'mixture': ','.join(f'{f}:1' for f in families or ['preference_offer']),
              'perspective': 'other', 'scenario_perspective': 'partner',
              'reaction_weight': weight},
        optimizer={p: {'warmup_steps': 20, 'learning_rate': empathy.IMITATION_LR}
                   for p in ('perception', 'behavior', 'prediction')})
  config.curriculum = ','.join(stages)
  return config
