"""Scale-out (SPEC §7): sharded meshes on fake CPU devices, mesh errors, AOT compile, launchers."""
import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import EIGHT_DEVICES, PRETRAIN_SMOKE, REPO, SMALL_EVALUATION, run_main


# The pretrain meshes run configs/pretrain.py:smoke and compare with its one-device run
# (conftest's pretrain_smoke); the smoke model (d_model 32, 2 heads, ffn 64, vocab 512)
# divides by the fsdp and tensor axes of size 2. data=8 alone is
# tests/test_run.py::test_eight_devices_match_one_device (not run twice).
MESHES = {
    'data2_fsdp2_tensor2': ('--config.mesh.data=2', '--config.mesh.fsdp=2',
                            '--config.mesh.tensor=2'),
    'fsdp8': ('--config.mesh.data=1', '--config.mesh.fsdp=8'),
}


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def assert_same_losses(expected, actual, rtol=2e-4, atol=0.0, minimum=8):
  assert [r['step'] for r in expected] == [r['step'] for r in actual]
  compared = 0
  for a, b in zip(expected, actual):
    assert a.keys() == b.keys(), a['step']
    for key in a:
      if key.startswith(('loss/', 'eval/nll_')):
        np.testing.assert_allclose(b[key], a[key], rtol=rtol, atol=atol,
                                   err_msg=f'step {a["step"]} {key}')
        compared += 1
  assert compared >= minimum


# RLHF alone from a random start, rewarded by the simulated rater: rollouts (sampling with
# the KV cache), rewards, group advantages, the PPO loss. Random draws are the same under
# any sharding (threefry is partitionable), so every mesh samples the same tokens.
RL = ('--config.curriculum=rlhf', '--config.rewards.extrinsic=rater',
      '--config.stages.rlhf.steps=2', '--config.log_every=1', '--config.eval_every=2',
      '--config.checkpoint_every=2', '--config.eval_batches=1', *SMALL_EVALUATION)
# One mesh that shards every axis (data alone: tests/test_run.py's eight devices).
RL_MESHES = {'data2_fsdp2_tensor2': MESHES['data2_fsdp2_tensor2']}


