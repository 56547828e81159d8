"""Perspective-taking: how well each stream predicts what the partner says (SPEC §6).

Paper 001 asks the prediction module to simulate other people: after a perspective
switch, their next turn is what it must predict. Four measures, each for both streams:

  partner turns    NLL per token and next-token accuracy on the turns of everyone but
                   the perspective owner, in held-out human chitchat (real people) and
                   in SocialWorld scenarios continued with a response of the model and
                   the partner's true reaction (people whose wants are known).
  reaction         the same on the partner's reaction alone: the turn that follows from
                   the partner's hidden reward for the response.
  next turn        two-candidate ranking: after the response, is the partner's true
                   reaction likelier than its reaction to another candidate response
                   whose reward has the opposite sign? Chance is 50 %. The other
                   reaction names the other item, so copying the offered item wins it.
  reaction sign    the simulator's question alone: seen from the partner's perspective
                   (the name switch, as the kindness algorithms ask it), is the
                   partner's true reaction to a response likelier than the reaction to
                   the SAME response had its reward the opposite sign (the same items,
                   a reply of the other sign)? Every offer and tip of a scenario, per
                   family; chance is 50 %, and only reading what the partner wants wins.

A conversation is rendered from the owner's perspective exactly as in training, turn
by turn (the tokenizer keeps role tokens at turn edges, so per-turn encoding equals
encoding the whole text), and the scored tokens are whole rendered turns, role marker
and name included.
"""
from __future__ import annotations

import numpy as np

from tomk import socialworld
from tomk.data import conversation as conversation_lib
from tomk.data import sources
from tomk.evaluation import scoring
from tomk.socialworld import scenarios


def rendered_tokens(tokenizer, c: conversation_lib.Conversation,
                    switch_names_in_text: bool = True) -> tuple[list[int], np.ndarray]:
  """(tokens of c from its perspective, per token: is it in another speaker's turn)."""
  segments = conversation_lib.render_segments(c, switch_names_in_text)
  ids = tokenizer.encode_batch([text for _, text in segments])
  tokens = [t for turn in ids for t in turn]
  partner = np.concatenate([np.full(len(turn), speaker != c.perspective)
                            for (speaker, _), turn in zip(segments, ids)] or [np.zeros(0, bool)])
  return tokens, partner


def token_measure(scorer: scoring.Scorer, sequences: list[list[int]], masks: list[np.ndarray],
                  groups: list[int] | None = None) -> dict:
  """{stream: {'nll', 'accuracy', 'tokens', 'n'}} over the masked tokens, pooled per token.

  masks[i][t] says whether token t of sequence i is scored; groups[i] names the
  conversation sequence i is cut from, so n counts conversations, not windows.
  """
  return pooled(scorer.streams, scorer.token_scores(sequences, [m[1:] for m in masks]), masks,
                groups)


def pooled(streams, scores: list[scoring.TokenScores], masks: list[np.ndarray],
           groups: list[int] | None = None) -> dict:
  """token_measure of token scores at hand (which hold every masked token)."""
  groups = list(range(len(masks))) if groups is None else groups
  results = {}
  for stream in streams:
    nll = hits = tokens = 0.0
    for i, mask in enumerate(masks):
      log_likelihood, hit = scores[i][stream]
      weight = mask[1:]        # target index t is token t + 1
      nll -= float(log_likelihood[weight].sum(dtype=np.float64))
      hits += float(hit[weight].sum())
      tokens += float(weight.sum())
    n = len({g for g, m in zip(groups, masks) if m[1:].any()})
    results[stream] = {'nll': nll / tokens if tokens else None,
                       'accuracy': hits / tokens if tokens else None,
                       'tokens': int(tokens), 'n': n}
  return results


# --- Real people: held-out chitchat -------------------------------------------------------------

def chitchat_windows(data_config, tokenizer, split: str, conversations: int, window: int,
                     windows_per_conversation: int):
  """(sequences, masks, groups): windows of the first conversations with a partner.

  Each conversation is seen from its first speaker; it is cut into windows of
  `window` tokens (the training row length: the model never saw longer contexts),
  at most `windows_per_conversation` of them so a 3,000-message conversation does not
  outweigh the rest.
  """
  records, to_conversation = sources.conversations(data_config, split)
  switch_names = data_config.switch_names_in_text
  sequences, masks, groups = [], [], []
  taken = 0
  for index in range(len(records)):
    if taken == conversations:
      break
    c = to_conversation(records[index])
    if len(c.speakers) < 2:
      continue      # a monologue has no partner to predict
    c = conversation_lib.switch(c, c.speakers[0])
    tokens, partner = rendered_tokens(tokenizer, c, switch_names)
    for start in range(0, min(len(tokens), window * windows_per_conversation), window):
      piece = slice(start, start + window)
      if len(tokens[piece]) >= 2 and partner[piece][1:].any():
        sequences.append(tokens[piece])
        masks.append(partner[piece])
        groups.append(taken)
    taken += 1
  if not sequences:
    raise ValueError(f'The {split!r} split of {data_config.source!r} has no conversation with '
                     f'two speakers; perspective-taking needs a partner to predict.')
  return sequences, masks, groups


# --- Known people: SocialWorld scenarios --------------------------------------------------------

def scenario_examples(split: str, seed: int, per_family: int) -> list[dict]:
  return [ex for family in scenarios.FAMILIES
          for ex in socialworld.generate(family, split, seed, per_family)]


