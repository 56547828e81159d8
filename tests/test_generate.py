"""python -m tomk.generate: a run's replies to conversations a lab wrote itself (read from
the committed run of tests/fixtures/b658a66)."""
import json
import os
import subprocess
import sys

from conftest import KINDNESS_CURRICULUM, REPO

RUN = os.path.join(REPO, 'tests', 'fixtures', 'b658a66', 'empathy_smoke')
TALK = [
    {'id': 'tea', 'turns': [{'speaker': 'Ann', 'text': 'Hi Sam! I love tea, I hate coffee.'},
                            {'speaker': 'Sam', 'text': 'Hello Ann.'},
                            {'speaker': 'Ann', 'text': 'Could you bring me a drink?'}]},
    {'id': 'box', 'turns': [{'speaker': 'Bo', 'text': 'Sam, my keys are in the red box.'},
                            {'speaker': 'Bo', 'text': 'Where are my keys?'}]},
]


def _generate(tmp_path, *flags):
  path = tmp_path / 'talk.jsonl'
  path.write_text(''.join(json.dumps(c) + '\n' for c in TALK))
  return subprocess.run([sys.executable, '-m', 'tomk.generate', f'--workdir={RUN}',
                         f'--conversations={path}', '--self=Sam', *flags],
                        cwd=REPO, capture_output=True, text=True, timeout=600)


def _replies(result):
  assert result.returncode == 0, result.stderr[-3000:]
  return [json.loads(line) for line in result.stdout.splitlines()]


@KINDNESS_CURRICULUM
def test_replies_to_hand_written_conversations(data_dir, tmp_path):
  greedy = _replies(_generate(tmp_path, '--stage=finetune'))
  assert [r['id'] for r in greedy] == ['tea', 'box']
  assert all(isinstance(r['reply'], str) for r in greedy)
  assert _replies(_generate(tmp_path, '--stage=finetune')) == greedy     # greedy: the same
  out = tmp_path / 'replies.jsonl'
  chosen = _replies(_generate(tmp_path, '--act=simulate_then_act', '--candidates=3',
                              f'--out={out}'))
  assert chosen == []                                   # written to --out, not stdout
  assert [json.loads(line)['id'] for line in open(out)] == ['tea', 'box']


def test_simulate_then_act_replies_with_the_best_scored_proposal():
  from tomk import generate
  proposals = ['a0', 'a1', 'a2', 'b0', 'b1', 'b2']           # 2 prompts × 3 candidates
  assert generate.best_of(proposals, [0.1, 0.9, 0.5, 2.0, -1.0, 1.9], 3) == ['a1', 'b0']


def test_a_malformed_line_is_one_sentence_naming_it(tmp_path):
  path = tmp_path / 'talk.jsonl'
  path.write_text(json.dumps(TALK[0]) + '\n{"turns": [{"speaker": "Ann"}]}\n')
  result = subprocess.run([sys.executable, '-m', 'tomk.generate', f'--workdir={RUN}',
                           f'--conversations={path}', '--self=Sam'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  assert result.stderr.startswith(f'error: {path}:2: ')
  assert len(result.stderr.strip().splitlines()) == 1
