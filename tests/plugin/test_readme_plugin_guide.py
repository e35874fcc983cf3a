"""The README's plugin guide ("Write a plugin"), run as written.

Its code blocks are taken from README.md: the package's ``pyproject.toml`` and module are written
to a folder and installed the way pip lays out an installed distribution (a ``.dist-info`` with the
entry points the ``pyproject.toml`` declares, on ``sys.path``), so emobox finds the plugin through
its ``emobox`` entry point as it finds any other. The guide's own test file is then run.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

from emobox.plugin.registry import get_registry, set_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def _guide_blocks() -> dict[str, str]:
    """File name (the block's first-line comment) -> text, for the fenced blocks of the guide."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Write a plugin\n")
    end = text.find("\n## ", start + 1)
    guide = text[start:end if end > 0 else None]
    blocks = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", guide, flags=re.S):
        first = body.splitlines()[0]
        assert first.startswith("# "), f"a {lang} block of the guide does not name its file"
        blocks[first[2:].strip()] = body
    return blocks


def _install(blocks: dict[str, str], where: Path, monkeypatch) -> tuple[str, str]:
    """Lay the package out as an installed distribution; returns (distribution, module)."""
    project = tomllib.loads(blocks["pyproject.toml"])["project"]
    for name, body in blocks.items():
        if name.endswith(".py") and "/" not in name:
            (where / name).write_text(body, encoding="utf-8")
    dist_info = where / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = project["entry-points"]
    (dist_info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in points.items()))
    monkeypatch.syspath_prepend(str(where))
    importlib.invalidate_caches()
    set_registry(None)  # the next lookup loads the entry points again
    return project["name"], points["emobox"]["myplugin"]


def test_the_guide_names_the_files_it_shows():
    assert {"pyproject.toml", "emobox_myplugin.py", "tests/test_myplugin.py"} <= set(
        _guide_blocks())


@pytest.fixture
def installed(tmp_path, monkeypatch):
    blocks = _guide_blocks()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    dist, module = _install(blocks, pkg, monkeypatch)
    yield blocks, dist, module
    sys.modules.pop(module, None)


def test_the_minimal_plugin_is_found_through_its_entry_point(installed):
    _, dist, module = installed
    spec = get_registry().upstream("energy")
    assert spec.distribution == dist and spec.hidden_size == 1


def test_the_guides_own_tests_pass(installed, tmp_path):
    blocks, _, _ = installed
    namespace: dict = {}
    exec(compile(blocks["tests/test_myplugin.py"], "tests/test_myplugin.py", "exec"), namespace)
    tests = sorted(k for k in namespace if k.startswith("test_"))
    assert tests == ["test_energy_keeps_the_upstream_contract", "test_energy_runs_end_to_end"]
    namespace["test_energy_keeps_the_upstream_contract"]()
    namespace["test_energy_runs_end_to_end"](tmp_path / "guide")


@pytest.mark.slow
def test_the_minimal_plugin_trains_above_chance_on_the_demo(installed, cli, tmp_path):
    res = cli("run", "-u", "energy", "-c", "demo", "-d", "linear_probe", "-q",
              "--out", tmp_path / "run")
    assert res.code == 0, res
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    test_ua = [r for r in rows if r.get("selected")]
    assert test_ua
    mean_ua = sum(r["ua"] for r in test_ua) / len(test_ua)
    # 4 balanced classes: chance is a UA of 25%
    assert mean_ua > 0.25, f"the README's minimal plugin scores UA {mean_ua:.2%} on 4 classes"
