"""Ahead-of-time compile: what one train step needs per device, before any step runs.

  python -m tomk.aot --config=configs/pretrain_1b.py --devices=256
  python -m tomk.aot --config=configs/pretrain_1b.py --devices=256 \
      --config.mesh.data=4 --config.mesh.fsdp=-1
  python -m tomk.aot --config=configs/pretrain_1b.py --topology=v5p-256   # needs libtpu

Builds the config's mesh on stand-in devices, lowers and compiles the same jitted train
step tomk.train runs (train.setup) with an abstract batch, and prints XLA's per-device
memory (arguments, outputs, temporaries, code), the parameter and optimizer-state bytes
each device holds, and the parameter count. No step runs and no data is read: the
vocabulary size is the config's (the trained tokenizer's can only be smaller).

Stand-in devices. --devices=N makes N fake CPU devices: the sharding, collectives and
shapes are those of an N-device run, but the compiler and so the temporaries are the
CPU backend's (no fusion into TPU kernels, f32 layouts); arguments and outputs are
exact. --topology=v5p-256 (v4-*, v5p-*, v5e-*, v6e-*, or a libtpu name such as
'v5:4x4x8') compiles with the real TPU compiler for that slice, which needs the libtpu
package (pip install 'jax[tpu]') but no TPU. A TPU name counts TensorCores for v4 and
v5p (v5p-256 = 128 chips = 128 devices) and chips for v5e and v6e.
"""
from __future__ import annotations

import math
import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from tomk import algorithms, cli, experiment, sharding, train
from tomk.data import pipeline

config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py[:arg]).',
                                lock_config=True)
flags.DEFINE_integer('devices', 8, 'Fake CPU devices to compile for (ignored with --topology).')
flags.DEFINE_string('topology', None, 'Compile for a Cloud TPU slice, e.g. v5p-256 (needs libtpu).')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS

# Cloud TPU slice shapes, by chip count. v4 and v5p chips are 3-D tori (a full cube of
# 4 chips a side wraps around); v5e and v6e chips are 2-D.
_CUBES = {4: '2x2x1', 8: '2x2x2', 16: '2x2x4', 32: '2x4x4', 64: '4x4x4', 128: '4x4x8',
          256: '4x8x8', 512: '8x8x8', 1024: '8x8x16', 2048: '8x16x16', 4096: '16x16x16'}
_GRIDS = {1: '1x1', 4: '2x2', 8: '2x4', 16: '4x4', 32: '4x8', 64: '8x8', 128: '8x16',
          256: '16x16'}
_GENERATIONS = {  # name prefix: (libtpu name, TensorCores per named unit, 3-D, chip config)
    'v4': ('v4', 2, True, 'megacore'), 'v5p': ('v5', 2, True, 'megacore'),
    'v5e': ('v5e', 1, False, 'default'), 'v5litepod': ('v5e', 1, False, 'default'),
    'v6e': ('v6e', 1, False, 'default')}


def topology_kwargs(name: str) -> dict:
  """jax.experimental.topologies.get_topology_desc arguments for a slice name."""
  if ':' in name:           # already libtpu's form, e.g. 'v5:4x4x8'
    dims = name.split(':')[1].split('x')
    return dict(topology_name=name, chip_config_name='megacore' if len(dims) == 3 else 'default',
                chips_per_host_bounds=(2, 2, 1), num_slices=1,
                wrap=tuple(int(d) >= 4 for d in dims) + (False,) * (3 - len(dims)))
  prefix, _, size = name.partition('-')
  if prefix not in _GENERATIONS or not size.isdigit():
    raise ValueError(f'--topology={name!r}: give a Cloud TPU slice such as v5p-256, v4-64, '
                     f'v5e-16 or v6e-256 ({", ".join(_GENERATIONS)}), or a libtpu topology '
                     f'such as v5:4x4x8.')
  generation, cores_per_chip, cube, chip_config = _GENERATIONS[prefix]
  chips = int(size) // cores_per_chip
  shapes = _CUBES if cube else _GRIDS
  if chips not in shapes:
    raise ValueError(f'--topology={name!r}: no known {prefix} slice of {chips} chips; use one of '
                     f'{", ".join(f"{prefix}-{c * cores_per_chip}" for c in shapes)}, or a '
                     f'libtpu topology such as {generation}:{shapes[max(shapes)]}.')
  # A dimension of 4+ chips wraps around (a torus) on full cubes and full 16-chip rows.
  wrap = (chips >= 64,) * 3 if cube else (chips >= 256, chips >= 128, False)
  return dict(topology_name=f'{generation}:{shapes[chips]}', chip_config_name=chip_config,
              chips_per_host_bounds=(2, 2, 1), num_slices=1, wrap=wrap)


def tpu_devices(name: str) -> list:
  """The devices of a TPU slice, from libtpu's description of it (no TPU needed)."""
  kwargs = topology_kwargs(name)
  try:
    import libtpu  # noqa: F401  (only to say what to install)
  except ImportError as e:
    raise ValueError(f'--topology={name} compiles with the TPU compiler in the libtpu '
                     f'package, which is not installed: pip install "jax[tpu]" (or use '
                     f'--devices=N for fake CPU devices).') from e
  from jax.experimental import topologies
  return list(topologies.get_topology_desc(platform='tpu', **kwargs).devices)


