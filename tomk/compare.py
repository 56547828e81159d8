"""Mean ± 95 % CI over seeds of every final metric, per group of runs.

  python -m tomk.compare runs/lr-sweep [more sweepdirs or workdirs ...] [--out=DIR]
  python -m tomk.compare runs/rlhf runs/empathy --paired [--stage=S] [--out=DIR]
  python -m tomk.compare runs/x runs/x --paired --stage_a=pretrain     # a stage against another

A sweepdir (a directory of workdirs, e.g. from tomk.sweep) expands to its finished
workdirs. Runs are grouped by their config: every key whose value differs between the
runs, except `seed`, makes the group. For every metric (its last value in
metrics.jsonl: losses, `eval/...`) and every number in W/eval.json (as `eval.json/...`)
it prints and writes mean ± t_{0.975, n-1}·s/√n and n per group (n=1 has no CI), with
each seed's value beside it (SPEC §6), into comparison.md and comparison.csv, and plots
training curves (mean and CI band per group) and eval bar charts (CI error bars) under
plots/. They go to --out, or by default into the first argument if it is a sweepdir; given
workdirs, --out is needed: nothing is written into the current directory unasked.

--paired compares two arms (A and B, each a workdir or a sweepdir of seeds) scenario by
scenario: the true partner reward of B's greedy response minus A's on the same held-out
scenario (eval/<stage>.scenarios.jsonl), per split and family, mean ± 95 % CI over the
scenarios (one seed: training-seed variance left out) or over the seeds' paired means
(several). A difference must exceed the CI half-width to show at all, and be about 1.4
times it to show 80 % of the time. With --out it also writes paired.md.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import itertools
import json
import math
import os
import sys
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging

from tomk import figures
from tomk import rundir
from tomk import stats
from tomk.paired import paired, paired_table

IGNORED_CONFIG_KEYS = ('seed',)


def expand(paths: Sequence[str], log=print) -> list[str]:
  """Workdirs as given, each sweepdir's finished workdirs (sweep.json order first), and the
  finished workdirs a pattern matches (`runs/kindness/config=rlhf,*`: one arm of a sweep)."""
  workdirs = []
  for path in paths:
    if rundir.is_run(path):
      workdirs.append(path)
      continue
    if not os.path.exists(path) and glob.has_magic(path):
      candidates, of_sweeps = sorted(m for m in glob.glob(path) if rundir.is_run(m)), True
      if not candidates:
        raise ValueError(f'{path} matches no workdir (a directory with a config.json).')
    else:
      candidates, of_sweeps = _sweepdir_runs(path)
    unfinished = [w for w in candidates if of_sweeps and not rundir.finished(w)]
    if unfinished:
      log(f'note: leaving out {len(unfinished)} unfinished run(s) of {path}: '
          f'{", ".join(os.path.basename(w) for w in unfinished)} (re-run the sweep to finish '
          f'them)', file=sys.stderr)
    workdirs.extend(w for w in candidates if w not in unfinished)
  if not workdirs:
    raise ValueError(f'no finished runs in {" ".join(paths)}.')
  return workdirs


def _sweepdir_runs(path: str) -> tuple[list[str], bool]:
  """The workdirs in a directory (sweep.json order first) and whether it is a sweep's."""
  if not os.path.isdir(path):
    raise ValueError(f'{path} does not exist; give workdirs, sweepdirs or a pattern.')
  names = sorted(n for n in os.listdir(path) if rundir.is_run(os.path.join(path, n)))
  state_path = rundir.sweep_state_path(path)
  is_sweep = os.path.exists(state_path)
  if is_sweep:
    with open(state_path) as f:
      order = [p['name'] for p in json.load(f).get('points', [])]
    names.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
  if not names:
    raise ValueError(f'{path} holds no workdirs (directories with a config.json).')
  return [os.path.join(path, n) for n in names], is_sweep


# --- Grouping and statistics ---------------------------------------------------------------------


def _show(value) -> str:
  if isinstance(value, str):
    return value
  return repr(value) if isinstance(value, float) else json.dumps(value)


