"""Curricula: interleaved stages expand into sub-stages whose steps split the stage's by
ratio over cycles, bad specs name the fix, and an interleaved run alternates its stages."""
import json
import os

import ml_collections
import pytest

from configs import pretrain as pretrain_config
from conftest import run_main
from tomk import algorithms, curriculum


def _config(**mix):
  config = pretrain_config.get_config('smoke')
  config.curriculum = 'warm,mix,last'
  config.stages = ml_collections.ConfigDict({
      'warm': {'algorithm': 'pretrain', 'steps': 4},
      'mix': {'interleave': 'pretrain:1,finetune:3', 'cycles': 2, 'steps': 16, **mix},
      'last': {'algorithm': 'imitation', 'steps': 3}})
  return config


def test_interleaved_stage_expands_into_cycles_of_sub_stages():
  config = _config(finetune={'batch_size': 16, 'rl': {'num_samples': 2}})
  stages = curriculum.stages(config)
  assert [(name, c.algorithm, c.steps) for name, c in stages] == [
      ('warm', 'pretrain', 4),
      ('mix.1.pretrain', 'pretrain', 2), ('mix.1.finetune', 'finetune', 6),
      ('mix.2.pretrain', 'pretrain', 2), ('mix.2.finetune', 'finetune', 6),
      ('last', 'imitation', 3)]
  by_name = dict(stages)
  # Each algorithm's own overrides and routing table; the shared ones everywhere.
  assert by_name['mix.1.finetune'].batch_size == 16 and by_name['mix.1.pretrain'].batch_size == 8
  assert by_name['mix.2.finetune'].rl.num_samples == 2
  assert by_name['mix.1.pretrain'].routes.to_dict() == algorithms.get('pretrain').ROUTES
  assert by_name['mix.1.finetune'].routes.to_dict() == algorithms.get('finetune').ROUTES
  # Cycle 1 keeps the run's seed; later cycles draw fresh data and prompts.
  assert by_name['mix.1.pretrain'].seed == by_name['mix.1.finetune'].seed == config.seed
  assert by_name['mix.2.pretrain'].seed == by_name['mix.2.finetune'].seed != config.seed
  assert all(not c.curriculum for _, c in stages)
  # Only an interleaved stage's last sub-stage is evaluated; its name stands for the stage.
  assert curriculum.evaluated(stages) == ['warm', 'mix.2.finetune', 'last']
  assert curriculum.policy_stage(stages, 'mix') == 'mix.2.finetune'


@pytest.mark.parametrize('steps, weights, cycles, expected', [
    (16, [1, 3], 2, [2, 6, 2, 6]),             # exact
    (10, [1, 3], 2, [1, 4, 1, 4]),             # 1.25, 3.75: the larger remainders get the rest
    (7, [1, 1, 1], 2, [2, 1, 1, 1, 1, 1]),     # ties: the earlier sub-stage first
    (20, [1, 100], 2, [1, 9, 1, 9]),           # every sub-stage at least 1 step
    (4, [1, 1], 2, [1, 1, 1, 1]),
])
def test_ratio_rounding_keeps_the_total_and_a_step_each(steps, weights, cycles, expected):
  got = curriculum.interleaved_steps(steps, weights, cycles, 'stages.mix')
  assert got == expected and sum(got) == steps


@pytest.mark.parametrize('mix, fix', [
    ({'interleave': 'pretrain:1,finetuning:3'}, r"names 'finetuning', not an algorithm; use "),
    ({'interleave': 'pretrain:1,finetune:x'}, 'algorithm:weight with a positive weight'),
    ({'interleave': 'pretrain:0,finetune:1'}, 'algorithm:weight with a positive weight'),
    ({'interleave': 'pretrain:1'}, 'fewer than two algorithms'),
    ({'interleave': 'pretrain,pretrain:2'}, 'twice'),
    ({'interleave': 'pretrain,reward_model'}, 'give it a stage of its own'),
    ({'cycles': 0}, 'stages.mix.cycles=0: set it to a positive integer'),
    ({'steps': 3}, 'raise steps to at least 4 or lower cycles'),
    ({'algorithm': 'finetune'}, r'per algorithm instead \(stages.mix.<algorithm>.algorithm'),
    ({'finetune': {'steps': 3}}, 'set stages.mix.steps and stages.mix.interleave instead'),
    ({'finetune': {'batch_sise': 3}}, r'stages.mix.finetune.batch_sise is not a config key'),
])
def test_bad_interleave_names_the_fix(mix, fix):
  with pytest.raises(ValueError, match=fix):
    curriculum.stages(_config(**mix))


CONFIG = '''
import ml_collections
from configs import pretrain


def get_config(arg=None):
  config = pretrain.get_config('smoke')
  config.curriculum = 'mix'
  config.stages = ml_collections.ConfigDict({'mix': {
      'interleave': 'pretrain:1,imitation:1', 'cycles': 2, 'steps': 8,
      'imitation': {'data': {'perspective': 'other'}}}})
  config.eval_batches = 1
  config.evaluation.update(splits=('test',), stories_per_label=1, scenarios_per_family=1,
                           chitchat_conversations=2, windows_per_conversation=1)
  return config
'''


def test_interleaved_run_alternates_stages_and_evaluates_the_last(data_dir, tmp_path):
  path = tmp_path / 'interleaved.py'
  path.write_text(CONFIG)
  workdir = tmp_path / 'w'
  run_main(workdir, config=str(path))
  with open(workdir / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  order = []
  for r in records:
    if r.get('stage') and (not order or order[-1] != r['stage']):
      order.append(r['stage'])
  assert order == ['mix.1.pretrain', 'mix.1.imitation', 'mix.2.pretrain', 'mix.2.imitation']
  assert [r['step'] for r in records if 'loss/total' in r or 'loss/imitate' in r
          or 'loss/prediction_nll' in r][-1] == 8
  assert sorted(os.listdir(workdir / 'checkpoints')) == sorted(order)
  assert sorted(os.listdir(workdir / 'eval')) == ['mix.2.imitation.json',
                                                  'mix.2.imitation.scenarios.jsonl']
  report = (workdir / 'report.md').read_text()
  assert '| measure | mix.2.imitation |' in report
  assert '| mix.1.pretrain | pretrain | 2 | 1–2 | – |' in report
