"""The training loop every algorithm plugs into.

One linear function, in the order of the work: workdir and config, mesh, input,
model and optimizer, the jitted update step, checkpoint restore, the loop (step,
log, eval, checkpoint), and a summary; run() chains a curriculum's stages, evaluates
each as it ends (SPEC §6) and writes report.md. Algorithms differ only in their
objectives, routing table and gates (tomk/algorithms/*), never in a copy of this loop.
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
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from tomk import (algorithms, branch, config as config_lib, curriculum, evaluation, metrics as metrics_lib,
                  optimizer, provenance, report, routing, sharding)
from tomk.data import pipeline
from tomk.evaluation import theory_of_mind
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


def make_state(model: Model, tx, rng, boxed=False, with_reference=False):
  params = model.init_boxed(rng)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': tx.init(params),
           'nonfinite_step': jnp.full((), -1, jnp.int32)}
  if with_reference:       # the frozen policy an RL stage's KL penalty is measured against
    state['reference'] = params
  return state if boxed else nn.unbox(state)


def _all_finite(tree):
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
    finite = _all_finite((metrics, grads))
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
  return Built(model, tx, abstract_state, state_sharding, batch_sharding,
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


class LanguageModelSource:
  """Batches of packed text from the grain pipeline; its iterator state is checkpointed."""

  def __init__(self, config, tokenizer, batch_sharding):
    self.iterator = iter(pipeline.lm_dataset(
        config.data, tokenizer, 'train', seed=config.seed, global_batch_size=config.batch_size,
        process_index=jax.process_index(), process_count=jax.process_count()))
    self.batch_sharding = batch_sharding
    self.tokens_per_step = config.batch_size * config.data.seq_len

  def next(self, state, step):
    del state, step
    return sharding.global_batch(next(self.iterator), self.batch_sharding), {}

  def save_args(self):
    return {'data': grain.checkpoint.CheckpointSave(self.iterator)}

  def restore_args(self):
    return {'data': grain.checkpoint.CheckpointRestore(self.iterator)}


class RolloutSource:
  """Batches made by rollouts of the current policy: prompts are a function of (seed, step)."""

  def __init__(self, config, tokenizer, built, algorithm, workdir):
    from tomk import rl, rollout
    from tomk.sampler import Sampler, SamplingConfig
    self.config, self.algorithm, self.rollout = config, algorithm, rollout
    self.pg = rl.PolicyGradientConfig.from_config(config.rl)
    if config.batch_size % config.rl.num_samples:
      raise ValueError(f'batch_size {config.batch_size} must be a multiple of rl.num_samples '
                       f'{config.rl.num_samples} (prompts per step × samples per prompt).')
    sampling = SamplingConfig(config.rl.max_new_tokens, config.rl.temperature, config.rl.top_k,
                              config.rl.top_p)
    self.context = rollout.Context(
        built.model, tokenizer,
        Sampler(built.model, tokenizer.eot_id, tokenizer.pad_id,
                prompt_len=rollout.simulation_prompt_len(config)),
        sampling, config,
        {k: rollout.reward_function(v, workdir) for k, v in config.rewards.items()})
    self.logprob_fn = jax.jit(lambda p, b: rl.token_logprobs(built.model, p, b))
    self.batch_sharding = built.batch_sharding
    self.families = tuple(config.rl.families.split(','))
    self.tokens_per_step = config.batch_size * config.rl.max_new_tokens

  def next(self, state, step):
    examples = self.rollout.scenario_prompts(
        self.families, 'train', self.config.seed, step,
        self.config.batch_size // self.config.rl.num_samples)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(self.config.seed), step), 1)
    batch, metrics, _ = self.rollout.rollout(
        self.context, self.algorithm, state['params'], state['reference'], examples, key,
        self.config.rl.num_samples, self.pg, self.logprob_fn)
    return jax.device_put(batch, self.batch_sharding), metrics

  def save_args(self):
    return {}

  def restore_args(self):
    return {}


def run(config, workdir: str, branch_from: str | None = None) -> dict:
  """Trains `config` in `workdir` stage by stage, resuming from the last checkpoint.

  branch_from: a workdir whose leading stages equal this config's; a new workdir starts
  with copies of those it finished (tomk/branch.py).
  """
  # --- Workdir and config --------------------------------------------------------------------
  stages = curriculum.stages(config)
  for _, stage_config in stages:
    config_lib.validate(stage_config)
  if branch_from and jax.process_count() > 1:
    raise ValueError('--branch_from runs in one process; branch first, then resume the new '
                     'workdir with all processes.')
  new = not os.path.exists(os.path.join(workdir, 'config.json'))
  if branch_from and not new:
    print(f'[branch] {workdir} has started before: resuming it, nothing copied', flush=True)
  if jax.process_index() == 0:
    if branch_from and new:
      # config.json last: a copy cut short leaves a workdir that is still new, copied again.
      branch.copy_stages(config, branch_from, workdir,
                         *branch.plan(config, branch_from, _latest_step))
    config_lib.check_workdir(workdir, config)
  provenance.record_start(workdir, config, branched_from=branch_from if new else None)

  # --- Mesh and tokenizer (shared by every stage) ---------------------------------------------
  mesh = sharding.make_mesh(config.mesh)
  for _, stage_config in stages:
    sharding.check_batch(stage_config.batch_size, mesh, jax.process_count())
  tokenizer = pipeline.tokenizer_for(config.data)
  eval_batches = [sharding.global_batch(b, sharding.batch_sharding(mesh)) for b in
                  pipeline.eval_batches(config.data, tokenizer, 'validation',
                                        global_batch_size=config.batch_size,
                                        num_batches=config.eval_batches,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count())]

  # --- Where to resume: the first stage whose last step is not saved --------------------------
  offsets = np.cumsum([0] + [c.steps for _, c in stages]).tolist()
  resume_step = None
  for (name, stage_config), offset in zip(stages, offsets):
    latest = _latest_step(workdir, name, stage_config)
    if latest is not None:
      resume_step = offset + latest
    if latest is None or latest < stage_config.steps:
      break
  writer = metrics_lib.Writer(workdir, resume_step=resume_step)

  # --- Stages, each evaluated (SPEC §6) when it ends: eval/<stage>.json -----------------------
  # (an interleaved stage only after its last sub-stage: curriculum.evaluated)
  params, summary, results = None, {}, None
  evaluated = curriculum.evaluated(stages)
  for (name, stage_config), offset in zip(stages, offsets):
    params, summary = run_stage(stage_config, name, workdir, mesh, tokenizer, eval_batches,
                                writer, offset, params)
    if name in evaluated:
      results = _evaluate_stage(workdir, stages, name) or results
  writer.close()

  # --- The last stage's evaluation is the run's (eval.json); report.md and plots --------------
  if results is not None:
    evaluation.save(workdir, results)
  summary['eval'] = results
  provenance.record_end(workdir, summary)
  if jax.process_index() == 0:
    print(report.write(workdir, plots=report.plots_wanted()), flush=True)
  return summary


def _evaluate_stage(workdir, stages, stage):
  """Evaluates the parameters `stage` ended with into eval/<stage>.json, unless done before."""
  policy = curriculum.policy_stage(stages, stage)
  if policy is None:         # no stage so far trained the policy (a curriculum opening with
    return None              # reward_model): nothing to evaluate
  step = dict(stages)[policy].steps
  saved = evaluation.load(workdir, stage)
  if saved is not None and saved.get('step') == step:
    if jax.process_index() == 0:
      print(f'[{stage}] evaluated before: {evaluation.path(workdir, stage)}', flush=True)
    return saved
  # A stage that left the policy as the stage before it did (reward_model) changes only
  # the reward-model score: keep the rest of that stage's evaluation.
  index, keep = [name for name, _ in stages].index(stage), None
  if index and curriculum.policy_stage(stages, stages[index - 1][0]) == policy:
    keep = evaluation.load(workdir, stages[index - 1][0])
    keep = keep if keep is not None and keep.get('step') == step else None
  return evaluation.run(workdir, step, stage=stage, keep=keep)


def _checkpoint_dir(workdir, stage):
  return os.path.abspath(os.path.join(workdir, 'checkpoints', stage))


def _latest_step(workdir, stage, config):
  if hasattr(algorithms.get(config.algorithm), 'train_stage'):
    # The reward model has no checkpoints: it is saved once, when trained; until then the
    # stage is not started (and its metrics, if any, are redone).
    trained = os.path.exists(os.path.join(workdir, 'reward_model', 'reward_model.json'))
    return config.steps if trained else None
  directory = _checkpoint_dir(workdir, stage)
  if not os.path.isdir(directory):
    return None
  with ocp.CheckpointManager(directory) as manager:
    return manager.latest_step()


def run_stage(config, stage, workdir, mesh, tokenizer, eval_batches, writer, offset, init_params):
  """One stage of the curriculum: an algorithm trained for config.steps steps.

  Starts from `init_params` (the previous stage's) unless the stage has its own
  checkpoint; returns (final params, summary).
  """
  algorithm = algorithms.get(config.algorithm)
  if hasattr(algorithm, 'train_stage'):     # trains a model of its own (the reward model)
    return init_params, algorithm.train_stage(config, stage, workdir, tokenizer, writer, offset)
  sharding.check_batch(config.batch_size, mesh, jax.process_count())

  # --- Model, optimizer, sharded state, jitted steps and the data source ----------------------
  built = build(config, mesh, tokenizer.vocab_size, algorithm)
  train_step, eval_step = built.train_step, built.eval_step
  if algorithm.DATA == 'prompts':
    source = RolloutSource(config, tokenizer, built, algorithm, workdir)
  else:
    source = LanguageModelSource(config, tokenizer, built.batch_sharding)
  epochs = config.rl.epochs if algorithm.DATA == 'prompts' else 1

  # --- Checkpoints: resume if the stage has one -----------------------------------------------
  manager = ocp.CheckpointManager(
      _checkpoint_dir(workdir, stage),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                           enable_async_checkpointing=True))
  start = manager.latest_step() or 0
  if start:
    restored = manager.restore(start, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(built.abstract_state), **source.restore_args()))
    state = restored['state']
    if jax.process_index() == 0:
      print(f'[{stage}] resuming {workdir} from step {start}', flush=True)
  else:
    state = built.init_state()
    if init_params is not None:      # later stages start from the earlier stage's parameters
      state['params'] = jax.device_put(init_params, built.state_sharding['params'])
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
  probe = _probe(config, built.model, tokenizer, stage)

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
  for step in range(start + 1, config.steps + 1):
    batch, host_metrics = source.next(state, step)
    for _ in range(epochs):
      state, step_metrics = train_step(state, batch)
    if step % config.log_every == 0 or step == config.steps:
      bad = int(state['nonfinite_step'])
      if bad >= 0:
        writer.flush()
        raise NonFiniteError(f'non-finite loss or gradient at step {bad + 1} of {stage}; the '
                             f'update was not applied and the run stopped. Lower the learning '
                             f'rate, or check the data and rewards of that step.')
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


def _probe(config, model, tokenizer, stage):
  """The Theory of Mind probe of every eval (evaluation.probe_stories_per_label), or None.

  It scores on one process: a run of several skips it and says so (tomk.evaluate scores
  every checkpoint afterwards).
  """
  settings = evaluation.settings(config)
  if not settings.probe_stories_per_label:
    return None
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      print(f'[{stage}] no Theory of Mind probe: it scores on one process and this run has '
            f'{jax.process_count()}', flush=True)
    return None
  return theory_of_mind.Probe(model, tokenizer, settings)


def load_run(workdir: str, step: int | None = None, stage: str | None = None):
  """(config, model, tokenizer, params, step) of a run's latest (or given) checkpoint, on the host.

  The checkpoint is the last stage's, or the one `stage` ended with
  (curriculum.policy_stage).
  For evaluation and sampling outside the training loop: no optimizer or mesh needed.
  """
  config = config_lib.load(workdir)
  policy = curriculum.policy_stage(curriculum.stages(config), stage)
  if policy is None:
    raise ValueError(f'{workdir}: no stage up to {stage or "the last"} trains the policy, so '
                     f'there are no parameters to load; name a later stage.')
  directory = _checkpoint_dir(workdir, policy)
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f'{workdir} has no checkpoint yet; train it first with tomk.main.')
  path = os.path.join(directory, str(step), 'state')
  # Into host numpy arrays: without a target orbax restores the saved sharding, which in a
  # multi-process run spans devices this process cannot address.
  saved = ocp.StandardCheckpointHandler().metadata(epath.Path(path))
  target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), dict(saved))
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(path, target)['params']
  tokenizer = pipeline.tokenizer_for(config.data)
  model = Model(ModelConfig.from_config({**config.model.to_dict(),
                                         'vocab_size': tokenizer.vocab_size}))
  return config, model, tokenizer, params, step
