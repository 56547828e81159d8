"""Featurizing: one document -> per-token arrays (tokens, rewards, masks, loss weights).

Perspective. A conversation is rendered from one speaker's perspective (their turns
carry <self>): data.perspective 'first', 'random' (by seed and index) or 'other' (a
speaker other than the first). SocialWorld scenarios are shown as the model saw them,
or with data.scenario_perspective='partner' from the partner's side, whose reaction
ends them. 'self' marks the tokens the perspective owner said (their turns' text and
<eot>, not the <self> role token that opens the turn: whose turn it is belongs to the
state, as in conversation.prompt_for).

Rewards and reactions. Each turn's reward is data.reward (a reward function name) of the
turn; with data.reaction (e.g. 'sentiment'), each owner turn that answers someone else
is an observed reaction: its score sits at the <self> token opening it (reaction_mask 1
there), so a head reading the state up to that token can regress it (infer_reward).

Weights. A SocialWorld story's answers weigh data.answer_weight in the loss, a scenario's
last turn (the partner's reaction) data.reaction_weight, and a story's text may be cut into
pieces by BPE-dropout (data.subword_dropout), on the training split only.
"""
from __future__ import annotations

import functools
import itertools
from typing import Sequence

import numpy as np

from tomk import rewards as rewards_lib
from tomk.data import chitchat
from tomk.data import conversation
from tomk.data import sources
from tomk.socialworld import builders
from tomk.socialworld import scenarios, stories

PERSPECTIVES = ('first', 'random', 'other')
SCENARIO_RESPONSES = ('drawn', 'warmest')


def check(data_config) -> None:
  """Errors for the featurizing settings of data_config."""
  if data_config.perspective not in PERSPECTIVES:
    raise ValueError(f'data.perspective={data_config.perspective!r}; choose one of '
                     f'{PERSPECTIVES}.')
  if data_config.scenario_perspective not in builders.SCENARIO_PERSPECTIVES:
    raise ValueError(f'data.scenario_perspective={data_config.scenario_perspective!r}; choose '
                     f'one of {builders.SCENARIO_PERSPECTIVES}.')
  if data_config.scenario_response not in SCENARIO_RESPONSES:
    raise ValueError(f'data.scenario_response={data_config.scenario_response!r}; choose one of '
                     f'{SCENARIO_RESPONSES}.')
  dropout = data_config.subword_dropout
  if not 0.0 <= dropout < 1.0:
    raise ValueError(f'data.subword_dropout={dropout!r} is the chance of skipping each merge; '
                     f'set it in [0, 1), e.g. 0.1.')
  if dropout and data_config.tokenizer:
    raise ValueError(f'data.subword_dropout={dropout!r} needs tomk\'s own SentencePiece '
                     f'tokenizer; with data.tokenizer={data_config.tokenizer!r} set it to 0.')
  for key in ('answer_weight', 'reaction_weight'):
    if not data_config[key] > 0:
      raise ValueError(f'data.{key}={data_config[key]!r} is a loss weight; set it > 0 (1 = '
                       f'those tokens count like every other token).')
  rewards_lib.check(data_config.reward, 'data.reward')
  if data_config.reaction:
    rewards_lib.check(data_config.reaction, 'data.reaction')


def turn_reward(data_config) -> rewards_lib.RewardFn:
  """data.reward as a function scoring each turn (data.reward_value for 'constant')."""
  name = data_config.reward
  kwargs = {'value': data_config.reward_value} if name == 'constant' else {}
  return rewards_lib.get(name, **kwargs)


def rendered(data_config, source: str, record, index: int, seed: int,
             scenario_perspective: str | None = None, response: int = 0,
             scenario_response: str | None = None) -> list[str]:
  """The rendered training text of one record of `source`, one string per turn; a scenario
  shows the candidate its seeded draw picks, or the `response`-th after it (sources.Branches:
  the same scenario shown with several responses), or with data.scenario_response='warmest'
  (or `scenario_response`) the `response`-th warmest."""
  switch_names = data_config.switch_names_in_text
  if source in sources.SOCIALWORLD:
    scenario_perspective = scenario_perspective or data_config.scenario_perspective
    scenario_response = scenario_response or data_config.scenario_response
    plain = builders.plain_record(record)
    draw = sources.seeded_int(f'{seed}:{source}:{index}') + response
    if scenario_response == 'warmest' and 'reactions' in plain:
      draw = warmest_first(plain['reactions'])[response % len(plain['reactions'])]
    return builders.training_segments(source, plain, draw, switch_names, scenario_perspective)
  c = chitchat.to_conversation(record) if source == 'chitchat' else record
  c = conversation.switch(c, perspective_owner(c, index, data_config.perspective, seed))
  return [text for _, text in conversation.render_segments(c, switch_names)]


def warmest_first(reactions: Sequence[str]) -> list[int]:
  """Indices of a scenario's partner reactions, the warmest (VADER sentiment) first; ties
  keep the candidates' order."""
  scores = _sentiment()([''] * len(reactions), list(reactions))
  return sorted(range(len(reactions)), key=lambda i: -scores[i])


@functools.lru_cache(maxsize=1)
def _sentiment():
  return rewards_lib.sentiment()


class Prefixes(Sequence[str]):
  """prompts[i] = the rendered history before turn turns[i] (default: turn i), built only
  if a reward reads it.

  Building every prefix eagerly is quadratic in the conversation length (some chitchat
  conversations have ~3,000 messages) and the shipped rewards never look at it.
  """

  def __init__(self, segments: Sequence[str], turns: Sequence[int] | None = None):
    self._segments = segments
    self._turns = range(len(segments)) if turns is None else turns

  def __len__(self):
    return len(self._turns)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    return ''.join(self._segments[:self._turns[i]])


