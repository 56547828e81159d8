"""Tests of tomk.stats and tomk.compare on fabricated workdirs (no training).

Every expected number is worked out by hand: t quantiles from a printed t table, means,
sample standard deviations and half-widths t_{0.975, n-1}·s/√n.
"""
import csv
import json
import math
import os

import pytest

from tomk import compare
from tomk import rundir
from tomk import stats

# t_{0.975} in closed form for 1 and 2 degrees of freedom: tan(π(p - ½)) and
# (2p - 1)·√(2 / (4p(1 - p))).
T_975 = {1: math.tan(math.pi * 0.475), 2: 0.95 * math.sqrt(2 / (4 * 0.975 * 0.025))}
# ... and from a printed t table (3 decimals) for more.
T_975_TABLE = {4: 2.776, 9: 2.262, 30: 2.042}


@pytest.mark.parametrize('dof', sorted(T_975))
def test_t_quantile_closed_form(dof):
  assert stats.t_quantile(0.975, dof) == pytest.approx(T_975[dof], rel=1e-9)
  assert stats.t_quantile(0.025, dof) == pytest.approx(-T_975[dof], rel=1e-9)
  assert stats.t_cdf(T_975[dof], dof) == pytest.approx(0.975, abs=1e-10)


@pytest.mark.parametrize('dof', sorted(T_975_TABLE))
def test_t_quantile_matches_the_table(dof):
  assert stats.t_quantile(0.975, dof) == pytest.approx(T_975_TABLE[dof], abs=5e-4)


def test_t_quantile_approaches_the_normal():
  assert stats.t_quantile(0.975, 1e6) == pytest.approx(1.959963984540054, rel=1e-5)
  assert stats.t_quantile(0.5, 3) == 0.0


def test_summarize_by_hand():
  s = stats.summarize([1.0, 2.0, 4.0])
  assert (s.n, s.mean, s.std) == (3, pytest.approx(7 / 3), pytest.approx(math.sqrt(7 / 3)))
  assert s.ci == pytest.approx(T_975[2] * math.sqrt(7 / 3) / math.sqrt(3))
  assert s.low == pytest.approx(7 / 3 - s.ci) and s.high == pytest.approx(7 / 3 + s.ci)
  one = stats.summarize([7.0])
  assert (one.n, one.mean, one.std, one.ci) == (1, 7.0, None, None)
  assert stats.format_summary(one) == '7 (n=1, no CI)'
  assert stats.format_summary(stats.summarize([6.571, 6.58, 6.56])) == '6.570 ± 0.025'
  assert stats.format_summary(stats.summarize([1.0, 1.0])) == '1 ± 0'
  with pytest.raises(ValueError):
    stats.summarize([])


# --- Fabricated workdirs ---------------------------------------------------------------------

# (learning rate, seed) -> final eval/nll_behavior. By hand:
#   lr 0.1: 1, 2, 4 -> mean 7/3, s = √(7/3), CI = t(2)·s/√3
#   lr 0.2: 3, 5    -> mean 4,   s = √2,     CI = t(1)·√2/√2 = t(1)
#   lr 0.3: 7       -> n=1, no CI
FINAL = {(0.1, 0): 1.0, (0.1, 1): 2.0, (0.1, 2): 4.0, (0.2, 0): 3.0, (0.2, 1): 5.0, (0.3, 0): 7.0}


def _workdir(path, lr, seed, final, done=True, eval_json=None, steps=(0, 5, 10)):
  os.makedirs(path)
  config = {'seed': seed, 'steps': 10, 'data': {'source': 'chitchat'},
            'optimizer': {'behavior': {'learning_rate': lr}, 'prediction': {'learning_rate': 0.1}}}
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump(config, f)
  labels = {'stage': 'pretrain', 'algorithm': 'pretrain'}
  records = [{'step': steps[0], **labels, 'eval/nll_behavior': 9.0},
             # Not the last: ignored; under the name runs of older code used (read as today's).
             {'step': steps[1], **labels, 'loss/nll_beh': 100.0 + seed},
             {'step': steps[2], **labels, 'loss/behavior_nll': 10 * final},
             {'step': steps[2], **labels, 'eval/nll_behavior': final}]
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in records)
  if eval_json is not None:
    with open(os.path.join(path, 'eval.json'), 'w') as f:
      json.dump(eval_json, f)
  if done:
    open(os.path.join(path, 'DONE'), 'w').close()


