"""One stage of training: the loop every algorithm plugs into.

run_stage is one linear function, in the order of the work: model, optimizer and jitted
steps (setup), the stage's batches, checkpoint restore, the loop (step, log, eval,
checkpoint, preemption) and a summary. tomk.experiment runs a curriculum of such stages.
Algorithms differ only in their objectives, routing table and gates (tomk/algorithms/*),
never in a copy of this loop; one that trains a model of its own forks a trainer
(algorithms.forks_trainer).
"""
from __future__ import annotations

import dataclasses
import signal
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from tomk import (algorithms, checkpoints, metrics as metrics_lib, optimizer, rollout, routing,
                  sharding)
from tomk.data import batches
from tomk.foundation import convert
from tomk.evaluation import theory_of_mind
from tomk.model import Model, ModelConfig, count_params


def check(config) -> None:
  """Errors for the loop's own settings."""
  for key in ('log_every', 'eval_every', 'checkpoint_every', 'keep_checkpoints', 'eval_batches'):
    if not (isinstance(config[key], int) and config[key] > 0):
      raise ValueError(f'{key}={config[key]!r}: set it to a positive integer.')


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


def make_state(model: Model, tx, rng, boxed=False, with_reference=False):
  params = model.init_boxed(rng)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params),
           'nonfinite_step': jnp.full((), -1, jnp.int32)}
  if with_reference:       # the frozen policy an RL stage's KL penalty is measured against
    state['reference'] = params
  return state if boxed else nn.unbox(state)


def all_finite(tree):
  """Whether every leaf of `tree` is finite: a step that is not is not applied."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train_step(model, tx, algorithm, config):
  """state, batch -> state, metrics. One forward pass, routed gradients, one update."""
  routes = config.routes.to_dict()
  objectives = algorithm.objectives(config)

  def train_step(state, batch):
    gates = algorithm.gates(batch, config)
    grads, metrics = routing.routed_gradients(model, state['params'], batch, objectives, routes,
                                              gates)
    scales = routing.update_scales(objectives, routes, gates, batch)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'],
                                   update_scales=scales)
    params = optax.apply_updates(state['params'], updates)
    finite = all_finite((metrics, grads))
    # A non-finite step is not applied; the host stops the run at its next log, naming it.
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    first_bad = jnp.where((state['nonfinite_step'] < 0) & ~finite, state['step'],
                          state['nonfinite_step'])
    new_state = {**state, 'step': state['step'] + 1, 'params': keep(params, state['params']),
                 'opt_state': keep(opt_state, state['opt_state']), 'nonfinite_step': first_bad}
    for name, value in gates.items():
      weights = batch['weights']
      metrics[f'gate/{name}'] = (value * weights).sum() / jnp.maximum(weights.sum(), 1)
    for p, g in grads.items():
      metrics[f'grad_norm/{p}'] = optax.tree.norm(g)
    return new_state, metrics

  return train_step


def make_eval_step(model):
  """Held-out NLL of each stream: summed loss and token count, so batches combine exactly."""
  def eval_step(params, batch):
    logits = model.apply(params, batch['inputs'], key_mask=routing.attention_mask(batch))
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
class Setup:
  """What a stage's config sets up on a mesh: model, optimizer, shardings and jitted steps."""
  model: Model
  tx: optax.GradientTransformation
  abstract_state: object      # ShapeDtypeStructs of the train state, with shardings
  state_sharding: object
  batch_sharding: object
  init_state: object          # () -> sharded train state
  train_step: object          # jitted (state, batch) -> (state, metrics), state donated
  eval_step: object           # jitted (params, batch) -> summed eval numbers
  lower_train_step: object    # abstract batch -> jax.stages.Lowered (ahead-of-time compile)


