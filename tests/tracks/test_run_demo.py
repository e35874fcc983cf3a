"""`emobox run -u fbank -c demo -d linear_probe` end to end, and what the run directory holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emobox.io import read_jsonl
from emobox.plugin.registry import get_registry
from extract_fakes import TinyLayersPlugin


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One full demo run shared by the assertions below."""
    import os

    from emobox.cli import main

    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("run") / "demo"
    old = os.environ.get("EMOBOX_HOME")
    os.environ["EMOBOX_HOME"] = str(home)
    try:
        code = main(["run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q",
                     "--out", str(out)])
    finally:
        if old is None:
            os.environ.pop("EMOBOX_HOME")
        else:
            os.environ["EMOBOX_HOME"] = old
    assert code == 0
    return out


def test_demo_is_learnable_on_speaker_independent_folds(demo_run):
    rows = read_jsonl(demo_run / "results.jsonl")
    selected = [r for r in rows if r["selected"]]
    assert [r["fold"] for r in selected] == [1, 2, 3]
    mean_ua = sum(r["ua"] for r in selected) / 3
    assert mean_ua >= 0.6, mean_ua  # chance is 0.25
    for r in selected:
        assert r["valid_rule"] == "held-out-speakers"
        assert r["selection"] == "valid"


def test_demo_folds_keep_speakers_apart():
    corpus = get_registry().corpus("demo").build()
    m = corpus.manifest
    assert len(m) == 192 and len(m.speakers()) == 12
    assert m.label_counts() == {"Angry": 48, "Happy": 48, "Neutral": 48, "Sad": 48}
    folds = corpus.folds()
    assert len(folds) == 3
    for f in folds:
        test_spk = {m[k].speaker for k in f.test}
        assert len(test_spk) == 4
        assert not test_spk & {m[k].speaker for k in f.train + f.valid}
    assert corpus.speaker_independent


def test_run_directory_contents(demo_run):
    config = json.loads((demo_run / "config.json").read_text())
    assert (config["upstream"], config["corpus"], config["downstream"]) == (
        "fbank", "demo", "linear_probe")
    assert config["grid"] == {"lr": [0.001, 0.0001], "hidden": [128, 256]}
    assert config["versions"]["plugins"] == {"emobox": config["versions"]["emobox"]}
    rows = read_jsonl(demo_run / "results.jsonl")
    assert len(rows) == 3 * 4  # every fold x every config
    for fold in (1, 2, 3):
        fold_rows = [r for r in rows if r["fold"] == fold]
        assert sum(r["selected"] for r in fold_rows) == 1
        assert {r["config_id"] for r in fold_rows} == {
            "hidden=128,lr=0.001", "hidden=128,lr=0.0001", "hidden=256,lr=0.001",
            "hidden=256,lr=0.0001"}
        preds = (demo_run / "predictions" / f"fold{fold}.tsv").read_text().splitlines()
        assert preds[0] == "key\tgold\tpredicted" and len(preds) == 1 + 64
        sel = next(r for r in fold_rows if r["selected"])
        correct = sum(line.split("\t")[1] == line.split("\t")[2] for line in preds[1:])
        assert correct / 64 == pytest.approx(sel["wa"])
        assert sum(map(sum, sel["confusion"])) == 64 == sel["n_test"]
    summary = (demo_run / "summary.md").read_text()
    assert "| **mean** |" in summary and "selection: validation UA" in summary
    assert "training precision: fp32 (exact)" in summary
    assert "100 epochs (10 warm-up, then linear decay)" in summary
    for cid in ("hidden=128,lr=0.001", "hidden=256,lr=0.0001"):  # every config, over folds
        assert f"| {cid} |" in summary
    png = (demo_run / "confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert config["train_precision"] == "fp32" and not config["selected_by_test"]
    assert all(r["train_precision"] == "fp32" for r in rows)


def test_rows_and_config_say_which_engine_made_the_features(demo_run):
    import torch

    config = json.loads((demo_run / "config.json").read_text())
    store_meta = json.loads((Path(config["features"]) / "meta.json").read_text())
    engine = config["engine"]
    assert engine == store_meta["layers"][str(config["layer"])]["engine"]
    assert (engine["precision"], engine["device"], engine["torch"]) == (
        "fp32", "cpu", torch.__version__)
    assert "autocast" not in engine and engine["lowp_weight_cache"] is False
    rows = read_jsonl(demo_run / "results.jsonl")
    assert rows and all(r["engine"] == engine for r in rows)
    summary = (demo_run / "summary.md").read_text()
    line = next(x for x in summary.splitlines() if x.startswith("- feature engine: "))
    assert line.startswith("- feature engine: fp32, ")
    assert f"on cpu, torch {torch.__version__}, {engine['threads']} threads" in line


def test_rerun_resumes_without_retraining(demo_run, cli):
    before = (demo_run / "results.jsonl").read_text()
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--out", demo_run)
    assert res.code == 0, res
    assert (demo_run / "results.jsonl").read_text() == before
    assert "mean" in res.out and "run directory:" in res.out


def test_other_options_in_same_out_are_refused(demo_run, cli):
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--out", demo_run,
              "--seed", "5")
    assert res.code == 2
    assert "holds a run made with other options" in res.err


