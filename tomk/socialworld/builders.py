"""SocialWorld as tfds datasets (array_record) and the text a model trains on.

One builder, `SocialWorld`, with one BuilderConfig per family (stories per story mix):

  story-balanced, story-natural, story-higher_order   false-belief stories (stories.py)
  preference_story                                     tastes acted out, then a choice
  preference_offer, similar_partner, dissimilar_partner, false_belief_assist,
  third_party, multi_party                             conversation scenarios
  rater                                                isolated-response preference pairs

Splits: 'train'; 'validation' and 'test' (training vocabulary); 'heldout' (held-out
vocabulary). Each is a slice of `tomk.socialworld.generate` with the config's seed,
written in generation order, so record i of 'train' is generate(family, 'train', seed)[i],
of 'test' generate(family, 'test', seed)[i] and of 'heldout' generate(family, 'heldout',
seed)[i]; 'validation' continues the generator's 'test' stream after the test examples.

Records are the generator's examples as plain data (scenarios: `scenarios.to_record`
plus the partner's true reaction to each candidate). Ground truth - scenario 'hidden'
state, preference-story utilities, story events, the rater's partner rewards - is kept
for evaluation; `training_segments` never reads it.

Training text (SPEC §5; what the pipeline renders):
  stories            stories.text(ex): "story lines\\nQ: question A: answer", exactly the
                     prompt + continuation the Theory-of-Mind evaluator ranks.
  scenarios          the conversation from the model's perspective, one candidate response
                     of the model and the partner's true reaction (scenarios.respond): the
                     prediction stream learns how partners react to what the model says.
  rater              the prompt and the rater's chosen response.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
from typing import Any, Mapping

import tensorflow_datasets as tfds

from tomk import socialworld
from tomk.data import chitchat
from tomk.data import conversation
from tomk.socialworld import scenarios
from tomk.socialworld import stories

SPLITS = ('train', 'validation', 'test', 'heldout')
STORY_FAMILIES = ('story', 'preference_story')       # plain text: story, Q:, A:
FAMILIES = STORY_FAMILIES + scenarios.FAMILIES + ('rater',)
STORY_MIXES = {'natural': stories.NATURAL, 'balanced': stories.BALANCED,
               'higher_order': stories.HIGHER_ORDER}

# Examples per split. Measured on the shared 2-core box under load (~9): a story config
# builds in ~14 s, preference stories ~4 s, a scenario family 6-10 s, the rater ~7 s;
# pretrain_social's eight configs ~65 s, once per data dir.
_SIZES = {
    'story': dict(train=50_000, validation=1_000, test=2_000, heldout=2_000),
    'preference_story': dict(train=20_000, validation=1_000, test=2_000, heldout=2_000),
    'rater': dict(train=10_000, validation=500, test=1_000, heldout=1_000),
    **{f: dict(train=10_000, validation=500, test=1_000, heldout=1_000)
       for f in scenarios.FAMILIES},
}
_CHUNK = 4096   # examples drawn at a time while writing


# --- Story mixes -----------------------------------------------------------------------------

# stories.generate's options a mix may set, with their defaults (read off its signature).
_STORY_OPTIONS = {name: inspect.signature(stories.generate).parameters[name].default
                  for name in ('every_agent', 'max_observers', 'distractor_rate')}


def story_options(story_mix: str) -> dict:
  """stories.generate options of a story mix: a preset, then 'type:weight' overrides.

    'balanced'                             stories.BALANCED
    'balanced,first_order:3'               ... with first-order questions 3x as likely
    'natural,tom_fraction:0.5'             ToMi's mix, half the belief questions tom
    'balanced,true_belief:0'               no true-belief stories
    'balanced,every_agent:1'               ... each story also asks every agent's belief
    'balanced,max_observers:0,distractor_rate:0'   two agents, no distractors: simple

  Keys are story types (stories.STORY_TYPES), question types (stories.QUESTION_TYPES),
  or options of stories.generate: 'tom_fraction', 'every_agent' (1 = on),
  'max_observers', 'distractor_rate'; a weight of 0 drops that type.
  """
  parts = [p.strip() for p in story_mix.split(',') if p.strip()]
  if not parts or parts[0] not in STORY_MIXES:
    raise ValueError(f'story_mix={story_mix!r} must start with a preset, one of '
                     f'{sorted(STORY_MIXES)}, optionally followed by overrides like '
                     f'"balanced,first_order:3,tom_fraction:0.5".')
  preset = STORY_MIXES[parts[0]]
  options = {'story_weights': dict(preset['story_weights']),
             'question_weights': dict(preset['question_weights']),
             'tom_fraction': preset['tom_fraction']}
  for part in parts[1:]:
    key, _, value = part.partition(':')
    try:
      number = float(value)
    except ValueError:
      raise ValueError(f'story_mix={story_mix!r}: {part!r} must be key:number, e.g. '
                       f'"first_order:3".') from None
    if key == 'tom_fraction':
      options['tom_fraction'] = number
    elif key in _STORY_OPTIONS:
      value = type(_STORY_OPTIONS[key])(number)     # every_agent:1 -> True
      if value != _STORY_OPTIONS[key]:
        options[key] = value
      else:                 # a default is absent, so the mix keeps its name
        options.pop(key, None)
    elif key in stories.STORY_TYPES:
      options['story_weights'][key] = number
    elif key in stories.QUESTION_TYPES:
      options['question_weights'][key] = number
    else:
      raise ValueError(f'story_mix={story_mix!r}: unknown key {key!r}; use a story type '
                       f'{stories.STORY_TYPES}, a question type {stories.QUESTION_TYPES}, '
                       f'tom_fraction, every_agent, max_observers or distractor_rate.')
  for group in ('story_weights', 'question_weights'):
    options[group] = {k: w for k, w in options[group].items() if w}
  return options


def _story_mix_name(options: dict) -> str:
  # Key order matters too: the generator draws a type by walking its weights in order.
  text = json.dumps(options)
  for name, preset in STORY_MIXES.items():
    if text == json.dumps({k: preset.get(k) for k in options}):
      return name
  return 'mix_' + hashlib.sha256(text.encode()).hexdigest()[:8]


# --- The builder -----------------------------------------------------------------------------

@dataclasses.dataclass
class SocialWorldConfig(tfds.core.BuilderConfig):
  family: str = 'story'
  generator_options: str = '{}'     # JSON of the generator's keyword options
  sizes: tuple = ()                 # ((split, examples), ...)
  seed: int = 0


def builder_config(family: str, story_mix: str = 'balanced',
                   train_size: int = 0) -> SocialWorldConfig:
  """The config of `family` (stories with `story_mix`).

  train_size: 0 = the default sizes (_SIZES); N = N train examples, and the other splits
  min(default, max(100, N // 10)).
  """
  if family not in FAMILIES:
    raise ValueError(f'Unknown SocialWorld family {family!r}; use one of {FAMILIES}.')
  if train_size < 0:
    raise ValueError(f'train_size={train_size} must be >= 0 (0 = the default size).')
  options, name = {}, family
  if family == 'story':
    options = story_options(story_mix)
    name = f'story-{_story_mix_name(options)}'
  sizes = dict(_SIZES[family])
  if train_size:
    # Evaluation splits shrink with a small train split, so a smoke run builds in seconds.
    sizes = {split: train_size if split == 'train' else min(n, max(100, train_size // 10))
             for split, n in sizes.items()}
    name += f'-n{train_size}'
  for config in SocialWorld.BUILDER_CONFIGS:   # tfds wants the very same object back
    if config.name == name:
      return config
  return SocialWorldConfig(
      name=name, version=SocialWorld.VERSION, family=family,
      generator_options=json.dumps(options),   # in order: see _story_mix_name
      sizes=tuple(sizes.items()),
      description=f'SocialWorld {family} {options or ""} {sizes}')


def _record(family: str, example: dict) -> dict:
  """A generator example as plain JSON-able data (what a record's 'record' field holds)."""
  if family in scenarios.FAMILIES:
    record = scenarios.to_record(example)
    record['reactions'] = [example['reaction'](c) for c in example['candidates']]
    return record
  return dict(example)   # stories, preference stories and rater pairs are plain already


class SocialWorld(tfds.core.GeneratorBasedBuilder):
  """SocialWorld families with ground truth; one config per family / story mix."""

  VERSION = tfds.core.Version('1.2.0')
  RELEASE_NOTES = {'1.0.0': 'Stories, preference stories, scenarios, rater pairs.',
                   '1.0.1': 'Held-out names no longer include chitchat speaker names.',
                   '1.1.0': 'Every story also answers ToMi\'s other questions; a larger '
                            'training vocabulary (names, containers, objects).',
                   '1.2.0': 'Stories read as one paragraph (their text, not their records, '
                            'changed: a new version retrains the tokenizer).'}
  BUILDER_CONFIGS = []   # filled below: every family at its default size

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        # One JSON text per example: tfds's typed features cost ~0.5 ms an example to
        # serialize, ten times the drawing, and the families' fields differ anyway.
        features=tfds.features.FeaturesDict({'id': tfds.features.Text(),
                                             'record': tfds.features.Text()}),
        disable_shuffling=True,   # record i is generator example i
        license='Generated by tomk; same licence as tomk.')

  def _split_generators(self, dl_manager):
    del dl_manager  # generated, nothing to download
    sizes = dict(self.builder_config.sizes)
    return {'train': self._generate_examples('train', 0, sizes['train']),
            'validation': self._generate_examples('test', sizes['test'],
                                                  sizes['validation']),
            'test': self._generate_examples('test', 0, sizes['test']),
            'heldout': self._generate_examples('heldout', 0, sizes['heldout'])}

  def _generate_examples(self, generator_split: str, start: int, n: int):
    config = self.builder_config
    options = json.loads(config.generator_options)
    for chunk in range(start, start + n, _CHUNK):
      for i, example in enumerate(socialworld.generate(
          config.family, generator_split, config.seed, min(_CHUNK, start + n - chunk),
          chunk, **options)):
        yield chunk + i, {'id': example['id'],
                          'record': json.dumps(_record(config.family, example))}


SocialWorld.BUILDER_CONFIGS = [builder_config(f, mix) for f in FAMILIES
                               for mix in (STORY_MIXES if f == 'story' else ('',))]


_PREPARED: dict = {}   # (tfds dir, config name) -> prepared builder, per process


def builder(config: SocialWorldConfig, data_dir: str = '') -> SocialWorld:
  """The builder of `config`, prepared on first use under `{data_dir}/tfds` (seconds)."""
  tfds_dir = os.path.join(data_dir or chitchat.default_data_dir(), 'tfds')
  key = (tfds_dir, config.name)
  if key not in _PREPARED:
    _PREPARED[key] = _prepare(config, tfds_dir)
  return _PREPARED[key]


def _prepare(config: SocialWorldConfig, tfds_dir: str) -> SocialWorld:
  b = SocialWorld(config=config, data_dir=tfds_dir, file_format='array_record')
  if not b.is_prepared():
    try:
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(
          download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    except Exception:  # pylint: disable=broad-except
      # Two processes raced to build it; the loser's rename fails but the data is there.
      b = SocialWorld(config=config, data_dir=tfds_dir, file_format='array_record')
      if not b.is_prepared():
        raise
  return b


def load(family: str, split: str, data_dir: str = '', story_mix: str = 'balanced',
         train_size: int = 0):
  """A random-access source (len(), [i]) of one split's records, built on first use."""
  if split not in SPLITS:
    raise ValueError(f'Unknown SocialWorld split {split!r}; use one of {SPLITS}.')
  config = builder_config(family, story_mix, train_size)
  return builder(config, data_dir).as_data_source(split=split)


# --- Records back to examples ----------------------------------------------------------------

def plain_record(record: Mapping[str, Any]) -> dict:
  """A record read from the builder as the generator's example in plain data.

  Scenarios are in `scenarios.to_record` form ('turns', 'perspective', 'hidden') plus
  'reactions': the partner's true reaction to each of 'candidates'. Tuples (a story's
  chain and events) come back as lists.
  """
  text = record['record']
  return json.loads(text.decode('utf-8') if isinstance(text, bytes) else text)


def example(record: Mapping[str, Any]) -> dict:
  """A builder record as the generator's example: scenarios get back their conversation
  and ground-truth functions (partner_reward, third_party_rewards, reaction,
  counterfactual_reaction, offers_an_option)."""
  ex = plain_record(record)
  if 'turns' in ex:
    hidden = ex['hidden']
    ex['conversation'] = conversation.Conversation(
        conversation.parse_turns(ex['turns'], ex['id']), ex['perspective'], ex['id'])
    ex['partner_reward'] = functools.partial(scenarios.partner_reward, hidden)
    ex['third_party_rewards'] = functools.partial(scenarios.third_party_rewards, hidden)
    ex['reaction'] = functools.partial(scenarios.reaction, hidden)
    ex['counterfactual_reaction'] = functools.partial(scenarios.counterfactual_reaction, hidden)
    ex['offers_an_option'] = functools.partial(scenarios.offers_an_option, hidden)
  if 'chain' in ex:
    ex['chain'] = tuple(ex['chain'])
  return ex


# --- Training text ---------------------------------------------------------------------------

SCENARIO_PERSPECTIVES = ('model', 'partner')


def training_segments(family: str, ex: Mapping[str, Any], draw: int = 0,
                      switch_names_in_text: bool = True, perspective: str = 'model') -> list[str]:
  """The training text of one example (plain_record), cut where per-turn rewards attach.

  Reads only what a person in the world could see: never 'hidden', 'utilities',
  'events', scores or partner rewards. `draw` picks which candidate response a scenario
  shows (the pipeline draws it from the seed and the example's index). A scenario is
  rendered from the model's perspective, or with perspective='partner' from the
  partner's, whose reaction ends it (the name switch S).
  """
  if perspective not in SCENARIO_PERSPECTIVES:
    raise ValueError(f'data.scenario_perspective={perspective!r}; choose one of '
                     f'{SCENARIO_PERSPECTIVES}.')
  if family in STORY_FAMILIES:
    return [stories.text(ex)]
  if family == 'rater':
    # The prompt was rendered from the model's perspective and ends with '<self> '.
    *turns, opening = ex['prompt'].split(conversation.EOT)
    return [t + conversation.EOT for t in turns] + [
        opening + ex['chosen'] + conversation.EOT]
  if family not in scenarios.FAMILIES:
    raise ValueError(f'Unknown SocialWorld family {family!r}; use one of {FAMILIES}.')
  pick = draw % len(ex['candidates'])
  seen = conversation.Conversation(conversation.parse_turns(ex['turns'], ex['id']),
                                   ex['perspective'], ex['id'])
  seen = seen.append(ex['model_name'], ex['candidates'][pick]).append(
      ex['partner'], ex['reactions'][pick])       # = scenarios.respond(ex, candidate)
  if perspective == 'partner':
    seen = conversation.switch(seen, ex['partner'])
  return [text for _, text in conversation.render_segments(seen, switch_names_in_text)]
