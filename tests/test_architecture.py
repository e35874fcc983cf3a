"""The core names no concrete plugin, and built-ins register through entry points."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import emobox

CORE = Path(emobox.__file__).resolve().parent


def test_core_never_imports_builtin_plugins():
    pattern = re.compile(r"^\s*(from|import)\s+(emobox\.(upstreams|downstreams|corpora)|"
                         r"\.\.?(upstreams|downstreams|corpora))\b", re.M)
    offenders = [str(p.relative_to(CORE)) for p in CORE.rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []


def test_builtins_are_entry_points_of_group_emobox():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="emobox")
           if ep.dist is not None and ep.dist.name == "emobox"}
    assert eps["baselines"] == "emobox.upstreams.baselines"
    assert eps["heads"] == "emobox.downstreams.heads"
    assert eps["demo"] == "emobox.corpora.demo"


def test_listing_plugins_does_not_import_torch():
    code = ("import sys, emobox.plugins as p; p.get_registry().specs('upstream'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
