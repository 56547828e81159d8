"""A pretrained model's own tokenizer behind the interface of tomk.data.tokenizer.Tokenizer.

tomk renders conversations with its role tokens (tomk.data.conversation): ``<self> `` opens
the perspective owner's turn, ``<other> Name: `` anyone else's, ``<eot>`` ends a turn. A chat
model was tuned on its chat template instead, so this tokenizer writes the one as the other:
the owner's turns are the template's assistant turns, everyone else's are user turns that
open with the speaker's name ("<|im_start|>user\\nPriya: …<|im_end|>\\n"), and the
end-of-turn marker is the template's. Multi-party talk and the name switch then work as they
do with tomk's own tokenizer. ChatML (SmolLM2, Qwen2) and Llama 3's template are known.

Sources: a tokenizer.json, a Hugging Face directory holding one, a .gguf file (its byte-level
BPE vocabulary and merges), or 'smollm2'.
"""
from __future__ import annotations

import json
import os
import re
from typing import Iterable, Sequence

import numpy as np

from tomk.data import conversation

# template: (own turn opens, another's turn opens, a turn ends, padding and end of document)
TEMPLATES = {
    'chatml': ('<|im_start|>assistant\n', '<|im_start|>user\n', '<|im_end|>\n',
               '<|endoftext|>'),
    'llama3': ('<|start_header_id|>assistant<|end_header_id|>\n\n',
               '<|start_header_id|>user<|end_header_id|>\n\n', '<|eot_id|>', '<|end_of_text|>'),
}
# A turn's opening role token (its space optional: a prompt may end before it), or <eot>.
_TURN = re.compile(f'(?:^|(?<={re.escape(conversation.EOT)}))({re.escape(conversation.SELF)}|'
                   f'{re.escape(conversation.OTHER)}) ?|({re.escape(conversation.EOT)})')
_MARKERS = {'chatml': ('<|im_start|>', '<|im_end|>'), 'llama3': ('<|start_header_id|>',
                                                                   '<|eot_id|>')}


class ChatTokenizer:
  """Text with tomk's role tokens <-> a pretrained tokenizer's ids. Picklable."""

  def __init__(self, path: str):
    from tomk.foundation import checkpoint      # only to find 'smollm2'
    self.path = path
    resolved = checkpoint.resolve(path)
    self._tokenizer, model_vocab = _load(resolved)
    vocab = self._tokenizer.get_vocab(with_added_tokens=True)
    self.template = next((name for name, (start, end) in _MARKERS.items()
                          if start in vocab and end in vocab), None)
    if self.template is None:
      raise ValueError(f'{path}: its tokenizer has no chat template tomk knows (ChatML '
                       f'<|im_start|>/<|im_end|>, or Llama 3 headers).')
    own, other, end, pad = TEMPLATES[self.template]
    self._templates = {conversation.SELF: own, conversation.OTHER: other,
                       conversation.EOT: end}
    self.vocab_size = max(model_vocab or 0, self._tokenizer.get_vocab_size(True))
    self.pad_id = self.eos_id = vocab[pad]
    self.bos_id = self.pad_id                  # chat models here add no BOS
    self.eot_id = self._single_id(end.strip('\n'))
    self.self_opening = tuple(self._tokenizer.encode(own, add_special_tokens=False).ids)
    self.other_opening = tuple(self._tokenizer.encode(other, add_special_tokens=False).ids)
    self.self_id = self.self_opening[0]

  def _single_id(self, text: str) -> int:
    ids = self._tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) != 1:
      raise ValueError(f'{self.path} encodes {text!r} as {ids}, not one id.')
    return ids[0]

  def to_template(self, text: str) -> str:
    """The chat template's text of tomk's rendered text. Only role tokens that open a turn
    (at the start, or after <eot>) are turn openings; a <self> inside a turn is a mention of
    the perspective owner (the name switch) and stays as it is."""
    return _TURN.sub(lambda m: self._templates[m.group(1) or m.group(2)], text)

  def from_template(self, text: str) -> str:
    own, other, end, _ = TEMPLATES[self.template]
    for role, template in ((conversation.SELF + ' ', own), (conversation.OTHER + ' ', other),
                           (conversation.EOT, end)):
      text = text.replace(template, role)
    return text.replace(end.strip('\n'), conversation.EOT)   # a turn cut before its newline

  def encode(self, text: str) -> list[int]:
    return self._tokenizer.encode(self.to_template(text), add_special_tokens=False).ids

  def encode_prompt(self, text: str) -> list[int]:
    """A prompt's tokens: as tomk.data.tokenizer.Tokenizer.encode_prompt, the space a prompt
    ends with ('<other> Sam: ') is left to the reply's first token (byte-level BPE joins it to
    the next word too)."""
    return self.encode(text[:-1] if text.endswith(' ') else text)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    encoded = self._tokenizer.encode_batch([self.to_template(t) for t in texts],
                                           add_special_tokens=False)
    return [e.ids for e in encoded]

  def encode_dropout(self, texts, dropout, seed):
    raise ValueError('data.subword_dropout needs tomk\'s own SentencePiece tokenizer; set it to '
                     '0 with a pretrained tokenizer (data.tokenizer).')

  def decode(self, ids: Iterable[int]) -> str:
    ids = [int(i) for i in ids if int(i) != self.pad_id]
    return self.from_template(self._tokenizer.decode(ids, skip_special_tokens=False))

  def save(self, directory: str) -> None:
    """tokenizer.json and tokenizer_config.json, as transformers' AutoTokenizer reads them."""
    os.makedirs(directory, exist_ok=True)
    self._tokenizer.save(os.path.join(directory, 'tokenizer.json'))
    own, other, end, pad = TEMPLATES[self.template]
    template = ("{% for m in messages %}{{ '" + other.split('user')[0] + "' + m['role'] + '"
                + other.split('user')[1].replace('\n', '\\n') + "' + m['content'] + '"
                + end.replace('\n', '\\n') + "' }}{% endfor %}")
    with open(os.path.join(directory, 'tokenizer_config.json'), 'w') as f:
      json.dump({'tokenizer_class': 'PreTrainedTokenizerFast', 'eos_token': end.strip('\n'),
                 'pad_token': pad, 'bos_token': None, 'add_bos_token': False,
                 'chat_template': template}, f, indent=2)

  def __getstate__(self):
    return {'path': self.path}

  def __setstate__(self, state):
    self.__init__(state['path'])

  def __repr__(self):
    return f'ChatTokenizer({self.path!r}, vocab_size={self.vocab_size}, {self.template})'