def setup(config, mesh, vocab_size: int, algorithm) -> Setup:
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
    with_reference = algorithm.DATA == 'prompts'
    boxed = jax.eval_shape(lambda: make_state(model, tx, rng, True, with_reference))
    state_sharding = sharding.logical_shardings(boxed, mesh, axis_rules)
    init_state = jax.jit(lambda: make_state(model, tx, rng, False, with_reference),
                         out_shardings=state_sharding)
    abstract_state = jax.eval_shape(init_state)     # shapes, dtypes and shardings
    train_step = jax.jit(make_train_step(model, tx, algorithm, config),
                         in_shardings=(state_sharding, batch_sharding),
                         out_shardings=(state_sharding, metrics_sharding), donate_argnums=0)
    eval_step = jax.jit(make_eval_step(model),
                        in_shardings=(state_sharding['params'], batch_sharding),
                        out_shardings=metrics_sharding)
  return Setup(model, tx, abstract_state, state_sharding, batch_sharding,
               init_state,    # not under set_mesh: see _in_mesh
               lambda *a: _in_mesh(mesh, axis_rules, train_step, *a),
               lambda *a: _in_mesh(mesh, axis_rules, eval_step, *a),
               lambda batch: _in_mesh(mesh, axis_rules, train_step.lower, abstract_state, batch))


def _in_mesh(mesh, axis_rules, fn, *args):
  # Tracing happens at the first call: logical constraints need the mesh and rules then.
  # jax.set_mesh, not `with mesh:`: flax's with_logical_constraint reads the abstract mesh
  # that only set_mesh defines; under `with mesh:` every activation constraint in model.py
  # was dropped and FSDP computed each matmul on the whole global batch. (Initialising
  # under set_mesh fails in flax's DenseGeneral, which boxes a flattened kernel.)
  with jax.set_mesh(mesh), nn.logical_axis_rules(axis_rules):
    return fn(*args)


