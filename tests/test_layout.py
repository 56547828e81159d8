"""The code's layout: layers without a circle, small modules, every default in config.py,
and a README whose layout section names files that exist."""
import ast
import os
import re

from conftest import REPO

PACKAGE = os.path.join(REPO, 'tomk')
MAX_LINES = 400


def _modules() -> dict[str, str]:
  """{'tomk.data.pipeline': path} for every module of the package."""
  out = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(root, name)
        module = os.path.relpath(path[:-3], REPO).replace(os.sep, '.')
        out[module.removesuffix('.__init__')] = path
  return out


def _imports(module: str, path: str, modules: dict[str, str]) -> set[str]:
  """The package modules `module` imports anywhere in its file, functions included."""
  package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      found |= {base} | {f'{base}.{alias.name}' for alias in node.names}
  # A package's __init__ is not a layer of its own modules.
  return {m for m in found if m in modules and m != module
          and not m.startswith(module + '.') and not module.startswith(m + '.')}


def test_the_import_graph_has_no_cycle():
  modules = _modules()
  graph = {m: _imports(m, p, modules) for m, p in modules.items()}
  state, cycles = {}, []

  def visit(module, trail):
    state[module] = 'open'
    for imported in sorted(graph[module]):
      if state.get(imported) == 'open':
        cycles.append(' -> '.join(trail[trail.index(imported):] + [imported]))
      elif imported not in state:
        visit(imported, trail + [imported])
    state[module] = 'done'

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  assert not cycles, 'import cycles (a lower module imports an upper one):\n' + '\n'.join(cycles)


def test_the_graph_sees_imports_inside_functions():
  """The check above would miss a circle closed by a function-level import if the AST walk
  did not reach into functions: tomk.main imports tomk.experiment only inside main()."""
  modules = _modules()
  assert 'tomk.experiment' in _imports('tomk.main', modules['tomk.main'], modules)


def test_no_module_is_longer_than_a_few_hundred_lines():
  long = {os.path.relpath(p, REPO): n for p in _modules().values()
          if (n := len(open(p).read().splitlines())) > MAX_LINES}
  assert not long, f'modules over {MAX_LINES} lines: {long}'


def _config_fallbacks(path: str) -> list[str]:
  """getattr(<config...>, key, default) and <config...>.get(key, default) calls in a file."""
  found = []
  for node in ast.walk(ast.parse(open(path).read())):
    if not isinstance(node, ast.Call):
      continue
    func = node.func
    if isinstance(func, ast.Name) and func.id == 'getattr' and len(node.args) == 3:
      receiver = node.args[0]
    elif isinstance(func, ast.Attribute) and func.attr == 'get' and (
        len(node.args) == 2 or node.keywords):
      receiver = func.value
    else:
      continue
    if 'config' in ast.unparse(receiver).lower():
      found.append(f'{os.path.relpath(path, REPO)}:{node.lineno}: {ast.unparse(node)}')
  return found


def test_every_default_lives_in_config_py():
  fallbacks = [f for p in _modules().values() if not p.endswith(os.path.join('tomk', 'config.py'))
               for f in _config_fallbacks(p)]
  assert not fallbacks, ('defaults outside tomk/config.py (read the key; config.complete fills '
                         'old configs):\n' + '\n'.join(fallbacks))


def test_the_fallback_finder_finds_fallbacks(tmp_path):
  path = tmp_path / 'example.py'
  path.write_text('a = getattr(data_config, "x", 1)\nb = config.kindness.get("y", 2)\n'
                  'c = record.get("z", 3)\nd = getattr(module, "w", None)\n')
  assert [f.rsplit(': ', 1)[1] for f in _config_fallbacks(str(path))] == [
      "getattr(data_config, 'x', 1)", "config.kindness.get('y', 2)"]


def test_every_path_in_the_readme_layout_exists():
  readme = open(os.path.join(REPO, 'README.md')).read()
  section = re.search(r'^## Layout\n(.*?)(?=^## )', readme, re.S | re.M)
  assert section, 'README.md has no "## Layout" section'
  paths, folder = [], ''
  for name in re.findall(r'`([^`\s]+)`', section.group(1)):
    if '/' in name:           # a path from the top; a bare file name after it is in its folder
      paths.append(name)
      folder = name if name.endswith('/') else os.path.dirname(name)
    elif name.endswith(('.py', '.md', '.sh')):
      paths.append(os.path.join(folder, name))
  assert len(paths) > 40, paths
  missing = [p for p in paths if not os.path.exists(os.path.join(REPO, p.rstrip('/')))]
  assert not missing, f'README.md\'s layout names paths that do not exist: {missing}'
