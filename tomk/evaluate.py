"""Evaluates a trained run: python -m tomk.evaluate --workdir=runs/pretrain [--step=N].

Theory of Mind, perspective-taking and kindness (SPEC §6) of the latest (or the given)
checkpoint: prints a table and writes eval.json into the workdir; with --stage=S, of
the parameters stage S ended with, into eval/S.json; with --stage=imported, of the
checkpoint a run on a pretrained model started from (model.init_from), before any step,
into eval/imported.json (report.md then shows it first). The work is in tomk/evaluation.
"""
import sys

from absl import app, flags, logging

flags.DEFINE_string('workdir', None, 'A workdir written by tomk.main (config.json, checkpoints/).')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate; default the latest.')
flags.DEFINE_string('stage', None, 'Evaluate the parameters this stage of the curriculum ended '
                    'with, into eval/STAGE.json; default the last stage, into eval.json; '
                    '"imported": the model.init_from checkpoint, before training.')
flags.mark_flags_as_required(['workdir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS['verbosity'].present:      # orbax and tfds log at INFO
    logging.set_verbosity(logging.WARNING)
  from tomk import evaluation
  try:
    evaluation.run(FLAGS.workdir, FLAGS.step, stage=FLAGS.stage)
  except (ValueError, FileNotFoundError) as e:
    logging.info('traceback', exc_info=True)
    print(f'error: {e}', file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