def scenario_measures(scorer: scoring.Scorer, tokenizer, examples: list[dict],
                      switch_names_in_text: bool = True) -> dict:
  """{'partner_turns': measure, 'reaction': measure} over the scenarios.

  Example i is continued with its candidate response i mod (number of candidates), so
  responses good and bad for the partner both occur.
  """
  sequences, partner_masks, reaction_masks = [], [], []
  for i, ex in enumerate(examples):
    response = ex['candidates'][i % len(ex['candidates'])]
    c = scenarios.respond(ex, response)
    tokens, partner = rendered_tokens(tokenizer, c, switch_names_in_text)
    reaction_length = len(tokenizer.encode(conversation_lib.render_turn(
        c.turns[-1], c.perspective, switch_names_in_text)))
    reaction = np.zeros(len(tokens), bool)
    reaction[len(tokens) - reaction_length:] = True
    if len(tokens) > scorer.max_length:   # keep the end: the reaction and what led to it
      scorer.truncated += 1
      tokens, partner, reaction = (x[-scorer.max_length:] for x in (tokens, partner, reaction))
    sequences.append(tokens)
    partner_masks.append(partner)
    reaction_masks.append(reaction)
  # One pass for both: the reaction is the partner's last turn.
  scores = scorer.token_scores(sequences, [(p | r)[1:]
                                           for p, r in zip(partner_masks, reaction_masks)])
  return {'partner_turns': pooled(scorer.streams, scores, partner_masks),
          'reaction': pooled(scorer.streams, scores, reaction_masks)}


def next_turn_pairs(examples: list[dict], switch_names_in_text: bool = True):
  """(prompts, true reactions, other reactions) for scenarios with rewards of both signs.

  The prompt is the conversation with the response, up to the partner's name; the
  candidates are the rendered rest of the partner's turn. Alternate examples take the
  response good for the partner or the one bad for it, so a stream cannot win by
  always preferring pleased (or displeased) reactions.
  """
  prompts, right, wrong = [], [], []
  for ex in examples:
    rewards = [ex['partner_reward'](c) for c in ex['candidates']]
    good = [c for c, r in zip(ex['candidates'], rewards) if r > 0]
    bad = [c for c, r in zip(ex['candidates'], rewards) if r < 0]
    if not good or not bad:
      continue
    k = len(prompts)
    given, other = (good[k // 2 % len(good)], bad[k // 2 % len(bad)])
    if k % 2:
      given, other = other, given
    c = ex['conversation'].append(ex['model_name'], given)
    header = f'{conversation_lib.OTHER} {ex["partner"]}:'
    prompts.append(conversation_lib.render(c, switch_names_in_text) + header)
    for reaction, out in ((ex['reaction'](given), right), (ex['reaction'](other), wrong)):
      turn = conversation_lib.Turn(ex['partner'], reaction)
      out.append(conversation_lib.render_turn(turn, c.perspective,
                                              switch_names_in_text)[len(header):])
  return prompts, right, wrong


def next_turn(scorer: scoring.Scorer, examples: list[dict],
              switch_names_in_text: bool = True) -> dict:
  """{stream: {'accuracy', 'n'}}: the true reaction ranked against the other one."""
  prompts, right, wrong = next_turn_pairs(examples, switch_names_in_text)
  log_likelihoods = scorer.continuations(prompts + prompts, right + wrong)
  n = len(prompts)
  return {stream: scoring.summarize(scoring.two_candidate_accuracy(ll[:n], ll[n:]))
          for stream, ll in log_likelihoods.items()}


def reaction_sign_pairs(examples: list[dict], switch_names_in_text: bool = True):
  """(prompts, true reactions, opposite-sign reactions, families): every candidate
  response with a reaction of the opposite sign, each prompt the conversation with the
  response seen from the partner's perspective up to the opening of its reply."""
  prompts, right, wrong, families = [], [], [], []
  opening = f'{conversation_lib.SELF} '
  for ex in examples:
    for response in ex['candidates']:
      true, flipped = ex['reaction'](response), ex['counterfactual_reaction'](response)
      if flipped is None or flipped == true:
        continue
      view = conversation_lib.switch(
          ex['conversation'].append(ex['model_name'], response), ex['partner'])
      prompts.append(conversation_lib.render(view, switch_names_in_text) + opening)
      for reaction, out in ((true, right), (flipped, wrong)):
        turn = conversation_lib.Turn(ex['partner'], reaction)
        out.append(conversation_lib.render_turn(turn, ex['partner'],
                                                switch_names_in_text)[len(opening):])
      families.append(ex['family'])
  return prompts, right, wrong, families


def reaction_sign(scorer: scoring.Scorer, examples: list[dict],
                  switch_names_in_text: bool = True) -> dict:
  """{stream: {'accuracy', 'n', 'families': {family: {'accuracy', 'n'}}}}: the true
  reaction ranked against the opposite-sign reaction to the same response."""
  prompts, right, wrong, families = reaction_sign_pairs(examples, switch_names_in_text)
  log_likelihoods = scorer.continuations(prompts + prompts, right + wrong)
  n = len(prompts)
  results = {}
  for stream, ll in log_likelihoods.items():
    correct = scoring.two_candidate_accuracy(ll[:n], ll[n:])
    results[stream] = {**scoring.summarize(correct), 'families': {
        family: scoring.summarize([c for c, f in zip(correct, families) if f == family])
        for family in dict.fromkeys(families)}}
  return results
