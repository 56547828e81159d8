"""Pre-training a ~1B-parameter model of the same family, sharded FSDP over a pod slice.

The algorithm and data of configs/pretrain.py at Llama-1B-like widths: d_model 2048,
16 heads of 128, SwiGLU FFN 8192, a trunk of 4 blocks under two towers of 4 blocks
each (every stream is 8 blocks deep), vocab 32768, rows of 2048 tokens:

  embedding + 2 readouts   3 × 32768 × 2048                          201,326,592
  12 blocks                12 × (4·2048² + 3·2048·8192 + 2·2048)     805,355,520
  2 final norms            2 × 2048                                        4,096
  total                                                            1,006,686,208

Parameters and both Adam moments are sharded over every device ('embed' → fsdp) and so
is the batch (one row per device on 256 devices): 45 MiB of train state per device.
See what a step needs per device before reserving the slice (BUILD.md, "Ahead-of-time
compile"):

  python -m tomk.aot --config=configs/pretrain_1b.py --devices=256
  PYTHONPATH=~/.libtpu python -m tomk.aot --config=configs/pretrain_1b.py --topology=v5p-512

and train on a slice (launch/tpu_pod.sh), e.g. v5p-512 (256 chips), with a workdir that
every host sees:

  python -m tomk.main --distributed --config=configs/pretrain_1b.py \
      --workdir=/mnt/shared/runs/pretrain-1b
  python -m tomk.main --config=configs/pretrain_1b.py:smoke --workdir=/tmp/pretrain-1b-smoke

The chitchat conversations alone (~5 M tokens) are far too little text for this size;
give it a larger corpus with --config.data.source=/path/convs-{split}.jsonl or a mixture.
"""
from tomk import config as config_lib
from tomk.algorithms import pretrain


def get_config(arg=None):
  config = config_lib.base()
  config.algorithm = 'pretrain'
  config_lib.set_routes(config, pretrain.ROUTES)
  config.model.update(d_model=2048, num_heads=16, ffn_dim=8192, trunk_layers=4, tower_layers=4,
                      max_len=2048, dtype='float32')
  config.data.update(vocab_size=32768, seq_len=2048)
  config.batch_size = 256                       # one 2048-token row per device on 256 devices
  config.steps = 20_000
  for p in ('perception', 'behavior', 'prediction'):
    config.optimizer[p].update(learning_rate=3e-4, warmup_steps=1000)
  # FSDP: every device holds a slice of every parameter and of the batch.
  config.mesh.update(data=1, fsdp=-1, tensor=1)
  config.log_every = 50
  config.eval_every = 1000
  config.checkpoint_every = 1000
  if arg == 'smoke':
    config_lib.smoke(config)          # the smoke model, still laid out FSDP
  elif arg:
    raise ValueError(f'configs/pretrain_1b.py takes no argument or "smoke", got {arg!r}.')
  return config
