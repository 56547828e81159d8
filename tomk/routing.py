"""Gradient routing (SPEC §2): objectives, a routing table, and one forward pass.

An algorithm is a set of objectives, each a per-token loss on one stream's logits,
and a routing table ``{objective: {partition: weight}}`` that says which partitions
each objective updates. A weight is a number or the name of a per-token gate the
algorithm computes for the step (e.g. ``'reward_gate'`` = clip(max(0, R))).

The gradient a partition receives is exactly Σ_objectives weight · ∂objective/∂partition.
Because behavior and prediction towers read the trunk output h and nothing else,
we run the model once, keep its VJPs, and push each objective's cotangent only
down the paths its routes allow:

  tower parameters   ← Σ_{o on that stream} w[o][tower] · ∂L_o/∂logits
  trunk (perception) ← Σ_o w[o][perception] · ∂L_o/∂logits, carried through the tower to h

When a tower's two weightings differ (a gated objective that still updates
perception ungated) the tower's VJP is applied twice; the forward pass never is.

Most objectives read a stream's logits; one may read another output of the same
tower pass instead (``output='reward'``: the prediction tower's reward head).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from tomk.model import PARTITIONS, STREAMS, Model

Routes = Mapping[str, Mapping[str, float | str]]


@dataclasses.dataclass(frozen=True)
class Objective:
  """A per-token loss on one stream: loss(logits [B,T,V], batch) -> [B,T].

  The loss may also return per-token metrics: ([B,T], {name: [B,T]}); their
  masked means are logged as ``<objective>/<name>``. With output='reward' the loss
  reads the stream's reward head [B,T] (Model.stream_outputs) instead of its logits.
  """
  name: str
  stream: str
  loss: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]
  mask: str = 'weights'     # batch key holding the per-token loss weights
  output: str = 'logits'    # 'logits' or 'reward'


def token_nll(logits, batch, targets_key='targets'):
  """Negative log-likelihood of the next token, per position."""
  targets = batch[targets_key]
  return jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]


def check_routes(objectives: list[Objective], routes: Routes, gates=None) -> None:
  """Validates a routing table against the objectives and, if given, the names of the
  algorithm's gates; errors say what to change."""
  names = {o.name for o in objectives}
  for name in routes:
    if name not in names:
      raise ValueError(f'routes has objective {name!r}, but this algorithm defines only '
                       f'{sorted(names)}; remove it or rename it.')
  for o in objectives:
    for partition in routes.get(o.name, {}):
      if partition not in PARTITIONS:
        raise ValueError(f'routes.{o.name} names partition {partition!r}; '
                         f'partitions are {PARTITIONS}.')
      if partition in STREAMS and partition != o.stream:
        raise ValueError(f'objective {o.name!r} is a loss on the {o.stream} stream, so it has no '
                         f'gradient for {partition}; route it to {o.stream} and/or perception.')
      weight = routes[o.name][partition]
      if isinstance(weight, str) and gates is not None and weight not in gates:
        raise ValueError(f'routes.{o.name}.{partition}={weight!r} is not a gate of this '
                         f'algorithm; give a number or one of its gates '
                         f'{sorted(gates) or "(it has none)"}.')


def routed_partitions(routes: Routes) -> set[str]:
  return {p for table in routes.values() for p, w in table.items() if not _is_zero(w)}


def _is_zero(weight) -> bool:
  return not isinstance(weight, str) and float(weight) == 0.0


def _weight(weight, gates):
  if isinstance(weight, str):
    if weight not in gates:
      raise ValueError(f'route weight {weight!r} is not a gate of this algorithm; '
                       f'gates are {sorted(gates)}.')
    return gates[weight]
  return weight


def _with_aux(loss_output):
  """An objective's loss returns per-token losses, optionally with per-token metrics."""
  if isinstance(loss_output, tuple):
    return loss_output
  return loss_output, {}


def _add(a, b):
  if b is None:
    return a
  return b if a is None else a + b


def update_scales(objectives: list[Objective], routes: Routes, gates, batch) -> dict[str, jax.Array]:
  """Per-partition step sizes from the gates: the reward-gated learning rate of 001 Alg 5.

  A partition whose every route carries the same gate takes a step scaled by that
  gate's mean over the batch (η_r = max(0, R)·η). Adaptive optimizers such as Adam
  would otherwise normalise a uniform gate away: a batch of zero reward must not
  move the partition at all. Partitions with ungated or mixed routes get 1.
  """
  scales = {}
  for partition in PARTITIONS:
    routed = [(o, routes[o.name][partition]) for o in objectives
              if not _is_zero(routes.get(o.name, {}).get(partition, 0.0))]
    weights = {w for _, w in routed}
    if len(weights) == 1 and isinstance(gate := weights.pop(), str):
      mask = batch[routed[0][0].mask].astype(jnp.float32)
      scales[partition] = (_weight(gate, gates) * mask).sum() / jnp.maximum(mask.sum(), 1.0)
    else:
      scales[partition] = jnp.ones((), jnp.float32)
  return scales


