"""`emobox extract`, `emobox features info/verify/rm`, and `emobox run` reusing a store."""

from __future__ import annotations

import json

import pytest

from emobox.io import read_jsonl


def test_extract_then_reuse_then_info_verify_rm(cli, tmp_path):
    res = cli("extract", "-u", "fbank", "-c", "demo", "-q")
    assert res.code == 0, res
    assert "extracted 192 utterances" in res.out and "fp32 on cpu" in res.out
    res = cli("extract", "-u", "fbank", "-c", "demo", "-q")
    assert res.code == 0 and "features reused from" in res.out
    res = cli("features", "info")
    assert res.code == 0 and "fbank" in res.out and "complete" in res.out and "192" in res.out
    res = cli("features", "info", "-u", "fbank")
    assert "layer 0: dim 80" in res.out and "checkpoint_id: kaldi-fbank-80" in res.out
    assert "session" in res.out
    res = cli("features", "verify")
    assert res.code == 0 and res.out.startswith("ok ")
    assert cli("features", "rm").code == 2  # nothing named: refuses to guess
    res = cli("features", "rm", "-u", "fbank")
    assert res.code == 0 and "removed 1 store" in res.out
    assert "no feature stores found" in cli("features", "info").out


def test_features_dir_is_settable_per_command(cli, tmp_path):
    res = cli("extract", "-u", "mfcc", "-c", "demo", "-q", "--features-dir", tmp_path / "f")
    assert res.code == 0, res
    assert list((tmp_path / "f" / "mfcc" / "demo").iterdir())
    assert "no feature stores found" in cli("features", "info").out
    assert "mfcc" in cli("features", "info", "--features-dir", tmp_path / "f").out
    store = next((tmp_path / "f" / "mfcc" / "demo").iterdir())
    assert "layer 0: dim 13" in cli("features", "info", store).out
    assert cli("features", "verify", store).code == 0
    res = cli("features", "rm", store)
    assert res.code == 0 and "removed 1 store" in res.out and not store.exists()
    cli("extract", "-u", "mfcc", "-c", "demo", "-q", "--features-dir", tmp_path / "f")
    res = cli("features", "rm", "--all", "--features-dir", tmp_path / "f")
    assert res.code == 0 and "removed 1 store" in res.out


@pytest.mark.parametrize("args, message", [
    (["--precision", "fp16"], "fp16 needs a GPU"),
    (["--precision", "fp64"], "--precision 'fp64': use one of fp32, bf16, fp16"),
    (["--batch-seconds", "0"], "--batch-seconds must be positive"),
    (["--layers", "7"], "fbank has layers 0..0; layer 7 does not exist"),
    (["--on-bad-audio", "ignore"], "--on-bad-audio must be one of fail, skip"),
])
def test_bad_options_are_one_line_errors(cli, args, message):
    res = cli("extract", "-u", "fbank", "-c", "demo", "-q", *args)
    assert res.code == 2, res
    assert message in res.err and "Traceback" not in res.err


def test_features_path_that_is_not_a_store(cli, tmp_path):
    res = cli("features", "info", tmp_path)
    assert res.code == 2 and "is not a feature store" in res.err


def test_run_labels_the_precision_and_reuses_the_store(cli, tmp_path):
    args = ["run", "-u", "fbank", "-c", "demo", "--fold", "1", "--epochs", "2", "--warmup", "1",
            "-q", "--precision", "bf16"]
    res = cli(*args, "--grid", "lr=1e-3 hidden=32", "--out", tmp_path / "a")
    assert res.code == 0, res
    assert "(bf16 features)" in res.out
    rows = read_jsonl(tmp_path / "a" / "results.jsonl")
    assert {r["precision"] for r in rows} == {"bf16"}
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["precision"] == "bf16"
    assert "features bf16" in (tmp_path / "a" / "summary.md").read_text()
    store = config["features"]
    assert json.loads(open(f"{store}/meta.json").read())["precision"] == "bf16"
    res = cli(*args, "--grid", "lr=1e-4 hidden=32", "--out", tmp_path / "b")
    assert res.code == 0, res
    assert json.loads((tmp_path / "b" / "config.json").read_text())["features"] == store
    assert len(read_jsonl(f"{store}/sessions.jsonl")) == 1  # extracted once, reused after
