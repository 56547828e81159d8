"""Every algorithm: its routing table holds, reward never reaches the prediction stream,
the perspective switch is where the papers put it, and training never sees ground truth."""
import dataclasses
import importlib
import json
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import empathy as empathy_config
from tomk import algorithms, config as config_lib, curriculum, experiment, optimizer, routing, train
from tomk.algorithms import kindness
from tomk.data import conversation as conversation_lib
from tomk.model import PARTITIONS, Model, ModelConfig

jax.config.update('jax_default_matmul_precision', 'highest')

MODEL = ModelConfig(vocab_size=64, d_model=32, num_heads=2, ffn_dim=64, trunk_layers=1,
                    tower_layers=1, max_len=32, reward_head=True)


def _config(name):
  config = config_lib.base()
  config.algorithm = name
  config.data.reaction = 'sentiment'       # infer_reward's observed signal
  config.model.reward_head = True          # as MODEL: infer_reward's r̂
  config_lib.set_routes(config, algorithms.get(name).ROUTES)
  return config


def _init(model, seed):
  """Parameters with a random reward head (it starts at zero, which would hide its
  gradient into the trunk)."""
  params = jax.jit(model.init)(jax.random.key(seed))
  head = params['prediction']['reward_head']
  keys = jax.random.split(jax.random.key(seed + 100), 2)
  params['prediction']['reward_head'] = {
      'kernel': jax.random.normal(keys[0], head['kernel'].shape) * 0.3,
      'bias': jax.random.normal(keys[1], head['bias'].shape)}
  return params