def group_runs(runs: Sequence[rundir.Run]) -> tuple[list[str], dict[str, list[rundir.Run]]]:
  """(the config keys that tell groups apart, {label: runs}) in first-seen order."""
  keys = sorted({k for r in runs for k in r.config})
  differing = [k for k in keys if k not in IGNORED_CONFIG_KEYS and
               len({json.dumps(r.setting(k), sort_keys=True)
                    for r in runs}) > 1]
  groups: dict[str, list[rundir.Run]] = {}
  for run in runs:
    label = ','.join(f'{k}={_show(run.setting(k))}' for k in differing)
    groups.setdefault(label or 'all runs', []).append(run)
  return differing, groups


@dataclasses.dataclass
class Row:
  group: str
  metric: str
  summary: stats.Summary
  seeds: list[Any]
  values: list[float]


def summarize(groups: dict[str, list[rundir.Run]]) -> list[Row]:
  metrics = sorted({m for runs in groups.values() for r in runs for m in r.final})
  rows = []
  for metric in metrics:
    for label, runs in groups.items():
      have = [r for r in runs if metric in r.final]
      if have:
        values = [r.final[metric] for r in have]
        rows.append(Row(label, metric, stats.summarize(values), [r.seed for r in have], values))
  return rows


def warnings_for(groups: dict[str, list[rundir.Run]]) -> list[str]:
  notes = []
  for label, runs in groups.items():
    seeds = [r.seed for r in runs]
    repeated = sorted({json.dumps(s) for s in seeds if seeds.count(s) > 1})
    if repeated:
      notes.append(f'group {label} has runs with the same seed ({", ".join(repeated)}): they '
                   f'are not independent samples, so its CI is too narrow.')
    steps = {r.last_step for r in runs}
    if len(steps) > 1:
      notes.append(f'group {label}: runs end at different steps {sorted(steps, key=str)}; '
                   f'an unfinished run distorts the mean.')
  return notes


# --- Writing -------------------------------------------------------------------------------------


def summary_table(groups: dict[str, list[rundir.Run]], rows: list[Row]) -> str:
  by_key = {(r.group, r.metric): r for r in rows}
  metrics = sorted({r.metric for r in rows})
  header = ['metric'] + [f'{label} (n={len(runs)})' for label, runs in groups.items()]
  body = []
  for metric in metrics:
    cells = [metric]
    for label, runs in groups.items():
      row = by_key.get((label, metric))
      if row is None:
        cells.append('–')
        continue
      cell = stats.format_summary(row.summary)
      if row.summary.n != len(runs) and row.summary.n > 1:
        cell += f' (n={row.summary.n})'
      cells.append(cell)
    body.append(cells)
  return figures.markdown_table(header, body)


def per_seed_tables(groups: dict[str, list[rundir.Run]]) -> str:
  parts = []
  for label, runs in groups.items():
    metrics = sorted({m for r in runs for m in r.final})
    seeds = [r.seed for r in runs]
    names = [f'seed {s}' if seeds.count(s) == 1 else f'seed {s} ({r.name})'
             for s, r in zip(seeds, runs)]
    body = [[m] + [f'{r.final[m]:.6g}' if m in r.final else '–' for r in runs] for m in metrics]
    parts.append(f'### {label}\n\n' + figures.markdown_table(['metric'] + names, body))
  return '\n\n'.join(parts)


def write_csv(path: str, rows: list[Row]) -> None:
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['group', 'metric', 'n', 'mean', 'std', 'ci95', 'ci95_low', 'ci95_high',
                     'seeds', 'values'])
    for r in rows:
      s = r.summary
      blank = lambda x: '' if x is None else repr(x)
      writer.writerow([r.group, r.metric, s.n, repr(s.mean), blank(s.std), blank(s.ci),
                       blank(s.low), blank(s.high), ';'.join(str(x) for x in r.seeds),
                       ';'.join(repr(v) for v in r.values)])


