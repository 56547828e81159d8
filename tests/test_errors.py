"""Bad input, bad user data and user code, and faults: each answered in one sentence, nothing
lost (tomk/cli.py, config.Checker, tomk/data/jsonl.py, tomk/rewards.py, tomk/checkpoints.py).

The table of bad settings runs in this process (tomk.main's flag parsing and main, as the
command line runs them, without a process start each): exit code 1, exactly one line on
stderr, the words the error must contain, no traceback, and nothing written to the workdir.
"""
import errno
import glob
import json
import os
import shutil
import sys

from absl import flags
import numpy as np
import pytest

from conftest import REPO, PRETRAIN_SMOKE, SMALL_EVALUATION, run_main
from tomk import checkpoints, cli, reproduce, rewards, rundir
from tomk import main as main_lib
from tomk.data import jsonl

PRETRAIN = 'configs/pretrain.py:smoke'
RLHF = 'configs/rlhf.py:smoke'
EMPATHY = 'configs/empathy.py:smoke'


def run_in_process(argv, capsys):
  """(exit code, stderr) of `python -m tomk.main ARGV`, run in this process."""
  flags.FLAGS.unparse_flags()
  for name in list(flags.FLAGS):      # the last parse's --config.X override flags
    if name.startswith('config.'):
      delattr(flags.FLAGS, name)
  code = 0
  cwd, sys_argv = os.getcwd(), sys.argv
  os.chdir(REPO)
  sys.argv = ['tomk.main', *argv]     # ml_collections reads the overrides from sys.argv
  try:
    main_lib.main(cli.parse_flags(sys.argv))
  except SystemExit as e:
    code = e.code
  finally:
    os.chdir(cwd)
    sys.argv = sys_argv
  return code, capsys.readouterr().err