def _load(path: str):
  """(tokenizers.Tokenizer, the model's vocabulary size or None) from any source."""
  import tokenizers
  if path.endswith('.gguf'):
    return _from_gguf(path)
  file = os.path.join(path, 'tokenizer.json') if os.path.isdir(path) else path
  if not os.path.exists(file):
    raise ValueError(f'data.tokenizer={path!r}: no tokenizer.json there.')
  vocab = None
  config = os.path.join(os.path.dirname(file), 'config.json')
  if os.path.exists(config):
    with open(config) as f:
      vocab = json.load(f).get('vocab_size')
  return tokenizers.Tokenizer.from_file(file), vocab


def _from_gguf(path: str):
  """A byte-level BPE tokenizer from a GGUF file's vocabulary and merges (llama.cpp's 'gpt2'
  model; its 'smollm' and 'gpt2' pre-tokenizers split digits one by one, then as GPT-2)."""
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers
  from tomk.foundation.checkpoint import _gguf_reader, gguf_field
  reader = _gguf_reader(path)
  kind = gguf_field(reader, 'tokenizer.ggml.model')
  if kind != 'gpt2':
    raise ValueError(f'{path}: a {kind!r} tokenizer; tomk builds byte-level BPE (gpt2) from '
                     f'GGUF. Point data.tokenizer at the model\'s tokenizer.json instead.')
  tokens = gguf_field(reader, 'tokenizer.ggml.tokens')
  merges = [tuple(m.split(' ', 1)) for m in gguf_field(reader, 'tokenizer.ggml.merges')]
  types = np.asarray(gguf_field(reader, 'tokenizer.ggml.token_type'))
  bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                   ignore_merges=False)
  tokenizer = tokenizers.Tokenizer(bpe)
  pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
  if gguf_field(reader, 'tokenizer.ggml.pre') == 'smollm':
    pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
  tokenizer.pre_tokenizer = pre_tokenizers.Sequence(pre)
  tokenizer.decoder = decoders.ByteLevel()
  tokenizer.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False)
                                for t, kind in zip(tokens, types) if kind == 3])
  return tokenizer, len(tokens)