def plot(groups: dict[str, list[rundir.Run]], rows: list[Row], out: str,
         differing: Sequence[str] = ()) -> list[str]:
  """Training curves (mean, CI band) and eval bar charts (CI error bars); returns the files."""
  plt = figures.pyplot()
  plot_dir = os.path.join(out, 'plots')
  os.makedirs(plot_dir, exist_ok=True)
  files = []
  series = sorted({key for runs in groups.values() for r in runs for key in r.curves})
  stages = {stage for stage, _ in series}
  for stage, metric in series:
    points_per_run = [[r.curves.get((stage, metric), []) for r in runs] for runs in groups.values()]
    if max(len(p) for runs in points_per_run for p in runs) < 2:
      continue        # logged once (e.g. a final eval): the bar charts show it
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs_points in zip(groups, points_per_run):
      by_step = collections.defaultdict(list)
      for points in runs_points:
        for step, value in points:
          by_step[step].append(value)
      steps = sorted(by_step)
      summaries = [stats.summarize(by_step[s]) for s in steps]
      means = [s.mean for s in summaries]
      line, = ax.plot(steps, means, label=label, marker='.' if len(steps) < 30 else None)
      if any(s.ci is not None for s in summaries):
        ax.fill_between(steps, [s.low if s.ci is not None else s.mean for s in summaries],
                        [s.high if s.ci is not None else s.mean for s in summaries],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    title = metric if len(stages) == 1 else f'{stage}: {metric}'
    ax.set_title(f'{title}\nmean ± 95% CI over seeds', fontsize='medium')
    ax.set(xlabel='step', ylabel=metric)
    ax.legend(fontsize='small')
    files.append(figures.save_figure(fig, os.path.join(plot_dir, f'curve_{figures.file_name(title)}.png')))
  # Eval numbers: one figure per family (eval/, eval.json/<section>), a panel per number,
  # each with its own scale (an NLL and an accuracy share no axis).
  eval_metrics = sorted({r.metric for r in rows if r.metric.startswith(('eval/', 'eval.json/'))})
  families = collections.defaultdict(list)
  for metric in eval_metrics:
    parts = metric.split('/')
    families['/'.join(parts[:2]) if parts[0] == 'eval.json' else parts[0]].append(metric)
  by_key = {(r.group, r.metric): r for r in rows}
  labels = list(groups)
  # Ticks show the values only; the keys they belong to are named once, in the title.
  ticks = ['\n'.join(_show(groups[l][0].setting(k)) for k in differing) or l
           for l in labels]
  for family, metrics in families.items():
    columns = min(4, len(metrics))
    rows_needed = math.ceil(len(metrics) / columns)
    width = max(3.5, 0.9 * len(labels) + 1.5)
    fig, axes = plt.subplots(rows_needed, columns, squeeze=False,
                             figsize=(width * columns, 3.2 * rows_needed + 0.6))
    for ax, metric in itertools.zip_longest(axes.flat, metrics):
      if metric is None:
        ax.set_axis_off()
        continue
      for i, label in enumerate(labels):
        row = by_key.get((label, metric))
        if row is None:
          continue
        error = None if row.summary.ci is None else [[row.summary.ci], [row.summary.ci]]
        ax.bar(i, row.summary.mean, yerr=error, capsize=5, alpha=0.6, color=f'C{i}')
        ax.plot([i] * len(row.values), row.values, 'k.', markersize=4)
      ax.set_xticks(range(len(labels)), ticks, fontsize='small')
      ax.set_title(metric[len(family) + 1:] or metric, fontsize='small')
    fig.suptitle(f'{family}: mean ± 95% CI over seeds (dots: seeds)'
                 + (f'; bars: {", ".join(differing)}' if differing else ''), fontsize='medium')
    files.append(figures.save_figure(fig, os.path.join(plot_dir, f'eval_{figures.file_name(family)}.png')))
  return files


def compare(paths: Sequence[str], out: str | None = None, plots: bool = True,
            log=print) -> list[Row]:
  """Reads, groups, summarizes and writes; prints the summary table. Returns its rows."""
  workdirs = expand(paths, log=log)
  if out is None:
    first = paths[0]
    if rundir.is_run(first) or not os.path.isdir(first):
      raise ValueError(f'{first} is a workdir, not a sweepdir: say where comparison.md, '
                       f'comparison.csv and plots/ go with --out=DIR.')
    out = first
  runs = [rundir.read_run(w) for w in workdirs]
  differing, groups = group_runs(runs)
  rows = summarize(groups)
  notes = warnings_for(groups)
  table = summary_table(groups, rows)
  os.makedirs(out, exist_ok=True)
  write_csv(os.path.join(out, 'comparison.csv'), rows)
  files = plot(groups, rows, out, differing) if plots else []
  intro = (f'{len(runs)} runs in {len(groups)} group(s)'
           + (f', told apart by {", ".join(differing)}' if differing else '')
           + '. Each cell: mean ± 95 % confidence interval (Student t, n−1 degrees of freedom) '
             'of the final value over seeds; n=1 has no CI.')
  markdown = [f'# Comparison\n\n{intro}\n', table, '']
  markdown += [f'> warning: {n}' for n in notes] + ([''] if notes else [])
  markdown += ['## Runs\n'] + [f'- {r.workdir} (seed {r.seed}, last step {r.last_step})'
                               for r in runs]
  markdown += ['', '## Per seed\n', per_seed_tables(groups), '']
  if files:
    markdown += ['## Plots\n'] + [f'![{os.path.basename(p)}]({os.path.relpath(p, out)})'
                                  for p in files] + ['']
  with open(os.path.join(out, 'comparison.md'), 'w') as f:
    f.write('\n'.join(markdown))
  log(intro + '\n\n' + table)
  for n in notes:
    log(f'warning: {n}')
  log(f'\nwrote {os.path.join(out, "comparison.md")}, comparison.csv and {len(files)} plots')
  return rows


def main(argv):
  if not flags.FLAGS['verbosity'].present:      # matplotlib logs its font cache at INFO
    logging.set_verbosity(logging.WARNING)
  if len(argv) < 2:
    print('usage: python -m tomk.compare SWEEPDIR_OR_WORKDIR [...] [--out=DIR]',
          file=sys.stderr)
    sys.exit(2)
  try:
    if flags.FLAGS.paired:
      if len(argv) != 3:
        raise ValueError('--paired compares two arms: python -m tomk.compare A B --paired, '
                         'each a workdir or a sweepdir of seeds.')
      arms = [expand([path], log=print) for path in argv[1:]]
      summaries, seeds = paired(*arms, stage=flags.FLAGS.stage, stage_a=flags.FLAGS.stage_a)
      table = paired_table(summaries, len(seeds))
      caveat = '; one seed: training-seed variance left out' if len(seeds) == 1 else ''
      a_stage = f' at {flags.FLAGS.stage_a}' if flags.FLAGS.stage_a else ''
      print(f'Paired: true partner reward, B = {argv[2]} minus A = {argv[1]}{a_stage}, on the same '
            f'scenarios, seeds {seeds} (95 % CI{caveat}; a half-width of 0 means every '
            f'difference was 0, not that any would show)\n\n{table}')
      if flags.FLAGS.out:
        rundir.write_text(os.path.join(flags.FLAGS.out, 'paired.md'), table + '\n')
      return
    compare(argv[1:], out=flags.FLAGS.out, plots=flags.FLAGS.plots)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  flags.DEFINE_string('out', None, 'Where comparison.md/.csv and plots/ go (default: the '
                      'first argument if it is a sweepdir; needed when it is a workdir).')
  flags.DEFINE_bool('plots', True, 'Draw the PNG plots.')
  flags.DEFINE_bool('paired', False, 'Compare two arms (A B) scenario by scenario: the '
                    'difference of their true partner rewards per family, with CIs.')
  flags.DEFINE_string('stage', None, 'With --paired: the stage whose evaluation to compare '
                      '(default: each run\'s last).')
  flags.DEFINE_string('stage_a', None, "With --paired: arm A's stage if not --stage.")
  app.run(main)
