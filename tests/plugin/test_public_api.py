"""What plugin authors and scripts may import: ``emobox`` and ``emobox.testing``, nothing private.

The README's Python blocks, the example plugins (``plugins/``) and the benchmarks
(``benchmarks/``) are read with ``ast``; every import of an emobox module must name a public
module, every imported name must be public (no leading underscore) and exist there, and every
``emobox.<name>`` they use must be in ``emobox.__all__``.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import emobox

REPO = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ("emobox", "emobox.testing")


def _is_emobox(module: str) -> bool:
    return module == "emobox" or module.startswith("emobox.")


def _public_names(module: str) -> set[str]:
    mod = importlib.import_module(module)
    return set(getattr(mod, "__all__", ())) | {n for n in vars(mod) if not n.startswith("_")}


def private_uses(source: str, where: str) -> list[str]:
    """Every import of a non-public emobox module or of a private or missing name in ``source``."""
    tree = ast.parse(source, filename=where)
    problems: list[str] = []
    module_aliases = set()  # local names bound to the ``emobox`` package itself
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_emobox(alias.name):
                    continue
                if alias.name not in PUBLIC_MODULES:
                    problems.append(f"{where}:{node.lineno}: import {alias.name} (not public)")
                elif alias.name == "emobox":
                    module_aliases.add(alias.asname or "emobox")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_emobox(node.module or ""):
            if node.module not in PUBLIC_MODULES:
                problems.append(f"{where}:{node.lineno}: from {node.module} import ... (not public)")
                continue
            public = _public_names(node.module)
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    problems.append(f"{where}:{node.lineno}: {node.module}.{alias.name} is private")
                elif alias.name not in public:
                    problems.append(f"{where}:{node.lineno}: {node.module} has no public "
                                    f"{alias.name}")
    public = set(emobox.__all__) | {"testing"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases and node.attr not in public):
            problems.append(f"{where}:{node.lineno}: emobox.{node.attr} is not in emobox.__all__")
    return problems


def _readme_python_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        line = text.count("\n", 0, match.start()) + 2
        out.append((f"README.md:{line}", match.group(1)))
    return out


def _sources() -> list[tuple[str, str]]:
    files = sorted((REPO / "plugins").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))
    return _readme_python_blocks() + [
        (str(p.relative_to(REPO)), p.read_text(encoding="utf-8")) for p in files]


def test_the_sources_exist():
    names = [where for where, _ in _sources()]
    assert any(w.startswith("README.md:") for w in names)
    assert any(w.startswith("plugins/") for w in names)
    assert any(w.startswith("benchmarks/") for w in names)


@pytest.mark.parametrize("where,source", _sources(), ids=[w for w, _ in _sources()])
def test_only_public_names_are_imported(where, source):
    assert private_uses(source, where) == []


def test_the_checker_finds_private_and_internal_imports():
    bad = ("import emobox\n"
           "from emobox.training.sweep import seed_for\n"
           "from emobox import _legacy\n"
           "from emobox import no_such_name\n"
           "import emobox.corpus\n"
           "emobox.corpus._is_junk('x')\n"
           "from emobox_example_upstream import encoder\n"
           "from emobox import Corpus, seed_for\n"
           "from emobox.testing import write_audio\n")
    assert private_uses(bad, "x.py") == [
        "x.py:2: from emobox.training.sweep import ... (not public)",
        "x.py:3: emobox._legacy is private",
        "x.py:4: emobox has no public no_such_name",
        "x.py:5: import emobox.corpus (not public)",
        "x.py:6: emobox.corpus is not in emobox.__all__",
    ]


def test_every_public_name_resolves_and_is_documented():
    undocumented = []
    for name in emobox.__all__:
        value = getattr(emobox, name)
        if (callable(value) or isinstance(value, type)) and not (value.__doc__ or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_the_readme_names_the_public_modules():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for module in PUBLIC_MODULES:
        assert f"`{module}`" in text


def test_the_readme_names_only_public_emobox_attributes():
    # `emobox.<name>` in the prose, the commands and the code; the built-in plugin packages
    # and HEAR modules are named as modules; the note on old import paths names old modules
    allowed = set(emobox.__all__) | {"testing", "plugin", "corpora", "upstreams", "downstreams",
                                     "hear", "__all__"}
    text = (REPO / "README.md").read_text(encoding="utf-8")
    named = {m.group(1) for para in text.split("\n\n") if "DeprecationWarning" not in para
             for m in re.finditer(r"(?<![\w/.-])emobox\.([A-Za-z_]\w*)", para)}
    assert sorted(named - allowed) == []
