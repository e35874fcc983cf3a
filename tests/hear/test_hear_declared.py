"""Named HEAR upstreams declared by a distribution without code (entry points of group
``emobox.upstreams`` naming a TOML/JSON file or a dict in the package)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from emobox.plugin.registry import Registry, set_registry
from test_hear import TOY



def _toy_source() -> str:
    return textwrap.dedent(TOY)  # the toy HEAR module of test_hear.py (22.05 kHz, 8 bands)


def _site(tmp_path: Path, monkeypatch, dist: str, files: dict[str, str | bytes],
          entry_points: dict[str, str]) -> Path:
    """An installed distribution (dist-info + package files) under a folder on sys.path."""
    site = tmp_path / "site"
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[emobox.upstreams]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for rel, content in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    monkeypatch.syspath_prepend(str(site))
    set_registry(None)
    return site


@pytest.fixture
def unload():
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("declhear", "mypackage")]:
        sys.modules.pop(name, None)


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_toml_blocks() -> dict[str, str]:
    """The TOML blocks of the README's HEAR section, by the file their first line names."""
    section = README.read_text().split("## Use a HEAR model", 1)[1].split("\n## ", 1)[0]
    return {body.splitlines()[0][2:].split(" (")[0]: body
            for body in re.findall(r"```toml\n(.*?)```", section, re.S)}