@pytest.fixture
def sweepdir(tmp_path):
  root = tmp_path / 'sweep'
  names = []
  for (lr, seed), final in FINAL.items():
    name = f'lr={lr},seed={seed}'
    names.append(name)
    tom = {'step': 10, 'seed': 2411, 'tom': {'accuracy': 0.5 + 0.1 * seed, 'n': 50,
                                            'label': 'not a number', 'missing': None}}
    tom = tom if lr == 0.1 else None
    _workdir(str(root / name), lr, seed, final, eval_json=tom)
  # An unfinished point of the sweep: left out of the comparison.
  _workdir(str(root / 'lr=0.1,seed=3'), 0.1, 3, 1000.0, done=False)
  with open(root / 'sweep.json', 'w') as f:
    json.dump({'points': [{'name': n, 'status': 'done'} for n in names] +
               [{'name': 'lr=0.1,seed=3', 'status': 'running'}]}, f)
  return str(root)


def _csv(path):
  with open(path) as f:
    return {(r['group'], r['metric']): r for r in csv.DictReader(f)}


def test_compare_by_hand(sweepdir, capsys):
  compare.compare([sweepdir])
  printed = capsys.readouterr()
  assert 'leaving out 1 unfinished run(s)' in printed.err
  rows = _csv(os.path.join(sweepdir, 'comparison.csv'))
  a, b, c = ('optimizer.behavior.learning_rate=0.1', 'optimizer.behavior.learning_rate=0.2',
             'optimizer.behavior.learning_rate=0.3')
  assert {g for g, _ in rows} == {a, b, c}       # seed is not part of the group

  row = rows[(a, 'eval/nll_behavior')]
  assert int(row['n']) == 3 and float(row['mean']) == pytest.approx(7 / 3, rel=1e-12)
  assert float(row['std']) == pytest.approx(math.sqrt(7 / 3), rel=1e-12)
  assert float(row['ci95']) == pytest.approx(T_975[2] * math.sqrt(7 / 3) / math.sqrt(3),
                                             rel=1e-9)
  assert row['seeds'] == '0;1;2' and row['values'] == '1.0;2.0;4.0'

  row = rows[(b, 'eval/nll_behavior')]
  assert (int(row['n']), float(row['mean'])) == (2, 4.0)
  assert float(row['ci95']) == pytest.approx(T_975[1], rel=1e-9)
  assert float(row['ci95_low']) == pytest.approx(4.0 - T_975[1], rel=1e-9)

  row = rows[(c, 'eval/nll_behavior')]
  assert (int(row['n']), float(row['mean']), row['ci95'], row['std']) == (1, 7.0, '', '')

  # The last value of a metric counts, not an earlier one.
  assert float(rows[(b, 'loss/behavior_nll')]['mean']) == pytest.approx(40.0)
  # eval.json numbers join in; its strings do not.
  row = rows[(a, 'eval.json/tom/accuracy')]
  assert float(row['mean']) == pytest.approx(0.6) and int(row['n']) == 3
  assert float(row['ci95']) == pytest.approx(T_975[2] * 0.1 / math.sqrt(3), rel=1e-9)
  assert {m for _, m in rows if m.startswith('eval.json/')} == {'eval.json/tom/accuracy'}
  assert (b, 'eval.json/tom/accuracy') not in rows

  table = printed.out
  assert (f'| metric | {a} (n=3) | {b} (n=2) | {c} (n=1) |') in table
  assert f'| eval/nll_behavior | 2.3 ± 3.8 | 4 ± 13 | 7 (n=1, no CI) |' in table
  markdown = open(os.path.join(sweepdir, 'comparison.md')).read()
  assert table.split('\n\n')[1].strip() in markdown
  assert '| metric | seed 0 | seed 1 | seed 2 |' in markdown     # every seed's own value
  assert 'lr=0.1,seed=3' not in markdown
  plots = os.listdir(os.path.join(sweepdir, 'plots'))
  assert 'curve_eval_nll_behavior.png' in plots and 'curve_loss_behavior_nll.png' in plots
  assert 'eval_eval.png' in plots and 'eval_eval.json_tom.png' in plots


