"""Kindness end to end: pretrain → reward_model → finetune → empathy (paper 001, Alg. 1, 2, 4).

The model first learns conversations, SocialWorld stories and scenarios ending in the
partner's true reaction (both streams); a Bradley–Terry reward model learns the
simulated raters' preferences; the behavior stream is fine-tuned on that reward while
the prediction stream learns to predict the behavior's own responses; finally the
model is trained on the simulated reaction of the person it talks to: the prediction
stream plays the partner from the partner's perspective (the name switch), and the
sentiment of that simulated reply is the reward (001 Alg. 4).

  python -m tomk.main --config=configs/empathy.py --workdir=runs/empathy
  python -m tomk.main --config=configs/empathy.py:smoke --workdir=/tmp/empathy-smoke
"""
import ml_collections

from configs import pretrain_social

FINAL = 'empathy'      # configs/rlhf.py and configs/naive_kindness.py swap the last stage


def get_config(arg=None, final=FINAL):
  config = pretrain_social.get_config('smoke' if arg == 'smoke' else None)
  config.rewards.extrinsic = 'reward_model'      # this run's reward_model stage
  config.curriculum = f'pretrain,reward_model,finetune,{final}'
  config.stages = ml_collections.ConfigDict({
      'pretrain': {'algorithm': 'pretrain', 'steps': 400},
      'reward_model': {'algorithm': 'reward_model', 'steps': 150},
      'finetune': {'algorithm': 'finetune', 'steps': 30, 'batch_size': 16},
      final: {'algorithm': final, 'steps': 60, 'batch_size': 16},
  })
  if arg == 'smoke':
    config.rl.max_new_tokens = 8
    config.stages.pretrain.steps = 10
    config.stages.reward_model.steps = 4
    config.stages.finetune.update(steps=3, batch_size=8)
    config.stages[final].update(steps=3, batch_size=8)
  elif arg:
    raise ValueError(f'configs/{final}.py takes no argument or "smoke", got {arg!r}.')
  return config
