"""Sequence packing: documents back to back in rows of a fixed length (as big_vision's
sequence_packing), with a checkpointable iterator state.

data.packing 'concat' cuts a row wherever it ends; 'whole' never cuts a document that
fits in a row (the row is padded instead). data.document_mask numbers each row's
documents ('segment') so attention can stay within one (routing.attention_mask).
"""
from __future__ import annotations

from typing import Any

import grain
import numpy as np

PACKINGS = ('concat', 'whole')   # data.packing: see PackIterDataset


def packs_whole(data_config) -> bool:
  """Whether data.packing is 'whole'; an error naming the choices for any other value."""
  packing = data_config.packing
  if packing not in PACKINGS:
    raise ValueError(f'data.packing={packing!r}; choose one of {PACKINGS}.')
  return packing == 'whole'


class PackIterDataset(grain.IterDataset):
  """Concat-then-split: conversations back to back, cut into rows of `row_length` tokens.

  A conversation longer than what is left of a row continues in the next row; the last
  row of a finite stream is padded (token 0, real 0). grain's
  experimental.ConcatThenSplitIterDataset does the same but (grain 0.2.18) its state
  holds tuples that do not survive a JSON round trip, so restoring from a grain/orbax
  checkpoint can skip data; this one's state is {'parent': ..., 'offset': int}.

  whole=True (data.packing='whole'): a document that fits in a row is never cut. When it
  does not fit in what is left of the row, the row is padded and the document opens the
  next one. A story cut in two leaves its questions without the sentences that answer
  them; longer documents are still cut.

  segments=True (data.document_mask): each row also gets 'segment', int32, a number per
  document piece of the row (increasing, distinct; 0 on padding), so attention can stay
  within a document (routing.attention_mask).
  """

  def __init__(self, parent: grain.IterDataset, row_length: int, whole: bool = False,
               segments: bool = False):
    super().__init__(parent)
    self._row_length, self._whole, self._segments = row_length, whole, segments

  def __iter__(self):
    return PackIterator(self._parent.__iter__(), self._row_length, self._whole,
                         self._segments)


class PackIterator(grain.DatasetIterator):

  def __init__(self, parent: grain.DatasetIterator, row_length: int, whole: bool = False,
               segments: bool = False):
    super().__init__(parent)
    self._row_length, self._whole, self._segments = row_length, whole, segments
    self._element = None           # the conversation being cut into rows
    self._element_state = None     # parent state just before `_element` was read
    self._offset = 0               # tokens of `_element` already emitted

  def __next__(self) -> dict[str, np.ndarray]:
    pieces, need = {}, self._row_length     # every per-token array of the documents
    while need:
      if self._element is None:
        self._element_state = self._parent.get_state()
        try:
          self._element, self._offset = next(self._parent), 0
        except StopIteration:
          break
      length = len(self._element['tokens'])
      if self._whole and not self._offset and need < length <= self._row_length:
        break                              # it opens the next row, whole
      piece = slice(self._offset, self._offset + need)
      for k, v in self._element.items():
        pieces.setdefault(k, []).append(v[piece])
      taken = len(pieces['tokens'][-1])
      if self._segments:       # the piece's number in the row, from 1; padding is 0
        pieces.setdefault('segment', []).append(np.full(taken, len(pieces['tokens']), np.int32))
      need -= taken
      self._offset += taken
      if self._offset >= len(self._element['tokens']):
        self._element = None
    if need == self._row_length:
      raise StopIteration
    real = np.zeros(self._row_length, np.float32)
    real[:self._row_length - need] = 1.0
    row = {k: np.concatenate(v + [np.zeros(need, v[0].dtype)]) for k, v in pieces.items()}
    return {**row, 'real': real}

  def get_state(self) -> dict[str, Any]:
    if self._element is None:
      return {'parent': self._parent.get_state(), 'offset': 0}
    return {'parent': self._element_state, 'offset': self._offset}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state['parent'])
    self._element = None
    if state['offset']:
      # Re-read the conversation the next row starts in; featurizing is deterministic.
      self._element_state = state['parent']
      self._element, self._offset = next(self._parent), state['offset']
