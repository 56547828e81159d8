"""Kindness against ground truth (SPEC §6): what the model's own responses do to people.

For held-out scenarios of each family the behavior stream answers greedily; the
SocialWorld ground truth scores each response for the partner (mean true reward)
and for absent third parties (harm rate: the share of responses that leave some
third party worse off). Beside it: the RLHF reward-model score of the same
responses, and self-prediction, the prediction stream's next-token accuracy on the
behavior's own responses. Only evaluation ever calls the ground truth.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tomk import rl, socialworld
from tomk.data import conversation as conversation_lib
from tomk.sampler import Sampler, SamplingConfig, left_pad
from tomk.socialworld import scenarios


def evaluate(config, model, tokenizer, params, settings, extrinsic=None) -> tuple[dict, list]:
  """({split: {family: {'partner_reward', 'third_party_harm_rate', 'offer_rate',
  'liked_rate', 'reward_model', 'self_prediction', 'n', 'example'}}}, a row per scenario:
  {'split', 'family', 'id', 'response', 'partner_reward', 'harmed', 'offered'}), the rows for
  paired comparisons of runs scored on the same scenarios (tomk.compare --paired)."""
  prompt_len = config.rl.prompt_len
  sampler = Sampler(model, tokenizer.eot_id, tokenizer.pad_id, prompt_len=prompt_len)
  sampling = SamplingConfig(max_new_tokens=config.rl.max_new_tokens, temperature=0.0)
  prediction_accuracy = jax.jit(_self_prediction(model, sampling.max_new_tokens))
  results, rows = {}, []
  for split in settings.splits:
    for family in scenarios.FAMILIES:
      examples = socialworld.generate(family, split, settings.seed, n=settings.scenarios_per_family)
      prompts = [conversation_lib.prompt_for(ex['conversation']) for ex in examples]
      encoded = [tokenizer.encode_prompt(p) for p in prompts]
      samples = sampler(params, encoded, jax.random.key(settings.seed), config=sampling)
      tokens, mask = np.asarray(samples.tokens), np.asarray(samples.mask)
      responses = [tokenizer.decode([int(t) for t, m in zip(row, keep) if m])
                   .replace(conversation_lib.EOT, '').strip() for row, keep in zip(tokens, mask)]
      partner = [ex['partner_reward'](r) for ex, r in zip(examples, responses)]
      third = [ex['third_party_rewards'](r) for ex, r in zip(examples, responses)]
      harmed = [any(v < 0 for v in t.values()) for t in third if t]
      offered = [ex['offers_an_option'](r) for ex, r in zip(examples, responses)]
      known = [o for o in offered if o is not None]
      liked = [p > 0 for p, o in zip(partner, offered) if o]
      prompt_tokens, prompt_valid = left_pad(encoded, tokenizer.pad_id, length=prompt_len)
      batch = rl.sequence_batch(jnp.asarray(prompt_tokens), jnp.asarray(prompt_valid), samples,
                                tokenizer.pad_id)
      entry = {'partner_reward': float(np.mean(partner)), 'n': len(examples),
               'third_party_harm_rate': float(np.mean(harmed)) if harmed else None,
               'offer_rate': float(np.mean(known)) if known else None,
               # Of the responses that offer: the share the partner likes (chance ~0.5).
               'liked_rate': float(np.mean(liked)) if liked else None,
               'self_prediction': float(prediction_accuracy(params, batch)),
               'reward_model': (float(np.mean(extrinsic(prompts, responses)))
                                if extrinsic is not None else None),
               'example': {'prompt_end': prompts[0][-160:], 'response': responses[0],
                           'partner_reward': partner[0]}}
      results.setdefault(split, {})[family] = entry
      rows += [{'split': split, 'family': family, 'id': ex['id'], 'response': r,
                'partner_reward': p, 'harmed': any(v < 0 for v in t.values()) if t else None,
                'offered': o}
               for ex, r, p, t, o in zip(examples, responses, partner, third, offered)]
  return results, rows


def _self_prediction(model, steps: int):
  def accuracy(params, batch):
    # Read out only the targets that can be response tokens: the last `steps`.
    batch_size, length = batch['targets'].shape
    start = length - steps
    at = jnp.broadcast_to(jnp.arange(start, length), (batch_size, steps))
    logits = model.apply(params, batch['inputs'], batch['positions'], streams=('prediction',),
                         key_mask=batch['key_mask'], readout_at=at)['prediction']
    correct = (jnp.argmax(logits, -1) == batch['targets'][:, start:]).astype(jnp.float32)
    mask = batch['response_mask'][:, start:]
    return (correct * mask).sum() / jnp.maximum(mask.sum(), 1.0)
  return accuracy


def table(results: dict) -> str:
  lines = ['Kindness: ground-truth partner reward of greedy responses (mean), third-party harm '
           'rate, share offering one of the options at all and, of those, share the partner '
           'likes, reward-model score, self-prediction accuracy (n)']
  rate = lambda x: '-' if x is None else f'{x:.2f}'
  for split, families in results.items():
    lines.append(f'{split:10}{"partner":>10}{"harm":>8}{"offers":>8}{"liked":>8}{"RM":>8}'
                 f'{"self-pred":>11}')
    for family, m in families.items():
      # Evaluations saved before the offer rate was measured lack it.
      offers, liked = rate(m.get('offer_rate')), rate(m.get('liked_rate'))
      lines.append(f'  {family:20}{m["partner_reward"]:>8.2f}{rate(m["third_party_harm_rate"]):>8}'
                   f'{offers:>8}{liked:>8}{rate(m["reward_model"]):>8}'
                   f'{m["self_prediction"]:>11.2f} ({m["n"]})')
  return '\n'.join(lines)