def _file(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


PROMPT = {'id': 'p1', 'self': 'Sam', 'turns': [{'speaker': 'Ann', 'text': 'Could you help?'}]}
PAIR = {**PROMPT, 'chosen': 'Of course, Ann!', 'rejected': 'No.'}

# (config, overrides, words the one-line error must contain); {tmp} is the test's directory.
BAD = [
    # The command line: parsed before any of tomk runs.
    (PRETRAIN, ['--config.stepz=3'], ['--config.stepz', 'did you mean --config.steps']),
    (PRETRAIN, ['--config.model.d_modl=3'], ['did you mean --config.model.d_model']),
    (PRETRAIN, ['--config.steps=abc'], ['--config.steps=abc', 'int']),
    (PRETRAIN, ['--config.optimizer.behavior.learning_rate=fast'], ['learning_rate', 'float']),
    (PRETRAIN, ['--config.steps.every=3'], ['steps is a value', '--config.steps=']),
    (PRETRAIN, ['--config.routes.nll_pred.prediction=1.0'], ['renamed', 'prediction_nll']),
    ('configs/nope.py', [], ['configs/nope.py', 'not a file']),
    ('configs/pretrain.py:bogus', [], ["'bogus'", 'takes no argument']),
    ('{tmp}/raises.py', [], ['raises.py line 2', 'ZeroDivisionError']),
    ('{tmp}/syntax.py', [], ['syntax.py line 1', 'fix the config file']),
    ('{tmp}/empty.py', [], ['defines no get_config']),
    # Settings: every problem of the config at once.
    (PRETRAIN, ['--config.steps=0', '--config.batch_size=0', '--config.model.num_heads=3'],
     ['3 settings need changing', 'steps=0', 'batch_size=0', 'model.num_heads=3']),
    (PRETRAIN, ['--config.data.seq_len=1'], ['data.seq_len=1', '>= 2']),
    (PRETRAIN, ['--config.optimizer.behavior.learning_rate=-1.0'],
     ['optimizer.behavior.learning_rate', 'frozen']),
    (PRETRAIN, ['--config.optimizer.prediction.schedule=cos'], ['schedule', 'cosine']),
    (PRETRAIN, ['--config.optimizer.behavior.b2=1.5'], ['optimizer.behavior.b2']),
    (PRETRAIN, ['--config.evaluation.lengths=(256,128)'], ['evaluation.lengths']),
    (PRETRAIN, ['--config.mesh.data=3'], ['mesh', 'does not divide the 1 devices']),
    (PRETRAIN, ['--config.data.mixture=chitchat:-1'], ['data.mixture', 'weight >= 0']),
    (PRETRAIN, ['--config.data.mixture=chitchat:1,gossip:2'], ['gossip']),
    (PRETRAIN, ['--config.data.story_mix=weird'], ['data.story_mix', 'preset']),
    (PRETRAIN, ['--config.data.source={tmp}/none.jsonl'], ['none.jsonl is not a file']),
    (PRETRAIN, ['--config.data.reward=kindest'], ['data.reward', 'import path']),
    (PRETRAIN, ['--config.routes.behavior_nll.behavior=fate_gate'],
     ['fate_gate', 'reward_gate']),
    (PRETRAIN, ['--config.algorithm=telepathy'], ["unknown algorithm 'telepathy'"]),
    (RLHF, ['--config.rl.temperature=0.0', '--config.rl.top_p=1.5'],
     ['rl.temperature=0.0', 'rl.top_p=1.5']),
    (RLHF, ['--config.stages.rlhf.batch_size=6'], ['stage rlhf', 'rl.num_samples']),
    (RLHF, ['--config.rl.num_samples=1'], ['rl.num_samples=1', 'batch_mean']),
    (RLHF, ['--config.rewards.extrinsic=kind_words'], ['rewards.extrinsic', 'reward_model:PATH']),
    (RLHF, ['--config.rewards.extrinsic=no_such_module:score'], ['no_such_module']),
    (RLHF, ['--config.rewards.extrinsic=reward_model:{tmp}/none'], ['not a directory']),
    (RLHF, ['--config.rl.families=small_talk'], ['rl.families', 'small_talk']),
    (EMPATHY, ['--config.kindness.reward=telepathy'], ['stage empathy', 'kindness.reward']),
    # User data: the file and line of a bad record, or the shape a file must have.
    (RLHF, ['--config.data.prompts={tmp}/bad.jsonl'], ['bad.jsonl:2', 'not valid JSON']),
    (RLHF, ['--config.data.prompts={tmp}/noself.jsonl'], ['noself.jsonl:1', '"self"']),
    (RLHF, ['--config.data.prompts={tmp}/blank.jsonl'], ['blank.jsonl holds no prompts']),
    (RLHF, ['--config.data.prompts={tmp}/noturns.jsonl'], ['noturns.jsonl:1', 'empty']),
    ('configs/oracle_control.py:smoke', ['--config.data.prompts={tmp}/noself.jsonl'],
     ['oracle_control', 'ground truth']),
    (RLHF, ['--config.data.preference_pairs={tmp}/nochosen.jsonl'],
     ['nochosen.jsonl:1', '"chosen"']),
    # Paths.
    (PRETRAIN, ['--config.data.data_dir={tmp}/a_file'], ['data directory', 'is a file']),
]


@pytest.mark.parametrize('config, overrides, words', BAD,
                         ids=[' '.join([c.split('/')[-1], *o])[:70] for c, o, _ in BAD])
def test_bad_input_is_one_sentence(config, overrides, words, tmp_path, capsys, data_dir):
  _file(tmp_path, 'raises.py', 'def get_config(arg=None):\n  return 1 / 0\n')
  _file(tmp_path, 'syntax.py', 'def get_config(arg=None) return 1\n')
  _file(tmp_path, 'empty.py', 'CONFIG = 1\n')
  _file(tmp_path, 'bad.jsonl', json.dumps(PROMPT) + '\n{"self": "Sam", "turns": [\n')
  _file(tmp_path, 'noself.jsonl', json.dumps({**PROMPT, 'self': ''}) + '\n')
  _file(tmp_path, 'blank.jsonl', '\n\n')
  _file(tmp_path, 'noturns.jsonl', json.dumps({**PROMPT, 'turns': []}) + '\n')
  _file(tmp_path, 'nochosen.jsonl', json.dumps({**PROMPT, 'rejected': 'No.'}) + '\n')
  _file(tmp_path, 'a_file', 'not a directory')
  workdir = tmp_path / 'w'
  fill = lambda s: s.replace('{tmp}', str(tmp_path))
  code, err = run_in_process([f'--config={fill(config)}', f'--workdir={workdir}',
                              *map(fill, overrides)], capsys)
  assert code == 1
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), err
  assert 'Traceback' not in err
  for word in words:
    assert fill(word) in lines[0]
  assert not workdir.exists()          # nothing written before the settings were checked


def test_a_traceback_only_with_verbosity(tmp_path, capsys, data_dir):
  code, err = run_in_process([f'--config={PRETRAIN}', f'--workdir={tmp_path}/w',
                              '--config.steps=0', '-v', '1'], capsys)
  assert code == 1 and 'Traceback' in err and err.strip().splitlines()[-1].startswith('error:')