def _batch(seed=0, b=4, t=12):
  """A batch with every field any algorithm reads (LM data or a rollout)."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, MODEL.vocab_size, (b, t + 1))
  response = np.zeros((b, t), np.float32)
  response[:, t // 2:] = 1.0
  said = (rng.random((b, t)) < 0.5).astype(np.float32)           # one speaker's tokens
  reacted = (rng.random((b, t)) < 0.25).astype(np.float32)       # turn openings with a reaction
  return {'inputs': jnp.asarray(tokens[:, :-1], jnp.int32),
          'targets': jnp.asarray(tokens[:, 1:], jnp.int32),
          'positions': jnp.broadcast_to(jnp.arange(t), (b, t)),
          'key_mask': jnp.ones((b, t), bool),
          'weights': jnp.asarray(response),
          'response_mask': jnp.asarray(response),
          'old_logprobs': jnp.asarray(-rng.random((b, t)) * 4, jnp.float32),
          'ref_logprobs': jnp.asarray(-rng.random((b, t)) * 4, jnp.float32),
          'advantages': jnp.asarray(rng.normal(size=(b, 1)) * response, jnp.float32),
          'rewards': jnp.asarray(rng.normal(size=(b, 1)) * response, jnp.float32),
          'self_mask': jnp.asarray(said),
          'reaction': jnp.asarray(rng.uniform(-1, 1, (b, t)) * reacted, jnp.float32),
          'reaction_mask': jnp.asarray(reacted)}


def _objective_gradient(model, params, batch, objective, weight):
  def loss(p):
    if objective.output == 'reward':
      y = model.reward(p, batch['inputs'], batch['positions'], key_mask=batch['key_mask'])
    else:
      y = model.apply(p, batch['inputs'], batch['positions'],
                      key_mask=batch['key_mask'])[objective.stream]
    out = objective.loss(y, batch)
    per_token = out[0] if isinstance(out, tuple) else out
    mask = batch[objective.mask]
    return (per_token * mask * weight).sum() / jnp.maximum(mask.sum(), 1.0)
  return jax.grad(loss)(params)


@pytest.mark.parametrize('name', algorithms.ALGORITHMS)
def test_routing_table_holds(name):
  module, config = algorithms.get(name), _config(name)
  model = Model(MODEL)
  params = _init(model, 0)
  batch = _batch()
  gates = module.gates(batch, config)
  objectives = module.objectives(config)
  routes = config.routes.to_dict()
  got, _ = routing.routed_gradients(model, params, batch, objectives, routes, gates)
  expected = jax.tree.map(jnp.zeros_like, params)
  for o in objectives:
    for partition, w in routes.get(o.name, {}).items():
      g = _objective_gradient(model, params, batch, o, gates[w] if isinstance(w, str) else w)
      expected[partition] = jax.tree.map(jnp.add, expected[partition], g[partition])
  for p in PARTITIONS:
    chex.assert_trees_all_close(got[p], expected[p], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('name', algorithms.ALGORITHMS)
def test_prediction_stream_gets_no_reward_gradient(name):
  module, config = algorithms.get(name), _config(name)
  model = Model(MODEL)
  params = _init(model, 1)
  batch = _batch(2)
  other = dict(batch, rewards=-3.0 * batch['rewards'] + batch['response_mask'],
               advantages=5.0 * batch['advantages'] - batch['response_mask'])
  grads = [routing.routed_gradients(model, params, b, module.objectives(config),
                                    config.routes.to_dict(), module.gates(b, config))[0]
           for b in (batch, other)]
  chex.assert_trees_all_equal(grads[0]['prediction'], grads[1]['prediction'])


class _RecordingContext:
  """Stands in for rollout.Context: records what the simulator is asked to continue."""

  def __init__(self, config):
    self.config, self.prompts, self.streams = config, [], []
    self.reward_functions = {'extrinsic': lambda p, r: np.zeros(len(r)),
                             'intrinsic': lambda p, r: np.asarray([1.0 if 'thanks' in x else -1.0
                                                                   for x in r])}

  def sample(self, params, prompts, key, stream, num_samples=1):
    self.prompts += prompts
    self.streams.append(stream)
    return prompts

  def decode(self, samples):
    return ['thanks' if 'Sam: Here is tea.' in p else 'no' for p in samples]


def _conversation():
  return conversation_lib.Conversation.of(
      [('Zoe', 'Keep the cake for me, Sam.'), ('Sam', 'Sure, Zoe.'),
       ('Ann', 'I love tea. Sam, tea or coffee?')], perspective='Sam')


def test_partner_is_simulated_from_its_own_perspective():
  context = _RecordingContext(_config('empathy'))
  rewards, _ = algorithms.get('empathy').rewards(context, None, [_conversation()],
                                                 ['Here is tea.'], jax.random.key(0))
  prompt, = context.prompts
  assert context.streams == ['prediction']
  # Ann's own turns are now "self"; the model's response carries the model's name.
  assert prompt.endswith('<self> ')
  assert '<self> I love tea. Sam, tea or coffee?<eot>' in prompt
  assert '<other> Sam: Here is tea.<eot>' in prompt
  assert '<other> Zoe: Keep the cake for me, Sam.<eot>' in prompt      # third party keeps label
  assert rewards.tolist() == [1.0]


def test_naive_kindness_trains_on_the_targets_reward_of_003_algorithm_1():
  """Line 6: R = RLHF(āⁱ | s̄ⁱ) + IRF(ā | s̄): the extrinsic reward of the target's reply,
  which the behavior stream generates from the target's state, plus the intrinsic reward
  of the model's own action seen from the target's side."""
  config = _config('naive_kindness')
  config.kindness.update(w_ext=1.0, w_int=1.0)
  scored = {}
  class Context(_RecordingContext):
    def __init__(self, config):
      super().__init__(config)
      self.reward_functions = {
          'extrinsic': lambda p, r: scored.setdefault('extrinsic', (list(p), list(r))) and
                                    np.asarray([10.0 * len(x) for x in r]),
          'intrinsic': lambda p, r: scored.setdefault('intrinsic', (list(p), list(r))) and
                                    np.asarray([1.0 if 'tea' in x else -1.0 for x in r])}
  context = Context(config)
  rewards, metrics = algorithms.get('naive_kindness').rewards(
      context, None, [_conversation()], ['Here is tea.'], jax.random.key(0))
  assert context.streams == ['behavior']          # the model imagines the target as itself
  target_state, = context.prompts                 # s̄ⁱ: s + a from Ann's side, Ann to speak
  assert target_state.endswith('<other> Sam: Here is tea.<eot><self> ')
  reply = 'thanks'                                # what the stub's sampler answers there
  assert scored['extrinsic'] == ([target_state], [reply])
  # IRF reads the model's action as Ann received it: her history, then Sam's turn.
  (seen,), (action,) = scored['intrinsic']
  assert seen.endswith('<self> I love tea. Sam, tea or coffee?<eot><other> Sam: ')
  assert '<other> Zoe: Keep the cake for me, Sam.<eot>' in seen and action == 'Here is tea.'
  assert rewards.tolist() == [10.0 * len(reply) + 1.0]
  assert metrics['reward/target_extrinsic'] == 60.0 and metrics['reward/target_intrinsic'] == 1.0
  assert set(algorithms.get('naive_kindness').ROUTES) == {'rl'}      # no gated NLL (Alg. 1)


def test_kindness_over_all_known_individuals_includes_third_parties():
  config = _config('empathy')
  config.kindness.individuals = 'all'
  context = _RecordingContext(config)
  rewards, metrics = kindness.estimated_rewards(context, None, [_conversation()], ['Cake!'],
                                                jax.random.key(0), 'prediction')
  assert len(context.prompts) == 2 and metrics['reward/simulated_individuals'] == 2
  assert '<self> Keep the cake for me, Sam.' in context.prompts[0]      # Zoe's view
  assert rewards.tolist() == [-2.0]


class _TalkContext:
  """A stub rollout.Context for imagined talk: sampler call n answers row i of its prompts
  with '<stream> <n> <i>', and the intrinsic reward of a reply is 10·n + i."""

  def __init__(self, config):
    self.config, self.calls = config, []
    self.reward_functions = {
        'extrinsic': lambda p, r: np.zeros(len(r)),
        'intrinsic': lambda p, r: np.asarray([10.0 * int(x.split()[1]) + int(x.split()[2])
                                              for x in r], np.float32)}

  def sample(self, params, prompts, key, stream, num_samples=1):
    self.calls.append((stream, list(prompts)))
    return [(stream, len(self.calls), i) for i in range(len(prompts))]

  def decode(self, samples):
    return [f'{stream} {n} {i}' for stream, n, i in samples]


def test_kindness_over_future_turns_discounts_each_simulated_reply():
  config = _config('empathy')
  config.kindness.update(horizon=2, gamma=0.5)
  context = _TalkContext(config)
  conversations = [_conversation(), _conversation()]
  rewards, metrics = kindness.estimated_rewards(context, None, conversations,
                                                ['Here is tea.', 'Cake!'], jax.random.key(0),
                                                'prediction')
  # One sampler call per simulated turn, all rows at once: Ann replies, Sam answers, Ann replies.
  assert [(stream, len(prompts)) for stream, prompts in context.calls] == [
      ('prediction', 2), ('behavior', 2), ('prediction', 2)]
  r1, r2 = np.asarray([10.0, 11.0]), np.asarray([30.0, 31.0])      # calls 1 and 3
  np.testing.assert_allclose(rewards, r1 + 0.5 * r2)
  assert metrics['reward/turn_0'] == 10.5 and metrics['reward/turn_1'] == 30.5
  # Sam answers Ann's simulated reply from Sam's own perspective ...
  sam = context.calls[1][1][0]
  assert sam.endswith('<self> Here is tea.<eot><other> Ann: prediction 1 0<eot><self> ')
  # ... and Ann sees the whole switched history, Sam's second response included.
  ann = context.calls[2][1][0]
  assert ann.startswith('<other> Zoe: Keep the cake for me, Sam.<eot>')
  assert ann.endswith('<other> Sam: Here is tea.<eot><self> prediction 1 0<eot>'
                      '<other> Sam: behavior 2 0<eot><self> ')
  assert [p for p, _ in context.last_simulated] == context.calls[0][1] + context.calls[2][1]

  # horizon = 1: the next reply alone, as before the horizon existed.
  config.kindness.horizon = 1
  context = _TalkContext(config)
  rewards, metrics = kindness.estimated_rewards(context, None, conversations,
                                                ['Here is tea.', 'Cake!'], jax.random.key(0),
                                                'prediction')
  assert [stream for stream, _ in context.calls] == ['prediction']
  np.testing.assert_array_equal(rewards, np.asarray([10.0, 11.0], np.float32))
  assert 'reward/turn_0' not in metrics


def test_inferred_kindness_over_future_turns_scores_each_switched_state(monkeypatch):
  config = _config('empathy')
  config.kindness.update(horizon=2, gamma=0.5, reward='inferred')
  seen = []
  def estimate(context, params, views):
    seen.append(views)
    return np.asarray([len(v.turns) for v in views], np.float32)     # r̂ = turns so far
  monkeypatch.setattr(kindness.infer_reward, 'estimate', estimate)
  context = _TalkContext(config)
  rewards, _ = kindness.estimated_rewards(context, None, [_conversation()], ['Here is tea.'],
                                          jax.random.key(0), 'prediction')
  # sʲ₀ = s + a (4 turns), sʲ₁ adds Ann's reply and Sam's answer (6); no reply after the last.
  np.testing.assert_allclose(rewards, [4.0 + 0.5 * 6.0])
  assert [stream for stream, _ in context.calls] == ['prediction', 'behavior']
  assert [v.perspective for views in seen for v in views] == ['Ann', 'Ann']


@pytest.mark.parametrize('update, fix', [({'horizon': 0}, 'integer >= 1'),
                                          ({'gamma': 1.5}, r'in \[0, 1\]')])
def test_bad_kindness_horizon_names_the_fix(update, fix):
  config = _config('empathy')
  config.kindness.update(update)
  with pytest.raises(ValueError, match=fix):
    experiment.check(config)


def _forbid_ground_truth(monkeypatch):
  from tomk.socialworld import ground_truth, scenarios
  def forbidden(*args, **kwargs):
    raise AssertionError('ground truth reached a training step')
  for module_with_truth in (scenarios, ground_truth):
    for name in ('partner_reward', 'third_party_rewards', 'reaction', 'counterfactual_reaction',
                 'offers_an_option'):
      monkeypatch.setattr(module_with_truth, name, forbidden)
  # What the public functions read (caught even through partials made before the guard).
  for name in ('_item_reward', '_location_reward', 'read_response'):
    monkeypatch.setattr(ground_truth, name, forbidden)


@pytest.mark.parametrize('name', ['empathy', 'naive_kindness', 'rlhf'])
def test_training_never_reads_ground_truth(name, data_dir, monkeypatch, tmp_path):
  from tomk import rollout, sharding
  from tomk.data import batches, pipeline
  # Each last stage as its config file sets it (naive_kindness: both terms of Alg. 1 line 6).
  config = importlib.import_module(f'configs.{name}').get_config('smoke')
  _, stage = curriculum.stages(config)[-1]
  stage.rewards.extrinsic = 'rater'    # no reward_model stage has run in this test
  tokenizer = pipeline.tokenizer_for(stage.data)
  mesh = sharding.make_mesh(stage.mesh)
  module = algorithms.get(stage.algorithm)
  parts = train.setup(stage, mesh, tokenizer.vocab_size, module)
  source = batches.RolloutBatches(
      stage, rollout.Rollouts(stage, parts.model, tokenizer, module, str(tmp_path)),
      parts.batch_sharding)
  state = parts.init_state()
  state['reference'] = jax.tree.map(jnp.copy, state['params'])
  _forbid_ground_truth(monkeypatch)
  batch, metrics = source.next(state, 1)
  state, step_metrics = parts.train_step(state, batch)
  assert np.isfinite(float(step_metrics['loss/rl']))
  assert 'reward/mean' in metrics


def test_only_the_named_oracle_control_reads_ground_truth(monkeypatch):
  """The positive control trains on the partners' true reward, by name; the guard above
  would catch it (and catches it here)."""
  from tomk import socialworld
  example = socialworld.generate('dissimilar_partner', 'train', 0, n=1, start=3)[0]
  responses = example['candidates']
  rewards, metrics = algorithms.get('oracle_control').rewards(
      None, None, [example['conversation']] * len(responses), responses, None)
  assert rewards.tolist() == [example['partner_reward'](r) for r in responses]
  assert metrics['reward/oracle'] == pytest.approx(float(np.mean(rewards)))
  _forbid_ground_truth(monkeypatch)
  with pytest.raises(AssertionError, match='ground truth reached'):
    algorithms.get('oracle_control').rewards(None, None, [example['conversation']],
                                             responses[:1], None)
  for name in ('partner_reward', 'reaction', 'counterfactual_reaction',   # (no third party)
               'offers_an_option'):
    with pytest.raises(AssertionError, match='ground truth reached'):   # made before the guard
      example[name](responses[0])


# --- imitation (001 Alg. 3) -------------------------------------------------------------------

def test_imitation_covers_exactly_the_imitated_speakers_tokens(tmp_path):
  from tomk.data import pipeline
  path = str(tmp_path / 'talk-{split}.jsonl')
  turns = [('Ann', 'apples are red'), ('Bo', 'zebras run fast, Ann'),
           ('Ann', 'apples again'), ('Bo', 'zebras sleep now')]
  with open(path.format(split='train'), 'w') as f:
    f.write(json.dumps({'id': 't', 'turns': [{'speaker': s, 'text': t} for s, t in turns]}))
  config = _config('imitation')
  config.data.update(source=path, data_dir=str(tmp_path), vocab_size=400, seq_len=16,
                     perspective='other', reaction='')       # 'other': Bo, not the first speaker
  tokenizer = pipeline.tokenizer_for(config.data)
  batch = next(iter(pipeline.lm_dataset(config.data, tokenizer, 'train', seed=0,
                                        global_batch_size=4)))
  # Expected: the conversation from Bo's perspective; Bo's words and <eot> are his, the
  # <self> token opening each of his turns is not (it says whose turn it is: the state).
  segments = [text for _, text in conversation_lib.render_segments(
      conversation_lib.switch(conversation_lib.Conversation.of(turns), 'Bo'))]
  ids = tokenizer.encode_batch(segments)
  stream = np.concatenate([np.array(x) for x in ids])
  said = np.concatenate([np.r_[0.0, np.ones(len(x) - 1)] if s.startswith('<self>')
                         else np.zeros(len(x)) for x, s in zip(ids, segments)])
  assert [s.startswith('<self>') for s in segments] == [False, True, False, True]
  for row in range(4):       # one conversation, repeated, cut into rows of 17 tokens
    positions = (row * 17 + 1 + np.arange(16)) % len(stream)
    np.testing.assert_array_equal(batch['targets'][row], stream[positions])
    np.testing.assert_array_equal(batch['self_mask'][row], said[positions])
  imitated = tokenizer.decode(batch['targets'][batch['self_mask'] > 0])
  assert 'zebras' in imitated and 'apples' not in imitated and '<self>' not in imitated

  # Both losses read only those tokens: other targets may change, the losses may not.
  module = algorithms.get('imitation')
  model = Model(dataclasses.replace(MODEL, vocab_size=tokenizer.vocab_size))
  params = jax.jit(model.init)(jax.random.key(0))
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  gradients = jax.jit(lambda p, b: routing.routed_gradients(
      model, p, b, module.objectives(config), config.routes.to_dict(), {}))
  grads, metrics = gradients(params, batch)
  logits = jax.jit(model.apply)(params, batch['inputs'])
  nll = {s: routing.token_nll(lg, batch) for s, lg in logits.items()}
  mask = batch['self_mask']
  for name, stream_name in (('imitate', 'behavior'), ('simulate', 'prediction')):
    np.testing.assert_allclose(metrics[f'loss/{name}'],
                               (nll[stream_name] * mask).sum() / mask.sum(), rtol=1e-5)
  others = jnp.where(mask > 0, batch['targets'], (batch['targets'] + 7) % tokenizer.vocab_size)
  grads_other, metrics_other = gradients(params, dict(batch, targets=others))
  chex.assert_trees_all_equal((grads_other, metrics_other), (grads, metrics))


# --- infer_reward (001 §4.2.4) and kindness with the inferred reward --------------------------

def _train_step(name, learning_rate=3e-3):
  module, config = algorithms.get(name), _config(name)
  for p in PARTITIONS:
    config.optimizer[p].update(warmup_steps=0, learning_rate=learning_rate, schedule='constant')
  model = Model(MODEL)
  routes = config.routes.to_dict()
  tx = optimizer.make(config.optimizer, routing.routed_partitions(routes), total_steps=100)
  state = jax.jit(lambda: train.make_state(model, tx, jax.random.key(0)))()
  state['params'] = _init(model, 0)
  return state, jax.jit(train.make_train_step(model, tx, module, config))


def test_inferred_reward_head_learns_the_observed_reactions():
  state, step = _train_step('infer_reward', learning_rate=1e-2)
  head = jax.device_get(state['params']['prediction']['reward_head'])
  batch = _batch(3)
  losses = []
  for _ in range(40):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss/reward_regression']))
  assert losses[-1] < 0.2 * losses[0], losses
  assert not np.array_equal(head['kernel'], state['params']['prediction']['reward_head']['kernel'])


def test_reward_head_changes_only_through_its_route():
  # imitation trains the prediction tower and perception, but not the head (no weight decay).
  state, step = _train_step('imitation')
  before = jax.device_get(state['params'])
  for seed in range(3):
    state, _ = step(state, _batch(seed))
  after = jax.device_get(state['params'])
  chex.assert_trees_all_equal(after['prediction']['reward_head'],
                              before['prediction']['reward_head'])
  assert not np.array_equal(after['prediction']['readout']['kernel'],
                            before['prediction']['readout']['kernel'])


def test_kindness_with_the_inferred_reward_scores_switched_states_without_ground_truth(
    monkeypatch):
  from tomk import socialworld
  from tomk.socialworld import scenarios
  examples = (socialworld.generate('preference_offer', 'train', 0, n=2)
              + socialworld.generate('multi_party', 'train', 0, n=2))
  def forbidden(*args, **kwargs):
    raise AssertionError('ground truth reached a training reward')
  for name in ('partner_reward', 'third_party_rewards', 'reaction'):
    monkeypatch.setattr(scenarios, name, forbidden)
  config = _config('empathy')
  config.kindness.update(reward='inferred', individuals='all')
  model = Model(MODEL)
  params = jax.jit(model.init)(jax.random.key(0))
  params['prediction']['reward_head']['bias'] = jnp.full((1,), 0.25)   # r̂ = 0.25 everywhere

  def no_simulation(*args, **kwargs):
    raise AssertionError('the inferred reward needs no simulated reply')
  encoded = []
  context = types.SimpleNamespace(
      config=config, model=model, tokenizer=types.SimpleNamespace(pad_id=0),
      sampler=types.SimpleNamespace(prompt_len=64), sample=no_simulation,
      encode=lambda texts: encoded.extend(texts) or [[1 + ord(c) % 63 for c in t] for t in texts])
  conversations = [ex['conversation'] for ex in examples]
  rewards, metrics = kindness.estimated_rewards(context, params, conversations,
                                                ['Here is tea.'] * 4, jax.random.key(0),
                                                'prediction')
  people = [len(kindness.known_individuals(c, 'all')) for c in conversations]
  assert rewards.shape == (4,) and people[2] > 1
  np.testing.assert_allclose(rewards, 0.25 * np.asarray(people), rtol=1e-6)
  assert metrics['reward/simulated_individuals'] == sum(people) / 4
  # Each state is the conversation plus the response, from that person's perspective,
  # up to the <self> token that opens their reply.
  partner = conversations[0].turns[-1].speaker
  assert encoded[0].endswith('<other> ' + conversations[0].perspective + ': Here is tea.<eot><self>')
  assert f'<other> {partner}:' not in encoded[0]


def test_a_config_files_routes_follow_an_overridden_algorithm():
  from configs import pretrain as pretrain_config
  config = pretrain_config.get_config('smoke')
  config.algorithm = 'imitation'
  (_, stage), = curriculum.stages(config)
  assert stage.routes.to_dict() == algorithms.get('imitation').ROUTES
  experiment.check(stage)
  config.routes.behavior_nll.perception = 0.5      # a changed table is the user's: kept
  (_, stage), = curriculum.stages(config)
  assert stage.routes.to_dict() == config.routes.to_dict()


def test_inferred_reward_without_a_head_or_reactions_names_the_fix():
  config = _config('infer_reward')
  config.model.reward_head = False
  with pytest.raises(ValueError, match='--config.model.reward_head=True'):
    experiment.check(config)
  config = _config('infer_reward')
  config.data.reaction = ''
  with pytest.raises(ValueError, match='--config.data.reaction=sentiment'):
    experiment.check(config)
  config = _config('empathy')
  config.kindness.reward = 'inferred'
  experiment.check(config)
  config.model.reward_head = False
  with pytest.raises(ValueError, match='empathy reads the inferred reward'):
    experiment.check(config)
