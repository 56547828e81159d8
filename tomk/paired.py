"""Two arms on the same scenarios (tomk.compare --paired): the true partner reward of B's
greedy response minus A's, scenario by scenario, per split and family; a t-interval over
the scenarios of one seed, or over the seeds' paired means."""
from __future__ import annotations

import collections
import json
import math
import os
from typing import Sequence

from tomk import figures
from tomk import rundir
from tomk import stats


def scenario_rewards(workdir: str, stage: str | None = None) -> dict[tuple, float]:
  """{(split, family, scenario id): true partner reward} of a run's greedy responses at the
  end of `stage` (default: the last evaluated stage, eval.json's)."""
  stage = stage or rundir.read_json(rundir.eval_path(workdir))['stage']
  path = rundir.scenarios_path(workdir, stage)
  evaluated = rundir.read_json(rundir.eval_path(workdir, stage))
  if not os.path.exists(path) or evaluated is None:
    raise ValueError(f'{workdir} has no per-scenario evaluation of stage {stage} ({path}); '
                     f'evaluate it with this version: python -m tomk.evaluate '
                     f'--workdir={workdir} --stage={stage}.')
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  if any(r['step'] != evaluated['step'] for r in rows):
    raise ValueError(f'{path} holds another step than eval/{stage}.json (step '
                     f'{evaluated["step"]}); evaluate it again: python -m tomk.evaluate '
                     f'--workdir={workdir} --stage={stage}.')
  return {(r['split'], r['family'], r['id']): r['partner_reward'] for r in rows}


def paired(arm_a: Sequence[str], arm_b: Sequence[str], stage: str | None = None,
           stage_a: str | None = None) -> tuple[dict[tuple[str, str], stats.Summary], list]:
  """({(split, family or 'all'): summary of B − A}, the seeds compared): per seed, the mean
  over the scenarios both arms scored of the difference of their true partner rewards;
  over one seed a t-interval across scenarios (training-seed variance left out), over
  several a t-interval across the seeds' means. `stage` is both arms' stage, `stage_a`
  A's if it differs (a stage against the one it started from, in the same runs)."""
  def by_seed(workdirs, arm, stage):
    out = {}
    for w in workdirs:
      seed = rundir.read_config(w).seed
      if seed in out:
        raise ValueError(f'arm {arm} has two runs of seed {seed}; give each arm one run per '
                         f'seed (a sweepdir of one setting).')
      out[seed] = scenario_rewards(w, stage)
    return out
  a, b = by_seed(arm_a, 'A', stage_a or stage), by_seed(arm_b, 'B', stage)
  seeds = sorted(set(a) & set(b))
  if not seeds:
    raise ValueError(f'the two arms share no seed (A: {sorted(a)}, B: {sorted(b)}); a paired '
                     f'comparison needs runs of the same seeds.')
  per_seed = collections.defaultdict(lambda: collections.defaultdict(list))
  for seed in seeds:
    shared = sorted(set(a[seed]) & set(b[seed]))
    if not shared or len(shared) != len(a[seed]) or len(shared) != len(b[seed]):
      raise ValueError(f'seed {seed}: the arms were evaluated on different scenarios '
                       f'({len(a[seed])} and {len(b[seed])}, {len(shared)} shared); compare '
                       f'runs of the same evaluation settings.')
    for key in shared:
      for group in ((key[0], key[1]), (key[0], 'all')):
        per_seed[group][seed].append(b[seed][key] - a[seed][key])
  out = {}
  for group, by_seed_values in per_seed.items():
    if len(seeds) == 1:
      out[group] = stats.summarize(by_seed_values[seeds[0]])
    else:
      out[group] = stats.summarize([math.fsum(v) / len(v) for v in by_seed_values.values()])
  return out, seeds


def paired_table(summaries: dict, seeds: int) -> str:
  """The paired differences; the CI half-width is what a difference must exceed to show
  at all, and the last column the smallest true difference that shows 80 % of the time."""
  over = 'scenarios' if seeds == 1 else 'seeds'
  body = [[split, family, stats.format_summary(s), str(s.n),
           '–' if not s.ci else f'{s.ci:.3f}',
           '–' if not s.ci else f'{stats.detectable(s):.3f}']
          for (split, family), s in sorted(summaries.items())]
  return figures.markdown_table(['split', 'family', 'B − A (mean ± 95 % CI)', f'n ({over})',
                                 '95 % CI half-width', 'detectable at 80 % power'], body)