def cpu_devices(count: int) -> list:
  """`count` fake CPU devices; must run before anything initialises a JAX backend."""
  jax.config.update('jax_platforms', 'cpu')
  jax.config.update('jax_num_cpu_devices', count)
  devices = jax.devices()
  if len(devices) != count:
    raise ValueError(f'asked for {count} CPU devices but JAX has {len(devices)}: a JAX backend '
                     f'was started before tomk.aot set the count; run it as python -m tomk.aot.')
  return devices


def abstract_batch(config, batch_sharding) -> dict:
  """The batch the pipeline makes (tomk.data.pipeline.lm_dataset), as shapes only."""
  shape = (config.batch_size, config.data.seq_len)
  return {k: jax.ShapeDtypeStruct(shape, d, sharding=batch_sharding)
          for k, d in pipeline.batch_fields(config.data).items()}


def per_device_bytes(abstract_tree) -> int:
  """Bytes the largest shard of each leaf takes on one device, summed."""
  return sum(math.prod(leaf.sharding.shard_shape(leaf.shape)) * leaf.dtype.itemsize
             for leaf in jax.tree.leaves(abstract_tree))


def compile_report(config, devices) -> dict:
  """Compiles config's train step on `devices`; returns sizes (bytes) and timings (s)."""
  stages = experiment.check(config, device_count=len(devices))
  lm_stages = [(n, c) for n, c in stages if algorithms.get(c.algorithm).DATA == 'lm']
  if not lm_stages:
    raise ValueError(f'tomk.aot compiles language-model steps (algorithms whose DATA is "lm"); '
                     f'{config.algorithm} builds its batch by rollouts. Compile the '
                     f'pretrain config of the same model instead.')
  name, stage = lm_stages[0]
  algorithm = algorithms.get(stage.algorithm)
  mesh = sharding.make_mesh(stage.mesh, devices)
  started = time.perf_counter()
  parts = train.setup(stage, mesh, stage.data.vocab_size, algorithm)
  lowered = parts.lower_train_step(abstract_batch(stage, parts.batch_sharding))
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  compiled_at = time.perf_counter()
  memory = compiled.memory_analysis()
  state = parts.abstract_state
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  report = dict(
      stage=name, platform=devices[0].platform, device_kind=devices[0].device_kind,
      devices=len(devices), mesh=dict(mesh.shape), batch=(stage.batch_size, stage.data.seq_len),
      parameters=sum(x.size for x in _leaves(state['params'])),
      parameter_bytes=per_device_bytes(state['params']),
      optimizer_bytes=per_device_bytes(state['opt_state']),
      state_bytes=per_device_bytes(state),
      lower_seconds=lowered_at - started, compile_seconds=compiled_at - lowered_at,
      flops=(cost or {}).get('flops'))
  for field in ('argument', 'output', 'alias', 'temp', 'generated_code'):
    report[f'{field}_bytes'] = getattr(memory, f'{field}_size_in_bytes', None) if memory else None
  if memory:
    report['peak_bytes'] = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
  return report


def _leaves(tree):
  return jax.tree.leaves(tree)


def _size(n) -> str:
  if n is None:
    return 'n/a'
  for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
    if abs(n) < 1024 or unit == 'TiB':
      return f'{n:,.0f} {unit}' if unit == 'B' else f'{n:,.2f} {unit}'
    n /= 1024


def format_report(r: dict) -> str:
  lines = [
      f'AOT compile of stage {r["stage"]!r}: {r["devices"]} {r["platform"]} devices '
      f'({r["device_kind"]}), mesh {r["mesh"]}, batch {r["batch"][0]}×{r["batch"][1]} tokens',
      f'  parameters                 {r["parameters"]:,}',
      '  per device:',
      f'    parameters               {_size(r["parameter_bytes"])}',
      f'    optimizer state          {_size(r["optimizer_bytes"])}',
      f'    train state (all)        {_size(r["state_bytes"])}',
      f'    arguments (state+batch)  {_size(r["argument_bytes"])}',
      f'    outputs                  {_size(r["output_bytes"])}',
      f'    aliased (donated state)  {_size(r["alias_bytes"])}',
      f'    temporaries              {_size(r["temp_bytes"])}',
      f'    generated code           {_size(r["generated_code_bytes"])}',
      f'    peak ≈ arg + out − alias + temp  {_size(r.get("peak_bytes"))}',
  ]
  if r.get('flops'):
    lines.append(f'  FLOPs per step per device  {r["flops"]:.3e}')
  lines.append(f'  lowered in {r["lower_seconds"]:.1f} s, compiled in {r["compile_seconds"]:.1f} s')
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  started = time.perf_counter()
  try:
    devices = tpu_devices(FLAGS.topology) if FLAGS.topology else cpu_devices(FLAGS.devices)
    report = compile_report(FLAGS.config, devices)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(1)
  print(format_report(report), flush=True)
  print(f'  total {time.perf_counter() - started:.1f} s', flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
