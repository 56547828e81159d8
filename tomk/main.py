"""Runs an experiment: python -m tomk.main --config=configs/pretrain.py --workdir=runs/pretrain.

Intentionally short: flags, multi-host start-up, then one call to tomk.experiment.
Re-running the same command on the same workdir resumes from its last checkpoint.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from tomk import cli

config_flags.DEFINE_config_file('config', None, 'Experiment config file (configs/*.py[:arg]).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Where config.json, metrics, checkpoints and reports go.')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, for multi-process runs.')
flags.DEFINE_integer('num_processes', None, 'Number of processes in a multi-process run.')
flags.DEFINE_integer('process_id', None, 'This process\'s index in a multi-process run.')
flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() and let JAX detect '
                  'the cluster (Cloud TPU VM pods set no variable tomk can see).')
flags.DEFINE_string('branch_from', None, 'A workdir whose leading stages equal this config\'s '
                    '(e.g. runs/empathy for configs/rlhf.py): a new workdir starts with copies '
                    'of the stages it finished and trains the rest (tomk/branch.py).')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def initialize_distributed():
  """jax.distributed.initialize() when this is one process of many (flags, SLURM or Cloud TPU)."""
  import jax
  if FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  elif (FLAGS.distributed or int(os.environ.get('SLURM_NTASKS', '1')) > 1
        or ',' in os.environ.get('TPU_WORKER_HOSTNAMES', '')):
    jax.distributed.initialize()


@cli.errors_in_one_line      # bad input: one sentence that says what to change
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS['verbosity'].present:      # orbax and tfds log every step at INFO
    logging.set_verbosity(logging.WARNING)
  initialize_distributed()
  from tomk import experiment, train   # after jax.distributed.initialize
  try:
    experiment.run(FLAGS.config, FLAGS.workdir, branch_from=FLAGS.branch_from)
  except train.Preempted:
    sys.exit(0)             # the checkpoint is saved: a clean exit, the scheduler re-runs us


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
