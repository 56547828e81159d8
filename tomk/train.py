"""The training loop every algorithm plugs into.

One linear function, in the order of the work: workdir and config, mesh, input,
model and optimizer, the jitted update step, checkpoint restore, the loop (step,
log, eval, checkpoint), and a summary. Algorithms differ only in their objectives,
routing table and gates (tomk/algorithms/*), never in a copy of this loop.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import time

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from absl import logging

from tomk import algorithms, config as config_lib, metrics as metrics_lib, optimizer, routing, sharding
from tomk.data import pipeline
from tomk.model import Model, ModelConfig, count_params


class NonFiniteError(FloatingPointError):
  pass


class Preempted(Exception):
  """Raised after a SIGTERM once the checkpoint of the current step is saved."""


class Preemption:
  """Notices SIGTERM (a preempted VM, `scancel`, `kill`) so the loop can save and stop.

  One process: a signal handler sets a flag. Many processes: they must stop at the
  same step, so orbax's preemption sync point (JAX's coordination service) decides.
  """

  def __init__(self):
    self.flag = False
    self._previous = None
    if jax.process_count() == 1 and hasattr(signal, 'SIGTERM'):
      try:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
      except ValueError:      # not the main thread (e.g. called from a test harness)
        self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    self.flag = True

  def reached(self, manager, step: int) -> bool:
    if jax.process_count() > 1:
      return manager.reached_preemption(step)
    return self.flag

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def make_state(model: Model, tx, rng, boxed=False):
  params = model.init_boxed(rng)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params),
           'nonfinite_step': jnp.full((), -1, jnp.int32)}
  return state if boxed else nn.unbox(state)


def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train_step(model, tx, algorithm, config):
  """state, batch -> state, metrics. One forward pass, routed gradients, one update."""
  routes = config.routes.to_dict()

  def train_step(state, batch):
    gates = algorithm.gates(batch, config)
    grads, metrics = routing.routed_gradients(model, state['params'], batch,
                                              algorithm.OBJECTIVES, routes, gates)
    scales = routing.update_scales(algorithm.OBJECTIVES, routes, gates, batch)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'],
                                   update_scales=scales)
    params = optax.apply_updates(state['params'], updates)
    finite = _all_finite((metrics, grads))
    # A non-finite step is not applied; the host stops the run at its next log, naming it.
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    first_bad = jnp.where((state['nonfinite_step'] < 0) & ~finite, state['step'],
                          state['nonfinite_step'])
    new_state = {'step': state['step'] + 1, 'params': keep(params, state['params']),
                 'opt_state': keep(opt_state, state['opt_state']), 'nonfinite_step': first_bad}
    for name, value in gates.items():
      metrics[f'gate/{name}'] = (value * batch['weights']).sum() / jnp.maximum(batch['weights'].sum(), 1)
    for p, g in grads.items():
      metrics[f'grad_norm/{p}'] = optax.tree.norm(g)
    return new_state, metrics

  return train_step


def make_eval_step(model):
  """Held-out NLL of each stream: summed loss and token count, so batches combine exactly."""
  def eval_step(params, batch):
    logits = model.apply(params, batch['inputs'])
    out = {}
    for stream, lg in logits.items():
      nll = routing.token_nll(lg, batch)
      out[f'eval/nll_{stream}'] = (nll * batch['weights']).sum()
      correct = (jnp.argmax(lg, -1) == batch['targets']).astype(jnp.float32)
      out[f'eval/accuracy_{stream}'] = (correct * batch['weights']).sum()
    out['tokens'] = batch['weights'].sum()
    return out
  return eval_step


def evaluate(eval_step, params, batches) -> dict[str, float]:
  totals = {}
  for batch in batches:
    for k, v in eval_step(params, batch).items():
      totals[k] = totals.get(k, 0.0) + float(v)
  tokens = max(totals.pop('tokens'), 1.0)
  return {k: v / tokens for k, v in totals.items()}


@dataclasses.dataclass
class Built:
  """What a config compiles to on a mesh: model, optimizer, shardings and jitted steps."""
  model: Model
  tx: optax.GradientTransformation
  abstract_state: object      # ShapeDtypeStructs of the train state, with shardings
  state_sharding: object
  batch_sharding: object
  init_state: object          # () -> sharded train state
  train_step: object          # jitted (state, batch) -> (state, metrics), state donated
  eval_step: object           # jitted (params, batch) -> summed eval numbers
  lower_train_step: object    # abstract batch -> jax.stages.Lowered (ahead-of-time compile)


def build(config, mesh, vocab_size: int, algorithm) -> Built:
  """Model, optimizer and steps with explicit shardings; parameters are created sharded.

  Nothing here touches data, so the ahead-of-time compiler (tomk.aot) lowers the
  same train step for any topology.
  """
  axis_rules = sharding.rules(config)
  model = Model(ModelConfig.from_config({**config.model.to_dict(), 'vocab_size': vocab_size}))
  tx = optimizer.make(config.optimizer, routing.routed_partitions(config.routes.to_dict()),
                      config.steps)
  rng = jax.random.key(config.seed)
  batch_sharding = sharding.batch_sharding(mesh)
  metrics_sharding = sharding.replicated(mesh)
  with mesh, nn.logical_axis_rules(axis_rules):
    boxed = jax.eval_shape(lambda: make_state(model, tx, rng, boxed=True))
    state_sharding = sharding.logical_shardings(boxed, mesh, axis_rules)
    init_state = jax.jit(lambda: make_state(model, tx, rng), out_shardings=state_sharding)
    abstract_state = jax.eval_shape(init_state)     # shapes, dtypes and shardings
    train_step = jax.jit(make_train_step(model, tx, algorithm, config),
                         in_shardings=(state_sharding, batch_sharding),
                         out_shardings=(state_sharding, metrics_sharding), donate_argnums=0)
    eval_step = jax.jit(make_eval_step(model),
                        in_shardings=(state_sharding['params'], batch_sharding),
                        out_shardings=metrics_sharding)
  return Built(model, tx, abstract_state, state_sharding, batch_sharding,
               lambda: _in_mesh(mesh, axis_rules, init_state),
               lambda *a: _in_mesh(mesh, axis_rules, train_step, *a),
               lambda *a: _in_mesh(mesh, axis_rules, eval_step, *a),
               lambda batch: _in_mesh(mesh, axis_rules, train_step.lower, abstract_state, batch))


def _in_mesh(mesh, axis_rules, fn, *args):
  # Tracing happens at the first call: logical constraints need the mesh and rules then.
  with mesh, nn.logical_axis_rules(axis_rules):
    return fn(*args)


def run(config, workdir: str) -> dict:
  """Trains `config` in `workdir`, resuming from its last checkpoint if it has one."""
  # --- Workdir and config --------------------------------------------------------------------
  config_lib.validate(config)
  if jax.process_index() == 0:
    config_lib.check_workdir(workdir, config)
  algorithm = algorithms.get(config.algorithm)
  stage = config.algorithm

  # --- Mesh -----------------------------------------------------------------------------------
  mesh = sharding.make_mesh(config.mesh)
  sharding.check_batch(config.batch_size, mesh, jax.process_count())
  batch_sharding = sharding.batch_sharding(mesh)

  # --- Input ----------------------------------------------------------------------------------
  tokenizer = pipeline.tokenizer_for(config.data)
  train_data = pipeline.lm_dataset(config.data, tokenizer, 'train', seed=config.seed,
                                   global_batch_size=config.batch_size,
                                   process_index=jax.process_index(),
                                   process_count=jax.process_count())
  train_iter = iter(train_data)
  eval_batches = [sharding.global_batch(b, batch_sharding) for b in pipeline.eval_batches(
      config.data, tokenizer, 'validation', global_batch_size=config.batch_size,
      num_batches=config.eval_batches, process_index=jax.process_index(),
      process_count=jax.process_count())]

  # --- Model, optimizer, sharded state and the jitted steps -----------------------------------
  built = build(config, mesh, tokenizer.vocab_size, algorithm)
  train_step, eval_step = built.train_step, built.eval_step

  # --- Checkpoints: resume if the workdir has one ---------------------------------------------
  manager = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                           enable_async_checkpointing=True))
  start = 0
  if manager.latest_step() is not None:
    start = manager.latest_step()
    restored = manager.restore(start, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(built.abstract_state),
        data=grain.checkpoint.CheckpointRestore(train_iter)))
    state = restored['state']
    logging.info('resumed from step %d', start)
    if jax.process_index() == 0:
      print(f'[{stage}] resuming {workdir} from step {start}', flush=True)
  else:
    state = built.init_state()
  preemption = Preemption()
  writer = metrics_lib.Writer(workdir, resume_step=start if start else None)
  labels = dict(stage=stage, algorithm=config.algorithm)

  if jax.process_index() == 0:
    sizes = count_params(state['params'])
    print(f'[{stage}] {sum(sizes.values()):,} parameters '
          f'({", ".join(f"{k} {v:,}" for k, v in sizes.items())}) on mesh {dict(mesh.shape)}; '
          f'{config.steps} steps of {config.batch_size}×{config.data.seq_len} tokens', flush=True)

  # --- The loop -------------------------------------------------------------------------------
  tokens_per_step = config.batch_size * config.data.seq_len
  progress = metrics_lib.Progress(stage, config.steps, tokens_per_step)
  first_eval = None
  if start == 0:
    first_eval = evaluate(eval_step, state['params'], eval_batches)
    writer.write(0, first_eval, **labels)
    progress.report(0, first_eval)
  started, last_eval = time.perf_counter(), first_eval
  for step in range(start + 1, config.steps + 1):
    batch = sharding.global_batch(next(train_iter), batch_sharding)
    state, step_metrics = train_step(state, batch)
    if step % config.log_every == 0 or step == config.steps:
      bad = int(state['nonfinite_step'])
      if bad >= 0:
        writer.flush()
        raise NonFiniteError(f'non-finite loss or gradient at step {bad + 1} of {stage}; the '
                             f'update was not applied and the run stopped. Lower the learning '
                             f'rate, or check the data and rewards of that step.')
      scalars = jax.device_get(step_metrics)
      writer.write(step, scalars, **labels)
      writer.write_timing(step, progress.report(step, scalars))
    if step % config.eval_every == 0 or step == config.steps:
      last_eval = evaluate(eval_step, state['params'], eval_batches)
      writer.write(step, last_eval, **labels)
      progress.report(step, last_eval)
    preempted = preemption.reached(manager, step)
    if step % config.checkpoint_every == 0 or step == config.steps or preempted:
      writer.flush()
      manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=grain.checkpoint.CheckpointSave(train_iter)), force=preempted)
    if preempted:
      manager.wait_until_finished()
      writer.close()
      if jax.process_index() == 0:
        print(f'[{stage}] preempted: saved step {step}; re-run the same command to resume.',
              flush=True)
      raise Preempted(step)
  manager.wait_until_finished()
  writer.close()
  preemption.restore()
  wall = time.perf_counter() - started

  # --- Summary --------------------------------------------------------------------------------
  summary = {'steps': config.steps, 'seconds': wall, **(last_eval or {})}
  if jax.process_index() == 0:
    print(f'[{stage}] done: {config.steps - start} steps in {wall:.0f} s '
          f'({(config.steps - start) * tokens_per_step / max(wall, 1e-9):,.0f} tok/s)', flush=True)
    for k, v in (last_eval or {}).items():
      before = f'{first_eval[k]:.3f} → ' if first_eval else ''
      print(f'  {k:28s} {before}{v:.3f}', flush=True)
  return summary



def load_run(workdir: str, step: int | None = None):
  """(config, model, tokenizer, params, step) of a run's latest (or given) checkpoint, on the host.

  For evaluation and sampling outside the training loop: no optimizer or mesh needed.
  """
  import json
  import ml_collections
  with open(os.path.join(workdir, 'config.json')) as f:
    config = ml_collections.ConfigDict(json.load(f))
  directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f'{workdir} has no checkpoint yet; train it first with tomk.main.')
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(directory, str(step), 'state'))['params']
  tokenizer = pipeline.tokenizer_for(config.data)
  model = Model(ModelConfig.from_config({**config.model.to_dict(),
                                         'vocab_size': tokenizer.vocab_size}))
  return config, model, tokenizer, params, step
