"""A pretrained checkpoint as the three-partition model, and a stream back as a checkpoint.

Import (001 §4.2, "a foundation model with portions that are and aren't fine-tuned"): the
embedding and the lower `trunk_layers` blocks become perception; the upper blocks are copied
into both towers; the final norm and readout into both streams (a tied embedding is copied,
not shared: each stream's readout then trains on its own). Leaves the checkpoint has no
counterpart for (LoRA adapters, the reward head) keep their initial values, which leave the
function unchanged (lora_b and the head start at zero).

Export writes one stream (the behavior stream is the deployable policy) as a Hugging Face
Llama- or Qwen2-style safetensors directory, LoRA merged, with the tokenizer.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from tomk.foundation.checkpoint import Checkpoint
from tomk.model import Model, ModelConfig


def model_fields(architecture: dict, trunk_layers: int, layers: int | None = None) -> dict:
  """ModelConfig fields (config.model keys) of a checkpoint split at `trunk_layers`, using
  its first `layers` blocks (default: all)."""
  a = dict(architecture)
  total = a.pop('layers')
  a.pop('family')
  layers = total if layers is None else layers
  if not 0 <= trunk_layers < layers <= total:
    raise ValueError(f'model.trunk_layers={trunk_layers} of {layers} blocks: the checkpoint '
                     f'has {total}; keep at least one for the towers.')
  return {**a, 'trunk_layers': trunk_layers, 'tower_layers': layers - trunk_layers}


# tomk's leaf in a block <-> Hugging Face's tensor suffix, and how the layout changes.
def _block_leaves(c: ModelConfig):
  d, h, kv, hd = c.d_model, c.num_heads, c.kv_heads, c.head_dim
  matrix = lambda shape: (lambda w: w.T.reshape(shape), lambda k: k.reshape(shape[0], -1).T)
  heads_in = lambda: (lambda w: w.T.reshape(h, hd, d), lambda k: k.reshape(h * hd, d).T)
  vector = lambda shape: (lambda b: b.reshape(shape), lambda b: b.reshape(-1))
  leaves = {
      ('attention_norm', 'scale'): ('input_layernorm.weight', vector((d,))),
      ('mlp_norm', 'scale'): ('post_attention_layernorm.weight', vector((d,))),
      ('attention', 'query', 'kernel'): ('self_attn.q_proj.weight', matrix((d, h, hd))),
      ('attention', 'key', 'kernel'): ('self_attn.k_proj.weight', matrix((d, kv, hd))),
      ('attention', 'value', 'kernel'): ('self_attn.v_proj.weight', matrix((d, kv, hd))),
      ('attention', 'out', 'kernel'): ('self_attn.o_proj.weight', heads_in()),
      ('gate', 'kernel'): ('mlp.gate_proj.weight', matrix((d, c.ffn_dim))),
      ('up', 'kernel'): ('mlp.up_proj.weight', matrix((d, c.ffn_dim))),
      ('down', 'kernel'): ('mlp.down_proj.weight', matrix((c.ffn_dim, d))),
  }
  if c.attention_bias:
    for name, proj, heads in (('query', 'q', h), ('key', 'k', kv), ('value', 'v', kv)):
      leaves[('attention', name, 'bias')] = (f'self_attn.{proj}_proj.bias', vector((heads, hd)))
  return leaves


def _mapping(c: ModelConfig, tied: bool):
  """[(tomk path, Hugging Face name, to_tomk, to_hf)] over the whole tree; each tower's final
  norm and readout come from the checkpoint's (the embedding's, when tied)."""
  d = c.d_model
  out = [(('perception', 'embedding'), 'model.embed_tokens.weight', lambda w: w, lambda w: w)]
  for layer in range(c.trunk_layers + c.tower_layers):
    if layer < c.trunk_layers:
      places = [('perception', f'block_{layer}')]
    else:
      places = [(s, f'block_{layer - c.trunk_layers}') for s in ('behavior', 'prediction')]
    for leaf, (suffix, (to_tomk, to_hf)) in _block_leaves(c).items():
      for place in places:
        out.append((place + leaf, f'model.layers.{layer}.{suffix}', to_tomk, to_hf))
  readout = 'model.embed_tokens.weight' if tied else 'lm_head.weight'
  for stream in ('behavior', 'prediction'):
    out.append(((stream, 'final_norm', 'scale'), 'model.norm.weight', lambda w: w.reshape(d),
                lambda w: w))
    out.append(((stream, 'readout', 'kernel'), readout, lambda w: w.T, lambda k: k.T))
  return out


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _set(tree, path, value):
  for key in path[:-1]:
    tree = tree[key]
  tree[path[-1]] = value


def check(config) -> None:
  """Errors for model.init_from against config.model: the architecture must be the file's
  (configs/pretrained.py copies it), with at most as many blocks; data.tokenizer the file's."""
  m = config.model
  if not m.init_from:
    return
  architecture = Checkpoint(m.init_from).architecture
  differs = [f'model.{k}={v!r} (the config says {m[k]!r})'
             for k, v in model_fields(architecture, 0).items()
             if k not in ('trunk_layers', 'tower_layers', 'max_len', 'vocab_size')
             and m[k] != v]
  if differs:
    raise ValueError(f'model.init_from={m.init_from!r} is a checkpoint with '
                     f'{", ".join(differs)}: start from configs/pretrained.py, which sets them '
                     f'from the file.')
  if m.trunk_layers + m.tower_layers > architecture['layers']:
    raise ValueError(f'model.trunk_layers + model.tower_layers = '
                     f'{m.trunk_layers + m.tower_layers}, but {m.init_from!r} has '
                     f'{architecture["layers"]} blocks.')
  if not config.data.tokenizer:
    raise ValueError(f'model.init_from={m.init_from!r} needs its own tokenizer: set '
                     f'data.tokenizer={m.init_from!r}.')