def test_a_workdir_that_is_a_file(tmp_path, capsys, data_dir):
  path = _file(tmp_path, 'w', 'a file')
  code, err = run_in_process([f'--config={PRETRAIN}', f'--workdir={path}'], capsys)
  assert code == 1 and err.strip() == f'error: --workdir {path} is a file, not a directory; give a directory.'


def test_a_full_disk_is_one_sentence(tmp_path, capsys, data_dir, monkeypatch):
  def full(path, text):
    raise OSError(errno.ENOSPC, 'No space left on device', path)
  monkeypatch.setattr(rundir, 'write_text', full)
  code, err = run_in_process([f'--config={PRETRAIN}', f'--workdir={tmp_path}/w'], capsys)
  assert code == 1
  assert err.strip().startswith('error: no space left on the device writing ')
  assert 'resume from the last checkpoint' in err and len(err.strip().splitlines()) == 1


# --- User data and user code ------------------------------------------------------------------

def test_user_prompts_and_pairs_are_read_with_their_shape(tmp_path):
  prompts = _file(tmp_path, 'p.jsonl', json.dumps(PROMPT) + '\n\n' +
                  json.dumps({**PROMPT, 'id': 'p2', 'self': 'Bo'}) + '\n')
  read = jsonl.read_prompts(prompts)
  assert [c.id for c in read] == ['p1', 'p2'] and [c.perspective for c in read] == ['Sam', 'Bo']
  pairs = jsonl.read_pairs(_file(tmp_path, 'r.jsonl', json.dumps(PAIR) + '\n'))
  assert pairs[0]['chosen'] == 'Of course, Ann!' and pairs[0]['prompt'].endswith('<self> ')
  ends_with_self = {**PROMPT, 'turns': PROMPT['turns'] + [{'speaker': 'Sam', 'text': 'Hi'}]}
  with pytest.raises(ValueError, match=r'e\.jsonl:1: the last turn is already'):
    jsonl.read_prompts(_file(tmp_path, 'e.jsonl', json.dumps(ends_with_self) + '\n'))


