"""Defaults every config starts from, the smoke shrink, and checks on a resolved config."""
from __future__ import annotations

import json
import os

import ml_collections

from tomk import algorithms


def partition_optimizer(learning_rate=3e-3, **overrides) -> ml_collections.ConfigDict:
  c = dict(learning_rate=learning_rate, schedule='cosine', warmup_steps=50, end_fraction=0.1,
           clip_norm=1.0, weight_decay=0.01, b1=0.9, b2=0.95, frozen=False)
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def base() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.algorithm = 'pretrain'
  config.steps = 300
  config.batch_size = 32
  config.gate_max = 1.0          # reward gates are clip(max(0, R), 0, gate_max)

  config.model = ml_collections.ConfigDict(dict(
      d_model=256, num_heads=4, ffn_dim=1024, trunk_layers=2, tower_layers=2,
      max_len=512, dtype='float32',
      # A scalar head r̂(s) on the prediction tower (d_model + 1 parameters): the inferred
      # reward of the person from whose perspective s is rendered (infer_reward;
      # kindness.reward='inferred'). Computed only when read; changes only through
      # infer_reward's route. Stages share one parameter tree: set it for the whole run.
      reward_head=False))

  config.data = ml_collections.ConfigDict(dict(
      source='chitchat',             # or a path to your own conversations.jsonl
      # '' = `source` alone; else 'name:weight,...' shares of documents, e.g.
      # 'chitchat:1,story:2,preference_story:0.5,scenarios:1' (tomk/data/pipeline.py).
      mixture='',
      story_mix='balanced',          # SocialWorld stories: preset[,type:weight...] (builders)
      # BPE-dropout on the training stories' text (each merge skipped with this chance,
      # seeded per story, so a story keeps its pieces when it comes round again): names and
      # containers arrive in pieces of varying size, as words
      # never seen in training do (SocialWorld's held-out split). 0 = plain pieces.
      subword_dropout=0.0,
      # Loss weight of the answers' tokens in SocialWorld stories (training split), against 1
      # for every other token: a story's few answers carry its Theory of Mind, its many
      # other tokens (who entered, which object) are mostly chance.
      answer_weight=1.0,
      socialworld_train_size=0,      # train examples per SocialWorld family; 0 = default
      data_dir='',                   # '' = $TOMK_DATA_DIR or ~/.cache/tomk
      vocab_size=1024, seq_len=128,
      # 'concat': documents back to back, cut into rows of seq_len wherever a row ends;
      # 'whole': a document that fits in a row is never cut (the row is padded instead).
      packing='concat',
      # Attention within each packed document only (a document never sees the one before
      # it in its row), as every evaluation sees a story: alone; the held-out eval/nll_*
      # are then masked alike. It goes with packing='whole': under 'concat' the second
      # part of a cut document cannot see its first. False: the whole row.
      document_mask=False,
      # Whose perspective each conversation is rendered from (their turns are <self>):
      # 'first' speaker, 'random' speaker, or 'other' (a speaker but the first).
      perspective='random',
      # SocialWorld scenarios as the 'model' saw them, or from the 'partner' side (their
      # turns, reaction included, are <self>: imitation and infer_reward learn the partner).
      scenario_perspective='model',
      switch_names_in_text=True,
      reward='constant', reward_value=1.0,
      # The observed reaction infer_reward regresses: a reward function name scoring each
      # <self> turn that answers someone ('sentiment'); '' = none (no batch fields, no cost).
      reaction=''))

  config.optimizer = ml_collections.ConfigDict({
      p: partition_optimizer() for p in ('perception', 'behavior', 'prediction')})

  # RL algorithms (finetune, rlhf, empathy, naive_kindness): rollouts on SocialWorld prompts.
  config.rl = ml_collections.ConfigDict(dict(
      num_samples=4,                 # samples per prompt; batch_size / num_samples prompts a step
      estimator='group', clip_epsilon=0.2, kl_coef=0.05, entropy_coef=0.0, epochs=1,
      prompt_len=160,                # prompts are left-padded/truncated to this: one compile
      max_new_tokens=24, temperature=1.0, top_k=0, top_p=1.0,
      families='preference_offer,similar_partner,dissimilar_partner,false_belief_assist,'
               'third_party,multi_party'))
  # Reward functions by name: 'sentiment', 'constant', 'rater', 'reward_model:PATH'.
  config.rewards = ml_collections.ConfigDict(dict(extrinsic='rater', intrinsic='sentiment'))
  # The reward_model algorithm's own small transformer (Bradley–Terry on rater pairs).
  config.reward_model = ml_collections.ConfigDict(dict(
      d_model=64, num_heads=2, ffn_dim=256, trunk_layers=2, max_len=256))
  config.reward_model_learning_rate = 1e-3
  # Kindness (empathy, naive_kindness): Rʲ = w_ext·RLHF(sʲ, âʲ) + w_int·IRF(sʲ, âʲ), summed
  # over the partner or all known individuals. reward='simulate': IRF is the sentiment of
  # j's simulated reply âʲ; 'inferred': IRF is the reward head's r̂(sʲ) (train it first
  # with an infer_reward stage), no reply simulated unless w_ext needs one.
  # horizon: j's simulated replies scored (001 Eq. 1's future turns; 1 = the next reply
  # only, >1 = the model answers again and j replies again ...), Rʲ = Σₜ gammaᵗ·Rʲₜ.
  # gamma only matters with horizon > 1.
  config.kindness = ml_collections.ConfigDict(dict(individuals='partner', w_ext=0.0, w_int=1.0,
                                                   reward='simulate', horizon=1, gamma=0.9))

  # A curriculum: comma-separated stage names, each a key of config.stages holding the
  # overrides of that stage ('' = one stage, this config).
  config.curriculum = ''
  config.stages = ml_collections.ConfigDict()

  config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  config.sharding_rules = (
      ('batch', ('data', 'fsdp')), ('embed', 'fsdp'), ('vocab', 'tensor'), ('mlp', 'tensor'),
      ('heads', 'tensor'), ('kv', None), ('length', None))

  config.log_every = 10
  config.eval_every = 50
  config.eval_batches = 8
  config.checkpoint_every = 100
  config.keep_checkpoints = 3

  # tomk.evaluation (SPEC §6). Its own seed, so runs of every training seed are scored on
  # the same stories and conversations.
  config.evaluation = ml_collections.ConfigDict(dict(
      seed=2411, splits=('test', 'heldout'),
      stories_per_label=30,          # per row (question type × tom / no_tom) and split
      scenarios_per_family=25,
      chitchat_conversations=100, windows_per_conversation=4,
      batch_size=32,
      lengths=(128, 256, 512),       # sequences pad to these: one compilation each
      # Theory of Mind while training: every eval_every steps, the prediction stream on
      # this many test stories per row (0 = off); see evaluation.theory_of_mind.Probe.
      probe_stories_per_label=0))
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a config to seconds: tiny model, few steps, small batches."""
  config.steps = 20
  config.batch_size = 8
  config.model.update(d_model=32, num_heads=2, ffn_dim=64, trunk_layers=1, tower_layers=1,
                      max_len=128)
  config.data.update(vocab_size=512, seq_len=32, socialworld_train_size=2000)
  for p in ('perception', 'behavior', 'prediction'):
    config.optimizer[p].warmup_steps = 2
  config.log_every = 5
  config.eval_every = 10
  config.eval_batches = 2
  config.checkpoint_every = 5
  config.evaluation.update(stories_per_label=2, scenarios_per_family=4,
                           chitchat_conversations=4, windows_per_conversation=1, batch_size=16,
                           lengths=(320,))                # one compilation
  if config.evaluation.probe_stories_per_label:
    config.evaluation.probe_stories_per_label = 1
  config.rl.max_new_tokens = 8       # the sampler's decode steps, in RL and in evaluation
  return config


def set_routes(config, routes):
  config.routes = ml_collections.ConfigDict({k: dict(v) for k, v in routes.items()})


def validate(config) -> None:
  """Errors for mistakes a config file or a --config.x=y override can make."""
  module = algorithms.get(config.algorithm)
  if config.steps <= 0 or config.batch_size <= 0:
    raise ValueError('steps and batch_size must be positive.')
  dropout = config.data.get('subword_dropout', 0.0)
  if not 0.0 <= dropout < 1.0:
    raise ValueError(f'data.subword_dropout={dropout!r} is the chance of skipping each merge; '
                     f'set it in [0, 1), e.g. 0.1.')
  answer_weight = config.data.get('answer_weight', 1.0)
  if not answer_weight > 0:
    raise ValueError(f'data.answer_weight={answer_weight!r} is a loss weight; set it > 0 '
                     f'(1 = answers count like every other token).')
  from tomk import evaluation
  settings = evaluation.settings(config)     # old configs have no evaluation section
  probe = settings.probe_stories_per_label
  if not (isinstance(probe, int) and 0 <= probe <= settings.stories_per_label):
    raise ValueError(f'evaluation.probe_stories_per_label={probe!r} is a number of test stories '
                     f'per row, the first of the evaluation\'s: set it to an integer from 0 (no '
                     f'probe while training) to evaluation.stories_per_label='
                     f'{settings.stories_per_label}.')
  from tomk.data import pipeline
  pipeline.packs_whole(config.data)
  from tomk import routing
  routing.check_routes(module.objectives(config), config.routes.to_dict())


def flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(flatten(v, key + '.'))
    else:
      out[key] = v
  return out


def differing_keys(a: dict, b: dict) -> list[str]:
  """Sorted keys of two flat configs whose values differ. A key only one has differs,
  unless the other holds base()'s default for it: a setting added since a run began,
  at its default, changes nothing (a config.json written before it resumes)."""
  defaults = flatten(to_json(base()))
  value = lambda d, k: d.get(k, defaults.get(k, '<absent>'))
  return sorted(k for k in a.keys() | b.keys() if value(a, k) != value(b, k))


def to_json(config) -> dict:
  """The config as plain JSON data (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def load(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in workdir/config.json (check_workdir wrote it)."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise ValueError(f'{workdir} has no config.json; give the workdir of a run of '
                     f'python -m tomk.main.')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def check_workdir(workdir: str, config) -> None:
  """Writes config.json, or refuses a workdir whose saved config differs (naming the keys)."""
  path = os.path.join(workdir, 'config.json')
  new = to_json(config)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    old_flat, new_flat = flatten(old), flatten(new)
    differ = differing_keys(old_flat, new_flat)
    if differ:
      lines = [f'  {k}: saved {old_flat.get(k, "<absent>")!r}, now {new_flat.get(k, "<absent>")!r}'
               for k in differ]
      raise ValueError(f'workdir {workdir} holds a run with a different config; these keys '
                       f'differ:\n' + '\n'.join(lines) +
                       '\nUse a new --workdir, or the saved values to resume.')
    return
  os.makedirs(workdir, exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(new, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
