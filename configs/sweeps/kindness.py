"""The kindness comparison: every arm on the same seeds, each branched from that seed's
empathy run (the stages they share are copied, only the last stage trains), all scored on
the same scenarios, so arms compare scenario by scenario (tomk.compare --paired).

  python -m tomk.sweep --config=configs/empathy.py --sweep=configs/sweeps/kindness.py \
      --sweepdir=runs/kindness
  python -m tomk.compare 'runs/kindness/config=rlhf,seed=*' 'runs/kindness/seed=*' --paired
  python -m tomk.compare 'runs/kindness/config=rlhf,seed=*' 'runs/kindness/config=empathy:inferred,seed=*' --paired

Arms, by workdir name: `seed=S` (the sweep's --config: configs/empathy.py, the source of
the others), `config=rlhf,seed=S`, `config=naive_kindness,seed=S`,
`config=oracle_control,seed=S` (the positive control: RL on the true partner reward) and
`config=empathy:inferred,seed=S` (empathy whose last stage scores the partner with the
reward head, kindness.reward=inferred).
arg: the number of seeds (5 by default), and 'smoke' for the arms' smoke configs (with
--config=configs/empathy.py:smoke), e.g. configs/sweeps/kindness.py:2,smoke.
"""
from tomk import hyper

ARMS = ('rlhf', 'naive_kindness', 'oracle_control')


def get_sweep(arg=None):
  settings = str(arg).split(',') if arg else []
  smoke = 'smoke' in settings
  counts = [s for s in settings if s != 'smoke']
  seeds = int(counts[0]) if counts else 5
  variant = ':smoke' if smoke else ''
  points = []
  for seed in range(seeds):
    source = {'seed': seed}
    points.append(source)
    points += [{hyper.CONFIG: f'configs/{arm}.py{variant}', 'seed': seed,
                hyper.BRANCH_FROM: source} for arm in ARMS]
    points.append({hyper.CONFIG: f'configs/empathy.py:{"smoke," if smoke else ""}inferred',
                   'seed': seed, hyper.BRANCH_FROM: source})
  return points
