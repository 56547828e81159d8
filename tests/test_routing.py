"""Gradient routing: each partition gets exactly the routed sum of per-objective gradients."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from tomk import config as config_lib, optimizer, routing, train
from tomk.algorithms import pretrain
from tomk.model import PARTITIONS, Model, ModelConfig

jax.config.update('jax_default_matmul_precision', 'highest')

MODEL = ModelConfig(vocab_size=64, d_model=32, num_heads=2, ffn_dim=64, trunk_layers=1,
                    tower_layers=1, max_len=32)


def _batch(seed=0, b=4, t=12):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, MODEL.vocab_size, (b, t + 1))
  weights = (rng.random((b, t)) > 0.1).astype(np.float32)
  return {'inputs': jnp.asarray(tokens[:, :-1], jnp.int32),
          'targets': jnp.asarray(tokens[:, 1:], jnp.int32),
          'weights': jnp.asarray(weights),
          'rewards': jnp.asarray(rng.normal(size=(b, t)), jnp.float32)}


def _separate_gradient(model, params, batch, objective, weight):
  """Plain autodiff of one objective, weighted per token, through the whole model."""
  def loss(p):
    logits = model.apply(p, batch['inputs'])[objective.stream]
    per_token = objective.loss(logits, batch)
    mask = batch[objective.mask]
    return (per_token * mask * weight).sum() / jnp.maximum(mask.sum(), 1.0)
  return jax.grad(loss)(params)


@pytest.mark.parametrize('routes', [
    pretrain.ROUTES,
    {'prediction_nll': {'prediction': 1.0}, 'behavior_nll': {'behavior': 0.5, 'perception': 'reward_gate'}},
    {'prediction_nll': {'prediction': 2.0, 'perception': 0.25}, 'behavior_nll': {'behavior': 1.0}},
    {'behavior_nll': {'behavior': 'reward_gate', 'perception': 'reward_gate'}},
])
@pytest.mark.parametrize('constant_gate', [False, True])   # a gate of 1: one tower VJP
def test_partition_gradient_is_routed_sum_of_objective_gradients(routes, constant_gate):
  model = Model(MODEL)
  params = model.init(jax.random.key(0))
  batch = _batch()
  gates = {'reward_gate': jnp.ones_like(batch['rewards']) if constant_gate
           else jnp.clip(batch['rewards'], 0.0, 1.0)}
  got, metrics = routing.routed_gradients(model, params, batch, pretrain.objectives(None), routes, gates)
  expected = jax.tree.map(jnp.zeros_like, params)
  for o in pretrain.objectives(None):
    for partition, w in routes.get(o.name, {}).items():
      weight = gates[w] if isinstance(w, str) else w
      g = _separate_gradient(model, params, batch, o, weight)[partition]
      expected[partition] = jax.tree.map(jnp.add, expected[partition], g)
  for p in PARTITIONS:
    chex.assert_trees_all_close(got[p], expected[p], atol=1e-6, rtol=1e-5)
  assert set(metrics) == {'loss/prediction_nll', 'loss/behavior_nll'}


def _train_setup(routes, frozen=()):
  config = config_lib.base()
  config_lib.set_routes(config, routes)
  for p in PARTITIONS:
    config.optimizer[p].warmup_steps = 0     # move on the first step
  for p in frozen:
    config.optimizer[p].frozen = True
  model = Model(MODEL)
  tx = optimizer.make(config.optimizer, routing.routed_partitions(routes), total_steps=10)
  state = train.make_state(model, tx, jax.random.key(0))
  step = jax.jit(train.make_train_step(model, tx, pretrain, config))
  return state, step


def _changed(before, after):
  return {p: any(not np.array_equal(a, b) for a, b in
                 zip(jax.tree.leaves(before[p]), jax.tree.leaves(after[p]))) for p in PARTITIONS}


def test_partition_routed_nothing_stays_bit_identical():
  state, step = _train_setup({'prediction_nll': {'prediction': 1.0, 'perception': 1.0}})
  before = jax.device_get(state['params'])
  for seed in range(3):
    state, _ = step(state, _batch(seed))
  assert _changed(before, jax.device_get(state['params'])) == {
      'perception': True, 'prediction': True, 'behavior': False}


def test_frozen_partition_stays_bit_identical():
  state, step = _train_setup(pretrain.ROUTES, frozen=('perception',))
  before = jax.device_get(state['params'])
  state, _ = step(state, _batch())
  assert _changed(before, jax.device_get(state['params'])) == {
      'perception': False, 'prediction': True, 'behavior': True}


def test_zero_reward_gate_leaves_behavior_unchanged():
  state, step = _train_setup(pretrain.ROUTES)
  before = jax.device_get(state['params'])
  batch = _batch()
  batch['rewards'] = -jnp.abs(batch['rewards'])          # max(0, R) = 0 everywhere
  state, metrics = step(state, batch)
  assert float(metrics['gate/reward_gate']) == 0.0
  assert _changed(before, jax.device_get(state['params'])) == {
      'perception': True, 'prediction': True, 'behavior': False}


def test_gate_scales_behavior_gradient_only():
  model = Model(MODEL)
  params = model.init(jax.random.key(1))
  batch = _batch(3)
  ones = {'reward_gate': jnp.ones_like(batch['rewards'])}
  half = {'reward_gate': 0.5 * jnp.ones_like(batch['rewards'])}
  g1, _ = routing.routed_gradients(model, params, batch, pretrain.objectives(None), pretrain.ROUTES, ones)
  g2, _ = routing.routed_gradients(model, params, batch, pretrain.objectives(None), pretrain.ROUTES, half)
  chex.assert_trees_all_close(jax.tree.map(lambda x: 0.5 * x, g1['behavior']), g2['behavior'],
                              atol=1e-7)
  chex.assert_trees_all_close(g1['perception'], g2['perception'])
  chex.assert_trees_all_close(g1['prediction'], g2['prediction'])


def test_bad_routes_are_refused_with_the_fix():
  with pytest.raises(ValueError, match='route it to behavior'):
    routing.check_routes(pretrain.objectives(None), {'behavior_nll': {'prediction': 1.0}})
  with pytest.raises(ValueError, match='defines only'):
    routing.check_routes(pretrain.objectives(None), {'rl': {'behavior': 1.0}})


def test_nonfinite_step_is_not_applied_and_recorded():
  state, step = _train_setup(pretrain.ROUTES)
  before = jax.device_get(state['params'])
  batch = _batch()
  batch['rewards'] = batch['rewards'].at[0, 0].set(jnp.nan)
  state, _ = step(state, batch)
  assert int(state['nonfinite_step']) == 0
  assert not any(_changed(before, jax.device_get(state['params'])).values())
