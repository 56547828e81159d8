"""The Chit Chat Challenge conversations (`chitchat-dataset`, MIT) as a tfds dataset.

7,168 human conversations ship inside the PyPI package, so "downloading" is
reading a JSON file: the first `load` builds array_record files in a few
seconds, later ones open them. Each record is one conversation, its messages
flattened in order (the package groups consecutive messages of one sender):

  {'id': uuid, 'speakers': [name per message], 'texts': [text per message]}

Senders are anonymous uuids; each gets a common first name, fixed per
conversation, so the rendered text reads like people talking (and a name switch,
SPEC §4, has names to switch). The two speakers of a conversation always get
different names. Splits are ~90/5/5 by a hash of the conversation id, so a
conversation's split never changes when the package or the code around it does.
"""
from __future__ import annotations

import hashlib
import os
import random
from typing import Any, Mapping

import tensorflow_datasets as tfds

from tomk.data import conversation

SPLITS = ('train', 'validation', 'test')

# Common given names that are not also everyday English words (a name switch rewrites
# mentions of a name inside text, so 'Will' or 'Grace' would rewrite ordinary words).
NAMES = (
    'Aaron', 'Abigail', 'Adam', 'Adrian', 'Aisha', 'Alan', 'Albert', 'Alex', 'Alice', 'Alicia',
    'Allison', 'Amanda', 'Amelia', 'Amir', 'Amy', 'Andrea', 'Andrew', 'Angela', 'Anna', 'Anthony',
    'Arjun', 'Arthur', 'Ashley', 'Audrey', 'Austin', 'Barbara', 'Benjamin', 'Bianca', 'Brandon',
    'Brian', 'Brittany', 'Bruce', 'Caleb', 'Camila', 'Carlos', 'Caroline', 'Catherine', 'Charles',
    'Charlotte', 'Chloe', 'Christina', 'Christopher', 'Claire', 'Clara', 'Cynthia', 'Daniel',
    'Danielle', 'David', 'Deborah', 'Denise', 'Derek', 'Diana', 'Diego', 'Dmitri', 'Dorothy',
    'Dylan', 'Edward', 'Elena', 'Elijah', 'Elizabeth', 'Ella', 'Emily', 'Emma', 'Eric', 'Erin',
    'Ethan', 'Evelyn', 'Fatima', 'Felix', 'Fiona', 'Gabriel', 'Gabriela', 'George', 'Gloria',
    'Gregory', 'Hannah', 'Harold', 'Hassan', 'Helen', 'Henry', 'Hiroshi', 'Ian', 'Igor', 'Isaac',
    'Isabel', 'Isabella', 'Jacob', 'Jasmine', 'Jason', 'Javier', 'Jeffrey', 'Jennifer', 'Jeremy',
    'Jessica', 'Joanna', 'Jonathan', 'Jordan', 'Joseph', 'Joshua', 'Julia', 'Julian', 'Justin',
    'Karen', 'Katherine', 'Keith', 'Kenji', 'Kevin', 'Kimberly', 'Kyle', 'Laura', 'Lauren',
    'Leah', 'Leonardo', 'Liam', 'Linda', 'Lisa', 'Logan', 'Lucas', 'Lucia', 'Luis', 'Madison',
    'Maria', 'Marcus', 'Margaret', 'Martha', 'Martin', 'Matthew', 'Maya', 'Megan', 'Melissa',
    'Michael', 'Michelle', 'Miguel', 'Mohammed', 'Monica', 'Nadia', 'Natalie', 'Nathan',
    'Nicholas', 'Nicole', 'Noah', 'Nora', 'Oliver', 'Olivia', 'Omar', 'Oscar', 'Pablo', 'Pamela',
    'Patricia', 'Paul', 'Peter', 'Priya', 'Rachel', 'Rafael', 'Rebecca', 'Richard', 'Robert',
    'Roberto', 'Ronald', 'Ryan', 'Samantha', 'Samuel', 'Sandra', 'Sarah', 'Scott', 'Sean',
    'Sebastian', 'Sergei', 'Sofia', 'Sophie', 'Stephanie', 'Steven', 'Susan', 'Tanya', 'Teresa',
    'Thomas', 'Timothy', 'Tyler', 'Valentina', 'Vanessa', 'Victor', 'Victoria', 'Vincent',
    'Walter', 'Wei', 'William', 'Xavier', 'Yasmin', 'Yuki', 'Zachary', 'Zoe', 'Anita', 'Boris',
    'Chen', 'Dalia', 'Emil', 'Farah', 'Gustavo', 'Hugo', 'Ingrid', 'Kofi', 'Lars', 'Mei',
)


