"""Kindness end to end (paper 001, Alg. 1, 2, 3, 4; §4.2.4), the default experiment:

  pretrain → reward_model → finetune → imitation (⇄ infer_reward) → empathy

The model first learns conversations, SocialWorld stories and scenarios ending in the
partner's true reaction (both streams); a Bradley–Terry reward model learns the
simulated raters' preferences; the behavior stream is fine-tuned on that reward while
the prediction stream learns to predict the behavior's own responses. Then the model
learns the people it talks to: imitation (Alg. 3) switches to another speaker's
perspective (chitchat's second speaker, the scenarios' partner) and both streams learn
what that speaker said, interleaved with infer_reward (§4.2.4), where the prediction
side's reward head learns to predict the partner's observed reaction (its sentiment).
Finally the model is trained on the simulated reaction of the person it talks to: the
prediction stream plays the partner from the partner's perspective (the name switch),
and the sentiment of that simulated reply is the reward (001 Alg. 4).

kindness.reward='simulate' (Alg. 4) is the default; --config.kindness.reward=inferred
scores the partner's switched state with the reward head the infer_reward sub-stages
trained instead (no self-similarity assumption, 003 Eq. 2). configs/rlhf.py and
configs/naive_kindness.py run the same curriculum with another last stage.

Each stage's steps and batch size are set in STAGES (SMOKE for ':smoke') below.

  python -m tomk.main --config=configs/empathy.py --workdir=runs/empathy
  python -m tomk.main --config=configs/empathy.py:smoke --workdir=/tmp/empathy-smoke
  python -m tomk.main --config=configs/empathy.py --config.kindness.reward=inferred ...
"""
import ml_collections

from configs import pretrain_social

FINAL = 'empathy'      # configs/rlhf.py and configs/naive_kindness.py swap the last stage

# (steps, batch size) of each stage: the one place that sets the run's length. 'final'
# is the last stage (empathy, rlhf or naive_kindness); 'imitation' is the total of its
# interleaved imitation and infer_reward sub-stages (IMITATION_CYCLES cycles, half each).
# Language-model stages use batch 8: on SocialWorld stories the model learns to answer
# from the number of updates, not tokens (see configs/pretrain_social.py). Measured on 2
# quiet cores (2026-12-02): 7 min 38 s in all (pretrain 146 s, reward_model 28 s, finetune
# 24 s, imitation 34 s, empathy 48 s, each evaluation ~15 s, each signal check ~42 s).
STAGES = {
    'pretrain': (450, 8),
    'reward_model': (120, 32),
    'finetune': (30, 16),
    'imitation': (40, 8),
    'final': (60, 16),
}
# Every stage is evaluated as it ends (five times a run): smaller than the defaults, so
# evaluation costs about as much as one stage rather than several.
EVALUATION = dict(stories_per_label=10, scenarios_per_family=10, chitchat_conversations=16,
                  windows_per_conversation=2)
# The kindness-signal check (tomk/evaluation/kindness_signal.py) after the last two stages:
# every reward estimator against the partners' true reward on test scenarios of the
# families whose partners' wants differ (preference offers; partners like and unlike the
# model). It samples 2 estimators × replies × ~4 candidates × scenarios × families
# replies: with random parameters (every reply at its longest) 10 scenarios of all six
# families at 8 replies took 112 s on 2 cores.
SIGNAL = dict(signal_scenarios_per_family=50, signal_replies=4,
              signal_families=('preference_offer', 'similar_partner', 'dissimilar_partner'))
SMOKE_SIGNAL = dict(signal_scenarios_per_family=2)
IMITATION_CYCLES = 2
# The RL stages (finetune and the last) fine-tune a pre-trained policy: a tenth of the
# language-model learning rate, with a short warm-up. At the language-model rate (3e-3)
# finetune hacked the reward model within 30 steps (its score 1.2 → 10.5) into
# "ay for ay for afififi…", and the partners' true reward fell to 0 (measured).
RL_OPTIMIZER = dict(learning_rate=3e-4, warmup_steps=5)
SMOKE = {
    'pretrain': (10, 8),
    'reward_model': (4, 8),
    'finetune': (3, 8),
    'imitation': (2, 8),
    'final': (3, 8),
}
SMOKE_IMITATION_CYCLES = 1     # one imitation and one infer_reward sub-stage: one compile each


def get_config(arg=None, final=FINAL):
  if arg not in (None, 'smoke'):
    raise ValueError(f'configs/{final}.py takes no argument or "smoke", got {arg!r}.')
  smoke = arg == 'smoke'
  config = pretrain_social.get_config('smoke' if smoke else None)
  config.rewards.extrinsic = 'reward_model'      # this run's reward_model stage
  # No Theory of Mind probe while training: each stage's evaluation (eval/<stage>.json) has
  # the full table, and the probe would cost every stage a compilation of its own.
  config.evaluation.probe_stories_per_label = 0
  config.model.reward_head = True                # r̂, trained by infer_reward: every stage's tree
  config.evaluation.update(SMOKE_SIGNAL if smoke else SIGNAL)
  steps = SMOKE if smoke else STAGES
  config.curriculum = f'pretrain,reward_model,finetune,imitation,{final}'
  stage = lambda algorithm, name: dict(algorithm=algorithm, steps=steps[name][0],
                                       batch_size=steps[name][1])
  rl_stage = lambda algorithm, name: dict(
      stage(algorithm, name),
      optimizer={p: RL_OPTIMIZER for p in ('perception', 'behavior', 'prediction')})
  config.stages = ml_collections.ConfigDict({
      'pretrain': stage('pretrain', 'pretrain'),
      'reward_model': stage('reward_model', 'reward_model'),
      'finetune': rl_stage('finetune', 'finetune'),
      # Others' words from their perspective (Alg. 3) and their reactions (§4.2.4).
      'imitation': {
          'interleave': 'imitation:1,infer_reward:1',
          'cycles': SMOKE_IMITATION_CYCLES if smoke else IMITATION_CYCLES,
          'steps': steps['imitation'][0], 'batch_size': steps['imitation'][1],
          'data': {'mixture': 'chitchat:1,scenarios:4', 'perspective': 'other',
                   'scenario_perspective': 'partner', 'reaction': 'sentiment'},
          # Each sub-stage's optimizer starts afresh: a short warm-up for short sub-stages.
          'optimizer': {p: {'warmup_steps': 2 if smoke else 5}
                        for p in ('perception', 'behavior', 'prediction')}},
      final: rl_stage(final, 'final'),
  })
  if not smoke:
    config.evaluation.update(EVALUATION)
  return config