def perspective_owner(c: conversation.Conversation, index: int, perspective: str,
                      seed: int) -> str | None:
  speakers = c.speakers
  if not speakers:
    return None
  if perspective == 'first':
    return speakers[0]
  if perspective == 'other' and len(speakers) > 1:
    return speakers[1 + sources.seeded_int(f'{seed}:{index}') % (len(speakers) - 1)]
  return speakers[sources.seeded_int(f'{seed}:{index}') % len(speakers)]


def document_fields(data_config) -> dict[str, type]:
  """The per-token arrays of a featurized document."""
  fields = {'tokens': np.int32, 'rewards': np.float32, 'self': np.float32,
            'weight': np.float32}
  if data_config.reaction:
    fields.update(reaction=np.float32, reaction_mask=np.float32)
  return fields


def row_fields(data_config) -> dict[str, type]:
  """The per-token arrays of a packed row: a document's, 'real' and (data.document_mask)
  'segment'."""
  fields = {**document_fields(data_config), 'real': np.float32}
  if data_config.document_mask:
    fields['segment'] = np.int32
  return fields


class Featurize:
  """(source number, record index) -> {'tokens': int32[n], 'rewards': float32[n],
  'self': float32[n], 'weight': float32[n]} (+ 'reaction', 'reaction_mask' with
  data.reaction).

  One whole document: a conversation (each turn rewarded by the configured reward) or a
  SocialWorld example; a plain-text story ends with EOS so its answer does not run into
  the next story's first line. 'self' is 1 on the tokens the perspective owner said.
  'weight' is each token's loss weight: `answer_weight` on a story's answers,
  `reaction_weight` on a scenario's last turn, else 1.
  """

  def __init__(self, data_config, tokenizer, documents: Sequence[tuple[str, Sequence]],
               seed: int, subword_dropout: float = 0.0, answer_weight: float = 1.0,
               reaction_weight: float = 1.0):
    check(data_config)
    self._data_config, self._documents = data_config, documents
    self._subword_dropout, self._answer_weight = subword_dropout, answer_weight
    self._reaction_weight = reaction_weight
    self._tokenizer, self._seed = tokenizer, seed
    self._reward_fn = turn_reward(data_config)
    reaction = data_config.reaction
    self._reaction_fn = rewards_lib.get(reaction) if reaction else None
    self._fields = document_fields(data_config)

  def __call__(self, item: tuple[int, int]) -> dict[str, np.ndarray]:
    source, records = self._documents[int(item[0])]
    index = int(item[1])
    story = source in builders.STORY_FAMILIES
    if story:
      # One segment (one reward), encoded by its pieces (story and questions, answers, in
      # turn): they give the text's tokens and tell the answers' apart.
      texts = stories.pieces(builders.plain_record(records[index]))
      segments = [''.join(texts)]     # = rendered(): builders.training_segments
    else:
      record, response = index, 0
      if isinstance(records, sources.Branches):   # document i: record i // k, response i % k
        record, response = divmod(index, records.k)
      segments = texts = rendered(self._data_config, source, records[index], record,
                                  self._seed, response=response)
    if not segments:
      return {k: np.zeros(0, dtype) for k, dtype in self._fields.items()}
    if self._subword_dropout and story:
      ids = self._tokenizer.encode_dropout(texts, self._subword_dropout,
                                           sources.seeded_int(f'{self._seed}:{source}:{index}:pieces'))
    else:
      ids = self._tokenizer.encode_batch(texts)
    if story:
      # Answers at odd places; EOS ends the story so its answer does not run into the next.
      weight = np.concatenate([np.full(len(x), self._answer_weight if i % 2 else 1.0,
                                       np.float32) for i, x in enumerate(ids)] + [[1.0]])
      ids = [list(itertools.chain.from_iterable(ids)) + [self._tokenizer.eos_id]]
    else:
      weight = np.ones(sum(len(x) for x in ids), np.float32)
      if source in scenarios.FAMILIES and ids:           # the partner's reaction, last
        weight[len(weight) - len(ids[-1]):] = self._reaction_weight
    turn_rewards = np.asarray(self._reward_fn(Prefixes(segments), segments), np.float32)
    if turn_rewards.shape != (len(segments),):
      raise ValueError(f'Reward function returned shape {turn_rewards.shape} for '
                       f'{len(segments)} turns of record {index} of {source!r}; it must '
                       f'return one float per turn.')
    lengths = [len(x) for x in ids]
    tokens = np.fromiter(itertools.chain.from_iterable(ids), np.int32, sum(lengths))
    # The owner's turns open with the <self> role token (a chat template's assistant opening:
    # several ids); what they said follows it.
    opening = self._tokenizer.self_opening
    owner = np.array([tuple(x[:len(opening)]) == opening for x in ids])
    starts = np.cumsum([0] + lengths[:-1])
    said = np.repeat(owner, lengths).astype(np.float32)
    for offset in range(len(opening)):
      said[starts[owner] + offset] = 0.0
    out = {'tokens': tokens, 'rewards': np.repeat(turn_rewards, lengths), 'self': said,
           'weight': weight}
    if self._reaction_fn is not None:
      # A reaction: an owner turn that answers another speaker's turn.
      turns = [i for i in range(1, len(segments)) if owner[i] and not owner[i - 1]]
      scores = np.asarray(self._reaction_fn(Prefixes(segments, turns),
                                            [segments[i] for i in turns]), np.float32)
      out['reaction'] = np.zeros(len(tokens), np.float32)
      out['reaction_mask'] = np.zeros(len(tokens), np.float32)
      # At the opening's last token: the state a prompt for the owner's turn ends with.
      at = starts[turns] + len(opening) - 1
      out['reaction'][at] = scores
      out['reaction_mask'][at] = 1.0
    return out
