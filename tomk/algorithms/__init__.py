"""One module per algorithm of the papers; each states its objectives and routing table at its top.

The contract every algorithm module keeps (nothing in tomk reads anything else of one):

  ROUTES       {objective: {partition: weight}}: which partitions each objective updates,
               a weight being a number or the name of a gate (SPEC §2). A stage's config
               holds its own copy (config.routes), which a researcher may change.
  DATA         what a step reads: 'lm' (packed text: tomk.data.pipeline), 'prompts'
               (rollouts of the policy on SocialWorld scenarios: tomk.rollout) or 'pairs'
               (a forked trainer's own data).
  objectives(config) -> [routing.Objective]: per-token losses, each on one stream. The
               policy gradient is rl.objective(config), written once for every RL algorithm.
  gates(batch, config) -> {name: per-token array}: the gates route weights may name,
               e.g. reward_gate = clip(max(0, R), 0, gate_max).
  rewards(context, params, conversations, responses, key) -> (float32[n], metrics)
               ('prompts' only): R of each sampled response, from what a deployed model
               could observe (rollout.Context holds no ground truth).
  check(config) (optional): errors for the settings the algorithm reads, raised before
               the first step (check() below calls it).

A forked trainer (big_vision's "fork a trainer"): an algorithm that trains a model of
its own with a loop of its own, not the three partitions through tomk.train, sets
FORKED_TRAINER = True and defines train_stage(config, stage, workdir, tokenizer, writer,
offset) -> summary and trained(workdir) -> bool. reward_model is one.
"""
import collections
import importlib

import jax.numpy as jnp

from tomk import rewards, rl, routing
from tomk.data import sources

ALGORITHMS = ('pretrain', 'reward_model', 'finetune', 'imitation', 'infer_reward', 'rlhf', 'empathy',
              'naive_kindness', 'oracle_control')


def get(name: str):
  """The algorithm module called `name`, with an error that lists the known ones."""
  if name not in ALGORITHMS:
    raise ValueError(f'unknown algorithm {name!r}; choose one of {", ".join(ALGORITHMS)}.')
  return importlib.import_module(f'tomk.algorithms.{name}')


def forks_trainer(algorithm) -> bool:
  """Whether `algorithm` (a module) trains a model of its own (see the module docstring)."""
  return getattr(algorithm, 'FORKED_TRAINER', False)


def check(config) -> None:
  """Errors for a stage's algorithm settings: the algorithm's own check, its routing table
  against its objectives, and the policy gradient's settings where it samples."""
  algorithm = get(config.algorithm)
  if hasattr(algorithm, 'check'):
    algorithm.check(config)
  if algorithm.DATA == 'prompts':
    rl.check(config)
    sources.check_families(config.rl.families)
    for name, spec in config.rewards.items():
      rewards.check(spec, f'rewards.{name}', rl=True)
  gates = algorithm.gates(collections.defaultdict(lambda: jnp.zeros((1, 1))), config)
  routing.check_routes(algorithm.objectives(config), config.routes.to_dict(), gates=set(gates))