def test_readme_package_registers_a_named_hear_upstream_that_runs(cli, tmp_path, unload):
    """The README's package, built and installed by pip: a HEAR module, its weights, the spec."""
    blocks = _readme_toml_blocks()
    spec = tomllib.loads(blocks["mypackage/upstream.toml"])
    src = tmp_path / "src"
    (src / "mypackage" / "weights").mkdir(parents=True)
    (src / "mypackage" / "__init__.py").write_text("")
    (src / "mypackage" / "hear_model.py").write_text(textwrap.dedent(TOY))
    (src / "mypackage" / spec["model_file"]).write_bytes(b"toy weights")
    (src / "mypackage" / "upstream.toml").write_text(blocks["mypackage/upstream.toml"])
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mypackage"
        version = "0.4.0"

        [tool.setuptools]
        packages = ["mypackage"]

        [tool.setuptools.package-data]
        mypackage = ["upstream.toml", "weights/*"]
        ''') + blocks["pyproject.toml"])
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec(
        "setuptools") else []
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--disable-pip-version-check", *offline, "--target",
                           str(tmp_path / "site"), str(src)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        set_registry(None)
        res = cli("plugins")
        assert res.code == 0, res
        line = next(ln for ln in res.out.splitlines() if " mymodel " in ln)
        assert "mypackage" in line and "0.4.0" in line, line

        res = cli("run", "-u", "mymodel", "-c", "demo", "-d", "linear_probe", "--seed", "0",
                  "--epochs", "2", "--warmup", "1", "--fold", "1", "--grid", "lr=1e-3 hidden=16",
                  "-q", "-o", tmp_path / "run", "--features-dir", tmp_path / "store")
        assert res.code == 0, res
        config = json.loads((tmp_path / "run" / "config.json").read_text())
        assert config["upstream"] == "mymodel"
        assert config["versions"]["plugins"]["mypackage"] == "0.4.0"
        meta = json.loads((Path(config["features"]) / "meta.json").read_text())
        weights = tmp_path / "site" / "mypackage" / "weights" / "model.pt"
        assert meta["provenance"] == {"hear_module": "mypackage.hear_model",
                                      "hear_model_file": str(weights)}
        assert (meta["sample_rate"], meta["hidden_size"]) == (22050, 8)

        # the same module and weights through -u hear: the same features (one store entry)
        from emobox.upstreams.hear_upstream import HearUpstream

        assert config["checkpoint_id"] == HearUpstream("mypackage.hear_model",
                                                       str(weights)).checkpoint_id

        # the options it fixes are not options of the named upstream
        res = cli("run", "-u", "mymodel", "-U", "module=json", "-c", "demo",
                  "-o", tmp_path / "run2", "--features-dir", tmp_path / "store")
        assert res.code == 2, res
        assert ("error: --upstream-option module: upstream 'mymodel' has no option 'module'; "
                "its options: model_file") in res.err and "Traceback" not in res.err
    finally:
        sys.path.remove(str(tmp_path / "site"))


def test_json_and_dict_specs_are_read(tmp_path, monkeypatch, unload):
    _site(tmp_path, monkeypatch, "declhear", {
        "declhear/__init__.py": "SPEC = {'upstream': 'hear', 'options': {'module': 'declhear.m'},"
                                " 'description': 'from a dict'}\n",
        "declhear/m.py": _toy_source(),
        "declhear/spec.json": json.dumps({"upstream": "hear", "name": "bands_json",
                                          "options": {"module": "declhear.m"},
                                          "license": "MIT"}),
    }, {"bands_dict": "declhear:SPEC", "bands_file": "declhear:spec.json"})
    reg = Registry()
    assert reg.all_problems() == []
    spec = reg.upstream("bands_dict")
    assert (spec.description, spec.distribution, spec.family) == ("from a dict", "declhear",
                                                                  "hear")
    assert reg.upstream("bands_json").license == "MIT"  # the spec's name wins over the entry's
    assert "bands_file" not in reg.names("upstream")
    # what the preset leaves open stays a -U option of the named upstream
    assert list(spec.options) == ["model_file"]
    up = spec.build()
    assert (up.sample_rate, up.hidden_size) == (22050, 8)


@pytest.mark.parametrize("files, entry, message", [
    ({"declhear/s.toml": 'upstream = "hear"\n[options]\nmodule = "x"\nweights = 3\n'},
     "declhear:s.toml", "options must be a table of strings"),
    ({"declhear/s.toml": 'upstream = "hear"\nmodul = "declhear.m"\n'},
     "declhear:s.toml", "unknown keys 'modul' (known: upstream, options, model_file"),
    ({"declhear/s.toml": 'upstream = "hear"\nmodel_file = "../../etc/passwd"\n'},
     "declhear:s.toml", "model_file '../../etc/passwd' is outside the package folder"),
    ({"declhear/s.toml": 'description = "no base"\n'},
     "declhear:s.toml", "no 'upstream' (the registered upstream it presets"),
    ({"declhear/s.toml": 'upstream = "hear"\n[options\n'}, "declhear:s.toml", "not valid TOML"),
    ({"declhear/s.json": '{"upstream": "hear", '}, "declhear:s.json", "not valid JSON"),
    ({"declhear/s.json": json.dumps({"upstream": "hear", "description": "x" * 70000})},
     "declhear:s.json", "larger than 64 KiB"),
    ({}, "declhear:missing.toml", "no such file in package 'declhear'"),
    ({"declhear/s.json": '{"upstream": "nosuch_base"}'}, "declhear:s.json",
     "presets upstream 'nosuch_base', which no installed plugin provides"),
    ({"declhear/s.json": '{"upstream": "hear", "options": {"modul": "m"}}'}, "declhear:s.json",
     "options modul are not options of upstream 'hear' (it declares: module, model_file)"),
])
def test_a_bad_spec_is_one_problem_naming_its_file_and_the_rest_works(
        cli, tmp_path, monkeypatch, unload, files, entry, message):
    site = _site(tmp_path, monkeypatch, "declhear",
                 {"declhear/__init__.py": "", **files}, {"badspec": entry})
    res = cli("plugins")
    assert res.code == 0, res
    broken = [ln for ln in res.err.splitlines() if ln.startswith("broken plugin:")]
    assert len(broken) == 1 and message in broken[0], res.err
    assert "plugin 'badspec' (distribution declhear 1.0)" in broken[0]
    spec_file = entry.split(":")[1]
    if spec_file in files or spec_file == "missing.toml":
        assert str(site / "declhear") in broken[0]
    assert "Traceback" not in res.err
    assert " fbank " in res.out  # the other plugins keep working
    res = cli("run", "-u", "badspec", "-c", "demo", "-o", tmp_path / "run")
    assert res.code == 2 and "no upstream named 'badspec'" in res.err, res
