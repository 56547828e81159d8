"""Every config in configs/ has a ':smoke' variant that runs to completion."""
import glob
import json
import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest

from conftest import KINDNESS_CURRICULUM, REPO, records, run_main
from tomk import experiment, rundir

CONFIGS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 # Configs that need an argument other than 'smoke' (tested below).
                 if not p.endswith(('__init__.py', 'from_json.py', 'oracle_control_ladder.py',
                                    'simulator_ladder.py')))
# configs/pretrain.py:smoke is run by tests/test_run.py, configs/pretrained.py:smoke by
# tests/test_foundation.py (which exports it).
COVERED_ELSEWHERE = {'configs/pretrain.py', 'configs/pretrained.py'}
# configs/empathy.py (conftest.empathy_smoke) and the configs that swap its last stage,
# which branch from it (tomk/branch.py): they train only that stage.
BRANCHES = {'configs/rlhf.py': 'rlhf', 'configs/naive_kindness.py': 'naive_kindness',
            'configs/oracle_control.py': 'oracle_control'}
COVERED_ELSEWHERE |= {'configs/empathy.py', *BRANCHES}
# Configs that probe Theory of Mind while training (evaluation.probe_stories_per_label).
PROBED = {'configs/pretrain_social.py'}
SHARED = ['pretrain', 'reward_model', 'rehearse', 'imitation.1.imitation',
          'imitation.1.infer_reward']


def _assert_ran_to_completion(workdir, result):
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  stages = list(dict.fromkeys(r['stage'] for r in records))
  assert stages, result.stdout
  assert os.path.exists(os.path.join(workdir, 'eval.json'))
  assert 'done' in result.stdout
  return stages


@pytest.mark.parametrize('config', [c for c in CONFIGS if c not in COVERED_ELSEWHERE])
def test_smoke_variant_runs_to_completion(config, data_dir, tmp_path):
  result = run_main(tmp_path / 'w', config=f'{config}:smoke')
  _assert_ran_to_completion(tmp_path / 'w', result)
  saved = json.load(open(tmp_path / 'w' / 'config.json'))
  assert bool(saved['evaluation']['probe_stories_per_label']) == (config in PROBED)
  if config in PROBED:
    _assert_probed_at_every_eval(tmp_path / 'w', saved, result)


def _assert_probed_at_every_eval(workdir, saved, result):
  """The Theory of Mind probe scored every row at step 0, every eval_every and the end."""
  from tomk.evaluation import theory_of_mind
  probed = {r['step']: r for r in map(json.loads, records(workdir)) if 'tom/all' in r}
  every = saved['eval_every']
  assert sorted(probed) == sorted({0, saved['steps'], *range(every, saved['steps'], every)})
  for r in probed.values():
    scores = {k: v for k, v in r.items() if k.startswith('tom/')}
    # Every row but the witness subset, which a probe of few stories may leave empty.
    rows = {f'tom/{row}' for row in theory_of_mind.ROWS}
    assert rows - {f'tom/{theory_of_mind.WITNESS}'} <= set(scores) <= rows
    assert all(0.0 <= v <= 1.0 for v in scores.values())
  assert result.stdout.count('Theory of Mind (prediction') == len(probed)


@KINDNESS_CURRICULUM
def test_empathy_smoke_runs_every_stage(empathy_smoke):
  workdir, result = empathy_smoke
  assert _assert_ran_to_completion(workdir, result) == SHARED + ['empathy']
  for stage in ('pretrain', 'reward_model', 'rehearse', 'imitation.1.infer_reward', 'empathy'):
    assert os.path.exists(os.path.join(workdir, 'eval', f'{stage}.json')), stage
    # The kindness-signal check: after the stage the final RL starts from, and the last.
    evaluation = json.load(open(os.path.join(workdir, 'eval', f'{stage}.json')))
    # Beside it, a line per scenario of the kindness evaluation (tomk.compare --paired).
    with open(os.path.join(workdir, 'eval', f'{stage}.scenarios.jsonl')) as f:
      rows = [json.loads(line) for line in f]
    assert len(rows) == sum(m['n'] for by_family in evaluation['kindness'].values()
                            for m in by_family.values())
    assert {r['split'] for r in rows} == set(evaluation['kindness'])
    # Each family's offer rate is its rows' (None where a family has no options to offer),
    # and the liked rate is over the rows that offer.
    for split, by_family in evaluation['kindness'].items():
      for family, m in by_family.items():
        mine = [r for r in rows if (r['split'], r['family']) == (split, family)]
        offered = [r['offered'] for r in mine if r['offered'] is not None]
        assert m['offer_rate'] == (np.mean(offered) if offered else None)
        liked = [r['partner_reward'] > 0 for r in mine if r['offered']]
        assert m['liked_rate'] == (np.mean(liked) if liked else None)
        assert (m['offer_rate'] is None) == (family == 'false_belief_assist'), family
    signal = evaluation.get('kindness_signal')
    assert (signal is not None) == (stage in ('imitation.1.infer_reward', 'empathy')), stage
    if signal:
      assert set(signal['test']) == {'oracle', 'random', 'simulate', 'self', 'inferred',
                                     'reward_model'}
      for by_family in signal['test'].values():
        assert all(m['n'] == 2 and -1 <= m['mean'] <= 1 for m in by_family.values())
  assert 'Kindness signal: true partner reward' in result.stdout


