"""A trained stream as a Hugging Face checkpoint: the behavior stream is the deployable policy.

  python -m tomk.export --workdir=runs/smollm2 --out=exported/ [--stage=empathy] \
      [--stream=behavior|prediction]

Writes --out/config.json, model.safetensors (float32, LoRA merged) and, for a run on a
pretrained model's tokenizer, tokenizer.json and tokenizer_config.json, which transformers'
AutoModelForCausalLM and AutoTokenizer load. The stream is perception (embedding and lower
blocks) followed by that stream's tower and readout, as tomk.foundation.convert.export writes
it. A run on tomk's own SentencePiece tokenizer exports the model; its tokenizer file stays
in the data directory (the path is printed).
"""
from __future__ import annotations

from absl import app, flags, logging

from tomk import checkpoints, cli
from tomk.foundation import checkpoint as checkpoint_lib
from tomk.foundation import convert
from tomk.model import STREAMS

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags, defined only when it runs: `export` is also a library function,
  imported beside tomk.main, whose --workdir would otherwise be defined twice."""
  flags.DEFINE_string('workdir', None, 'The run to export from.')
  flags.DEFINE_string('out', None, 'The directory to write.')
  flags.DEFINE_string('stage', None, 'The stage whose parameters to export (default: the last).')
  flags.DEFINE_enum('stream', 'behavior', STREAMS, 'The stream to export.')
  flags.mark_flags_as_required(['workdir', 'out'])


def export(workdir: str, out: str, stage: str | None = None, stream: str = 'behavior') -> str:
  """Writes `stream` of the run's checkpoint (of `stage`) to `out`; returns a summary line."""
  config, model, tokenizer, params, step = checkpoints.load_run(workdir, stage=stage)
  family = 'llama'
  if config.model.init_from:
    family = checkpoint_lib.Checkpoint(config.model.init_from).architecture['family']
  chat = hasattr(tokenizer, 'save')
  convert.export(params, model.config, stream, out, tokenizer if chat else None, family)
  note = '' if chat else f'; its SentencePiece tokenizer: {tokenizer.path}'
  return f'exported the {stream} stream of {workdir} (step {step}) to {out}{note}'


@cli.errors_in_one_line
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  print(export(FLAGS.workdir, FLAGS.out, FLAGS.stage, FLAGS.stream))


if __name__ == '__main__':
  define_flags()
  app.run(main)