def load(path: str, model: Model, params):
  """`params` (the model's initial parameters) with the checkpoint at `path` in them.

  The model may use fewer blocks than the checkpoint has (its first trunk_layers +
  tower_layers: a truncated model for quick tests). Each leaf keeps the sharding of the leaf
  it replaces: every process builds only the shards it holds.
  """
  checkpoint = Checkpoint(path)
  c = model.config
  out = jax.tree.map(lambda x: x, params)       # a copy of the dict structure
  cache = {}
  for leaf_path, name, to_tomk, _ in _mapping(c, checkpoint.tied):
    if name not in cache:
      cache = {name: checkpoint.get(name)}     # one tensor in memory at a time, read once
    value = np.ascontiguousarray(to_tomk(cache[name]), np.float32)
    old = _get(params, leaf_path)
    if value.shape != old.shape:
      raise ValueError(f'{checkpoint.path}: {name} gives {value.shape} for '
                       f'{"/".join(leaf_path)}, which is {old.shape}.')
    sharding = getattr(old, 'sharding', None)
    _set(out, leaf_path, jax.numpy.asarray(value) if sharding is None else
         jax.make_array_from_callback(value.shape, sharding, lambda i, v=value: v[i]))
  return out


def merged(tower_or_perception, alpha: float):
  """The tree with every LoRA adapter merged into its kernel (W + A·B·alpha/rank)."""
  def merge(node):
    if not isinstance(node, dict):
      return node
    node = {k: merge(v) for k, v in node.items()}
    if 'lora_a' in node:
      a, b = np.asarray(node.pop('lora_a')), np.asarray(node.pop('lora_b'))
      node['kernel'] = np.asarray(node['kernel']) + np.tensordot(a, b, 1) * (alpha / a.shape[-1])
    return node
  return merge(tower_or_perception)


def export(params, config: ModelConfig, stream: str, directory: str, tokenizer=None,
           family: str = 'llama') -> None:
  """Writes `stream` (behavior or prediction, on perception) as a Hugging Face directory:
  config.json, model.safetensors and, given a chat tokenizer, tokenizer.json."""
  from safetensors.numpy import save_file
  params = {p: merged(jax.tree.map(np.asarray, params[p]), config.lora_alpha)
            for p in ('perception', stream)}
  tensors = {}
  for leaf_path, name, _, to_hf in _mapping(config, tied=False):
    if leaf_path[0] in params:
      tensors[name] = np.ascontiguousarray(to_hf(_get(params, leaf_path)), np.float32)
  os.makedirs(directory, exist_ok=True)
  save_file(tensors, os.path.join(directory, 'model.safetensors'), metadata={'format': 'pt'})
  hf = {
      'architectures': ['Qwen2ForCausalLM' if family == 'qwen2' else 'LlamaForCausalLM'],
      'model_type': family, 'hidden_size': config.d_model,
      'intermediate_size': config.ffn_dim, 'num_attention_heads': config.num_heads,
      'num_key_value_heads': config.kv_heads, 'head_dim': config.head_dim,
      'num_hidden_layers': config.trunk_layers + config.tower_layers,
      'rms_norm_eps': config.norm_eps, 'rope_theta': config.rope_base,
      'vocab_size': config.vocab_size, 'max_position_embeddings': config.max_len,
      'tie_word_embeddings': False, 'attention_bias': config.attention_bias,
      'hidden_act': 'silu', 'torch_dtype': 'float32'}
  if config.rope_scaling:
    kind, *settings = config.rope_scaling.split(',')
    s = {k: float(v) for k, v in (item.split('=') for item in settings)}
    if 'original_max_len' in s:
      s['original_max_position_embeddings'] = int(s.pop('original_max_len'))
    hf['rope_scaling'] = {'rope_type': kind, **s}
  if tokenizer is not None:
    hf.update(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eot_id,
              pad_token_id=tokenizer.pad_id)
    tokenizer.save(directory)
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(hf, f, indent=2)