# configs/rlhf.py's branch also evaluates with other settings (3 scenarios a family, not the
# smoke config's 4): evaluation settings never change what a stage trains, so the stages
# are copied and their evaluations made again under the branch's settings.
OTHER_EVALUATION = {'configs/rlhf.py': ('--config.evaluation.scenarios_per_family=3',)}


@KINDNESS_CURRICULUM
@pytest.mark.parametrize('config', sorted(BRANCHES))
def test_smoke_variant_branched_from_empathy_trains_its_last_stage(config, empathy_smoke,
                                                                   tmp_path):
  source, _ = empathy_smoke
  workdir = tmp_path / 'w'
  overrides = (f'--branch_from={source}', *OTHER_EVALUATION.get(config, ()))
  result = run_main(workdir, *overrides, config=f'{config}:smoke')
  assert f'[branch] copied {", ".join(SHARED)} from {source}' in result.stdout
  final = BRANCHES[config]
  assert _assert_ran_to_completion(workdir, result) == SHARED + [final]
  assert f'[{final}] done' in result.stdout and '[pretrain] done' not in result.stdout
  # The shared stages' records are the source's, byte for byte.
  assert records(workdir, SHARED) == records(source, SHARED)
  with open(workdir / 'provenance.json') as f:
    assert json.load(f)['branched_from'] == os.path.abspath(source)
  evaluated_again = f'{", ".join(SHARED)}: evaluated again here' in result.stdout
  assert evaluated_again == (config in OTHER_EVALUATION)
  for stage in ('pretrain', 'rehearse'):
    with open(os.path.join(source, 'eval', f'{stage}.json')) as a, \
        open(workdir / 'eval' / f'{stage}.json') as b:
      theirs, mine = json.load(a), json.load(b)
    if not evaluated_again:           # the source's evaluations, copied
      assert mine == theirs
      continue
    assert {m['n'] for m in theirs['kindness']['test'].values()} == {4}
    assert {m['n'] for m in mine['kindness']['test'].values()} == {3}
    # The branch holds the reward model from the start, but a stage scored before the
    # curriculum trained it gets no reward-model score, as in the source.
    for run in (theirs, mine):
      scores = {m['reward_model'] for m in run['kindness']['test'].values()}
      assert (scores == {None}) == (stage == 'pretrain'), stage
  if config in OTHER_EVALUATION:
    # Re-running the finished branch resumes it, copying nothing.
    again = run_main(workdir, *overrides, config=f'{config}:smoke')
    assert 'has started before' in again.stdout and '[branch] copied' not in again.stdout


@KINDNESS_CURRICULUM
def test_branch_from_a_run_sharing_no_stage_is_refused(empathy_smoke, tmp_path):
  source, _ = empathy_smoke
  result = run_main(tmp_path / 'w', f'--branch_from={source}', '--config.seed=3',
                    config='configs/rlhf.py:smoke', check=False)
  assert result.returncode == 1
  assert 'shares no finished stage' in result.stderr and 'pretrain differs in seed' in result.stderr
  assert not os.path.exists(tmp_path / 'w' / 'metrics.jsonl')


@pytest.mark.parametrize('key, value, message', [
    ('packing', 'zip', "data.packing='zip'"),
    ('answer_weight', 0.0, 'data.answer_weight=0.0'),
    ('subword_dropout', 1.0, 'data.subword_dropout=1.0'),
])
def test_bad_data_settings_fail_with_a_clear_message(key, value, message):
  config = runpy.run_path(os.path.join(REPO, 'configs/pretrain_social.py'))['get_config']()
  config.data[key] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    experiment.check(config)


def test_a_negative_probe_size_fails_with_a_clear_message():
  config = runpy.run_path(os.path.join(REPO, 'configs/pretrain_social.py'))['get_config']()
  config.evaluation.probe_stories_per_label = -1
  with pytest.raises(ValueError, match=re.escape('evaluation.probe_stories_per_label=-1')):
    experiment.check(config)


def test_an_old_config_json_is_completed_and_resumes_under_new_names(tmp_path):
  """A config.json written before a setting existed, with objectives under their old
  names: the run resumes unless a setting now differs from what that run had."""
  from tomk import config as config_lib
  config = runpy.run_path(os.path.join(REPO, 'configs/pretrain.py'))['get_config']('smoke')
  old = config_lib.to_json(config)
  del old['data']['document_mask']                        # written before it existed
  old['routes'] = {'nll_pred': old['routes'].pop('prediction_nll'),
                   'nll_beh': old['routes'].pop('behavior_nll')}
  rundir.write_json(rundir.config_path(str(tmp_path)), old)
  completed = rundir.read_config(str(tmp_path))
  assert completed.data.document_mask is False
  assert set(completed.routes) == {'prediction_nll', 'behavior_nll'}
  rundir.write_config(str(tmp_path), config)              # the same run: resumes
  config.data.document_mask = True
  with pytest.raises(ValueError, match=r'data\.document_mask: saved False, now True'):
    rundir.write_config(str(tmp_path), config)


