"""The first-party import graph has no cycles.

Every ``.py`` file of the core and the built-in plugins is parsed with ``ast``; every import of a
first-party module (at module level or inside a function, relative imports resolved) is an edge.
``from pkg import name`` where ``pkg.name`` is a module is an edge to that module; importing a
package is an edge to its ``__init__``. Imports under ``if TYPE_CHECKING:`` are ignored. A cycle
(a strongly connected component of more than one module, or a module importing itself) fails the
test with the modules and the edges that make it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emobox", "upstreams", "corpora", "downstreams")
PLUGIN_PACKAGES = ("upstreams", "corpora", "downstreams")
# installed names of the plugin folders (setup.cfg package_dir): emobox.corpora is corpora/
INSTALLED_AS = {f"emobox.{pkg}": pkg for pkg in PLUGIN_PACKAGES}


def _modules(root: Path, packages) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the given top-level packages."""
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, skipping the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _canonical(name: str, aliases: dict[str, str]) -> str:
    for installed, folder in aliases.items():
        if name == installed or name.startswith(installed + "."):
            return folder + name[len(installed):]
    return name


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The longest first-party module that ``name`` is or lies inside."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path, packages=PACKAGES,
                 aliases: dict[str, str] = INSTALLED_AS) -> dict[str, dict[str, int]]:
    """module -> {imported first-party module: line of the first such import}."""
    modules = _modules(root, packages)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:
                    base_parts = package.split(".") if package else []
                    up = node.level - 1
                    base_parts = base_parts[: len(base_parts) - up] if up else base_parts
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base != module:  # `from . import sub` in a package's __init__
                    names.append(base)
                for alias in node.names:
                    if alias.name != "*" and _canonical(f"{base}.{alias.name}", aliases) in modules:
                        names.append(f"{base}.{alias.name}")
            for name in names:
                target = _target(_canonical(name, aliases), modules)
                if target is not None:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module, plus self-imports (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0

    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, {}):
                    cycles.append(sorted(component))
    return sorted(cycles)


def describe(cycles: list[list[str]], graph: dict[str, dict[str, int]]) -> str:
    lines = []
    for component in cycles:
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        for module in component:
            for target, line in sorted(graph[module].items()):
                if target in members:
                    lines.append(f"    {module}:{line} imports {target}")
    return "\n".join(lines)


def test_no_import_cycles():
    graph = import_graph(ROOT)
    assert "emobox.tracks.runner" in graph and "corpora.demo" in graph
    # the old-name aliases are strings resolved on demand, not imports of the moved modules
    assert "emobox.tracks.runner" not in graph["emobox._legacy"]
    cycles = find_cycles(graph)
    assert not cycles, "first-party import cycles:\n" + describe(cycles, graph)


def test_core_imports_no_plugin():
    graph = import_graph(ROOT)
    found = [f"{module}:{line} imports {target}" for module, edges in sorted(graph.items())
             if module.split(".")[0] == "emobox"
             for target, line in sorted(edges.items()) if target.split(".")[0] in PLUGIN_PACKAGES]
    assert not found, "the core imports concrete plugins:\n" + "\n".join(found)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_a_cycle_through_a_function_local_relative_import(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def thing():\n    from . import c\n",
        "pkg/c.py": "from .a import thing\n",
        "pkg/d.py": "import pkg.a\n",
    })
    graph = import_graph(tmp_path, ("pkg",))
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "pkg.b:2 imports pkg.c" in describe(cycles, graph)


def test_checker_counts_package_init_and_self_imports_and_skips_type_checking(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.sub import x\nfrom . import helper\n",
        "pkg/sub.py": "from pkg import helper\nx = 1\n",
        "pkg/helper.py": "",
        "pkg/selfish.py": "import pkg.selfish\n",
        "pkg/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import sub\n",
        "other/__init__.py": "",
        "other/m.py": "import pkg.typed\nimport os\n",
    })
    graph = import_graph(tmp_path, ("pkg", "other"))
    # `from pkg import helper` is an import of pkg (its __init__) and of pkg.helper
    assert set(graph["pkg.sub"]) == {"pkg", "pkg.helper"}
    assert graph["pkg.typed"] == {}
    assert graph["other.m"] == {"pkg.typed": 1}
    assert find_cycles(graph) == [["pkg", "pkg.sub"], ["pkg.selfish"]]


def test_checker_resolves_the_installed_names_of_plugin_folders(tmp_path):
    _write(tmp_path, {
        "core/__init__.py": "",
        "core/api.py": "def f():\n    from core.plugins.thing import x\n",
        "plugins/__init__.py": "",
        "plugins/thing.py": "from core import api\nx = 1\n",
    })
    graph = import_graph(tmp_path, ("core", "plugins"), {"core.plugins": "plugins"})
    assert graph["core.api"] == {"plugins.thing": 2}
    assert find_cycles(graph) == [["core.api", "plugins.thing"]]
