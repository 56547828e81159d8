"""Kindness end to end (paper 001, Alg. 1, 3, 4; §4.2.4), the default experiment:

  pretrain → reward_model → rehearse → imitation (⇄ infer_reward) → empathy

The model first learns conversations, SocialWorld stories and scenarios, each scenario
shown with three of its candidate responses and the partner's true reaction to each (both
streams); a Bradley–Terry reward model learns the simulated raters' preferences; rehearse
is language-model training on the scenarios alone (the same three responses each), so the
behavior stream knows the replies a scenario admits (offers of each item, refusals, small
talk). Then the model learns the people it talks to: imitation (Alg. 3) switches to another
speaker's perspective (chitchat's second speaker, the scenarios' partner) and the
prediction stream learns what that speaker said, interleaved with infer_reward (§4.2.4),
where the prediction side's reward head learns to predict the partner's observed reaction
(its sentiment). Finally the model is trained on the simulated reaction of the person it
talks to: the prediction stream plays the partner from the partner's perspective (the name
switch), and the sentiment of that simulated reply is the reward (001 Alg. 4).

Two departures from the papers' order, both measured (README, "The kindness experiment"):
finetune (Alg. 2, RL on the reward model) is not in the default curriculum: it turned the
policy into "Hi!" (reward-model score 8.3, offers 0.01) before any kindness stage; and
imitation trains the prediction stream alone (Alg. 3's stage 4b; 4a, the behavior acting
as the partner, made the policy talk like a partner: "Hello Sam. Can you get me…"). The
finetune stage is still defined: --config.curriculum=pretrain,reward_model,finetune,... adds it.

kindness.reward='simulate' (Alg. 4) is the default; configs/empathy.py:inferred scores the
partner's switched state with the reward head the infer_reward sub-stages trained instead
(no self-similarity assumption, 003 Eq. 2), on the last stage only. configs/rlhf.py,
configs/naive_kindness.py and configs/oracle_control.py run the same curriculum with
another last stage.

Each stage's steps and batch size are set in STAGES (SMOKE for ':smoke') below.

  python -m tomk.main --config=configs/empathy.py --workdir=runs/empathy
  python -m tomk.main --config=configs/empathy.py:smoke --workdir=/tmp/empathy-smoke
  python -m tomk.main --config=configs/empathy.py:inferred --workdir=runs/inferred \
      --branch_from=runs/empathy
"""
import ml_collections

from configs import pretrain_social

FINAL = 'empathy'      # configs/rlhf.py and configs/naive_kindness.py swap the last stage

