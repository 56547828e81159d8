"""imitation — Simulation and Imitation, paper 001 Algorithm 3 (stages 4a and 4b).

For each turn m = a^X of another speaker X in a conversation C:

  s^X ← S(s^X)                        switch names: render C from X's perspective
  imitate  = NLL_behavior(a^X | s^X)  → behavior, perception   (4a: act as X did)
  simulate = NLL_prediction(a^X | s^X) → prediction, perception (4b: predict what X does)

After the switch X's turns carry the "self" role, so both losses cover exactly
the tokens X said (the pipeline's self_mask): X's words and <eot>, not the
<self> token that opens the turn, nor anyone else's turns. Whose perspective each
conversation is rendered from is data.perspective ('random', or 'other': a speaker
other than the first); SocialWorld scenarios take the partner's with
data.scenario_perspective='partner'. Both towers see the same switched state, and
perception, shared by both, learns from both (Alg. 3 line 10).
"""
from tomk.routing import Objective, token_nll

OBJECTIVES = [
    Objective('imitate', stream='behavior', loss=token_nll, mask='self_mask'),
    Objective('simulate', stream='prediction', loss=token_nll, mask='self_mask'),
]

ROUTES = {
    'imitate': {'behavior': 1.0, 'perception': 1.0},
    'simulate': {'prediction': 1.0, 'perception': 1.0},
}

DATA = 'lm'    # conversations, each rendered from one speaker's perspective


def objectives(config):
  del config
  return OBJECTIVES


def gates(batch, config):
  del batch, config
  return {}
