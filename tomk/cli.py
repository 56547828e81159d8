"""Bad input on the command line, answered in one sentence.

Every tomk command that takes `--config=FILE[:ARG]` parses its flags with parse_flags and
runs under errors_in_one_line: a mistyped key, a value of the wrong type, a config file
that is missing, does not load or rejects its argument, and every error raised before
the first step (a ValueError or OSError: bad settings, bad user data, an unwritable
workdir) prints `error: <one sentence>` on stderr and exits with code 1. With `-v 1` the
traceback is printed too, before the sentence.

The config file is loaded here once before absl parses the flags, so its errors name the
file and line, and each `--config.KEY=VALUE` is checked against the loaded config: an
unknown key is named with the closest known one, a renamed key with its new name, a value
that does not parse as the key's type with the type it needs.
"""
from __future__ import annotations

import ast
import difflib
import errno
import functools
import importlib.util
import os
import sys
import traceback

from absl import app, flags
import ml_collections

from tomk import config as config_lib

FLAGS = flags.FLAGS


class UsageError(ValueError):
  """Bad input on the command line."""


def verbose(argv) -> bool:
  """Whether argv asks for tracebacks (-v 1, --v=1, --verbosity=1 or more)."""
  for i, arg in enumerate(argv):
    name, eq, value = arg.partition('=')
    if name in ('-v', '--v', '-verbosity', '--verbosity'):
      if not eq:
        value = argv[i + 1] if i + 1 < len(argv) else ''
      try:
        return int(value) >= 1
      except ValueError:
        return False
  return False


def fail(message: str, argv=None) -> None:
  """Prints `error: message` as one line on stderr (the traceback first with -v 1); exit 1."""
  if verbose(argv if argv is not None else sys.argv) and sys.exc_info()[0] is not None:
    traceback.print_exc()
  print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  sys.exit(1)


def one_line(message) -> str:
  return ' '.join(str(message).split())


def _where(exc: BaseException, path: str) -> str:
  """'FILE line N' of the deepest frame of exc's traceback in `path`, else 'FILE'."""
  line = None
  for frame in traceback.extract_tb(exc.__traceback__):
    if os.path.abspath(frame.filename) == os.path.abspath(path):
      line = frame.lineno
  return f'{path} line {line}' if line else path


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """The config that `--config=spec` ('FILE[:ARG]') names, or a UsageError naming the file,
  and the line where it failed."""
  path, colon, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise UsageError(f'--config={spec}: {path} is not a file; give a config file such as '
                     f'configs/empathy.py (or configs/empathy.py:smoke).')
  module_spec = importlib.util.spec_from_file_location('tomk_cli_config', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise UsageError(f'{path} line {e.lineno}: {e.msg}; fix the config file.') from e
  except Exception as e:  # noqa: BLE001 — whatever a config file raises, named in one line
    raise UsageError(f'{_where(e, path)} failed to load: {type(e).__name__}: {e}') from e
  if not callable(getattr(module, 'get_config', None)):
    raise UsageError(f'{path} defines no get_config(arg=None); a config file returns its '
                     f'ml_collections.ConfigDict from get_config.')
  try:
    config = module.get_config(arg) if colon else module.get_config()
  except ValueError as e:     # the config file's own word on its argument
    raise UsageError(f'--config={spec}: {e}') from e
  except Exception as e:  # noqa: BLE001
    raise UsageError(f'{_where(e, path)}: get_config({arg!r}) raised {type(e).__name__}: '
                     f'{e}') from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise UsageError(f'{path}: get_config returned {type(config).__name__}, not an '
                     f'ml_collections.ConfigDict.')
  return config


def _parses_as(value: str, current) -> bool:
  """Whether absl/ml_collections can read `value` as a value of current's type."""
  if isinstance(current, bool):
    return value.lower() in ('true', 'false', '1', '0')
  if isinstance(current, (int, float)):
    try:
      number = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      return False
    return isinstance(number, (int, float)) and not isinstance(number, bool) and (
        isinstance(current, float) or isinstance(number, int))
  return True


def check_override(config, key: str, value: str) -> None:
  """A UsageError unless `--config.key=value` names a key of `config` with a value that
  parses as that key's type."""
  new = config_lib.renamed(key)
  if new:
    raise UsageError(f'--config.{key} was renamed to --config.{new}; use the new name.')
  node, walked = config, []
  for part in key.split('.'):
    if isinstance(node, ml_collections.ConfigDict) and part not in node:
      known = list(node.keys())
      close = difflib.get_close_matches(part, known, n=1)
      where = '.'.join(walked) or 'the config'
      hint = (f'did you mean --config.{".".join(walked + close)}?' if close else
              f'{where} has {", ".join(sorted(known)[:12])}{"..." if len(known) > 12 else ""}.')
      raise UsageError(f'--config.{key} is not a setting of this config; {hint}')
    if not isinstance(node, ml_collections.ConfigDict):
      raise UsageError(f'--config.{key}: {".".join(walked)} is a value, not a group of '
                       f'settings; set --config.{".".join(walked)}=... instead.')
    node = node[part]
    walked.append(part)
  if not isinstance(node, ml_collections.ConfigDict) and value is not None and node is not None:
    if not _parses_as(value, node):
      raise UsageError(f'--config.{key}={value}: {key} is a {type(node).__name__} '
                       f'(now {node!r}); give a {type(node).__name__}.')


def parse_flags(argv):
  """absl's flag parsing with every error as one sentence (see the module docstring)."""
  try:
    spec = None
    for i, arg in enumerate(argv[1:], 1):
      if arg.startswith(('--config=', '-config=')):
        spec = arg.partition('=')[2]
      elif arg in ('--config', '-config') and i + 1 < len(argv):
        spec = argv[i + 1]
    config = load_config_file(spec) if spec else None
    for arg in argv[1:]:
      if arg.startswith('--config.'):
        key, eq, value = arg[len('--config.'):].partition('=')
        if config is not None:         # (no --config: absl says it is required)
          check_override(config, key, value if eq else None)
    return FLAGS(argv)
  except (UsageError, flags.Error, AttributeError, KeyError, TypeError) as e:
    fail(str(e), argv)


def errors_in_one_line(main):
  """main, with a ValueError or OSError (bad settings, user data, paths, a full disk)
  printed as one sentence and exit code 1."""
  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except (ValueError, FloatingPointError, flags.Error) as e:
      fail(str(e))
    except app.UsageError as e:
      fail(f'{e}; see --helpshort.')
    except OSError as e:
      fail(os_error(e))
  return wrapped


def os_error(e: OSError) -> str:
  """An OSError as what failed and what to change."""
  where = f' {e.filename}' if getattr(e, 'filename', None) else ''
  if e.errno == errno.ENOSPC:
    return (f'no space left on the device{" writing" + where if where else ""}; free some space (or point '
            f'--workdir / data.data_dir at a larger disk) and re-run the same command to '
            f'resume from the last checkpoint.')
  if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    return (f'cannot write{where}: {e.strerror}; choose a --workdir (or data.data_dir) you '
            f'can write to.')
  return f'{e.strerror or e}{":" + where if where else ""}'
