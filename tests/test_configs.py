"""Every config in configs/ has a ':smoke' variant that runs to completion."""
import glob
import json
import os

import pytest

from conftest import KINDNESS_CURRICULUM, REPO, run_main

CONFIGS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if not p.endswith(('__init__.py', 'from_json.py')))
# configs/pretrain.py:smoke is run by tests/test_run.py.
COVERED_ELSEWHERE = {'configs/pretrain.py'}
# configs/empathy.py and the configs that swap its last stage (conftest.KINDNESS_CURRICULUM).
ON_THE_KINDNESS_CURRICULUM = {'configs/empathy.py', 'configs/rlhf.py', 'configs/naive_kindness.py'}


@pytest.mark.parametrize('config', [
    pytest.param(c, marks=[KINDNESS_CURRICULUM] if c in ON_THE_KINDNESS_CURRICULUM else [])
    for c in CONFIGS if c not in COVERED_ELSEWHERE])
def test_smoke_variant_runs_to_completion(config, data_dir, tmp_path):
  result = run_main(tmp_path / 'w', config=f'{config}:smoke')
  records = [json.loads(line) for line in open(tmp_path / 'w' / 'metrics.jsonl')]
  stages = list(dict.fromkeys(r['stage'] for r in records))
  assert stages, result.stdout
  assert os.path.exists(tmp_path / 'w' / 'eval.json')
  assert 'done' in result.stdout
