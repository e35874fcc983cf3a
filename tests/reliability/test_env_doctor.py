"""``emobox doctor``: what a user sees about this machine: the checkpoints and corpora that are
here, broken plugins, folders, stores; and a report that survives any one part failing."""

from __future__ import annotations

import json

import pytest

from emobox import environment as envreport
from emobox.corpora._emobox import reference_rows
from emobox.corpora.emodb import EmoDB
from emobox.corpora.savee import Savee
from emobox.plugin.registry import set_registry

from reliability_support import install_fake_distribution
from corpus_writers import write_fixture

RAISES_ON_IMPORT = """import emobox
raise RuntimeError("the vendored model code needs a newer torch")
"""

ODD_LOCATE = """import emobox


def _build(ckpt=None, device="cpu", **options):
    raise emobox.CheckpointNotFoundError("no weights")


def _locate(ckpt=None):
    raise PermissionError("cache folder is not readable")


@emobox.hookimpl
def emobox_upstreams():
    return [emobox.UpstreamSpec(name="oddloc", build=_build, checkpoint="org/oddloc", hidden_size=8,
                                locate=_locate)]
"""


def report_json(cli, *args):
    res = cli("doctor", "--json", *args)
    assert res.code == 0, res
    return json.loads(res.out)["sections"]


def row(rows, key, name):
    return next(r for r in rows if r[key] == name)


def test_a_checkpoint_dropped_in_emobox_models_is_present(cli, tmp_path, monkeypatch):
    models = tmp_path / "models"
    weights = models / "wav2vec2_base"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"not loaded")
    monkeypatch.setenv("EMOBOX_MODELS", str(models))

    sections = report_json(cli)
    ckpts = sections["checkpoints"]
    assert row(ckpts, "upstream", "wav2vec2_base")["state"] == "present"
    assert row(ckpts, "upstream", "wav2vec2_base")["path"] == str(weights)
    assert row(ckpts, "upstream", "hubert_base")["state"] == "missing"
    assert row(ckpts, "upstream", "fbank")["state"] == "not needed"
    models_row = row(sections["paths"], "name", "EMOBOX_MODELS")
    assert models_row == {"name": "EMOBOX_MODELS", "path": str(models), "source": "environment",
                          "exists": True, "writable": True}

    res = cli("doctor")
    assert res.code == 0, res
    line = next(ln for ln in res.out.splitlines() if " wav2vec2_base " in ln)
    assert "present" in line and str(weights) in line
    missing = next(ln for ln in res.out.splitlines() if ln.startswith("missing ("))
    assert "hubert_base" in missing and "wav2vec2_base" not in missing


def test_corpora_under_emobox_data_or_a_root_map_are_found(cli, tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_fixture(EmoDB, data / "emodb", reference_rows("emodb")[:6])
    (data / "savee" / "notes").mkdir(parents=True)  # a folder that is not SAVEE
    elsewhere = tmp_path / "my-savee"
    write_fixture(Savee, elsewhere, reference_rows("savee")[:4])
    monkeypatch.setenv("EMOBOX_DATA", str(data))

    corpora = report_json(cli)["corpora"]
    assert row(corpora, "corpus", "emodb")["state"] == "present"
    assert row(corpora, "corpus", "emodb")["root"].startswith(str(data / "emodb"))
    assert "utterances" not in row(corpora, "corpus", "emodb")  # nothing scanned by default
    savee = row(corpora, "corpus", "savee")
    assert savee["state"] == "unrecognised" and "does not look like this corpus" in savee[
        "message"]
    assert row(corpora, "corpus", "ravdess")["state"] == "absent"
    assert row(corpora, "corpus", "demo")["state"] == "embedded"

    corpora = report_json(cli, "--root-map", f"savee={elsewhere}", "--scan")["corpora"]
    assert row(corpora, "corpus", "savee")["state"] == "present"
    assert row(corpora, "corpus", "savee")["utterances"] == 4
    assert row(corpora, "corpus", "emodb")["utterances"] == 6

    res = cli("doctor")
    emodb_line = next(ln for ln in res.out.splitlines() if "│ emodb " in ln)
    assert "present" in emodb_line
    absent = next(ln for ln in res.out.splitlines() if ln.startswith("absent ("))
    assert "ravdess" in absent and "emodb" not in absent

    res = cli("doctor", "--root-map", "nosuch=/x")
    assert res.code == 2 and "--root-map nosuch=...: no corpus of that name" in res.err


@pytest.fixture
def broken_site(tmp_path, monkeypatch):
    site = install_fake_distribution(tmp_path / "site", "emobox-boom", "emobox_boom",
                                     RAISES_ON_IMPORT, "boom")
    install_fake_distribution(site, "emobox-oddloc", "emobox_oddloc", ODD_LOCATE, "oddloc")
    monkeypatch.syspath_prepend(str(site))
    set_registry(None)
    return site


def test_broken_plugins_are_listed_with_their_error(cli, broken_site):
    plugins = report_json(cli)["plugins"]
    (problem,) = [p for p in plugins["problems"] if p["plugin"] == "boom"]
    assert problem["distribution"] == "emobox-boom"
    assert "RuntimeError: the vendored model code needs a newer torch" in problem["message"]
    dists = {d["distribution"]: d for d in plugins["distributions"]}
    assert dists["emobox-boom"]["broken"] == 1
    assert dists["emobox-oddloc"]["upstreams"] == 1 and dists["emobox-oddloc"]["broken"] == 0
    assert dists["emobox"]["upstreams"] >= 2 and dists["emobox"]["downstreams"] >= 1

    res = cli("doctor")
    assert res.code == 0, res
    broken = [ln for ln in res.out.splitlines() if ln.startswith("broken:")]
    assert len(broken) == 1 and "plugin 'boom' (distribution emobox-boom 0.3)" in broken[0]


def test_a_failing_part_is_reported_and_the_rest_still_shown(cli, broken_site, monkeypatch):
    def no_driver():
        raise RuntimeError("CUDA driver initialisation failed")

    monkeypatch.setattr(envreport, "torch_info", no_driver)
    sections = report_json(cli)
    assert sections["torch"] == {"error": "RuntimeError: CUDA driver initialisation failed"}
    oddloc = row(sections["checkpoints"], "upstream", "oddloc")  # its locate raised
    assert oddloc["state"] == "error"
    assert "PermissionError: cache folder is not readable" in oddloc["message"]
    assert row(sections["checkpoints"], "upstream", "fbank")["state"] == "not needed"
    assert sections["packages"]["torch"] and sections["system"]["python"]

    res = cli("doctor")
    assert res.code == 0, res
    assert ("torch: could not be gathered: RuntimeError: CUDA driver initialisation failed"
            in res.out)
    assert "oddloc" in res.out and "upstream checkpoints on this machine" in res.out


def test_damaged_stores_and_runs_are_counted(cli, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("EMOBOX_HOME", str(home))
    store = home / "features" / "fbank" / "demo" / "0123456789ab"
    store.mkdir(parents=True)
    (store / "meta.json").write_text('{"format": "emobox.fea')
    for name in ("a", "b"):
        (home / "runs" / name).mkdir(parents=True)
        (home / "runs" / name / "config.json").write_text("{}")
    storage = report_json(cli)["storage"]
    assert storage["stores"] == {"complete": 0, "partial": 0, "corrupt": 1}
    assert storage["damaged"][0]["path"] == str(store)
    assert storage["runs"] == 2
    res = cli("doctor")
    assert "0 complete, 0 partial, 1 damaged" in res.out
    assert "emobox features rm PATH" in res.out
