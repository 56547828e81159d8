"""finetune — Basic fine-tuning, paper 001 Algorithms 2 and 6.

The behavior stream is trained by reward on its own sampled responses; the
prediction stream learns to predict those responses, so the model learns to
predict its own behavior (self-prediction, stage 1a/2a).
"""
from tomk import rl
from tomk.algorithms import rlhf
from tomk.routing import Objective, token_nll

ROUTES = {
    'rl': {'behavior': 1.0, 'perception': 1.0},
    'prediction_nll': {'prediction': 1.0, 'perception': 1.0},
}

DATA = 'prompts'


def objectives(config):
  return [rl.objective(config),
          Objective('prediction_nll', 'prediction', token_nll, mask='response_mask')]


gates = rlhf.gates
rewards = rlhf.rewards      # R(s, a): the configured extrinsic reward
