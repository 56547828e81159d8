"""Tests of tomk.reproduce: finding the first difference, and re-running real smoke runs.

The runs come from test_sweep.py's 3 × 2 smoke sweep. The tests of both files that read it
are marked SMOKE_SWEEP, so one xdist worker runs them and the second file's fixture only
re-invokes the finished sweep (seconds); each re-run then hits the shared compilation cache.
"""
import json
import os
import shutil
import subprocess
import sys

from test_sweep import REPO, SMOKE_SWEEP, smoke_sweep  # pylint: disable=unused-import
from tomk import provenance
from tomk import reproduce
from tomk import rundir


def test_first_difference():
  a = [{'step': 0, 'stage': 's', 'x': 1.0}, {'step': 5, 'stage': 's', 'x': 2.0, 'y': 3.0}]
  assert reproduce.first_difference(a, a) is None
  b = [a[0], {'step': 5, 'stage': 's', 'x': 2.0, 'y': 3.5}]
  d = reproduce.first_difference(a, b)
  assert (d.record, d.step, d.metric, d.original, d.rerun) == (1, 5, 'y', 3.0, 3.5)
  assert 'first difference at step 5' in d.describe() and 'y = 3.0' in d.describe()
  d = reproduce.first_difference(a, a[:1])
  assert (d.metric, d.original, d.rerun, d.step) == (None, 2, 1, 0)
  d = reproduce.first_difference(a, [a[0], {'step': 5, 'stage': 's', 'x': 2.0}])
  assert (d.metric, d.rerun) == ('y', '<absent>')


def _reproduce(workdir, into):
  return subprocess.run([sys.executable, '-m', 'tomk.reproduce', workdir, '--into', into],
                        cwd=REPO, capture_output=True, text=True)


@SMOKE_SWEEP
def test_reproduce_matches_then_names_a_deliberate_change(smoke_sweep, tmp_path):
  original = os.path.join(smoke_sweep, 'seed=1,optimizer.behavior.learning_rate=0.003')
  result = _reproduce(original, str(tmp_path / 'again'))
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'MATCH: metrics.jsonl' in result.stdout

  # The same recorded run, but its config says another behavior learning rate.
  changed = tmp_path / 'changed'
  changed.mkdir()
  shutil.copy(os.path.join(original, 'metrics.jsonl'), changed)
  with open(os.path.join(original, 'config.json')) as f:
    config = json.load(f)
  config['optimizer']['behavior']['learning_rate'] = 0.01
  with open(changed / 'config.json', 'w') as f:
    json.dump(config, f)
  result = _reproduce(str(changed), str(tmp_path / 'changed-again'))
  assert result.returncode == 1, result.stdout + result.stderr
  # Step 0 (evaluation before training) agrees; the first logged training step does not.
  records = reproduce._records
  first = reproduce.first_difference(records(changed / 'metrics.jsonl'),
                                     records(tmp_path / 'changed-again' / 'metrics.jsonl'))
  assert first.step == 3 and first.metric.startswith(('loss/', 'grad_norm/'))
  assert (f'MISMATCH: first difference at step 3 (stage pretrain, record 2): {first.metric} = '
          f'{first.original!r}') in result.stdout
  assert f'{first.rerun!r} in {tmp_path / "changed-again"}' in result.stdout


def test_reproduce_refuses_what_it_cannot_rerun(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'tomk.reproduce', str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)
  assert result.returncode == 2 and 'has no config.json' in result.stderr


def test_provenance_differences(tmp_path):
  for name, commit, jax_version in (('a', 'abc', '0.10.2'), ('b', 'def', '0.10.3')):
    os.makedirs(tmp_path / name)
    with open(tmp_path / name / rundir.PROVENANCE, 'w') as f:
      json.dump({'git': {'commit': commit, 'dirty': False}, 'packages': {'jax': jax_version},
                 'jax': {'backend': 'cpu'}, 'environment': {}}, f)
  notes = reproduce.provenance_differences(str(tmp_path / 'a'), str(tmp_path / 'b'))
  assert notes == ['git commit: abc then def', 'jax: 0.10.2 then 0.10.3']


def test_a_run_of_older_code_matches_under_todays_names(tmp_path):
  """tomk.reproduce --compare_only of a run made before the objectives were renamed: the
  same records under today's names match; an evaluation that differs does not."""
  old, new = tmp_path / 'old', tmp_path / 'new'
  for workdir, names in ((old, ('loss/nll_pred', 'loss/nll_beh')),
                         (new, ('loss/prediction_nll', 'loss/behavior_nll'))):
    # As tomk.metrics writes a record: the labels, then the metrics sorted by name.
    records = [{'step': 5, 'stage': 'pretrain', 'algorithm': 'pretrain',
                **dict(sorted({names[0]: 1.5, names[1]: 2.5}.items()))}]
    rundir.write_text(rundir.metrics_path(str(workdir)),
                      ''.join(json.dumps(r) + '\n' for r in records))
    rundir.write_json(rundir.eval_path(str(workdir), 'pretrain'), {'step': 5, 'x': 0.25})
  same, message = reproduce.compare_metrics(str(old), str(new))
  assert same and 'loss/nll_pred → loss/prediction_nll' in message
  with open(rundir.metrics_path(str(new)), 'a') as f:   # the same numbers, but not as written
    f.write('{"step": 6, "stage": "pretrain", "algorithm": "pretrain"}\n')
  with open(rundir.metrics_path(str(old)), 'a') as f:
    f.write('{"stage": "pretrain", "step": 6, "algorithm": "pretrain"}\n')
  assert not reproduce.compare_metrics(str(old), str(new))[0]
  assert reproduce.compare_evaluations(str(old), str(new))[0]
  rundir.write_json(rundir.eval_path(str(new), 'pretrain'), {'step': 5, 'x': 0.5})
  same, message = reproduce.compare_evaluations(str(old), str(new))
  assert not same and 'eval/pretrain.json' in message
  result = subprocess.run([sys.executable, '-m', 'tomk.reproduce', str(old), f'--into={new}',
                           '--compare_only'], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 1 and 'MISMATCH: eval/pretrain.json' in result.stdout