def run_stage(config, stage, workdir, mesh, tokenizer, eval_batches, writer, offset, init_params):
  """One stage of the curriculum: an algorithm trained for config.steps steps.

  Starts from `init_params` (the previous stage's) unless the stage has its own
  checkpoint; returns (final params, summary).
  """
  algorithm = algorithms.get(config.algorithm)
  if algorithms.forks_trainer(algorithm):     # trains a model of its own (the reward model)
    return init_params, algorithm.train_stage(config, stage, workdir, tokenizer, writer, offset)

  # --- Model, optimizer, sharded state, jitted steps and the batches --------------------------
  parts = setup(config, mesh, tokenizer.vocab_size, algorithm)
  train_step, eval_step = parts.train_step, parts.eval_step
  if algorithm.DATA == 'prompts':
    source = batches.RolloutBatches(
        config, rollout.Rollouts(config, parts.model, tokenizer, algorithm, workdir),
        parts.batch_sharding)
  else:
    source = batches.TextBatches(config, tokenizer, parts.batch_sharding)
  epochs = config.rl.epochs if algorithm.DATA == 'prompts' else 1

  # --- Checkpoints: resume if the stage has one -----------------------------------------------
  manager = checkpoints.manager(workdir, stage, keep=config.keep_checkpoints)
  start = manager.latest_step() or 0
  if start:
    restored = manager.restore(start, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(parts.abstract_state), **source.restore_args()))
    state = restored['state']
    if jax.process_index() == 0:
      print(f'[{stage}] resuming {workdir} from step {start}', flush=True)
  else:
    state = parts.init_state()
    if init_params is not None:      # later stages start from the earlier stage's parameters
      state['params'] = jax.device_put(init_params, parts.state_sharding['params'])
    elif config.model.init_from:     # the first stage: from a pretrained checkpoint
      state['params'] = convert.load(config.model.init_from, parts.model, state['params'])
      if jax.process_index() == 0:
        print(f'[{stage}] starting from {config.model.init_from}', flush=True)
    if 'reference' in state:         # its own buffers: the train step donates params
      state['reference'] = jax.tree.map(jnp.copy, state['params'])
  labels = dict(stage=stage, algorithm=config.algorithm)
  if start >= config.steps:
    manager.close()
    return state['params'], {}

  if jax.process_index() == 0:
    sizes = count_params(state['params'])
    print(f'[{stage}] {config.algorithm}: {sum(sizes.values()):,} parameters '
          f'({", ".join(f"{k} {v:,}" for k, v in sizes.items())}) on mesh {dict(mesh.shape)}; '
          f'{config.steps} steps of batch {config.batch_size}', flush=True)

  # --- The loop -------------------------------------------------------------------------------
  progress = metrics_lib.Progress(stage, config.steps, source.tokens_per_step)
  preemption = Preemption()
  probe = _probe(config, parts.model, tokenizer, stage)

  def evaluate_now(step):
    scalars = evaluate(eval_step, state['params'], eval_batches)
    if probe:
      scalars.update(probe(state['params']))
      if jax.process_index() == 0:
        print(f'[{stage}] step {step} Theory of Mind (prediction, '
              f'{config.evaluation.probe_stories_per_label} test stories per row): '
              f'{theory_of_mind.probe_line(scalars)}', flush=True)
    return scalars

  first_eval = None
  if start == 0 and offset == 0:
    first_eval = evaluate_now(0)
    writer.write(0, first_eval, **labels)
    progress.report(0, first_eval)
  started, last_eval = time.perf_counter(), first_eval
  recent = {}        # train-step call -> its metrics (on device), since the last log
  for step in range(start + 1, config.steps + 1):
    batch, host_metrics = source.next(state, step)
    for epoch in range(epochs):
      state, step_metrics = train_step(state, batch)
      recent[(step - 1) * epochs + epoch] = step_metrics
    if step % config.log_every == 0 or step == config.steps:
      bad = int(state['nonfinite_step'])
      if bad >= 0:
        writer.flush()
        manager.wait_until_finished()      # the checkpoints saved so far, whole
        manager.close()
        raise NonFiniteError(_nonfinite_message(stage, bad, epochs, recent.get(bad)))
      recent.clear()
      scalars = {**jax.device_get(step_metrics), **host_metrics}
      writer.write(offset + step, scalars, **labels)
      writer.write_timing(offset + step, progress.report(step, scalars))
    if step % config.eval_every == 0 or step == config.steps:
      last_eval = evaluate_now(step)
      writer.write(offset + step, last_eval, **labels)
      progress.report(step, last_eval)
    preempted = preemption.reached(manager, step)
    if step % config.checkpoint_every == 0 or step == config.steps or preempted:
      writer.flush()
      manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                 **source.save_args()), force=preempted)
    if preempted:
      manager.wait_until_finished()
      writer.close()
      if jax.process_index() == 0:
        print(f'[{stage}] preempted: saved step {step}; re-run the same command to resume.',
              flush=True)
      raise Preempted(step)
  manager.wait_until_finished()
  manager.close()
  preemption.restore()
  wall = time.perf_counter() - started

  # --- Summary --------------------------------------------------------------------------------
  summary = {'steps': config.steps, 'seconds': wall, **(last_eval or {})}
  if jax.process_index() == 0:
    steps = config.steps - start
    print(f'[{stage}] done: {steps} steps in {wall:.0f} s '
          f'({steps * source.tokens_per_step / max(wall, 1e-9):,.0f} tok/s)', flush=True)
    for k, v in (last_eval or {}).items():
      before = f'{first_eval[k]:.3f} → ' if first_eval else ''
      print(f'  {k:28s} {before}{v:.3f}', flush=True)
  return state['params'], summary


def _nonfinite_message(stage: str, call: int, epochs: int, metrics) -> str:
  """Which metrics of train-step call `call` were not finite, at which step of `stage`."""
  names = sorted(k for k, v in jax.device_get(metrics or {}).items()
                 if not np.all(np.isfinite(v)))
  what = ', '.join(names) if names else 'loss or gradient'
  step = call // epochs + 1
  return (f'non-finite {what} at step {step} of stage {stage}; the update was not applied '
          f'and the run stopped, its last checkpoint kept. Lower the learning rate, or check '
          f'the data and rewards of that step.')


def _probe(config, model, tokenizer, stage):
  """The Theory of Mind probe of every eval (evaluation.probe_stories_per_label), or None.

  It scores on one process: a run of several skips it and says so (tomk.evaluate scores
  every checkpoint afterwards).
  """
  settings = config.evaluation
  if not settings.probe_stories_per_label:
    return None
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      print(f'[{stage}] no Theory of Mind probe: it scores on one process and this run has '
            f'{jax.process_count()}', flush=True)
    return None
  return theory_of_mind.Probe(model, tokenizer, settings)
