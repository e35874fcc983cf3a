"""Determinism: the same ``emobox run`` command with the same seed, run twice in fresh
processes (different hash seeds, separate run directories and feature folders, so extraction
is redone too), writes identical results, predictions, summaries and feature stores on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emobox.io import read_jsonl

COMMAND = ("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--epochs", "3",
           "--warmup", "1", "--grid", "lr=1e-3,1e-2 hidden=8,16")


def start(tmp_path: Path, name: str, seed: int, hash_seed: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), COLUMNS="200")
    return subprocess.Popen(
        [sys.executable, "-m", "emobox", *COMMAND, "--seed", str(seed),
         "--out", str(tmp_path / name), "--features-dir", str(tmp_path / f"{name}-features")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out


def run_files(out: Path) -> dict[str, bytes]:
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
             if p.is_file()}
    del files["config.json"]  # names its feature folder, which differs on purpose
    return files


def store_files(features: Path) -> dict[str, bytes]:
    (store,) = features.glob("fbank/demo/*")
    return {name: (store / name).read_bytes()
            for name in ("meta.json", "index.tsv", "layer_0.f16", "pooled_0.npy")}


@pytest.mark.slow
def test_same_seed_same_results_on_cpu(tmp_path):
    procs = [start(tmp_path, "a", 0, 1), start(tmp_path, "b", 0, 2),
             start(tmp_path, "seed1", 1, 1)]
    for proc in procs:
        finish(proc)
    a, b = tmp_path / "a", tmp_path / "b"
    rows = read_jsonl(a / "results.jsonl")
    assert len(rows) == 3 * 4  # 3 folds x 4 configurations
    assert rows == read_jsonl(b / "results.jsonl")  # the rows hold no timings: all must match
    files = run_files(a)
    assert {"results.jsonl", "summary.md", "confusion.png", "predictions/fold1.tsv",
            "predictions/fold2.tsv", "predictions/fold3.tsv"} <= set(files)
    assert files == run_files(b)
    assert store_files(tmp_path / "a-features") == store_files(tmp_path / "b-features")

    # another seed starts the heads elsewhere: the validation losses cannot all coincide
    other = read_jsonl(tmp_path / "seed1" / "results.jsonl")
    assert [(r["fold"], r["config_id"]) for r in other] == [
        (r["fold"], r["config_id"]) for r in rows]
    assert {r["seed"] for r in other} == {1}
    assert [r["valid_loss"] for r in other] != [r["valid_loss"] for r in rows]
