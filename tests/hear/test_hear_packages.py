"""HEAR packages from the package index, each in its own virtual environment.

* ``hearbaseline`` (the HEAR 2021 baselines) runs as an emobox upstream: its ``naive`` module (a
  44.1 kHz mel spectrogram with a random projection, so emobox resamples the 16 kHz demo audio)
  goes through ``emobox run -u hear -U module=hearbaseline.naive -c demo``. ``naive`` calls
  ``librosa.filters.mel`` positionally, which librosa 0.10 removed, and librosa 0.9 needs
  ``pkg_resources``: its environment gets ``librosa==0.9.2``, ``resampy`` and ``setuptools<70``,
  and ``hearbaseline`` itself with ``--no-deps`` (its metadata pins numpy 1.19 and asks for
  tensorflow, neither of which ``naive`` uses).
* ``hearvalidator`` (HEAR's own API checker; it imports tensorflow at start) validates
  ``emobox.hear.fbank`` and ``emobox.hear.whisper_tiny_en``; its environment gets
  ``tensorflow-cpu`` with its dependencies (a 270 MB download, about 2 GB installed, some 45 s
  on two cores).

Each environment is built as tests/plugin/test_example_plugins.py builds its own: no pip inside, a
``.pth`` file that appends the test environment's site-packages (so torch and emobox are not
reinstalled, and what the environment installs itself comes first, leaving the project's own
librosa untouched), pip run from the test environment with ``--python``. Where the package index
cannot be reached the tests are skipped, saying so; any other installation failure fails them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.slow

HEARBASELINE = ("librosa==0.9.2", "resampy==0.4.3", "setuptools<70", "hearbaseline==2021.1.1")
HEARVALIDATOR = ("tensorflow-cpu==2.21.0", "hearvalidator==2021.0.2")
_UNREACHABLE = re.compile(r"No matching distribution found|Could not find a version|"
                          r"NewConnectionError|Network is unreachable|Temporary failure in name "
                          r"resolution|Max retries exceeded|ProxyError|SSLError", re.I)


def _venv(root: Path) -> Path:
    """A virtual environment that sees this one's packages after its own."""
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_emobox_test_parent.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n")
    return python


def _pip_install_or_skip(python: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
           "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if _UNREACHABLE.search(output):
            last = [ln for ln in output.splitlines() if ln.strip()][-1]
            pytest.skip(f"cannot install {' '.join(args)} from the package index: {last}")
        pytest.fail(f"{' '.join(cmd)}\n{output}")


def _run(program: Path, *args, cwd: Path, timeout: int = 600) -> SimpleNamespace:
    environ = dict(os.environ, COLUMNS="200", OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    environ.pop("PYTHONPATH", None)
    proc = subprocess.run([str(program), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=environ, timeout=timeout)
    return SimpleNamespace(code=proc.returncode, out=proc.stdout, err=proc.stderr)


@pytest.fixture(scope="module")
def hearbaseline_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hearbaseline_env")
    python = _venv(root / "venv")
    _pip_install_or_skip(python, "--no-deps", "--ignore-installed", *HEARBASELINE)
    return python


@pytest.fixture(scope="module")
def hearvalidator_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hearvalidator_env")
    python = _venv(root / "venv")
    _pip_install_or_skip(python, *HEARVALIDATOR)
    return python


def test_hearbaseline_environment_keeps_its_own_librosa(hearbaseline_env, tmp_path):
    import librosa

    res = _run(hearbaseline_env, "-c", "import librosa; print(librosa.__version__)", cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.out.strip() == "0.9.2"
    assert librosa.__version__ != "0.9.2"  # the project's own environment is untouched


def test_demo_run_through_hearbaseline_naive_prints_a_results_table(hearbaseline_env, tmp_path):
    res = _run(hearbaseline_env, "-m", "emobox", "run", "-u", "hear", "-U",
               "module=hearbaseline.naive", "-c", "demo", "-d", "linear_probe", "--seed", "0",
               "--epochs", "5", "--warmup", "1", "--grid", "lr=1e-3 hidden=32", "-q",
               "-o", tmp_path / "run", "--features-dir", tmp_path / "store", cwd=tmp_path)
    assert res.code == 0, res.out[-3000:] + res.err[-3000:]
    rows = {ln.split("│")[1].strip(): ln for ln in res.out.splitlines()
            if ln.startswith("│") and ln.count("│") > 3}
    assert set(rows) == {"1", "2", "3", "mean"}, res.out
    ua = float(re.findall(r"(\d+\.\d+)\s*±", rows["mean"])[0])
    assert ua > 40.0, res.out  # four balanced classes: chance is 25
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["upstream_store_options"] == {"module": "hearbaseline.naive"}
    meta = json.loads((Path(config["features"]) / "meta.json").read_text())
    # 44.1 kHz input, one 4096-dim embedding every 50 ms, as hearbaseline.naive declares
    assert (meta["sample_rate"], meta["frame_rate"], meta["hidden_size"]) == (44100, 20.0, 4096)
    assert meta["provenance"]["hear_module"] == "hearbaseline.naive"


@pytest.mark.parametrize("name, frames, size, hop", [
    ("fbank", 198, 80, "10.0"),
    ("whisper_tiny_en", 100, 384, "20.0"),
])
def test_hear_validator_passes_on_emobox_upstreams(hearvalidator_env, tmp_path, name, frames,
                                                   size, hop):
    validator = hearvalidator_env.parent / "hear-validator"
    res = _run(validator, f"emobox.hear.{name}", "--device", "cpu", cwd=tmp_path)
    assert res.code == 0, res.out[-3000:] + res.err[-3000:]
    assert res.out.rstrip().endswith("Looks good!"), res.out
    # the validator's batch: 16 sounds of 2 s of 16 kHz audio; 8 scene sounds
    assert f"Received embedding of shape: torch.Size([16, {frames}, {size}])" in res.out
    assert f"Received timestamps of shape: torch.Size([16, {frames}])" in res.out
    assert f"Interval between timestamps is {hop}ms" in res.out
    assert f"Received embedding of shape: torch.Size([8, {size}])" in res.out
