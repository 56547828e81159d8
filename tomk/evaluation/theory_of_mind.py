"""Theory of Mind: false-belief questions answered by likelihood ranking (SPEC §6).

Each SocialWorld story ends in a question whose answer is one of two containers, the
object's first and second place. A stream answers with the container it finds the
likelier continuation of the story and question (`stories.prompt` then
`stories.continuation`, the text a model is trained on), so chance is 50 %.

Accuracy is reported per question type (memory, reality, first- to fourth-order
belief) and, for beliefs, apart for `tom` questions (the answer is a false belief)
and `no_tom` ones: a model that always answers where the object really is scores
100 % on no_tom and 0 % on tom, which one pooled number would hide (SPEC §5,
"Balance what is hard"). One more row, `first_order/witness`, asks whether a model
knows *whose* belief is false (see WITNESS).

The stories are drawn with the story mix of `stories.BALANCED`, exactly `per_label`
for each row (question type × tom), so every row has enough examples however rare
it is in a natural mix; BALANCED and HIGHER_ORDER between them ask all six types.
"""
from __future__ import annotations

import numpy as np

from tomk import socialworld
from tomk.evaluation import scoring
from tomk.socialworld import stories

QUESTION_TYPES = stories.QUESTION_TYPES


def label(question_type: str, tom: bool) -> str:
  return f'{question_type}/{"tom" if tom else "no_tom"}'


# Order-0 questions (memory, reality) ask where the object is or was, never a belief.
LABELS = tuple(label(q, tom) for q in QUESTION_TYPES
               for tom in ((False,) if stories.ORDER[q] == 0 else (True, False)))

# Whose belief: a first_order/no_tom question in a false-belief story asks about an agent
# who saw the move that another agent missed. A model that has learned only that the story
# holds a false belief answers every agent of it alike, so first_order/tom plus this row
# comes to about 1; telling the agents apart, to 2. A subset of first_order/no_tom, not
# stories of its own, so 'all' pools LABELS alone; its n varies (None when empty).
WITNESS = 'first_order/witness'
ROWS = LABELS + (WITNESS, 'all')


def examples(split: str, seed: int, per_label: int, stride: int | None = None) -> list[dict]:
  """`per_label` stories for each of LABELS from `split`, the same for every run.

  Row i's stories are those at indices i * stride ... (stride defaults to per_label), so
  with the evaluation's stride a smaller `per_label` draws the first of its stories.
  """
  stride = per_label if stride is None else stride
  if per_label > stride:
    raise ValueError(f'{per_label} stories per row with a stride of {stride}: the rows would '
                     f'share stories; ask for at most {stride}.')
  out = []
  for i, name in enumerate(LABELS):
    question_type, tom = name.split('/')
    # Disjoint index ranges: example i's story depends on (split, seed, i) only, so
    # rows sharing indices would share stories.
    out += socialworld.generate(
        'story', split, seed, per_label, start=i * stride,
        story_weights=stories.BALANCED['story_weights'],
        question_weights={question_type: 1.0}, tom_fraction=float(tom == 'tom'))
  return out


def evaluate(scorer: scoring.Scorer, story_examples: list[dict]) -> dict:
  """{stream: {row: {'accuracy', 'n'}}} for every stream, a row for each of ROWS."""
  prompts, continuations = [], []
  for ex in story_examples:
    if ex['answer'] not in ex['candidates'] or len(ex['candidates']) != 2:
      raise ValueError(f'story {ex["id"]}: expected two candidates holding the answer, got '
                       f'{ex["candidates"]} and answer {ex["answer"]!r}.')
    for candidate in ex['candidates']:
      prompts.append(stories.prompt(ex))
      continuations.append(stories.continuation(ex, candidate))
  log_likelihoods = scorer.continuations(prompts, continuations)
  is_answer = np.array([c == ex['answer'] for ex in story_examples for c in ex['candidates']])
  labels = np.array([label(ex['question_type'], ex['tom']) for ex in story_examples])
  witness = (labels == label('first_order', False)) & np.array(
      [ex['story_type'] != 'true_belief' for ex in story_examples], dtype=bool)
  results = {}
  for stream, ll in log_likelihoods.items():
    ll = ll.reshape(-1, 2)
    answer_first = is_answer.reshape(-1, 2)[:, 0]
    right = np.where(answer_first, ll[:, 0], ll[:, 1])
    wrong = np.where(answer_first, ll[:, 1], ll[:, 0])
    correct = scoring.two_candidate_accuracy(right, wrong)
    results[stream] = {name: scoring.summarize(correct[labels == name]) for name in LABELS}
    results[stream][WITNESS] = scoring.summarize(correct[witness])
    results[stream]['all'] = scoring.summarize(correct)
  return results


class Probe:
  """Theory of Mind during training: the prediction stream on a few test stories per row.

  The table at the end of a run says what was learned; the probe says when: every
  eval_every steps it scores config.evaluation.probe_stories_per_label test stories per
  row, the first of the evaluation's own (so at most evaluation.stories_per_label). The
  forward pass compiles once per padded length and is reused by every probe of a stage.
  """

  STREAM = 'prediction'    # the impartial simulator, which SPEC §6's bar reads

  def __init__(self, model, tokenizer, settings):
    self.model, self.tokenizer, self.settings = model, tokenizer, settings
    self.examples = examples('test', settings.seed, settings.probe_stories_per_label,
                             stride=settings.stories_per_label)
    self.scorer = None

  def __call__(self, params) -> dict[str, float]:
    """{'tom/<row>': accuracy} of `params` for each of ROWS that has stories."""
    if self.scorer is None:
      self.scorer = scoring.Scorer(self.model, params, self.tokenizer, self.settings.batch_size,
                                   self.settings.lengths, streams=(self.STREAM,))
    else:
      self.scorer.params = params
    results = evaluate(self.scorer, self.examples)[self.STREAM]
    return {f'tom/{name}': m['accuracy'] for name, m in results.items()
            if m['accuracy'] is not None}


def probe_line(scalars: dict[str, float]) -> str:
  """The probe's accuracies in one line: 'memory 0.90  first_order 0.40/0.60 (witness 0.50) ...'
  (tom/no_tom; witness: see WITNESS)."""
  cells = []
  for question_type in QUESTION_TYPES:
    values = [scalars.get(f'tom/{label(question_type, tom)}') for tom in (True, False)]
    shown = [f'{v:.2f}' for v in values if v is not None]
    cells.append(f'{question_type} {"/".join(shown)}')
    if question_type == 'first_order' and f'tom/{WITNESS}' in scalars:
      cells[-1] += f' (witness {scalars[f"tom/{WITNESS}"]:.2f})'
  return '  '.join(cells) + f'  (tom/no_tom; all {scalars["tom/all"]:.2f})'
