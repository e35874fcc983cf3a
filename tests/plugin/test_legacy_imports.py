"""Old flat import paths keep working for one release: same module object, one DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from emobox import _legacy

@pytest.mark.parametrize("old", sorted(_legacy.MOVED))
def test_old_path_has_no_file_and_new_path_imports(old):
    parent, _, leaf = old.rpartition(".")
    for folder in importlib.import_module(parent).__path__:
        assert not (Path(folder) / f"{leaf}.py").exists(), f"{old} still has a file at its old path"
        assert not (Path(folder) / leaf).is_dir(), f"{old} still has a folder at its old path"
    importlib.import_module(_legacy.MOVED[old])


def test_old_name_is_the_same_module_object_and_warns_once():
    code = ("import warnings; warnings.simplefilter('always'); "
            "import emobox.tracks.runner as new\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import emobox.runner as old\n"
            "    from emobox.runner import RunOptions\n"
            "    import emobox.runner\n"
            "print(old is new, emobox.runner is new, RunOptions is new.RunOptions)\n"
            "print([str(x.message) for x in w if x.category is DeprecationWarning])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    same, warned = out.stdout.strip().splitlines()
    assert same == "True True True"
    assert warned == "['emobox.runner is deprecated; import emobox.tracks.runner instead']"


def test_monkeypatching_the_old_name_reaches_the_new_module(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("emobox.sweep")
    new = importlib.import_module("emobox.training.sweep")
    sentinel = object()
    monkeypatch.setattr(old, "_probe_attr", sentinel, raising=False)
    assert new._probe_attr is sentinel



def test_python_dash_m_on_an_old_name_runs_the_new_module():
    out = subprocess.run([sys.executable, "-m", "emobox.upstreams.data2vec2_ckpt", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: python -m emobox.upstreams.data2vec2.ckpt" in out.stdout
    assert "deprecated" in out.stderr