@pytest.fixture(scope='module')
def rl_one_device(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('rl_one_device')
  run_main(workdir, *RL, config='configs/rlhf.py:smoke')
  return _records(workdir)


@pytest.mark.xdist_group('scale_rl')
@pytest.mark.parametrize('mesh', sorted(RL_MESHES))
def test_rl_on_sharded_mesh_matches_one_device(rl_one_device, tmp_path, mesh):
  run_main(tmp_path / mesh, *RL, *RL_MESHES[mesh], config='configs/rlhf.py:smoke',
           env=EIGHT_DEVICES)
  actual = _records(tmp_path / mesh)
  # The policy-gradient loss is a mean of advantages near zero: compare it absolutely too.
  assert_same_losses(rl_one_device, actual, atol=1e-6, minimum=4)
  rewards = [(a['reward/extrinsic'], b['reward/extrinsic'])
             for a, b in zip(rl_one_device, actual) if 'reward/extrinsic' in a]
  assert len(rewards) >= 2
  np.testing.assert_allclose(*zip(*rewards), rtol=1e-5)   # the same samples, the same rewards


@PRETRAIN_SMOKE
@pytest.mark.parametrize('mesh', sorted(MESHES))
def test_sharded_mesh_matches_one_device(pretrain_smoke, tmp_path, mesh):
  run_main(tmp_path / mesh, *MESHES[mesh], *SMALL_EVALUATION, env=EIGHT_DEVICES)
  assert_same_losses(_records(pretrain_smoke[0]), _records(tmp_path / mesh))
  with open(tmp_path / mesh / 'config.json') as f:
    saved = json.load(f)['mesh']
  expected = {'data': -1, 'fsdp': 1, 'tensor': 1}
  expected.update({o.split('.')[2].split('=')[0]: int(o.split('=')[1]) for o in MESHES[mesh]})
  assert saved == expected


# One subprocess with 8 fake devices: per-device shards under fsdp=8, activation
# constraints present in the lowered step, and the AOT report (no data read).
_SHARDS = r'''
import json, math
import jax
jax.config.update('jax_platforms', 'cpu')
jax.config.update('jax_num_cpu_devices', 8)
from tomk import aot, algorithms, sharding, train
import importlib.util
spec = importlib.util.spec_from_file_location('pretrain', 'configs/pretrain.py')
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
config = module.get_config('smoke')
config.mesh.update(data=1, fsdp=8, tensor=1)
mesh = sharding.make_mesh(config.mesh)
built = train.setup(config, mesh, config.data.vocab_size, algorithms.get(config.algorithm))
state = built.init_state()
out = {'params': {}, 'mu': {}}
for name, tree in (('params', state['params']),
                   ('mu', state['opt_state'].inner_states['perception'].inner_state[1][0].mu)):
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    shard = leaf.addressable_shards[0].data
    out[name][jax.tree_util.keystr(path)] = [list(leaf.shape), list(shard.shape),
                                             len(leaf.addressable_shards)]
lowered = built.lower_train_step(aot.abstract_batch(config, built.batch_sharding))
out['constraints'] = lowered.as_text().count('sharding_constraint')
report = aot.compile_report(config, jax.devices())
out['report'] = {k: report[k] for k in ('parameters', 'parameter_bytes', 'optimizer_bytes',
                                        'argument_bytes', 'temp_bytes', 'devices')}
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def fsdp8():
  result = subprocess.run([sys.executable, '-c', _SHARDS], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **EIGHT_DEVICES})
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.xdist_group('scale_fsdp8')
def test_fsdp_holds_one_nth_of_each_parameter_per_device(fsdp8):
  embedding = fsdp8['params']["['perception']['embedding']"]
  assert embedding == [[512, 32], [512, 4], 8]           # ('vocab', 'embed'): embed over fsdp
  query = fsdp8['params']["['perception']['block_0']['attention']['query']['kernel']"]
  assert query == [[32, 2, 16], [4, 2, 16], 8]
  for name, (shape, shard, count) in fsdp8['params'].items():
    assert count == 8 and np.prod(shard) * 8 == np.prod(shape), name
  for name, (shape, shard, _) in fsdp8['mu'].items():   # Adam's moments are sharded the same
    assert np.prod(shard) * 8 == np.prod(shape), name


@pytest.mark.xdist_group('scale_fsdp8')
def test_activation_constraints_reach_the_compiler(fsdp8):
  # flax drops with_logical_constraint unless jax.set_mesh is active (train._in_mesh);
  # without them FSDP ran every matmul over the whole global batch on each device.
  assert fsdp8['constraints'] > 10


@pytest.mark.xdist_group('scale_fsdp8')
def test_aot_report_counts_parameters_and_per_device_bytes(fsdp8):
  report = fsdp8['report']
  assert report['devices'] == 8 and report['parameters'] == 80_128
  assert report['parameter_bytes'] == 80_128 * 4 // 8
  # Adam's mu and nu, sharded like the parameters, and a few replicated step counters.
  assert 0 <= report['optimizer_bytes'] - 2 * report['parameter_bytes'] < 1024
  assert report['argument_bytes'] >= 3 * report['parameter_bytes'] and report['temp_bytes'] > 0


@pytest.mark.parametrize('overrides, message', [
    (('--config.mesh.data=3',), 'does not divide the 8 devices: make the product of data × '
                                'fsdp × tensor divide 8'),
    (('--config.mesh.data=2', '--config.mesh.tensor=4'),
     'has a dimension of 2 sharded over mesh axes tensor of size 4, which does not divide it: '
     'change the model size or the mesh'),
])
def test_mesh_errors_say_what_to_change(data_dir, tmp_path, overrides, message):
  result = run_main(tmp_path / 'w', *overrides, env=EIGHT_DEVICES, check=False)
  assert result.returncode == 1
  assert message in result.stderr, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr


# --- launchers --------------------------------------------------------------------------------

MAIN_ARGS = ['--config=configs/pretrain_1b.py', '--workdir=/mnt/shared/runs/1b',
             "--config.data.mixture=chitchat:1,story:2", "--config.data.source=it's mine.jsonl"]
LAUNCHERS = {
    'tpu_pod.sh': ['--tpu=my-slice', '--zone=us-east5-a', '--project=p'],
    'gke_xpk.sh': ['--cluster=c', '--workload=w', '--tpu-type=v5p-256'],
    'slurm_gpu.sh': ['--nodes=4', '--partition=gpu'],
}


@pytest.mark.parametrize('script', sorted(LAUNCHERS))
def test_launcher_parses_and_dry_runs(script):
  path = os.path.join(REPO, 'launch', script)
  subprocess.run(['bash', '-n', path], check=True)
  if shutil.which('shellcheck'):
    lint = subprocess.run(['shellcheck', '-x', path], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
  result = subprocess.run(['bash', path, *LAUNCHERS[script], '--dry-run', '--', *MAIN_ARGS],
                          capture_output=True, text=True, env={**os.environ, 'SLURM_JOB_ID': ''})
  assert result.returncode == 0, result.stderr
  lines = [shlex.split(l) for l in result.stdout.splitlines() if l and not l.startswith('#')]
  # The command that trains: the main flags arrive intact, through one more shell if remote.
  last = lines[-1]
  command = next((w.split('=', 1)[1] for w in last if w.startswith('--command=')), None)
  words = shlex.split(command) if command else last
  assert words[words.index('tomk.main') + 1:][-len(MAIN_ARGS):] == MAIN_ARGS
  if script != 'slurm_gpu.sh':
    assert '--distributed' in words            # Cloud TPU pods: JAX finds the workers
  else:
    assert lines[0][:2] == ['sbatch', f'--chdir={REPO}'] and '--nodes=4' in lines[0]


def test_launcher_without_main_flags_says_what_to_add():
  result = subprocess.run(['bash', os.path.join(REPO, 'launch', 'tpu_pod.sh'), '--tpu=x',
                           '--zone=z', '--dry-run'], capture_output=True, text=True)
  assert result.returncode == 2 and "give tomk.main's flags after --" in result.stderr


def test_local_launcher_dry_run():
  result = subprocess.run([sys.executable, os.path.join(REPO, 'launch', 'local.py'),
                           '--num_processes=2', '--devices_per_process=4', '--port=1234',
                           '--dry-run', '--', '--config=configs/pretrain.py:smoke', '--workdir=W'],
                          capture_output=True, text=True, check=True)
  lines = result.stdout.splitlines()
  assert len(lines) == 2
  for i, line in enumerate(lines):
    assert '--xla_force_host_platform_device_count=4' in line
    assert line.endswith(f'--workdir=W --coordinator_address=127.0.0.1:1234 '
                         f'--num_processes=2 --process_id={i}')