def test_a_user_reward_function_by_import_path_is_checked(tmp_path, monkeypatch):
  _file(tmp_path, 'user_rewards.py', 'import math\n'
        'def length(prompts, responses):\n  return [len(r) for r in responses]\n'
        'def nan(prompts, responses):\n  return [math.nan for r in responses]\n'
        'def short(prompts, responses):\n  return [1.0]\n'
        'def boom(prompts, responses):\n  raise RuntimeError("the scorer is down")\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  assert list(rewards.get('user_rewards:length')(['p', 'q'], ['ab', 'abcd'])) == [2.0, 4.0]
  with pytest.raises(ValueError, match=r'user_rewards:nan returned nan for response 0'):
    rewards.get('user_rewards:nan')(['p'], ['ab'])
  with pytest.raises(ValueError, match=r'user_rewards:short returned shape \(1,\) for 2'):
    rewards.get('user_rewards:short')(['p', 'q'], ['a', 'b'])
  with pytest.raises(ValueError, match=r'user_rewards:boom raised RuntimeError: the scorer'):
    rewards.get('user_rewards:boom')(['p'], ['a'])
  with pytest.raises(ValueError, match=r'user_rewards has no function gone'):
    rewards.check('user_rewards:gone', 'data.reward')


def test_a_run_on_user_prompts_pairs_and_reward(data_dir, tmp_path):
  """reward_model on the user's preference pairs, rlhf on the user's prompts; a user reward
  function that raises stops the run naming it."""
  prompts = _file(tmp_path, 'prompts.jsonl', ''.join(
      json.dumps({**PROMPT, 'id': f'p{i}'}) + '\n' for i in range(5)))
  pairs = _file(tmp_path, 'pairs.jsonl', ''.join(
      json.dumps({**PAIR, 'id': f'r{i}'}) + '\n' for i in range(30)))
  _file(tmp_path, 'user_rewards.py', 'def boom(prompts, responses):\n  raise KeyError("x")\n')
  common = ('--config.curriculum=reward_model,rlhf', '--config.stages.rlhf.steps=2',
            f'--config.data.prompts={prompts}', f'--config.data.preference_pairs={pairs}')
  # Its evaluation is not what this test reads: the smallest, without the signal check.
  result = run_main(tmp_path / 'w', *common, *SMALL_EVALUATION,
                    '--config.evaluation.signal_scenarios_per_family=0', config=RLHF)
  assert os.path.exists(rundir.reward_model_dir(str(tmp_path / 'w')))
  stages = [json.loads(line)['stage'] for line in open(tmp_path / 'w' / 'metrics.jsonl')]
  assert 'rlhf' in stages and 'reward_model' in stages, result.stdout[-2000:]
  # The user's function is the reward itself: no reward_model stage before rlhf.
  failed = run_main(tmp_path / 'w2', *common, '--config.curriculum=rlhf',
                    '--config.rewards.extrinsic=user_rewards:boom',
                    config=RLHF, check=False, env={'PYTHONPATH': str(tmp_path)})
  assert failed.returncode == 1 and 'Traceback' not in failed.stderr
  assert failed.stderr.strip().splitlines()[-1] == (
      "error: reward function user_rewards:boom raised KeyError: 'x'")


# --- Faults -----------------------------------------------------------------------------------

def _truncate_arrays(path):
  for f in glob.glob(os.path.join(path, 'state', 'ocdbt.process_0', 'd', '*')):
    os.truncate(f, 10)


def _garbage(name):
  def corrupt(path):
    with open(os.path.join(path, name), 'w') as f:
      f.write('{"garbage')
  return corrupt


FAULTS = {
    'truncated arrays': _truncate_arrays,
    'garbage array metadata': _garbage('state/_METADATA'),
    'garbage checkpoint metadata': _garbage('_CHECKPOINT_METADATA'),
    'garbage data-iterator state': _garbage('data/process_0-of-1.json'),
    'missing state directory': lambda path: shutil.rmtree(os.path.join(path, 'state')),
}


@PRETRAIN_SMOKE
@pytest.mark.parametrize('fault', FAULTS)
def test_an_unreadable_newest_checkpoint_is_set_aside(pretrain_smoke, tmp_path, fault, capsys):
  workdir = str(tmp_path / 'run')
  shutil.copytree(pretrain_smoke[0], workdir)
  config = rundir.read_config(workdir)
  FAULTS[fault](os.path.join(rundir.checkpoint_dir(workdir, 'pretrain'), '20'))
  assert checkpoints.latest_step(workdir, 'pretrain', config) == 20   # reading only (a
  assert not os.path.exists(rundir.unreadable_dir(workdir))          # branch's source)
  assert checkpoints.latest_step(workdir, 'pretrain', config, repair=True) == 15
  out = capsys.readouterr().out
  assert 'checkpoint of step 20 set aside' in out and 'resumes from the checkpoint before' in out
  assert os.listdir(os.path.join(rundir.unreadable_dir(workdir), 'pretrain')) == ['20']


@PRETRAIN_SMOKE
def test_a_run_resumes_from_the_last_good_checkpoint_losing_nothing(pretrain_smoke, tmp_path):
  reference = pretrain_smoke[0]
  workdir = tmp_path / os.path.basename(reference)     # report.md is titled by the name
  shutil.copytree(reference, workdir)
  _truncate_arrays(os.path.join(rundir.checkpoint_dir(str(workdir), 'pretrain'), '20'))
  result = run_main(workdir)
  assert 'resuming' in result.stdout and 'from step 15' in result.stdout
  assert reproduce.compare_metrics(reference, str(workdir))[0]
  assert reproduce.compare_evaluations(reference, str(workdir))[0]
  assert open(workdir / 'report.md', 'rb').read() == open(os.path.join(reference, 'report.md'),
                                                          'rb').read()
  a, b = (checkpoints.flat(checkpoints.host_state(str(w), 'pretrain', 20)['params'])
          for w in (reference, workdir))
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_non_finite_gradients_stop_the_run_naming_stage_step_and_metric(data_dir, tmp_path):
  huge = [f'--config.optimizer.{p}.{k}={v}' for p in ('perception', 'behavior', 'prediction')
          for k, v in (('learning_rate', '1e30'), ('warmup_steps', '0'), ('clip_norm', '0.0'))]
  result = run_main(tmp_path / 'w', *huge, '--config.checkpoint_every=1', '--config.log_every=1',
                    check=False)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: non-finite grad_norm/') and 'at step 2 of stage pretrain' in last
  saved = sorted(int(s) for s in os.listdir(tmp_path / 'w' / 'checkpoints' / 'pretrain')
                 if s.isdigit())
  assert saved == [1]            # the last good step's checkpoint is kept; none after it
  assert all(np.isfinite(v) for r in map(json.loads, open(tmp_path / 'w' / 'metrics.jsonl'))
             for v in r.values() if isinstance(v, float))