# (steps, batch size) of each stage: the one place that sets the run's length. 'final'
# is the last stage (empathy, rlhf or naive_kindness); 'imitation' is the total of its
# interleaved imitation and infer_reward sub-stages (IMITATION_CYCLES cycles, half each).
# Language-model stages use batch 8: on SocialWorld stories the model learns to answer
# from the number of updates, not tokens (see configs/pretrain_social.py). The last stage
# samples 60 × 32 responses (the oracle control 150 × 32: configs/oracle_control.py). At
# 150 × 32 the empathy stage alone took 556 s of a 27 min 25 s run on a slow 2-core host
# (2026-12-06; pretrain 353 s, rehearse 213 s, imitation 100 s, each evaluation ~30 s,
# each signal check ~95 s).
STAGES = {
    'pretrain': (450, 8),
    'reward_model': (120, 32),
    'rehearse': (300, 8),
    'finetune': (30, 16),
    'imitation': (120, 8),
    'final': (60, 32),
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
SMOKE_SIGNAL = dict(signal_scenarios_per_family=2, signal_replies=2)
IMITATION_CYCLES = 2
# The RL stages (the last, and finetune where a curriculum has it) fine-tune a pre-trained
# policy: a tenth of the language-model learning rate, with a short warm-up. At the
# language-model rate (3e-3) finetune hacked the reward model within 30 steps (its score 1.2 → 10.5) into
# "ay for ay for afififi…", and the partners' true reward fell to 0 (measured).
RL_OPTIMIZER = dict(learning_rate=3e-4, warmup_steps=5)
SMOKE = {
    'pretrain': (10, 8),
    'reward_model': (4, 8),
    'rehearse': (3, 8),
    'finetune': (3, 8),
    'imitation': (2, 8),
    'final': (3, 8),
}
SMOKE_IMITATION_CYCLES = 1     # one imitation and one infer_reward sub-stage: one compile each
CURRICULUM = ('pretrain', 'reward_model', 'rehearse', 'imitation')     # then the last stage
# Whole-word pieces: at 1,024 (256 of them bytes) an item is 2–4 pieces ('licorice' is
# '▁l ic or ice'), and neither supervised demonstrations nor RL on the true reward learned
# to offer the item a partner had said they like; at 4,096 both did (README, "Where the
# control fails"). The smoke run keeps its small tokenizer.
VOCAB_SIZE = 4096
# Each training scenario is shown with this many of its candidate responses, each followed
# by the partner's true reaction (data.scenario_responses): one partner seen reacting to
# several replies, so a reaction's sign must come from what the partner wants.
SCENARIO_RESPONSES = 3
# Imitation trains the prediction stream (the partner simulator) on the other speaker's
# turns and leaves the behavior stream, the policy the last stage starts from, alone.
IMITATION_ROUTES = {'imitate': {'behavior': 0.0, 'perception': 0.0},
                    'simulate': {'prediction': 1.0, 'perception': 1.0}}
IMITATION_LR = 1e-3
# The last stage's rollouts: at temperature 1 the samples rarely name an item and the
# reward has no variance; at 0.7 with top-k 20 it has (configs/oracle_control_ladder.py).
FINAL_SAMPLING = dict(temperature=0.7, top_k=20)


def get_config(arg=None, final=FINAL):
  args = set(arg.split(',')) if arg else set()
  known = {'smoke', 'inferred'} if final == FINAL else {'smoke'}
  if args - known:
    raise ValueError(f'configs/{final}.py takes no argument or ' + ' and '.join(
        f'"{a}"' for a in sorted(known)) + f' (comma-separated), got {arg!r}.')
  smoke = 'smoke' in args
  config = pretrain_social.get_config('smoke' if smoke else None)
  config.rewards.extrinsic = 'reward_model'      # this run's reward_model stage
  # No Theory of Mind probe while training: each stage's evaluation (eval/<stage>.json) has
  # the full table, and the probe would cost every stage a compilation of its own.
  config.evaluation.probe_stories_per_label = 0
  config.model.reward_head = True                # r̂, trained by infer_reward: every stage's tree
  config.evaluation.update(SMOKE_SIGNAL if smoke else SIGNAL)
  steps = SMOKE if smoke else STAGES
  config.curriculum = ','.join(CURRICULUM + (final,))
  stage = lambda algorithm, name: dict(algorithm=algorithm, steps=steps[name][0],
                                       batch_size=steps[name][1])
  rl_stage = lambda algorithm, name: dict(
      stage(algorithm, name),
      optimizer={p: RL_OPTIMIZER for p in ('perception', 'behavior', 'prediction')})
  config.stages = ml_collections.ConfigDict({
      'pretrain': stage('pretrain', 'pretrain'),
      'reward_model': stage('reward_model', 'reward_model'),
      # The scenarios alone: the replies each admits, and how its partner takes each.
      'rehearse': dict(stage('pretrain', 'rehearse'), data={'mixture': 'scenarios:1'}),
      'finetune': rl_stage('finetune', 'finetune'),       # not in CURRICULUM; see above
      # Others' words from their perspective (Alg. 3) and their reactions (§4.2.4).
      'imitation': {
          'interleave': 'imitation:1,infer_reward:1',
          'cycles': SMOKE_IMITATION_CYCLES if smoke else IMITATION_CYCLES,
          'steps': steps['imitation'][0], 'batch_size': steps['imitation'][1],
          'data': {'mixture': 'chitchat:1,scenarios:4', 'perspective': 'other',
                   'scenario_perspective': 'partner', 'reaction': 'sentiment'},
          'imitation': {'routes': IMITATION_ROUTES},
          # Each sub-stage's optimizer starts afresh: a short warm-up for short sub-stages.
          'optimizer': {p: {'warmup_steps': 2 if smoke else 5, 'learning_rate': IMITATION_LR}
                        for p in ('perception', 'behavior', 'prediction')}},
      final: dict(rl_stage(final, 'final'), rl=FINAL_SAMPLING),
  })
  if 'inferred' in args:
    # The last stage scores the partner's switched state with the reward head (003 Eq. 2)
    # instead of a simulated reply; set on that stage alone, so a branch from a run of
    # configs/empathy.py shares every stage before it.
    config.stages[final].kindness = {'reward': 'inferred'}
  if not smoke:
    config.evaluation.update(EVALUATION)
    config.data.vocab_size = VOCAB_SIZE
  config.data.scenario_responses = SCENARIO_RESPONSES
  return config