def split_for(key: str) -> str:
  """'train' (90 %), 'validation' (5 %) or 'test' (5 %), fixed by a hash of `key`."""
  bucket = int(hashlib.sha256(key.encode('utf-8')).hexdigest()[:8], 16) % 100
  return 'train' if bucket < 90 else 'validation' if bucket < 95 else 'test'


def speaker_names(conversation_id: str, senders: list[str]) -> dict[str, str]:
  """sender uuid -> first name: distinct names, deterministic per conversation."""
  unique = list(dict.fromkeys(senders))
  rng = random.Random(int(hashlib.sha256(conversation_id.encode('utf-8')).hexdigest(), 16))
  return dict(zip(unique, rng.sample(NAMES, len(unique))))


def _records(conversations: Mapping[str, Any], split: str):
  for conversation_id in sorted(conversations):
    if split_for(conversation_id) != split:
      continue
    messages = [m for group in conversations[conversation_id]['messages'] for m in group]
    names = speaker_names(conversation_id, [m['sender'] for m in messages])
    yield conversation_id, {'id': conversation_id,
                            'speakers': [names[m['sender']] for m in messages],
                            'texts': [m['text'] for m in messages]}


class Chitchat(tfds.core.GeneratorBasedBuilder):
  """Chit Chat Challenge human conversations, speakers named, split by id hash."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Messages flattened; senders named; 90/5/5 split by id hash.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'id': tfds.features.Text(),
            'speakers': tfds.features.Sequence(tfds.features.Text()),
            'texts': tfds.features.Sequence(tfds.features.Text()),
        }),
        homepage='https://github.com/BYU-PCCL/chitchat-dataset',
        license='MIT',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the data ships inside the chitchat-dataset package
    import chitchat_dataset  # pylint: disable=g-import-not-at-top
    conversations = chitchat_dataset.Dataset()
    return {split: _records(conversations, split) for split in SPLITS}

  def _generate_examples(self, records):
    yield from records


def default_data_dir() -> str:
  """$TOMK_DATA_DIR, or ~/.cache/tomk."""
  return os.environ.get('TOMK_DATA_DIR') or os.path.join(os.path.expanduser('~'), '.cache',
                                                         'tomk')


def builder(data_dir: str = '') -> Chitchat:
  """The builder, prepared on first use under `{data_dir}/tfds` (seconds, no network)."""
  tfds_dir = os.path.join(data_dir or default_data_dir(), 'tfds')
  b = Chitchat(data_dir=tfds_dir, file_format='array_record')
  if not b.is_prepared():
    try:
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(
          download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    except Exception:  # pylint: disable=broad-except
      # Two processes raced to build it; the loser's rename fails but the data is there.
      b = Chitchat(data_dir=tfds_dir, file_format='array_record')
      if not b.is_prepared():
        raise
  return b


def load(split: str, data_dir: str = ''):
  """A random-access source of the split's records (len(), [i]), built on first use."""
  if split not in SPLITS:
    raise ValueError(f'Unknown chitchat split {split!r}; choose one of {SPLITS}.')
  return builder(data_dir).as_data_source(split=split)


def _text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def to_conversation(record: Mapping[str, Any]) -> conversation.Conversation:
  """A tfds record (bytes fields) as a Conversation with no perspective yet."""
  turns = tuple(conversation.Turn(_text(s), _text(t))
                for s, t in zip(record['speakers'], record['texts']))
  return conversation.Conversation(turns, None, _text(record['id']))
