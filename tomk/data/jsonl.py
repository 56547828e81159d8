"""Users' own data in JSONL, one record per line: conversations, prompts, preference pairs.

Conversations (data.source=FILE.jsonl, tomk.generate --conversations):
  {"id": "c1", "turns": [{"speaker": "Ann", "text": "Hi!"}, {"speaker": "Bo", "text": "Hey."}]}
Prompts for the RL stages (data.prompts=FILE.jsonl): a conversation and the speaker the model
plays, who speaks next:
  {"id": "p1", "self": "Sam", "turns": [{"speaker": "Ann", "text": "Could you help me?"}]}
Preference pairs for the reward_model stage (data.preference_pairs=FILE.jsonl): a prompt as
above and two replies of `self`, the one a rater preferred first:
  {"id": "r1", "self": "Sam", "turns": [...], "chosen": "Of course!", "rejected": "No."}

"id" is optional (the line number stands in for it). Blank lines are skipped. A malformed
record is an error naming its file and line; a file with no record says which shape it needs.
"""
from __future__ import annotations

import functools
import json
import os

from tomk.data import conversation


CONVERSATION = '{"id": "c1", "turns": [{"speaker": "Ann", "text": "Hi"}]}'
PROMPT = '{"id": "p1", "self": "Sam", "turns": [{"speaker": "Ann", "text": "Hi"}]}'
PAIR = ('{"id": "r1", "self": "Sam", "turns": [{"speaker": "Ann", "text": "Hi"}], '
        '"chosen": "Hello Ann!", "rejected": "Go away."}')


def _records(path: str, parse, shape: str, what: str) -> list:
  """parse(line, where, default_id) of every non-blank line of `path`; an error if none.
  Read once per process while the file is unchanged (every stage's check and the stage that
  trains on it ask for it)."""
  if not os.path.isfile(path):
    raise ValueError(f'{path} is not a file; give a JSONL file of {what}, one per line like '
                     f'{shape}.')
  stat = os.stat(path)
  return list(_read(path, stat.st_mtime_ns, stat.st_size, parse, shape, what))


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int, parse, shape: str, what: str) -> tuple:
  del mtime_ns, size      # in the cache key only
  records = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        records.append(parse(line, where=f'{path}:{number}', default_id=str(number)))
  if not records:
    raise ValueError(f'{path} holds no {what}; write one per line like {shape}.')
  return tuple(records)


def read_conversations(path: str) -> list[conversation.Conversation]:
  """Every conversation in the file; a malformed line raises ValueError naming it."""
  return _records(path, parse_line, CONVERSATION, 'conversations')


def read_prompts(path: str) -> list[conversation.Conversation]:
  """Every prompt in the file, each a Conversation seen from the speaker the model plays."""
  return _records(path, parse_prompt, PROMPT, 'prompts')


def read_pairs(path: str) -> list[dict]:
  """Every preference pair in the file: {'id', 'prompt' (rendered, the model's turn opened),
  'chosen', 'rejected'}."""
  return _records(path, parse_pair, PAIR, 'preference pairs')


def parse_prompt(line: str, where: str, default_id: str = '') -> conversation.Conversation:
  """One prompt line: a conversation whose next turn is `self`'s."""
  record = _object(line, where, PROMPT)
  speaker = record.get('self')
  if not isinstance(speaker, str) or not speaker:
    raise ValueError(f'{where}: "self" must name the speaker the model plays, e.g. {PROMPT}.')
  c = parse_line(line, where, default_id)
  if not c.turns:
    raise ValueError(f'{where}: "turns" is empty; a prompt holds the conversation so far, at '
                     f'least one turn of someone else, e.g. {PROMPT}.')
  if c.turns[-1].speaker == speaker:
    raise ValueError(f'{where}: the last turn is already {speaker!r}\'s; a prompt ends where '
                     f'"self" speaks next.')
  return conversation.switch(c, speaker)


def parse_pair(line: str, where: str, default_id: str = '') -> dict:
  """One preference-pair line (see the module docstring)."""
  record = _object(line, where, PAIR)
  for key in ('chosen', 'rejected'):
    if not isinstance(record.get(key), str):
      raise ValueError(f'{where}: "{key}" must be the text of a reply, e.g. {PAIR}.')
  c = parse_prompt(line, where, default_id)
  return {'id': c.id, 'prompt': conversation.prompt_for(c), 'chosen': record['chosen'],
          'rejected': record['rejected']}


def _object(line: str, where: str, shape: str) -> dict:
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f'{where}: not valid JSON ({e.msg} at column {e.colno}); each line must '
                     f'be one object like {shape}.') from e
  if not isinstance(record, dict):
    raise ValueError(f'{where}: expected a JSON object like {shape}, got '
                     f'{type(record).__name__}.')
  return record


def parse_line(line: str, where: str, default_id: str = '') -> conversation.Conversation:
  """One JSONL line as a Conversation; `where` ('file:line') prefixes every error."""
  record = _object(line, where, CONVERSATION)
  if not isinstance(record.get('turns'), list):
    raise ValueError(f'{where}: "turns" must be a list of {{"speaker", "text"}} objects, got '
                     f'{record.get("turns")!r}.')
  conversation_id = record.get('id', default_id)
  if not isinstance(conversation_id, (str, int)):
    raise ValueError(f'{where}: "id" must be a string, got {conversation_id!r}.')
  turns = conversation.parse_turns(record['turns'], where)
  return conversation.Conversation(turns, None, str(conversation_id))
