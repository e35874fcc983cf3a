"""The fingerprints emobox writes (result rows, config.json, default folders) stay the same for
the same options: rows and run directories written by an earlier emobox must still match the
options asked for now, or every finished fold would be trained again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from emobox.tracks.bench import BenchOptions, bench_dir
from emobox.tracks.cross import CrossOptions, cross_config
from emobox.tracks.runner import (Features, RunOptions, fingerprinted_options, hash_options,
                                  plan_triple, run_config)

GRID = {"lr": [1e-3, 1e-4], "hidden": [8]}


def _run_options(**extra) -> RunOptions:
    return RunOptions(upstream="fbank", corpus="demo", downstream="linear_probe", epochs=3,
                      warmup_epochs=1, grid=GRID, upstream_options={"num_mel_bins": 40},
                      **extra)


def test_the_options_fingerprint_of_result_rows_is_pinned():
    options = fingerprinted_options(_run_options(), GRID, "0123456789abcdef")
    assert hash_options(options) == "7170d99e7794b2b4"


def test_options_that_do_not_change_results_leave_the_fingerprint_alone():
    one = fingerprinted_options(_run_options(), GRID, "m")
    two = fingerprinted_options(_run_options(device="cpu", out="/elsewhere", folds=(2,),
                                             features_dir="/f", batch_seconds=3.0), GRID, "m")
    assert hash_options(one) == hash_options(two)
    three = fingerprinted_options(_run_options(seed=1), GRID, "m")
    assert hash_options(three) != hash_options(one)


def test_the_run_config_fingerprint_is_pinned():
    plan = plan_triple(_run_options(folds=(1,)))
    feats = Features("/store", 3, [3], "fbank-80", {}, None, {}, "ab" * 32)
    _, full = run_config(plan, feats)
    assert full["fingerprint"] == "3089ab178686"


class _Set:
    origin = "published"

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def content_hash(self) -> str:
        return f"set{self.n}"


def test_the_cross_config_fingerprint_is_pinned():
    opts = CrossOptions(upstream="fbank", corpora=("a", "b"), epochs=3, warmup_epochs=1,
                        upstream_options={"num_mel_bins": 40})
    spec = SimpleNamespace(distribution=None)
    corpora = [SimpleNamespace(name=n, spec=spec, test_set=_Set(k),
                               manifest=SimpleNamespace(content_hash=lambda n=n: f"m-{n}"),
                               corpus=SimpleNamespace(root=Path("/data") / n),
                               train=[], valid=[], test=[], valid_rule="stratified-20%")
               for k, n in enumerate(("a", "b"), 1)]
    plan = SimpleNamespace(opts=opts, corpora=corpora, classes=("angry", "sad"), grid=GRID,
                           up_spec=spec, down_spec=spec, device="cpu")
    feats = {n: Features(f"/store/{n}", 3, [3], "fbank-80", {}, None) for n in ("a", "b")}
    assert cross_config(plan, feats)["fingerprint"] == "e4867b9a50a3"


def test_the_default_bench_folder_is_pinned(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOBOX_HOME", str(tmp_path))
    opts = BenchOptions(upstreams=("fbank", "mfcc"), corpora=("demo",), epochs=3,
                        warmup_epochs=1, grid=GRID,
                        upstream_options={"fbank": {"num_mel_bins": 40}})
    assert bench_dir(opts) == tmp_path / "bench" / "linear_probe-2d42757e"
