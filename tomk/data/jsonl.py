"""Users' own conversations in JSONL, one conversation per line.

  {"id": "c1", "turns": [{"speaker": "Ann", "text": "Hi!"}, {"speaker": "Bo", "text": "Hey."}]}

"id" is optional (the line number stands in for it). Blank lines are skipped.
"""
from __future__ import annotations

import json

from tomk.data import conversation


def read_conversations(path: str) -> list[conversation.Conversation]:
  """Every conversation in the file; a malformed line raises ValueError naming it."""
  conversations = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        conversations.append(parse_line(line, where=f'{path}:{number}', default_id=str(number)))
  return conversations


def parse_line(line: str, where: str, default_id: str = '') -> conversation.Conversation:
  """One JSONL line as a Conversation; `where` ('file:line') prefixes every error."""
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f'{where}: not valid JSON ({e.msg} at column {e.colno}); each line must '
                     f'be one object like {{"id": "c1", "turns": [{{"speaker": "Ann", '
                     f'"text": "Hi"}}]}}.') from e
  if not isinstance(record, dict):
    raise ValueError(f'{where}: expected a JSON object with "turns", got {type(record).__name__}.')
  if not isinstance(record.get('turns'), list):
    raise ValueError(f'{where}: "turns" must be a list of {{"speaker", "text"}} objects, got '
                     f'{record.get("turns")!r}.')
  conversation_id = record.get('id', default_id)
  if not isinstance(conversation_id, (str, int)):
    raise ValueError(f'{where}: "id" must be a string, got {conversation_id!r}.')
  turns = conversation.parse_turns(record['turns'], where)
  return conversation.Conversation(turns, None, str(conversation_id))
