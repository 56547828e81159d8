"""Every algorithm: its routing table holds, reward never reaches the prediction stream,
the perspective switch is where the papers put it, and training never sees ground truth."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import empathy as empathy_config
from tomk import algorithms, config as config_lib, curriculum, routing, train
from tomk.algorithms import kindness
from tomk.data import conversation as conversation_lib
from tomk.model import PARTITIONS, Model, ModelConfig

jax.config.update('jax_default_matmul_precision', 'highest')

MODEL = ModelConfig(vocab_size=64, d_model=32, num_heads=2, ffn_dim=64, trunk_layers=1,
                    tower_layers=1, max_len=32)


def _config(name):
  config = config_lib.base()
  config.algorithm = name
  config_lib.set_routes(config, algorithms.get(name).ROUTES)
  return config


def _batch(seed=0, b=4, t=12):
  """A batch with every field any algorithm reads (LM data or a rollout)."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, MODEL.vocab_size, (b, t + 1))
  response = np.zeros((b, t), np.float32)
  response[:, t // 2:] = 1.0
  return {'inputs': jnp.asarray(tokens[:, :-1], jnp.int32),
          'targets': jnp.asarray(tokens[:, 1:], jnp.int32),
          'positions': jnp.broadcast_to(jnp.arange(t), (b, t)),
          'key_mask': jnp.ones((b, t), bool),
          'weights': jnp.asarray(response),
          'response_mask': jnp.asarray(response),
          'old_logprobs': jnp.asarray(-rng.random((b, t)) * 4, jnp.float32),
          'ref_logprobs': jnp.asarray(-rng.random((b, t)) * 4, jnp.float32),
          'advantages': jnp.asarray(rng.normal(size=(b, 1)) * response, jnp.float32),
          'rewards': jnp.asarray(rng.normal(size=(b, 1)) * response, jnp.float32)}


def _objective_gradient(model, params, batch, objective, weight):
  def loss(p):
    logits = model.apply(p, batch['inputs'], batch['positions'],
                         key_mask=batch['key_mask'])[objective.stream]
    out = objective.loss(logits, batch)
    per_token = out[0] if isinstance(out, tuple) else out
    mask = batch[objective.mask]
    return (per_token * mask * weight).sum() / jnp.maximum(mask.sum(), 1.0)
  return jax.grad(loss)(params)


@pytest.mark.parametrize('name', algorithms.ALGORITHMS)
def test_routing_table_holds(name):
  module, config = algorithms.get(name), _config(name)
  model = Model(MODEL)
  params = model.init(jax.random.key(0))
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
  params = model.init(jax.random.key(1))
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


@pytest.mark.parametrize('name, stream', [('empathy', 'prediction'), ('naive_kindness', 'behavior')])
def test_partner_is_simulated_from_its_own_perspective(name, stream):
  context = _RecordingContext(_config(name))
  rewards, _ = algorithms.get(name).rewards(context, None, [_conversation()], ['Here is tea.'],
                                            jax.random.key(0))
  prompt, = context.prompts
  assert context.streams == [stream]
  # Ann's own turns are now "self"; the model's response carries the model's name.
  assert prompt.endswith('<self> ')
  assert '<self> I love tea. Sam, tea or coffee?<eot>' in prompt
  assert '<other> Sam: Here is tea.<eot>' in prompt
  assert '<other> Zoe: Keep the cake for me, Sam.<eot>' in prompt      # third party keeps label
  assert rewards.tolist() == [1.0]


def test_kindness_over_all_known_individuals_includes_third_parties():
  config = _config('empathy')
  config.kindness.individuals = 'all'
  context = _RecordingContext(config)
  rewards, metrics = kindness.estimated_rewards(context, None, [_conversation()], ['Cake!'],
                                                jax.random.key(0), 'prediction')
  assert len(context.prompts) == 2 and metrics['reward/simulated_individuals'] == 2
  assert '<self> Keep the cake for me, Sam.' in context.prompts[0]      # Zoe's view
  assert rewards.tolist() == [-2.0]


def test_training_never_reads_ground_truth(data_dir, monkeypatch, tmp_path):
  from tomk.socialworld import scenarios
  def forbidden(*args, **kwargs):
    raise AssertionError('ground truth reached a training step')
  config = empathy_config.get_config('smoke')
  _, stage = curriculum.stages(config)[-1]
  stage.rewards.extrinsic = 'rater'    # no reward_model stage has run in this test
  from tomk import sharding
  from tomk.data import pipeline
  tokenizer = pipeline.tokenizer_for(stage.data)
  mesh = sharding.make_mesh(stage.mesh)
  module = algorithms.get(stage.algorithm)
  built = train.build(stage, mesh, tokenizer.vocab_size, module)
  source = train.RolloutSource(stage, tokenizer, built, module, str(tmp_path))
  state = built.init_state()
  state['reference'] = jax.tree.map(jnp.copy, state['params'])
  for name in ('partner_reward', 'third_party_rewards', 'reaction'):
    monkeypatch.setattr(scenarios, name, forbidden)
  batch, metrics = source.next(state, 1)
  state, step_metrics = built.train_step(state, batch)
  assert np.isfinite(float(step_metrics['loss/rl']))
  assert 'reward/mean' in metrics
