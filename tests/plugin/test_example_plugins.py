"""The example plugin packages of plugins/, installed the way a stranger installs them.

A fresh virtual environment gets the three example packages by ``pip install <folder>`` (from a
copy of each folder, as setuptools builds in the source tree) and runs
``emobox`` composing them with the built-ins. A deliberately broken package
(tests/data/emobox-plugin-broken: an import error, a clashing name, incomplete specs) is installed
with ``pip install --target`` into a folder that only some commands see (through PYTHONPATH), so
one environment shows both a clean and a broken installation.

Keeping CI fast: the venv is created without pip and with a ``.pth`` file that adds the test
environment's site-packages (via ``site.addsitedir``, so that emobox's own editable-install
``.pth`` is processed too). torch, emobox and setuptools are therefore not reinstalled; pip runs
from the test environment with ``--python`` aimed at the new venv; ``--no-build-isolation
--no-index`` shows that nothing is downloaded. Where the test environment lacks setuptools, the
build is isolated and pip fetches setuptools from the package index (the only network it needs).
The commands run with one torch thread: tiny workloads on busy 2-core machines are fastest so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from types import SimpleNamespace

import pytest

from emobox import __version__
from emobox.testing import write_folder_corpus

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "upstream": ("example_upstream", "emobox-plugin-example-upstream", "0.3.0"),
    "corpus": ("example_corpus", "emobox-plugin-example-corpus", "0.2.0"),
    "downstream": ("example_head", "emobox-plugin-example-downstream", "0.1.2"),
}
BROKEN = REPO / "tests" / "data" / "emobox-plugin-broken"
LAB_CODES = {"ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad", "oth": "-"}

pytestmark = pytest.mark.slow


def _pip_install(python: Path, *args: str) -> None:
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec(
        "setuptools") else []
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
           "--disable-pip-version-check", *offline, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


def _copy(package: Path, where: Path) -> str:
    """A copy of a package folder: setuptools builds in the source tree, which stays clean."""
    import shutil

    dest = where / "src" / package.name
    shutil.copytree(package, dest, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    return str(dest)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin_env")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_emobox_test_parent.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n")
    _pip_install(python, *(_copy(REPO / "plugins" / dist, root) for _, dist, _ in
                           EXAMPLES.values()))
    _pip_install(python, "--no-deps", "--target", str(root / "broken"), _copy(BROKEN, root))
    return SimpleNamespace(python=python, purelib=Path(purelib), broken=root / "broken")


@pytest.fixture
def emobox(env, tmp_path):
    """Run ``python -m emobox ARGS`` in the venv (``broken=True``: the broken package is seen)."""

    def run(*args, broken: bool = False, timeout: int = 600):
        environ = dict(os.environ, COLUMNS="200", OMP_NUM_THREADS="1")
        environ.pop("PYTHONPATH", None)
        if broken:
            environ["PYTHONPATH"] = str(env.broken)
        proc = subprocess.run([str(env.python), "-m", "emobox", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, env=environ, timeout=timeout)
        return SimpleNamespace(code=proc.returncode, out=proc.stdout, err=proc.stderr)

    return run


@pytest.fixture
def lab(tmp_path):
    """A corpus in example_corpus's layout: label codes, labels.tsv, 6 speakers."""
    root = tmp_path / "mylab"
    write_folder_corpus(root, labels=list(LAB_CODES), speakers=6, per_speaker=1, seconds=0.3)
    (root / "labels.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in LAB_CODES.items()))
    return root


FAST = ("--epochs", "2", "--warmup", "1", "--fold", "1", "-q")


def test_examples_are_listed_with_distribution_version_and_path(env, emobox):
    res = emobox("plugins")
    assert res.code == 0, res
    for name, dist, version in EXAMPLES.values():
        line = next(x for x in res.out.splitlines() if f" {name} " in x)
        assert dist in line and version in line, line
    code = ("from emobox.plugins import get_registry; import json; print(json.dumps("
            "{n: [p.distribution, p.version, p.path] for n, p in get_registry().plugins.items()}))")
    proc = subprocess.run([str(env.python), "-c", code], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PYTHONPATH=""))
    plugins = json.loads(proc.stdout)
    assert plugins["example_upstream"] == [
        "emobox-plugin-example-upstream", "0.3.0",
        str(env.purelib / "emobox_example_upstream" / "__init__.py")]
    assert plugins["baselines"][:2] == ["emobox", __version__]


def test_doctor_passes_on_the_examples(emobox, lab):
    res = emobox("plugins", "doctor", "--json", "--root", f"example_corpus={lab}")
    assert res.code == 0, res
    report = json.loads(res.out)
    status = {p["name"]: p for p in report["plugins"]}
    assert status["example_upstream"]["checked"] == ["upstream 'example_upstream'"]
    assert status["example_corpus"]["checked"] == ["corpus 'example_corpus'"]
    assert status["example_downstream"]["checked"] == ["downstream 'example_head'"]
    assert report["ok"] and [f for f in report["findings"] if f["severity"] == "problem"] == []


def test_example_upstream_composes_with_builtin_corpus_and_head(emobox, tmp_path):
    res = emobox("run", "-u", "example_upstream", "-c", "demo", "-d", "linear_probe",
                 "--grid", "lr=1e-3 hidden=32", *FAST, "--out", tmp_path / "run")
    assert res.code == 0, res
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["versions"]["plugins"] == {"emobox": __version__,
                                             "emobox-plugin-example-upstream": "0.3.0"}
    assert config["checkpoint_id"] == "example-conv-v1:channels64-hidden64-kernel5-layers4-seed0"
    assert config["layer"] == 4
    predictions = (tmp_path / "run" / "predictions" / "fold1.tsv").read_text().splitlines()
    assert len(predictions) == 1 + 64  # demo fold 1: 4 test speakers x 16 utterances