def test_same_seed_same_results_and_select_test_is_marked(tmp_path, cli):
    args = ["run", "-u", "mfcc", "-c", "demo", "-d", "linear_probe", "-q", "--fold", "2",
            "--epochs", "8", "--warmup", "2", "--grid", "lr=1e-3 hidden=32"]
    a = cli(*args, "--out", tmp_path / "a")
    b = cli(*args, "--out", tmp_path / "b")
    assert a.code == b.code == 0
    assert (tmp_path / "a" / "results.jsonl").read_text() == \
        (tmp_path / "b" / "results.jsonl").read_text()
    t = cli(*args, "--out", tmp_path / "t", "--select", "test")
    assert t.code == 0
    assert "SELECTED BY TEST" in t.out  # the printed table
    rows = read_jsonl(tmp_path / "t" / "results.jsonl")
    assert rows and all(r["selection"] == "test" for r in rows)
    summary = (tmp_path / "t" / "summary.md").read_text()
    assert summary.splitlines()[2].startswith("**SELECTED BY TEST (EmoBox recipe")
    assert "selection: TEST (EmoBox recipe" in summary
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["select"] == "test" and config["selected_by_test"] is True
    assert any("SELECTION BY TEST" in n for n in config["notes"])


def test_missing_corpus_root_says_where_and_what(tmp_path, cli):
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "--root",
              tmp_path / "nope")
    assert res.code == 2
    assert f"root {tmp_path / 'nope'} does not exist" in res.err
    assert "audio/<speaker>/<speaker>_<emotion>_<nn>.flac" in res.err
    assert "Traceback" not in res.err


def test_weighted_sum_reads_every_layer_end_to_end_in_bf16(tmp_path, cli):
    from emobox.plugin.registry import Registry, set_registry

    reg = Registry()
    reg.register(TinyLayersPlugin(), name="tiny_layers_plugin")
    set_registry(reg)
    out = tmp_path / "ws"
    res = cli("run", "-u", "tiny_layers", "-c", "demo", "-d", "weighted_sum", "-q", "--fold", "1",
              "--epochs", "4", "--warmup", "1", "--grid", "lr=1e-3 hidden=16,32",
              "--train-precision", "bf16", "--out", out)
    assert res.code == 0, res
    assert "trained in bf16" in res.out
    config = json.loads((out / "config.json").read_text())
    assert config["layer"] == "all" and config["layers"] == [0, 1, 2]
    assert config["train_precision"] == "bf16"
    store_meta = json.loads((Path(config["features"]) / "meta.json").read_text())
    assert sorted(store_meta["layers"]) == ["0", "1", "2"]
    rows = read_jsonl(out / "results.jsonl")
    assert [r["config_id"] for r in rows] == ["hidden=16,lr=0.001", "hidden=32,lr=0.001"]
    assert all(r["layer"] == "all" and r["train_precision"] == "bf16" for r in rows)
    assert sum(r["selected"] for r in rows) == 1
    assert "training precision: bf16" in (out / "summary.md").read_text()
    # --layer makes no sense for a head that reads every layer
    bad = cli("run", "-u", "tiny_layers", "-c", "demo", "-d", "weighted_sum", "-q", "--fold", "1",
              "--layer", "1", "--out", tmp_path / "bad")
    assert bad.code == 2 and "reads every layer" in bad.err
