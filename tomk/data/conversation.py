"""Conversations and perspective switching (SPEC §4; paper 001 §4, Eq. 5).

A conversation is a list of turns (speaker name, text). It is rendered to text from
one participant's perspective: that participant's turns carry the ``<self>`` role
(they are the model's own actions), everyone else's turns carry their name. The
paper's name switch S(history, target) re-renders the same history from the
target's perspective, so the model sees what the target would have seen.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Sequence

SELF = '<self>'      # role marker of the perspective owner's turns
OTHER = '<other>'    # role marker before another speaker's name
EOT = '<eot>'        # end of a turn
ROLE_TOKENS = (SELF, OTHER, EOT)


@dataclasses.dataclass(frozen=True)
class Turn:
  speaker: str
  text: str


@dataclasses.dataclass(frozen=True)
class Conversation:
  """A history of turns, seen from `perspective` (a speaker name, or None = nobody's)."""
  turns: tuple[Turn, ...]
  perspective: str | None = None
  id: str = ''

  @classmethod
  def of(cls, pairs: Iterable[tuple[str, str]], perspective=None, id=''):
    return cls(tuple(Turn(s, t) for s, t in pairs), perspective, id)

  @property
  def speakers(self) -> tuple[str, ...]:
    """Speakers in order of first appearance."""
    return tuple(dict.fromkeys(t.speaker for t in self.turns))

  def append(self, speaker: str, text: str) -> 'Conversation':
    """s^i = a + s: the history with one more turn (paper Eq. 5)."""
    return dataclasses.replace(self, turns=self.turns + (Turn(speaker, text),))


def switch(conversation: Conversation, target: str) -> Conversation:
  """S(history, target): the same history, now seen from `target`'s perspective.

  Two-party S∘S is the identity; third parties keep their labels because only the
  perspective owner's turns are relabelled when rendering.
  """
  return dataclasses.replace(conversation, perspective=target)


def other_party(conversation: Conversation, name: str) -> str:
  """The one speaker who is not `name` in a two-party conversation."""
  others = [s for s in conversation.speakers if s != name]
  if len(others) != 1:
    raise ValueError(f'{conversation.id or "conversation"} has speakers {conversation.speakers}; '
                     f'other_party needs exactly two, one of them {name!r}.')
  return others[0]


def _mention_pattern(name: str) -> re.Pattern:
  return re.compile(r'\b' + re.escape(name) + r'\b')


def render_turn(turn: Turn, perspective: str | None, switch_names_in_text: bool = True) -> str:
  text = turn.text
  if perspective is not None and switch_names_in_text:
    # Mentions of the perspective owner inside a message refer to "self" now.
    text = _mention_pattern(perspective).sub(SELF, text)
  if turn.speaker == perspective:
    return f'{SELF} {text}{EOT}'
  return f'{OTHER} {turn.speaker}: {text}{EOT}'


def render(conversation: Conversation, switch_names_in_text: bool = True) -> str:
  """The conversation as model text from its perspective owner's point of view."""
  return ''.join(render_turn(t, conversation.perspective, switch_names_in_text)
                 for t in conversation.turns)


def render_segments(conversation: Conversation,
                    switch_names_in_text: bool = True) -> list[tuple[str, str]]:
  """[(speaker, rendered turn text)]: lets a pipeline attach per-turn values (rewards, masks)."""
  return [(t.speaker, render_turn(t, conversation.perspective, switch_names_in_text))
          for t in conversation.turns]


def prompt_for(conversation: Conversation, speaker: str | None = None) -> str:
  """The rendered history followed by the opening of the next turn of `speaker`.

  With speaker = the perspective owner (default) this is the prompt the behavior
  stream answers; with another speaker it is the prompt the prediction stream
  completes to simulate that speaker's reply.
  """
  speaker = conversation.perspective if speaker is None else speaker
  opening = f'{SELF} ' if speaker == conversation.perspective else f'{OTHER} {speaker}: '
  return render(conversation) + opening


def parse_turns(records: Sequence[dict], where: str) -> tuple[Turn, ...]:
  """Turns from JSON-like records [{'speaker':…, 'text':…}], with errors that name `where`."""
  turns = []
  for i, r in enumerate(records):
    if not isinstance(r, dict) or not isinstance(r.get('speaker'), str) \
        or not isinstance(r.get('text'), str):
      raise ValueError(f'{where}: turn {i} must be an object with string fields '
                       f'"speaker" and "text", got {r!r}.')
    turns.append(Turn(r['speaker'], r['text']))
  return tuple(turns)
