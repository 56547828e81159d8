"""Replies of a trained run to conversations you wrote: how a stage answers your people.

  python -m tomk.generate --workdir=runs/empathy --conversations=talk.jsonl --self=Sam \
      [--stage=finetune] [--stream=behavior|prediction] \
      [--act=greedy|sample|simulate_then_act] [--out=replies.jsonl]

Reads the conversations JSONL tomk trains on ({"id": ..., "turns": [{"speaker", "text"}]},
tomk/data/jsonl.py), renders each from the perspective of --self (the speaker the model
plays, e.g. SocialWorld's "Sam") and writes one line {"id": ..., "reply": ...} per
conversation, to --out or to stdout. --act:

  greedy             the stream's most likely reply
  sample             a reply sampled at rl.temperature (seeded: --seed)
  simulate_then_act  001 §4.2.6: the behavior stream proposes --candidates replies, the
                     prediction stream simulates the last speaker's reaction to each from
                     their perspective (empathy's reward, averaged over
                     evaluation.signal_replies replies) and the best is the reply
"""
from __future__ import annotations

import json
import sys

import jax
import numpy as np
from absl import app, flags, logging

from tomk import checkpoints, rollout, rundir
from tomk.data import conversation as conversation_lib
from tomk.data import jsonl
from tomk.evaluation import kindness_signal
from tomk.sampler import Sampler, SamplingConfig

ACTS = ('greedy', 'sample', 'simulate_then_act')


def replies(workdir: str, conversations: list, self_name: str, stage: str | None = None,
            stream: str = 'behavior', act: str = 'greedy', candidates: int = 4,
            seed: int = 0) -> list[str]:
  """The run's reply to each conversation as `self_name` (see the module docstring)."""
  if act not in ACTS:
    raise ValueError(f'--act={act!r}: use one of {", ".join(ACTS)}.')
  if act == 'simulate_then_act' and stream != 'behavior':
    raise ValueError('--act=simulate_then_act proposes replies with the behavior stream and '
                     'simulates them with the prediction stream; drop --stream.')
  for c in conversations:
    if c.turns and c.turns[-1].speaker == self_name:
      raise ValueError(f'conversation {c.id!r} ends with a turn of --self={self_name!r}; the '
                       f'model replies to the last speaker, so end it with someone else\'s turn.')
  config, model, tokenizer, params, _ = checkpoints.load_run(workdir, stage=stage)
  views = [conversation_lib.switch(c, self_name) for c in conversations]
  prompts = [conversation_lib.prompt_for(v) for v in views]
  temperature = 0.0 if act == 'greedy' else config.rl.temperature
  sampling = SamplingConfig(config.rl.max_new_tokens, temperature, config.rl.top_k,
                            config.rl.top_p)
  sampler = Sampler(model, tokenizer.eot_id, tokenizer.pad_id, prompt_len=config.rl.prompt_len)
  context = rollout.Context(model, tokenizer, sampler, sampling, config, {})
  key = jax.random.key(seed)
  if act != 'simulate_then_act':
    return context.decode(context.sample(params, prompts, key, stream=stream))
  proposals = context.decode(context.sample(params, prompts, key, stream='behavior',
                                            num_samples=candidates))
  estimate = kindness_signal.estimators(
      config, model, tokenizer, params, config.evaluation,
      rollout.reward_functions(config, workdir, tokenizer, trained_only=True))['simulate']
  repeated = [v for v in views for _ in range(candidates)]
  return best_of(proposals, estimate(repeated, proposals, jax.random.fold_in(key, 1)),
                 candidates)


def best_of(proposals: list[str], scores, candidates: int) -> list[str]:
  """For each prompt, the proposal with the highest score (proposals grouped by prompt,
  `candidates` each, as the sampler returns them)."""
  best = np.asarray(scores).reshape(-1, candidates).argmax(1)
  return [proposals[i * candidates + b] for i, b in enumerate(best)]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:      # orbax logs at INFO
    logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  try:
    conversations = jsonl.read_conversations(f.conversations)
    if not conversations:
      raise ValueError(f'{f.conversations} holds no conversation; write one per line as '
                       f'{{"id": "c1", "turns": [{{"speaker": "Ann", "text": "Hi"}}]}}.')
    out = replies(f.workdir, conversations, f.self, f.stage, f.stream, f.act, f.candidates,
                  f.seed)
  except (ValueError, FileNotFoundError) as e:
    logging.info('traceback', exc_info=True)
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(1)
  lines = ''.join(json.dumps({'id': c.id, 'reply': r}) + '\n' for c, r in zip(conversations, out))
  if f.out:
    rundir.write_text(f.out, lines)
  else:
    sys.stdout.write(lines)


if __name__ == '__main__':
  flags.DEFINE_string('workdir', None, 'A workdir written by tomk.main.')
  flags.DEFINE_string('conversations', None, 'A JSONL file of conversations (tomk/data/jsonl.py).')
  flags.DEFINE_string('self', None, 'The speaker the model plays, e.g. Sam.')
  flags.DEFINE_string('stage', None, 'Reply with the parameters this stage ended with '
                      '(default: the last stage).')
  flags.DEFINE_enum('stream', 'behavior', ('behavior', 'prediction'), 'Which stream replies.')
  flags.DEFINE_enum('act', 'greedy', ACTS, 'How the reply is chosen.')
  flags.DEFINE_integer('candidates', 4, 'Replies proposed by simulate_then_act.')
  flags.DEFINE_integer('seed', 0, 'Seed of sample and simulate_then_act.')
  flags.DEFINE_string('out', None, 'Where the replies go (default: stdout).')
  flags.mark_flags_as_required(['workdir', 'conversations', 'self'])
  app.run(main)
