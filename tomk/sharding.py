"""The device mesh and how arrays are laid out on it (SPEC §7).

Axes are always ``data``, ``fsdp`` and ``tensor``; sizes come from config, -1 means
"all the devices left". Parameters carry logical axis names (model.py) that the
config's rules map to mesh axes, so FSDP or tensor parallelism is a config change.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ('data', 'fsdp', 'tensor')
BATCH_AXES = ('data', 'fsdp')


def mesh_shape(mesh_config, device_count: int) -> tuple[int, ...]:
  sizes = [int(mesh_config[a]) for a in AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f'mesh {dict(zip(AXES, sizes))}: only one axis may be -1 (the rest).')
  known = math.prod(s for s in sizes if s != -1)
  if known <= 0 or device_count % known:
    raise ValueError(f'mesh {dict(zip(AXES, sizes))} does not divide the {device_count} devices: '
                     f'make the product of data × fsdp × tensor divide {device_count} '
                     f'(e.g. --config.mesh.data=-1 to use every device for data).')
  sizes = [device_count // known if s == -1 else s for s in sizes]
  if math.prod(sizes) != device_count:
    raise ValueError(f'mesh {dict(zip(AXES, sizes))} uses {math.prod(sizes)} of the '
                     f'{device_count} devices; set one axis to -1 to take the rest.')
  return tuple(sizes)


def check_mesh(config, device_count: int | None = None) -> None:
  """An error unless config.mesh fits the devices (default: jax's) and config.batch_size
  splits over them."""
  shape = dict(zip(AXES, mesh_shape(config.mesh, device_count or jax.device_count())))
  n, processes = math.prod(shape[a] for a in BATCH_AXES), jax.process_count()
  if config.batch_size % n or config.batch_size % processes:
    raise ValueError(f'batch_size {config.batch_size} is not divisible by the {n} data-parallel '
                     f'devices (mesh data × fsdp = {n}) and {processes} processes; set '
                     f'--config.batch_size to a multiple of {math.lcm(n, processes)}.')


def make_mesh(mesh_config, devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_config, len(devices))
  return Mesh(np.asarray(devices).reshape(shape), AXES)


def rules(config) -> tuple[tuple[str, object], ...]:
  """Logical-axis → mesh-axis rules from config (a tuple of pairs)."""
  return tuple((name, tuple(axis) if isinstance(axis, list) else axis)
               for name, axis in config.sharding_rules)


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape[a] for a in BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def logical_shardings(abstract_boxed_tree, mesh: Mesh, axis_rules):
  """NamedShardings for a tree whose leaves may be nn.Partitioned boxes (others replicated)."""
  specs = nn.get_partition_spec(abstract_boxed_tree)
  shardings = nn.logical_to_mesh_sharding(specs, mesh, axis_rules)
  _check_divisible(nn.unbox(abstract_boxed_tree), shardings)
  return shardings


def _check_divisible(abstract_tree, shardings):
  # `shardings` is a tree prefix of the state, not the same tree: where optax masks a
  # partition out, the state holds an empty MaskedNode and the shardings one (unused)
  # sharding. Pair them by the shardings' structure, as jax.jit does.
  subtrees = jax.tree.structure(shardings).flatten_up_to(abstract_tree)
  for (path, sharding), subtree in zip(jax.tree_util.tree_flatten_with_path(shardings)[0],
                                       subtrees):
    for leaf in jax.tree.leaves(subtree):
      for dim, axes in zip(leaf.shape, sharding.spec):
        if axes is None:
          continue
        size = math.prod(sharding.mesh.shape[a]
                         for a in (axes if isinstance(axes, tuple) else (axes,)))
        if dim % size:
          raise ValueError(f'parameter {jax.tree_util.keystr(path)} has a dimension of {dim} '
                           f'sharded over mesh axes {axes} of size {size}, which does not '
                           f'divide it: change the model size or the mesh / sharding_rules.')


def global_batch(local_batch: dict, sharding: NamedSharding) -> dict:
  """This process's rows of a batch → one global array per key, laid out on the mesh."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