def attention_mask(batch):
  """The keys each position may attend to, besides the causal mask: the batch's 'key_mask'
  ([B, S], padding); with packed documents ('segments', data.document_mask) [B, T, S], true
  where query and key are in the same document (and the key is not masked); None for no
  further mask."""
  key_mask = batch.get('key_mask')
  if 'segments' not in batch:
    return key_mask
  segments = batch['segments']
  same = segments[:, :, None] == segments[:, None, :]
  return same if key_mask is None else same & key_mask[:, None, :]


def routed_gradients(model: Model, params, batch, objectives: list[Objective], routes: Routes,
                     gates: Mapping[str, jax.Array] | None = None):
  """Gradients of every partition under the routing table, from one forward pass.

  Returns (grads with the structure of params, metrics): metrics hold each
  objective's (ungated) mean loss as ``loss/<name>``. A partition routed nothing
  gets zeros.
  """
  gates = gates or {}
  inputs, positions, key_mask = batch['inputs'], batch.get('positions'), attention_mask(batch)
  h, trunk_vjp = jax.vjp(lambda p: model.perceive(p, inputs, positions, key_mask=key_mask)[0],
                         params['perception'])
  metrics, grads, h_cotangent = {}, {}, None
  for stream in STREAMS:
    on_stream = [o for o in objectives if o.stream == stream]
    if not on_stream:
      continue
    reads_reward = any(o.output == 'reward' for o in on_stream)
    outputs, tower_vjp = jax.vjp(
        lambda p, x: model.stream_outputs(p, x, positions, key_mask, reward=reads_reward),
        params[stream], h)
    to_tower, to_trunk = {}, {}          # cotangents on the stream's outputs
    shared = True                        # every objective weights tower and trunk alike
    for o in on_stream:
      per_token, loss_vjp, token_metrics = jax.vjp(lambda y, o=o: _with_aux(o.loss(y, batch)),
                                                   outputs[o.output], has_aux=True)
      mask = batch[o.mask].astype(jnp.float32)
      count = jnp.maximum(mask.sum(), 1.0)
      metrics[f'loss/{o.name}'] = (per_token * mask).sum() / count
      for k, v in token_metrics.items():
        metrics[f'{o.name}/{k}'] = (v * mask).sum() / count
      table = routes.get(o.name, {})
      w_tower, w_trunk = table.get(stream, 0.0), table.get('perception', 0.0)

      def cotangent(w):
        return loss_vjp((mask * _weight(w, gates) / count).astype(per_token.dtype))[0]

      c_tower = None if _is_zero(w_tower) else cotangent(w_tower)
      c_trunk = c_tower if w_trunk == w_tower else (None if _is_zero(w_trunk) else cotangent(w_trunk))
      to_tower[o.output] = _add(to_tower.get(o.output), c_tower)
      to_trunk[o.output] = _add(to_trunk.get(o.output), c_trunk)
      shared = shared and w_trunk == w_tower

    def full(cotangents):       # a cotangent for every output, None if no objective sent one
      if all(c is None for c in cotangents.values()):
        return None
      return {k: cotangents[k] if cotangents.get(k) is not None else jnp.zeros_like(v)
              for k, v in outputs.items()}

    to_tower, to_trunk = full(to_tower), full(to_trunk)
    if shared and to_tower is not None:      # one VJP serves both
      grads[stream], g_h = tower_vjp(to_tower)
      h_cotangent = _add(h_cotangent, g_h)
      continue
    if to_tower is not None and to_trunk is not None:
      # Tower and trunk weighted apart (a gate on one): two VJPs through the tower, unless
      # this batch's gate leaves their cotangents equal (a constant reward of 1), when one
      # serves both. The test costs a pass over the cotangents; a tower VJP costs far more.
      def apart():
        return tower_vjp(to_tower)[0], tower_vjp(to_trunk)[1]
      equal = jnp.all(jnp.stack([jnp.all(to_tower[k] == to_trunk[k]) for k in to_tower]))
      tower_grads, g_h = jax.lax.cond(equal, lambda: tower_vjp(to_tower), apart)
      grads[stream] = tower_grads
      h_cotangent = _add(h_cotangent, g_h)
      continue
    if to_tower is not None:
      grads[stream] = tower_vjp(to_tower)[0]
    if to_trunk is not None:
      h_cotangent = _add(h_cotangent, tower_vjp(to_trunk)[1])
  if h_cotangent is not None:
    grads['perception'] = trunk_vjp(h_cotangent)[0]
  grads = {p: grads[p] if p in grads else jax.tree.map(jnp.zeros_like, params[p])
           for p in PARTITIONS}
  return grads, metrics
