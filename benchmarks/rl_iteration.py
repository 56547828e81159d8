"""RL iterations of tomk: rlhf beside Tunix's GRPO, and empathy beside rlhf (side_by_side.py).

- rlhf_against_tunix: one rlhf iteration doing the work of Tunix's GRPO harness (RL below),
  against tunix.rl's GRPOLearner on an RLCluster (tunix_side.py grpo).
- empathy_against_rlhf: one iteration of each as a run does it (SocialWorld prompts drawn
  by data.batches.RolloutBatches, rollout.Rollouts with the run's tokenizer, the stage's
  routed train step), at configs/empathy.py's RL settings on the benchmark model: empathy
  with 1 and 2 simulated replies per response (kindness.horizon) against rlhf scored by
  SocialWorld's rater.
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from tomk import algorithms, config as config_lib, optimizer, rl, rollout, train
from tomk.algorithms import rlhf
from tomk.data import batches, pipeline
from tomk.model import PARTITIONS, Model, ModelConfig
from tomk.sampler import Sampler, SamplingConfig

from measuring import BENCHMARK_MODEL, HERE, emit, measure_phases, spread

# Tunix GRPO's work: rollout (end of turn off), reward = share of tokens equal to `target`,
# reference log-probs (KL coefficient 0.04), one PPO-clipped AdamW update on every sample.
RL = dict(prompts=8, samples=4, prompt_len=64, new=64, kl_coef=0.04, target=3)



def tomk_rl_iteration(repeats: int):
  """A function that measures `repeats` rlhf iterations of tomk: seconds per iteration and
  per phase (rollout with the reward, reference log-probs, update), compiles."""
  config = config_lib.base()
  config_lib.set_routes(config, rlhf.ROUTES)
  config.rl.update(num_samples=RL['samples'], prompt_len=RL['prompt_len'],
                   max_new_tokens=RL['new'], kl_coef=RL['kl_coef'], temperature=1.0)
  for p in PARTITIONS:
    config.optimizer[p].learning_rate = 1e-5
  model = Model(ModelConfig(**BENCHMARK_MODEL))
  tx = optimizer.make(config.optimizer, set(PARTITIONS), 1000)
  state = train.make_state(model, tx, jax.random.key(0), with_reference=True)
  state['reference'] = jax.tree.map(jnp.copy, state['params'])
  step = jax.jit(train.make_train_step(model, tx, rlhf, config), donate_argnums=0)
  sampler = Sampler(model, eot_id=-1, pad_id=0, prompt_len=RL['prompt_len'])
  sampling = SamplingConfig(max_new_tokens=RL['new'], temperature=1.0)
  policy_gradient = rl.PolicyGradientConfig.from_config(config.rl)
  logprob_fn = jax.jit(lambda p, b: rl.token_logprobs(model, p, b))
  calls = itertools.count()

  def iteration() -> dict:
    nonlocal state
    i = next(calls)
    prompts = np.random.default_rng(i).integers(3, 1024, (RL['prompts'], RL['prompt_len']))
    tokens, valid = jnp.asarray(prompts, jnp.int32), jnp.ones(prompts.shape, bool)
    start = time.perf_counter()
    samples = sampler.sample_padded(state['params'], tokens, valid, jax.random.key(i),
                                    'behavior', sampling, RL['samples'])
    rewards = (np.asarray(samples.tokens) == RL['target']).mean(1)   # on the host, as Tunix
    rolled = time.perf_counter()
    batch = rollout.training_batch(tokens, valid, samples, rewards, RL['samples'],
                                   policy_gradient, 0, logprob_fn, state['reference'])
    jax.block_until_ready(batch)
    referenced = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    end = time.perf_counter()
    return {'iteration': end - start, 'rollout': rolled - start,
            'reference': referenced - rolled, 'update': end - referenced}

  return measure_phases(iteration, repeats)


def tunix_rl_iteration(python: str, repeats: int):
  command = [python, os.path.join(HERE, 'tunix_side.py'), 'grpo', f'--repeats={repeats}',
             *(f'--{k.replace("_", "-")}={v}' for k, v in RL.items())]
  def measure():
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
      raise RuntimeError(f'the Tunix side failed:\n{done.stderr[-2000:]}')
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result['phases'], result['compiles']
  return measure


def rlhf_against_tunix(rounds: int, repeats: int, tunix: str | None) -> None:
  tomk = tomk_rl_iteration(repeats)
  peer = tunix_rl_iteration(tunix, repeats) if tunix else None
  ours, theirs, compiles = [], [], 0
  for _ in range(rounds):                                   # alternately
    phases, n = tomk()
    ours.append(phases)
    compiles += n
    if peer:
      phases, n = peer()
      theirs.append(phases)
      compiles += n
  median = lambda runs, k: statistics.median(r[k] for r in runs)
  record = {'measure': 'rl_iteration', **RL, 'timed_compiles': compiles,
            'tomk_s': {k: spread([r[k] for r in ours]) for k in ours[0]},
            'load_average': os.getloadavg()[0]}
  phases = ', '.join(f'{k} {median(ours, k):.2f}' for k in ours[0] if k != 'iteration')
  line = (f'rl iteration ({RL["prompts"]} prompts × {RL["samples"]} samples, {RL["new"]} new): '
          f'tomk {median(ours, "iteration"):.2f} s ({phases})')
  if theirs:
    ratio = median(theirs, 'iteration') / median(ours, 'iteration')
    record.update(tunix_s={k: spread([r[k] for r in theirs]) for k in theirs[0]}, ratio=ratio)
    phases = ', '.join(f'{k} {median(theirs, k):.2f}' for k in theirs[0] if k != 'iteration')
    line += (f', Tunix GRPO {median(theirs, "iteration"):.2f} s ({phases}): {ratio:.2f}× Tunix '
             f'(target ≥ 1.5)')
  emit(record, line + f'; {compiles} compilations in timed calls')




# --- empathy beside rlhf -----------------------------------------------------------------------


def tomk_iterations(name: str, repeats: int, horizon: int = 1):
  """A function that measures `repeats` iterations of RL algorithm `name` as a run does
  them: seconds per iteration, rollout (rewards included) and update; compiles."""
  stage = config_lib.base()
  stage.algorithm = name
  stage.kindness.horizon = horizon
  algorithm = algorithms.get(name)
  config_lib.set_routes(stage, algorithm.ROUTES)
  tokenizer = pipeline.tokenizer_for(stage.data)
  model = Model(ModelConfig(**{**BENCHMARK_MODEL, 'vocab_size': tokenizer.vocab_size}))
  tx = optimizer.make(stage.optimizer, set(PARTITIONS), 1000)
  state = train.make_state(model, tx, jax.random.key(0), with_reference=True)
  state['reference'] = jax.tree.map(jnp.copy, state['params'])
  step = jax.jit(train.make_train_step(model, tx, algorithm, stage), donate_argnums=0)
  source = batches.RolloutBatches(stage, rollout.Rollouts(stage, model, tokenizer, algorithm, ''),
                                  None)
  steps = itertools.count(1)

  def iteration() -> dict:
    nonlocal state
    start = time.perf_counter()
    batch, _ = source.next(state, next(steps))
    jax.block_until_ready(batch)
    rolled = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    end = time.perf_counter()
    return {'iteration': end - start, 'rollout': rolled - start, 'update': end - rolled}

  return measure_phases(iteration, repeats), stage


def empathy_against_rlhf(rounds: int, repeats: int) -> None:
  arms = {'rlhf': ('rlhf', 1), 'empathy': ('empathy', 1), 'empathy, 2 replies': ('empathy', 2)}
  measures, stage = {}, None
  for arm, (name, horizon) in arms.items():
    measures[arm], stage = tomk_iterations(name, repeats, horizon)
  runs, compiles = {arm: [] for arm in arms}, 0
  for _ in range(rounds):                                   # alternately
    for arm, measure in measures.items():
      phases, n = measure()
      runs[arm].append(phases)
      compiles += n
  median = {arm: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for arm, rs in runs.items()}
  ratios = {arm: median[arm]['iteration'] / median['rlhf']['iteration'] for arm in arms}
  emit({'measure': 'kindness_iteration', 'batch': stage.batch_size,
        'prompt_len': stage.rl.prompt_len, 'new': stage.rl.max_new_tokens,
        'seconds': {arm: {k: spread([r[k] for r in rs]) for k in rs[0]}
                    for arm, rs in runs.items()},
        'ratio_to_rlhf': ratios, 'timed_compiles': compiles},
       f'RL iterations ({stage.batch_size} samples, {stage.rl.max_new_tokens} new, SocialWorld '
       f'prompts): ' + '; '.join(
           f'{arm} {m["iteration"]:.2f} s (rollout {m["rollout"]:.2f}, update '
           f'{m["update"]:.2f}) = {ratios[arm]:.2f}× rlhf' for arm, m in median.items())
       + f' (target: empathy ≤ 2.0×); {compiles} compilations in timed calls')
