from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# as the emobox command does: idle OpenMP threads sleep (set before torch is imported)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from emobox.plugin.registry import set_registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "emobox-reference"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own EMOBOX_HOME and a fresh plugin registry."""
    home = tmp_path_factory.mktemp("emobox_home")
    monkeypatch.setenv("EMOBOX_HOME", str(home))
    monkeypatch.delenv("EMOBOX_DATA", raising=False)
    monkeypatch.delenv("EMOBOX_MODELS", raising=False)
    monkeypatch.delenv("EMOBOX_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("EMOBOX_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    set_registry(None)
    yield home
    set_registry(None)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys):
    """Run ``emobox ARGS`` in-process; returns exit code, stdout and stderr."""
    from emobox.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_subprocess():
    """Run the installed ``emobox`` console script in a child process."""

    def run(*args: str, env: dict | None = None, timeout: int = 600) -> CliResult:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("COLUMNS", "200")
        proc = subprocess.run([sys.executable, "-m", "emobox", *map(str, args)],
                              capture_output=True, text=True, env=full_env, timeout=timeout)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