def test_workdirs_as_arguments_write_where_out_says_never_the_current_dir(
    sweepdir, tmp_path, monkeypatch):
  here = tmp_path / 'here'
  here.mkdir()
  monkeypatch.chdir(here)
  workdirs = [os.path.join(sweepdir, f'lr=0.1,seed={s}') for s in range(3)]
  with pytest.raises(ValueError, match='--out=DIR'):
    compare.compare(workdirs, plots=False, log=lambda *a, **k: None)
  assert not os.listdir(here)
  rows = compare.compare(workdirs, out=str(tmp_path / 'out'), plots=False,
                         log=lambda *a, **k: None)
  assert {r.group for r in rows} == {'all runs'}       # nothing but the seed differs
  assert (tmp_path / 'out' / 'comparison.md').exists()
  assert (tmp_path / 'out' / 'comparison.csv').exists()


def test_warnings_and_errors(tmp_path):
  _workdir(str(tmp_path / 'a'), 0.1, 0, 1.0)
  _workdir(str(tmp_path / 'b'), 0.1, 0, 2.0, steps=(0, 5, 8))
  runs = [rundir.read_run(str(tmp_path / n)) for n in 'ab']
  _, groups = compare.group_runs(runs)
  notes = ' '.join(compare.warnings_for(groups))
  assert 'the same seed' in notes and 'different steps' in notes
  with pytest.raises(ValueError, match='is not a workdir'):
    rundir.read_run(str(tmp_path))
  with open(tmp_path / 'a' / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 11, "loss/x": 1.')
  with pytest.raises(ValueError, match='line 5 is not JSON'):
    rundir.read_run(str(tmp_path / 'a'))


def _scenario_run(path, seed, rewards, stage='last'):
  """A workdir holding only what --paired reads: config.json and per-scenario rewards."""
  rundir.write_json(rundir.config_path(str(path)), {'seed': seed})
  rundir.write_json(rundir.eval_path(str(path)), {'stage': stage})
  rundir.write_text(rundir.scenarios_path(str(path), stage), ''.join(
      json.dumps({'split': 'test', 'family': family, 'id': f'{family}-{i}',
                  'partner_reward': r, 'step': 3}) + '\n'
      for family, values in rewards.items() for i, r in enumerate(values)))
  rundir.write_json(rundir.eval_path(str(path), stage), {'stage': stage, 'step': 3})


def test_paired_differences_are_per_scenario_then_across_seeds(tmp_path):
  a = {'offer': [0.0, 1.0, -1.0, 0.5], 'assist': [0.0, 0.0]}
  b = {'offer': [0.5, 1.0, 0.0, 0.5], 'assist': [1.0, 0.0]}
  _scenario_run(tmp_path / 'a0', 0, a)
  _scenario_run(tmp_path / 'b0', 0, b)
  one, seeds = compare.paired([str(tmp_path / 'a0')], [str(tmp_path / 'b0')])
  assert seeds == [0]
  offer = one[('test', 'offer')]                       # over the 4 scenarios of one seed
  assert offer.n == 4 and offer.mean == pytest.approx((0.5 + 0 + 1 + 0) / 4)
  assert one[('test', 'all')].n == 6
  # A second seed: the interval is across the two seeds' paired means.
  _scenario_run(tmp_path / 'a1', 1, a)
  _scenario_run(tmp_path / 'b1', 1, {'offer': [0.0] * 4, 'assist': [0.0, 0.0]})
  two, seeds = compare.paired([str(tmp_path / 'a0'), str(tmp_path / 'a1')],
                              [str(tmp_path / 'b0'), str(tmp_path / 'b1')])
  assert seeds == [0, 1]
  offer = two[('test', 'offer')]
  assert offer.n == 2 and offer.mean == pytest.approx((0.375 + (0 - 0.125)) / 2)
  assert 'n (seeds)' in compare.paired_table(two, 2)
  _scenario_run(tmp_path / 'c', 7, a)
  with pytest.raises(ValueError, match='share no seed'):
    compare.paired([str(tmp_path / 'a0')], [str(tmp_path / 'c')])
  with pytest.raises(ValueError, match='two runs of seed 0'):
    compare.paired([str(tmp_path / 'a0'), str(tmp_path / 'b0')], [str(tmp_path / 'b1')])
  _scenario_run(tmp_path / 'd', 0, {'offer': [0.0] * 4})          # fewer scenarios
  with pytest.raises(ValueError, match='different scenarios'):
    compare.paired([str(tmp_path / 'a0')], [str(tmp_path / 'd')])


def test_paired_compares_a_stage_with_the_one_it_started_from(tmp_path):
  """--stage_a: one run's last stage against an earlier one, on the same scenarios."""
  run = tmp_path / 'run'
  _scenario_run(run, 0, {'offer': [0.0, 0.5, -1.0]}, stage='pretrain')
  _scenario_run(run, 0, {'offer': [1.0, 0.5, 0.0]}, stage='oracle_control')
  out, _ = compare.paired([str(run)], [str(run)], stage_a='pretrain')
  assert out[('test', 'offer')].mean == pytest.approx((1.0 + 0 + 1.0) / 3)
  same, _ = compare.paired([str(run)], [str(run)])       # the last stage against itself
  assert same[('test', 'offer')].mean == 0.0


def test_one_arm_of_a_sweep_by_pattern(tmp_path):
  """A sweep of several arms (configs/sweeps/kindness.py) is compared arm against arm by
  workdir patterns; unfinished runs are left out."""
  for name, seed, values in [('seed=0', 0, [0.0, 1.0]), ('seed=1', 1, [0.5, 0.0]),
                             ('config=rlhf,seed=0', 0, [0.0, 0.0]),
                             ('config=rlhf,seed=1', 1, [0.0, -1.0]), ('seed=2', 2, [1.0, 1.0])]:
    _scenario_run(tmp_path / name, seed, {'offer': values})
    if name != 'seed=2':
      rundir.write_json(rundir.done_path(str(tmp_path / name)), {})
  notes = []
  empathy = compare.expand([str(tmp_path / 'seed=*')], log=lambda *a, **k: notes.append(a[0]))
  assert [os.path.basename(w) for w in empathy] == ['seed=0', 'seed=1']
  assert '1 unfinished' in notes[0]
  rlhf = compare.expand([str(tmp_path / 'config=rlhf,seed=*')])
  out, seeds = compare.paired(rlhf, empathy)
  assert seeds == [0, 1]
  assert out[('test', 'offer')].mean == pytest.approx(((0.0 + 1.0) / 2 + (0.5 + 1.0) / 2) / 2)
  assert 'detectable at 80 % power' in compare.paired_table(out, 2)
  with pytest.raises(ValueError, match='matches no workdir'):
    compare.expand([str(tmp_path / 'config=naive*')])
  with pytest.raises(ValueError, match='no finished runs'):
    compare.expand([str(tmp_path / 'seed=2*')], log=lambda *a, **k: None)


def test_detectable_difference_is_about_1_4_ci_half_widths_for_large_n():
  values = [(-1.0) ** i * (1 + i % 3) for i in range(400)]
  s = stats.summarize(values)
  assert stats.detectable(s) == pytest.approx(s.ci * (1.9659 + 0.8416) / 1.9659, rel=2e-3)
  assert stats.detectable(stats.summarize([1.0])) is None
