"""A run's report: W/report.md and the PNGs under W/plots/ (SPEC §7).

  report.write(workdir)                     # the end of every tomk.main run
  python -m tomk.report --workdir=W         # regenerates them from the files in W

report.md holds the stages (algorithm, steps, global steps), one table of the
evaluation (SPEC §6) with a column per evaluated stage (of an interleaved stage, its
last sub-stage), read from eval/<stage>.json (each cell
`value (n)`), and the plots: training curves from metrics.jsonl (curves_<group>.png, a
panel per metric, x the global step, a colour per stage, stage boundaries dashed) and
the table's numbers across stages (evaluation.png). Only files are read: no model.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys

from absl import app, flags, logging

from tomk import checkpoints, curriculum, evaluation, figures, rundir
from tomk.evaluation import kindness_signal, theory_of_mind
from tomk.model import STREAMS
from tomk.socialworld import scenarios

MISSING = '–'


@dataclasses.dataclass
class Row:
  section: str           # a bold line in the table, a panel in evaluation.png
  label: str
  cells: list            # per stage: (value, n), or None where there is no number


def _measure(results, *keys, value='accuracy'):
  """(results[keys...][value], n), or None where the run has no such number."""
  for key in keys:
    if not isinstance(results, dict) or key not in results:
      return None
    results = results[key]
  if results.get(value) is None:
    return None
  return results[value], results['n']


def _pooled(results, value, *keys):
  """The n-weighted mean of `value` over the scenario families of results[keys...] that
  have it, or None."""
  measures = [_measure(results, *keys, family, value=value) for family in scenarios.FAMILIES]
  measures = [m for m in measures if m is not None]
  if not measures:
    return None
  n = sum(count for _, count in measures)
  return sum(v * count for v, count in measures) / n, n


def rows(evaluations: list[dict | None], splits: tuple[str, ...]) -> list[Row]:
  """The table: a Row per number, a cell per stage (evaluations in curriculum order).

  Per question type and per scenario family on the first split (test); pooled over
  them on every split (heldout: names and items never seen in training).
  """
  first = splits[0]
  specs = []       # (section, label, results -> (value, n) | None)
  section = f'Theory of Mind: prediction stream, {first}, by question type (chance 0.50)'
  for name in theory_of_mind.ROWS:
    specs.append((section, name, lambda r, name=name: _measure(
        r, 'theory_of_mind', first, 'prediction', name)))
  section = 'Theory of Mind: all questions (chance 0.50)'
  for split in splits:
    for stream in STREAMS:
      specs.append((section, f'{stream}, {split}', lambda r, split=split, stream=stream:
                    _measure(r, 'theory_of_mind', split, stream, 'all')))
  section = 'Perspective-taking: NLL per token of the partner\'s turns, prediction stream'
  for measure, split in (('chitchat_partner_turns', evaluation.CHITCHAT_SPLIT),
                         ('scenario_partner_turns', first), ('scenario_reaction', first)):
    specs.append((section, f'{measure}, {split}', lambda r, measure=measure, split=split:
                  _measure(r, 'perspective', measure, split, 'prediction', value='nll')))
  section = 'Perspective-taking: next-turn accuracy (chance 0.50)'
  for stream in STREAMS:
    specs.append((section, f'{stream}, {first}', lambda r, stream=stream: _measure(
        r, 'perspective', 'next_turn', first, stream)))
  section = f'Kindness: ground-truth partner reward of greedy responses, {first}'
  for family in scenarios.FAMILIES:
    specs.append((section, family, lambda r, family=family: _measure(
        r, 'kindness', first, family, value='partner_reward')))
  for split in splits:
    specs.append((section, f'all families, {split}', lambda r, split=split: _pooled(
        r, 'partner_reward', 'kindness', split)))
  section = ('Kindness signal: true partner reward of the candidate each reward estimator '
             'ranks first, families pooled (stages that ran the check)')
  for estimator in kindness_signal.ESTIMATORS:
    for split in splits:
      specs.append((section, f'{estimator}, {split}', lambda r, split=split, e=estimator:
                    _pooled(r, 'mean', 'kindness_signal', split, e)))
  section = f'Kindness: third-party harm rate (share of responses harming someone), {first}'
  for family in scenarios.FAMILIES:
    specs.append((section, family, lambda r, family=family: _measure(
        r, 'kindness', first, family, value='third_party_harm_rate')))
  for value, section in (('reward_model', 'Extrinsic: reward-model score, all families'),
                         ('self_prediction', 'Self-prediction: prediction stream\'s accuracy '
                                             'on the behavior\'s responses, all families')):
    for split in splits:
      specs.append((section, split, lambda r, split=split, value=value: _pooled(
          r, value, 'kindness', split)))
  out = [Row(section, label, [get(r) if r else None for r in evaluations])
         for section, label, get in specs]
  return [row for row in out if any(cell is not None for cell in row.cells)]


def _cell(cell) -> str:
  if cell is None:
    return MISSING
  value, n = cell
  return f'{value:.3f} ({n})' if math.isfinite(value) else f'{value} ({n})'


def table(names: list[str], table_rows: list[Row]) -> str:
  """One markdown table: a column per stage, a bold line opening each section."""
  body, section = [], None
  for row in table_rows:
    if row.section != section:
      section = row.section
      body.append([f'**{section}**'] + [''] * len(names))
    body.append([row.label] + [_cell(c) for c in row.cells])
  return figures.markdown_table(['measure'] + names, body)


# --- Plots ---------------------------------------------------------------------------------------


def plot_curves(run: rundir.Run, names: list[str], boundaries: list[int],
                plot_dir: str) -> list[str]:
  """curves_<group>.png for each metric group (loss, eval, reward, rl ...): a panel per metric."""
  plt = figures.pyplot()
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  stage_lines = [Line2D([], [], color=f'C{i}', marker='.') for i in range(len(names))]
  groups = {}
  for _, metric in run.curves:
    groups.setdefault(metric.split('/')[0] if '/' in metric else 'other', set()).add(metric)
  files = []
  for group, metrics in sorted(groups.items()):
    metrics = sorted(metrics)
    columns = min(3, len(metrics))
    panel_rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(panel_rows, columns, squeeze=False,
                             figsize=(4.5 * columns, 3.2 * panel_rows + 0.4))
    for ax in axes.flat[len(metrics):]:
      ax.set_axis_off()
    for ax, metric in zip(axes.flat, metrics):
      for i, stage in enumerate(names):
        points = run.curves.get((stage, metric), [])
        if points:
          steps, values = zip(*points)
          ax.plot(steps, values, color=f'C{i}', marker='.' if len(points) < 30 else None)
      for boundary in boundaries:
        ax.axvline(boundary, color='gray', linestyle='--', linewidth=0.8)
      ax.set_title(metric, fontsize='small')
      ax.set_xlabel('global step', fontsize='small')
    axes.flat[0].legend(stage_lines, names, fontsize='x-small')
    fig.suptitle(f'{group}: training curves (dashed: stage boundaries)', fontsize='medium')
    files.append(figures.save_figure(
        fig, os.path.join(plot_dir, f'curves_{figures.file_name(group)}.png')))
  return files


def plot_evaluation(names: list[str], table_rows: list[Row], plot_dir: str) -> str | None:
  """evaluation.png: a panel per section of the table, a line per row across the stages."""
  sections = list(dict.fromkeys(row.section for row in table_rows))
  if not sections:
    return None
  plt = figures.pyplot()
  columns = min(2, len(sections))
  panel_rows = math.ceil(len(sections) / columns)
  fig, axes = plt.subplots(panel_rows, columns, squeeze=False,
                           figsize=(7 * columns, 3.6 * panel_rows))
  for ax in axes.flat[len(sections):]:
    ax.set_axis_off()
  for ax, section in zip(axes.flat, sections):
    for row in (r for r in table_rows if r.section == section):
      values = [math.nan if c is None else c[0] for c in row.cells]
      ax.plot(range(len(names)), values, marker='o', label=row.label)
    ax.set_xticks(range(len(names)), names, fontsize='small')
    ax.set_title(section, fontsize='small', wrap=True)
    ax.legend(fontsize='x-small', ncol=2)
  fig.suptitle('Evaluation after each stage (SPEC §6)', fontsize='medium')
  return figures.save_figure(fig, os.path.join(plot_dir, 'evaluation.png'))


# --- The report ----------------------------------------------------------------------------------


def _stage_evaluations(workdir: str, names: list[str]) -> list[dict | None]:
  """eval/<stage>.json per stage; for the last stage of a run from before per-stage
  evaluation, eval.json."""
  found = [evaluation.load(workdir, name) for name in names]
  if found and found[-1] is None:
    found[-1] = evaluation.load(workdir)
  return found


# An environment variable, not a config key: whether PNGs are drawn changes no result.
# TOMK_PLOTS=0 saves a run the seconds matplotlib takes (many short runs: tests, sweeps).
PLOTS_VARIABLE = 'TOMK_PLOTS'


def plots_wanted() -> bool:
  return os.environ.get(PLOTS_VARIABLE, '1') != '0'


def write(workdir: str, plots: bool = True) -> str:
  """Writes report.md and (plots=True) plots/ into the workdir; returns the table, for the
  terminal."""
  config = rundir.read_config(workdir)
  stages = curriculum.stages(config)
  names = [name for name, _ in stages]
  ends = [0]
  for _, stage_config in stages:
    ends.append(ends[-1] + stage_config.steps)
  columns = curriculum.evaluated(stages)     # an interleaved stage: its last sub-stage only
  if evaluation.load(workdir, checkpoints.IMPORTED) is not None:   # a run from init_from
    columns = [checkpoints.IMPORTED] + columns
  evaluations = _stage_evaluations(workdir, columns)
  settings = config.evaluation
  table_rows = rows(evaluations, tuple(settings.splits))
  evaluation_table = table(columns, table_rows)

  plot_dir = rundir.plots_dir(workdir)
  files = []
  if plots:
    os.makedirs(plot_dir, exist_ok=True)
    files = plot_curves(rundir.read_run(workdir), names, ends[1:-1], plot_dir)
    files.append(plot_evaluation(columns, table_rows, plot_dir))
    files = [f for f in files if f]

  stage_rows = []
  by_stage = dict(zip(columns, evaluations))
  for (name, stage_config), start, end in zip(stages, ends, ends[1:]):
    results = by_stage.get(name)
    policy = curriculum.policy_stage(stages, name)
    evaluated = MISSING if results is None else f'step {results["step"]}' + (
        '' if policy == name else f' of {policy} (the policy this stage left)')
    stage_rows.append([name, stage_config.algorithm, str(stage_config.steps),
                       f'{start + 1}–{end}', evaluated])
  stage_table = figures.markdown_table(
      ['stage', 'algorithm', 'steps', 'global steps', 'evaluated'], stage_rows)
  intro = (f'Evaluation after each stage (SPEC §6): value (n examples); evaluation seed '
           f'{settings.seed}, training seed {config.seed}; {MISSING}: not measured (e.g. the '
           f'reward-model score before the reward_model stage).')
  markdown = [f'# Report: {os.path.basename(os.path.abspath(workdir))}', '',
              f'Curriculum {" → ".join(names)}; written by tomk.report from config.json, '
              f'metrics.jsonl and eval/<stage>.json.', '', '## Stages', '', stage_table, '',
              '## Evaluation', '', intro, '', evaluation_table, '', '## Plots', '']
  markdown += [f'![{os.path.basename(p)}]({os.path.relpath(p, workdir)})' for p in files] + ['']
  if not plots:
    markdown[-1:] = [f'Not drawn ({PLOTS_VARIABLE}=0); python -m tomk.report --workdir=W draws them.', '']
  path = rundir.report_path(workdir)
  rundir.write_text(path, '\n'.join(markdown))
  drawn = f' and {len(files)} plots in {plot_dir}' if plots else ''
  return f'{intro}\n\n{evaluation_table}\n\nwrote {path}{drawn}'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:      # matplotlib logs its font cache at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    print(write(flags.FLAGS.workdir))
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'A workdir written by tomk.main.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)