def test_example_corpus_and_head_compose_with_builtin_upstream(emobox, lab, tmp_path):
    res = emobox("run", "-u", "fbank", "-c", "example_corpus", "--root", lab, "-d",
                 "example_head", "--grid", "lr=1e-3 hidden=16", *FAST, "--out", tmp_path / "run")
    assert res.code == 0, res
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["labels"] == ["angry", "happy", "neutral", "sad"]
    assert config["versions"]["plugins"] == {"emobox": __version__,
                                             "emobox-plugin-example-corpus": "0.2.0",
                                             "emobox-plugin-example-downstream": "0.1.2"}
    rows = [line.split("\t") for line in
            (tmp_path / "run" / "predictions" / "fold1.tsv").read_text().splitlines()[1:]]
    # the corpus's own rule: fold 1 tests on speaker group 1 = spk01 and spk05 ('oth' dropped)
    assert sorted(key for key, _, _ in rows) == sorted(
        f"{code}/{spk}_01" for code in ("ang", "hap", "neu", "sad") for spk in ("spk01", "spk05"))
    assert {gold for _, gold, _ in rows} == {"angry", "happy", "neutral", "sad"}


def test_the_examples_own_test_suites_pass(env, tmp_path):
    tests = [str(REPO / "plugins" / dist / "tests") for _, dist, _ in EXAMPLES.values()]
    proc = subprocess.run([str(env.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *tests], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=""))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "12 passed" in proc.stdout


def test_a_broken_package_is_named_while_the_other_plugins_keep_working(emobox, lab, tmp_path):
    res = emobox("plugins", "doctor", "--json", "--build", "cheap", broken=True)
    assert res.code == 5, res
    report = json.loads(res.out)
    problems = [f for f in report["findings"] if f["severity"] == "problem"]
    assert {f["distribution"] for f in problems} == {"emobox-plugin-broken"}
    text = "\n".join(f"{f['plugin']} {f['subject']}: {f['message']}" for f in problems)
    assert ("broken_import : import: failed to import 'emobox_broken.needs_missing': "
            "ModuleNotFoundError: No module named 'emobox_dependency_that_is_not_installed'"
            ) in text
    assert "upstream name 'mfcc' is claimed by several plugins" in text
    assert "of distribution 'emobox'" in text  # the clash names both sides
    assert ("broken_incomplete upstream 'incomplete_upstream': lacks attribute 'checkpoint_id'"
            in text)
    assert "upstream 'incomplete_upstream': expected hidden size 32 (declared), got 16" in text
    assert "unexpected keyword argument 'dropout'" in text
    assert "emobox_corpus() is not an emobox hook and is never called; did you mean " \
           "'emobox_corpora'?" in text
    status = {p["name"]: p["problems"] for p in report["plugins"]}
    assert all(status[name] == 0 for name in
               ("example_upstream", "example_corpus", "example_downstream", "baselines"))

    res = emobox("plugins", "doctor", "-q", "--build", "none", broken=True)
    assert res.code == 5 and "emobox-plugin-broken 0.0.1" in res.out
    assert "3 of " in res.out and "plugins have problems" in res.out

    res = emobox("plugins", broken=True)
    assert res.code == 0
    assert "broken plugin: plugin 'broken_import' (distribution emobox-plugin-broken 0.0.1)" in \
        res.err
    assert " example_head " in res.out

    res = emobox("run", "-u", "example_upstream", "-c", "example_corpus", "--root", lab, "-d",
                 "example_head", "--grid", "lr=1e-3 hidden=16", *FAST, "--out", tmp_path / "run",
                 broken=True)
    assert res.code == 0, res
    assert (tmp_path / "run" / "predictions" / "fold1.tsv").exists()

    res = emobox("run", "-u", "mfcc", "-c", "demo", "-d", "linear_probe", broken=True)
    assert res.code == 4, res
    assert "upstream name 'mfcc' is claimed by" in res.err
    assert "'emobox-plugin-broken'" in res.err and "distribution 'emobox'" in res.err
    assert "Traceback" not in res.err


def _readme_blocks(heading: str) -> dict[str, str]:
    """The fenced code blocks of the README section ``heading``, by language."""
    import re

    text = (REPO / "README.md").read_text()
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return {lang: code for lang, code in re.findall(r"```(\w+)\n(.*?)```", section, re.S)}


def test_the_readme_minimal_package_and_its_tests_work(tmp_path, monkeypatch):
    from emobox.validate.plugins_doctor import doctor
    from emobox.plugin.registry import Registry, set_registry

    package = _readme_blocks("### A complete minimal package")
    src = tmp_path / "emobox-myplugin"
    src.mkdir()
    (src / "pyproject.toml").write_text(package["toml"])
    (src / "emobox_myplugin.py").write_text(package["python"])
    _pip_install(Path(sys.executable), "--no-deps", "--target", str(tmp_path / "site"), str(src))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    set_registry(None)

    report = doctor(Registry())
    status = {p.name: p for p in report.plugins}
    assert status["myplugin"].distribution == "emobox-myplugin"
    assert status["myplugin"].checked == ["upstream 'energy'"] and report.ok, report.problems

    namespace: dict = {}
    exec(compile(_readme_blocks("### Test it with emobox's helpers")["python"], "README", "exec"),
         namespace)
    namespace["test_energy_keeps_the_upstream_contract"]()
    namespace["test_energy_runs_end_to_end"](tmp_path)
    assert (tmp_path / "run" / "predictions" / "fold1.tsv").exists()