def test_an_old_override_name_says_what_it_was_renamed_to(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'tomk.main', '--config=configs/pretrain.py:smoke',
       f'--workdir={tmp_path}', '--config.routes.nll_pred.perception=0.5'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip() == ('error: --config.routes.nll_pred.perception was renamed to '
                                   '--config.routes.prediction_nll.perception; use the new name.')


def test_a_rung_of_the_positive_control_shares_the_kindness_runs_first_stages():
  """configs/oracle_control_ladder.py changes only its last stage (and the evaluation), so
  it branches from a run of configs/empathy.py at the settings the ladder was measured at
  (1,024 pieces, one response a scenario; tomk/branch.py compares the stages' resolved
  configs but for the evaluation settings)."""
  from tomk import branch, curriculum
  ladder = runpy.run_path(os.path.join(REPO, 'configs/oracle_control_ladder.py'))
  rung = curriculum.stages(ladder['get_config']('0.7,20,3e-4'))
  earlier = runpy.run_path(os.path.join(REPO, 'configs/empathy.py'))['get_config']()
  earlier.data.vocab_size, earlier.data.scenario_responses = 1024, 1
  empathy = dict(curriculum.stages(earlier))
  assert [name for name, _ in rung] == ['pretrain', 'reward_model', 'oracle_control']
  for name, stage in rung[:2]:
    assert branch._stage_json(stage, False) == branch._stage_json(empathy[name], False), name
    assert stage.evaluation.scenarios_per_family == 100      # scored on more scenarios
  last = rung[-1][1]
  assert (last.rl.temperature, last.rl.top_k) == (0.7, 20)
  assert last.optimizer.behavior.learning_rate == 3e-4
  with pytest.raises(ValueError, match='needs a rung'):
    ladder['get_config']('smoke')
  # Rung settings after the positional ones.
  config = ladder['get_config']('0.7,20,3e-4,vocab=4096,rehearse=30,demonstrate=40,'
                                'scenarios=preference_offer,families=preference_offer+multi_party,'
                                'steps=7,batch=32,samples=8,kl=0.1')
  stages = dict(curriculum.stages(config))
  assert list(stages) == ['pretrain', 'reward_model', 'rehearse', 'demonstrate', 'oracle_control']
  assert all(s.data.vocab_size == 4096 for s in stages.values())
  assert (stages['rehearse'].steps, stages['rehearse'].data.scenario_responses) == (30, 3)
  assert stages['rehearse'].data.mixture == 'preference_offer:1'
  assert (stages['demonstrate'].steps, stages['demonstrate'].data.scenario_response) == (
      40, 'warmest')
  control = stages['oracle_control']
  assert (control.steps, control.batch_size) == (7, 32)
  assert (control.rl.families, control.rl.num_samples, control.rl.kl_coef) == (
      'preference_offer,multi_party', 8, 0.1)
  with pytest.raises(ValueError, match='unknown rung settings'):
    ladder['get_config']('0.7,20,3e-4,warmth=1')


def test_a_rung_of_the_simulator_ladder_shares_the_kindness_runs_stages_before_it():
  """configs/simulator_ladder.py changes only the simulator's stage, so it branches from a
  run of configs/empathy.py and trains that stage alone."""
  from tomk import branch, curriculum
  ladder = runpy.run_path(os.path.join(REPO, 'configs/simulator_ladder.py'))
  empathy = dict(curriculum.stages(
      runpy.run_path(os.path.join(REPO, 'configs/empathy.py'))['get_config']()))
  rung = curriculum.stages(ladder['get_config']('simulator,1500,5,preference_offer,similar_partner'))
  assert [name for name, _ in rung] == ['pretrain', 'reward_model', 'rehearse', 'simulator']
  for name, stage in rung[:3]:
    assert branch._stage_json(stage, False) == branch._stage_json(empathy[name], False), name
  simulator = rung[-1][1]
  assert (simulator.algorithm, simulator.steps, simulator.data.reaction_weight) == (
      'imitation', 1500, 5.0)
  assert simulator.data.mixture == 'preference_offer:1,similar_partner:1'
  assert simulator.routes.imitate.behavior == 0.0 and simulator.routes.simulate.prediction == 1.0
  rung = dict(curriculum.stages(ladder['get_config']('imitation,600,5')))
  assert list(rung) == list(empathy)[:-1]               # up to the last RL's start
  imitation = [s for name, s in rung.items() if name.startswith('imitation.')]
  assert sum(s.steps for s in imitation) == 600
  assert {s.data.reaction_weight for s in imitation} == {5.0}
  assert branch._stage_json(rung['rehearse'], False) == branch._stage_json(
      empathy['rehearse'], False)
  with pytest.raises(ValueError, match='needs a rung'):
    ladder['get_config']('smoke')
