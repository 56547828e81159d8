"""A SentencePiece tokenizer trained on the training split and cached on disk.

The role tokens of tomk.data.conversation (``<self>``, ``<other>``, ``<eot>``) are
user-defined symbols, so each is exactly one id whatever text surrounds it, and
byte fallback lets any text encode without ``<unk>``. Normalisation is switched
off (identity rule, no whitespace folding, no dummy prefix) so that

  decode(encode(x)) == x, and
  encode(a + b) == encode(a) + encode(b) when b starts with a role token,

which is what lets the input pipeline tokenize turn by turn (to attach per-turn
rewards) and still produce the ids a sampler gets from encoding the whole prompt.
"""
from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from typing import Callable, Iterable, Sequence

import sentencepiece as spm

from tomk.data import conversation

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# 256 byte pieces + pad/unk/bos/eos + the role tokens; below this byte fallback can't fit.
_RESERVED = 256 + 4 + len(conversation.ROLE_TOKENS)
MIN_VOCAB_SIZE = 320
# BPE trains on ~100k turns in about a second on one thread; more text barely changes the
# merges of a 1k-32k vocabulary but makes the first run of every experiment slower.
_MAX_TRAINING_SENTENCES = 100_000
_MAX_SENTENCE_BYTES = 16384
_SAMPLING_LOCK = threading.Lock()


class Tokenizer:
  """Text <-> ids with the role tokens as single ids. Picklable (grain may copy it)."""

  def __init__(self, path: str):
    self.path = path
    self._sp = spm.SentencePieceProcessor(model_file=path)
    self.vocab_size = self._sp.vocab_size()
    self.pad_id = self._sp.pad_id()
    self.bos_id = self._sp.bos_id()
    self.eos_id = self._sp.eos_id()
    self.self_id, self.other_id, self.eot_id = (self._single_id(t)
                                                for t in conversation.ROLE_TOKENS)
    self.self_opening = (self.self_id,)      # the ids that open the owner's turn

  def _single_id(self, token: str) -> int:
    ids = self._sp.encode(token)
    if len(ids) != 1:
      raise ValueError(f'{self.path} encodes {token!r} as {ids}, not one id; delete the file so '
                       f'it is retrained with the role tokens as user-defined symbols.')
    return ids[0]

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_prompt(self, text: str) -> list[int]:
    """Tokens of a prompt that a generated reply continues.

    A prompt ends with the opening of a turn, '<self> ' or '<other> Name: ' (conversation.
    prompt_for). SentencePiece joins that space to the next word ('▁Sure'), so it is left
    for the reply's first token to carry: encoded with the prompt it becomes a lone '▁',
    which in training text only ever precedes a word's rare pieces, and replies began
    mid-word ('anted!', 'Gr donestly?'; measured). Prompt + reply tokens then equal the
    tokens of the finished conversation's text.
    """
    return self._sp.encode(text[:-1] if text.endswith(' ') else text)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """encode() of many texts at once (one call into C++, much faster per text)."""
    return self._sp.encode(list(texts))

  def encode_dropout(self, texts: Sequence[str], dropout: float, seed: int) -> list[list[int]]:
    """encode_batch() with BPE-dropout (Provilkov et al., 2020): each merge is skipped with
    probability `dropout`, so a word arrives in pieces of varying size (role tokens stay
    whole). The same (texts, dropout, seed) give the same ids: SentencePiece's sampler has
    one global generator, seeded here under a lock."""
    with _SAMPLING_LOCK:
      spm.set_random_generator_seed(seed)
      # One thread: a batch spread over threads draws from per-thread generators in an
      # order that changes from call to call.
      return self._sp.encode(list(texts), enable_sampling=True, alpha=dropout, nbest_size=-1,
                             num_threads=1)

  def decode(self, ids: Iterable[int]) -> str:
    """The text of `ids`; stops at nothing, drops padding."""
    return self._sp.decode([int(i) for i in ids if int(i) != self.pad_id])

  def __getstate__(self):
    return {'path': self.path}

  def __setstate__(self, state):
    self.__init__(state['path'])

  def __repr__(self):
    return f'Tokenizer({self.path!r}, vocab_size={self.vocab_size})'


def load(path: str):
  """The tokenizer saved at `path`: tomk's SentencePiece model (.model), else a pretrained
  model's (tomk.data.chat_tokenizer)."""
  if path.endswith('.model'):
    return Tokenizer(path)
  from tomk.data import chat_tokenizer
  return chat_tokenizer.ChatTokenizer(path)


def model_path(cache_dir: str, name: str, vocab_size: int) -> str:
  return os.path.join(cache_dir, f'{name}-{vocab_size}.model')


def load_or_train(texts: Callable[[], Iterable[str]], vocab_size: int, cache_dir: str,
                  name: str) -> Tokenizer:
  """Loads `{cache_dir}/{name}-{vocab_size}.model`, training it on texts() if missing.

  Args:
    texts: called only when training is needed; yields training texts (for
      conversations: one rendered turn each, so role tokens sit at text edges).
    vocab_size: the requested vocabulary size. A corpus too small for it gives a
      smaller vocabulary; read Tokenizer.vocab_size for the real one.
    cache_dir: where the model file lives (created if missing).
    name: names the corpus, e.g. 'chitchat'.
  """
  path = model_path(cache_dir, name, vocab_size)
  if not os.path.exists(path):
    _train(texts, vocab_size, path)
  return Tokenizer(path)


def _train(texts: Callable[[], Iterable[str]], vocab_size: int, path: str) -> None:
  if vocab_size < MIN_VOCAB_SIZE:
    raise ValueError(f'vocab_size={vocab_size} is too small: byte fallback needs {_RESERVED} '
                     f'ids for bytes, specials and role tokens. Use vocab_size >= '
                     f'{MIN_VOCAB_SIZE} (e.g. --config.data.vocab_size=512).')
  corpus = [t for t in texts() if t]
  if not corpus:
    raise ValueError(f'No training text for tokenizer {path}: the training split is empty.')
  # A deterministic, evenly spread subsample instead of SentencePiece's own shuffling, and
  # one thread, so the same corpus always gives the same model file.
  stride = max(1, -(-len(corpus) // _MAX_TRAINING_SENTENCES))
  corpus = corpus[::stride]
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model,
        model_type='bpe', vocab_size=vocab_size, hard_vocab_limit=False,
        byte_fallback=True, character_coverage=0.9995, split_digits=True,
        user_defined_symbols=list(conversation.ROLE_TOKENS),
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        normalization_rule_name='identity', remove_extra_whitespaces=False,
        add_dummy_prefix=False, max_sentence_length=_MAX_SENTENCE_BYTES,
        shuffle_input_sentence=False, input_sentence_size=0, num_threads=1, minloglevel=2)
  except RuntimeError as e:
    raise ValueError(f'Training the tokenizer {path} with vocab_size={vocab_size} on '
                     f'{len(corpus)} texts failed: {e}. A larger vocab_size usually fixes '
                     f'"smaller than required_chars".') from e
  _write_atomically(path, model.getvalue())
  logging.info('trained tokenizer %s on %d texts', path, len(corpus))


def _write_atomically(path: str, data: bytes) -> None:
  """Temp file + rename: a racing process sees no file or a whole one, never half."""
  directory = os.path.dirname(path) or '.'
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + '.tmp-')
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache must be readable
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
