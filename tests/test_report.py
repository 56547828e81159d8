"""The run's report: an evaluation after each stage, report.md with a column per stage, plots."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import KINDNESS_CURRICULUM, REPO, records, run_main
from tomk.evaluation import theory_of_mind

STAGES = ('pretrain', 'reward_model')
# Two stages of the kindness curriculum: the reward_model stage leaves the policy as
# pretrain left it, so its column evaluates pretrain's parameters again, now with a
# reward model to score them.
ARGS = ('--config.curriculum=' + ','.join(STAGES),)
# Its stages are the first two of the smoke runs of the whole curriculum in
# tests/test_configs.py: on the same xdist worker, they compile once.
pytestmark = KINDNESS_CURRICULUM
# The tests' runs skip the PNGs (conftest); these draw them, as a user's run does.
PLOTS = {'TOMK_PLOTS': '1'}


@pytest.fixture(scope='module')
def finished_run(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('report'))
  result = run_main(workdir, *ARGS, config='configs/empathy.py:smoke', env=PLOTS)
  return workdir, result.stdout


def _evaluation(workdir, stage):
  with open(os.path.join(workdir, 'eval', f'{stage}.json')) as f:
    return json.load(f)


def _table(markdown: str) -> dict[str, list[str]]:
  """The evaluation table of report.md: {row label: cells}, the header under 'measure'."""
  lines = markdown.split('## Evaluation', 1)[1].splitlines()
  rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines
          if line.startswith('| ')]
  return {row[0]: row[1:] for row in rows}


def _cell(value, n):
  return f'{value:.3f} ({n})'


def test_each_stage_is_evaluated_into_its_own_file(finished_run):
  workdir, stdout = finished_run
  # The reward_model stage re-scores pretrain's parameters with the new reward model only.
  assert stdout.count('[evaluate] theory of mind') == 1
  assert stdout.count('[evaluate] kindness:') == 2
  for stage in STAGES:
    results = _evaluation(workdir, stage)
    assert results['stage'] == stage
    assert results['step'] == 10        # the reward_model stage: pretrain's last checkpoint
  assert _evaluation(workdir, 'pretrain')['kindness']['test']['similar_partner'][
      'reward_model'] is None           # no reward model yet when pretrain ended
  with open(os.path.join(workdir, 'eval.json')) as f:
    assert json.load(f) == _evaluation(workdir, STAGES[-1])


def test_report_table_has_a_column_per_stage_with_the_evaluated_numbers(finished_run):
  workdir, stdout = finished_run
  with open(os.path.join(workdir, 'report.md')) as f:
    markdown = f.read()
  table = _table(markdown)
  assert table['measure'] == list(STAGES)
  assert '| measure | pretrain | reward_model |' in stdout      # experiment.run prints the table
  evaluations = [_evaluation(workdir, stage) for stage in STAGES]
  for label in theory_of_mind.ROWS:
    measures = [e['theory_of_mind']['test']['prediction'][label] for e in evaluations]
    if measures[0]['accuracy'] is None:     # the witness subset, empty in every stage alike
      assert label == theory_of_mind.WITNESS and label not in table
      continue
    assert table[label] == [_cell(m['accuracy'], m['n']) for m in measures], label
  # The same parameters in both columns: the same numbers, except the reward-model score.
  assert table['all'][0] == table['all'][1]
  for family in ('similar_partner', 'dissimilar_partner', 'false_belief_assist'):
    assert table[family] == [
        _cell(e['kindness']['test'][family]['partner_reward'], e['kindness']['test'][family]['n'])
        for e in evaluations], family
  harm = evaluations[0]['kindness']['test']['third_party']
  assert _cell(harm['third_party_harm_rate'], harm['n']) in markdown
  kindness = evaluations[1]['kindness']['test'].values()
  n = sum(m['n'] for m in kindness)
  score = sum(m['reward_model'] * m['n'] for m in kindness) / n
  rows = markdown.split('**Extrinsic: reward-model score', 1)[1].splitlines()
  assert rows[1] == f'| test | – | {_cell(score, n)} |'
  assert '**Self-prediction' in markdown and '**Perspective-taking' in markdown


def test_report_plots_are_pngs(finished_run):
  workdir, _ = finished_run
  import matplotlib.image
  with open(os.path.join(workdir, 'report.md')) as f:
    files = re.findall(r'!\[[^]]*\]\(([^)]+)\)', f.read())
  assert {'plots/curves_loss.png', 'plots/curves_eval.png', 'plots/evaluation.png'} <= set(files)
  for name in files:
    path = os.path.join(workdir, name)
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', name
    height, width, _ = matplotlib.image.imread(path).shape
    assert height > 100 and width > 100, name


def test_rerun_on_finished_workdir_does_not_evaluate_again(finished_run):
  workdir, _ = finished_run
  evaluated = [os.path.join(workdir, 'eval', f'{stage}.json') for stage in STAGES]
  rewritten = [os.path.join(workdir, name) for name in ('metrics.jsonl', 'eval.json')]
  state = lambda p: (os.stat(p).st_mtime_ns, open(p, 'rb').read())
  before = {p: state(p) for p in evaluated + rewritten}
  result = run_main(workdir, *ARGS, config='configs/empathy.py:smoke', env=PLOTS)
  assert '[evaluate]' not in result.stdout
  for stage in STAGES:
    assert f'[{stage}] evaluated before' in result.stdout
  for p in evaluated:
    assert state(p) == before[p], p
  for p in rewritten:          # the same bytes: no record of the reward_model stage is lost
    assert state(p)[1] == before[p][1], p
  assert '| measure | pretrain | reward_model |' in result.stdout


def test_cli_regenerates_the_report(finished_run, tmp_path):
  workdir, _ = finished_run
  with open(os.path.join(workdir, 'report.md')) as f:
    expected = f.read()
  os.remove(os.path.join(workdir, 'report.md'))
  os.remove(os.path.join(workdir, 'plots', 'evaluation.png'))
  result = subprocess.run([sys.executable, '-m', 'tomk.report', f'--workdir={workdir}'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| measure | pretrain | reward_model |' in result.stdout
  with open(os.path.join(workdir, 'report.md')) as f:
    assert f.read() == expected
  assert os.path.exists(os.path.join(workdir, 'plots', 'evaluation.png'))


def test_a_stage_does_not_depend_on_the_stages_after_it(finished_run, empathy_smoke):
  # What lets a run branch from another (tomk/branch.py): this run of the first two stages
  # of configs/empathy.py:smoke logs and evaluates them as the whole curriculum's run did.
  # The one exception is by design: the kindness-signal check runs where a curriculum ends
  # (here after reward_model), not after every stage.
  workdir, _ = finished_run
  whole, _ = empathy_smoke
  assert records(workdir) == records(whole, STAGES)
  assert 'kindness_signal' in _evaluation(workdir, STAGES[-1])
  for stage in STAGES:
    ours, theirs = _evaluation(workdir, stage), _evaluation(whole, stage)
    ours.pop('kindness_signal', None)
    assert ours == theirs, stage
