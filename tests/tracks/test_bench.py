"""`emobox bench`: planning, the local and Ray executors, resuming after an interruption."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench_support import (TONE_SECONDS, comparable, grid_options, local_grid, make_registry)
from emobox.tracks.bench import bench, plan_bench, transformer_flops
from emobox.io import read_jsonl
from emobox.plugin.registry import set_registry
from emobox.plugin.specs import UpstreamSpec

CORPORA_FOLDS = {"demo": 3, "emodb": 5, "tones": 3}


def _all_tasks() -> set[str]:
    tasks = set()
    for up in ("fbank", "mfcc"):
        for corpus, n in CORPORA_FOLDS.items():
            tasks.add(f"extract:{up}:{corpus}")
            tasks |= {f"train:{up}:{corpus}:linear_probe:fold{k}" for k in range(1, n + 1)}
    return tasks


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return local_grid(tmp_path_factory)


def test_local_grid_runs_every_task_once_and_writes_run_directories(grid):
    result = grid["result"]
    assert result.failed == {} and result.missing == []
    assert sorted(result.ran) == sorted(_all_tasks()) and len(result.ran) == 6 + 22
    # an (upstream, corpus) is extracted before its folds are trained
    for up in ("fbank", "mfcc"):
        for corpus in CORPORA_FOLDS:
            first_train = min(i for i, t in enumerate(result.ran)
                              if t.startswith(f"train:{up}:{corpus}:"))
            assert result.ran.index(f"extract:{up}:{corpus}") < first_train
    for up in ("fbank", "mfcc"):
        for corpus, n in CORPORA_FOLDS.items():
            run = grid["dir"] / "runs" / f"{up}__{corpus}__linear_probe"
            rows = read_jsonl(run / "results.jsonl")
            assert sorted({r["fold"] for r in rows}) == list(range(1, n + 1))
            assert len(rows) == 2 * n  # two configurations per fold
            assert sum(r["selected"] for r in rows) == n
            assert (run / "summary.md").exists()
            config = json.loads((run / "config.json").read_text())
            assert config["upstream"] == up and config["epochs"] == 3
    log = read_jsonl(grid["dir"] / "tasks.jsonl")
    assert {e["task"] for e in log} == _all_tasks()
    assert all(e["status"] == "done" and e["seconds"] >= 0 for e in log)
    summary = (grid["dir"] / "summary.md").read_text()
    assert "| fbank | tones | linear_probe | 3/3 |" in summary


def test_tones_folds_are_learned(grid):
    """The tones classes differ in pitch: fbank must beat chance (1/3) clearly."""
    rows = read_jsonl(grid["dir"] / "runs" / "fbank__tones__linear_probe" / "results.jsonl")
    ua = [r["ua"] for r in rows if r["selected"]]
    assert sum(ua) / len(ua) > 0.6


def test_rerun_skips_every_finished_task(grid):
    before = comparable(grid["dir"])
    again = bench(grid_options(grid["dir"], grid["roots"]), registry=grid["registry"])
    assert again.ran == []
    assert sorted(again.skipped) == sorted(_all_tasks())
    assert comparable(grid["dir"]) == before


def test_interrupted_bench_resumes_without_redoing_finished_tasks(grid, monkeypatch):
    import emobox.tracks.runner

    out = grid["base"] / "interrupted"
    opts = grid_options(out, grid["roots"], features_dir=str(grid["base"] / "features"))
    real = emobox.tracks.runner.train_sweep
    calls = {"n": 0}

    def interrupt_on_fifth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(emobox.tracks.runner, "train_sweep", interrupt_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        bench(opts, registry=grid["registry"])
    done_before = {e["task"] for e in read_jsonl(out / "tasks.jsonl")}
    trained_before = {t for t in done_before if t.startswith("train:")}
    assert len(trained_before) == 4  # the fifth training was cut
    monkeypatch.setattr(emobox.tracks.runner, "train_sweep", real)

    resumed = bench(opts, registry=grid["registry"])
    ran = set(resumed.ran)
    assert ran & trained_before == set()
    assert {t for t in ran if t.startswith("train:")} == {
        t for t in _all_tasks() if t.startswith("train:")} - trained_before
    # pairs whose folds were all finished are not extracted again
    finished_pairs = {t.rsplit(":", 2)[0].replace("train:", "extract:")
                      for t in trained_before}
    for pair in finished_pairs:
        prefix = pair.replace("extract:", "train:") + ":"
        if all(t in trained_before for t in _all_tasks() if t.startswith(prefix)):
            assert pair not in ran
    assert comparable(out) == comparable(grid["dir"])


def test_ray_executor_gives_the_local_results(grid, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        opts = grid_options(out, grid["roots"], executor="ray",
                            features_dir=str(tmp_path / "features"))
        result = bench(opts, registry=grid["registry"])
        nodes = {e["node"] for e in read_jsonl(out / "tasks.jsonl")}
    finally:
        ray.shutdown()
    assert result.failed == {}
    assert sorted(result.ran) == sorted(_all_tasks())
    assert nodes  # every task reported where it ran
    # on a cluster with GPUs: one GPU per extraction, a quarter per training (a declared GPU)
    from emobox.tracks.executors import RayExecutor

    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        ex = RayExecutor(None, "auto")
        assert ex.extract_resources == {"num_cpus": 1, "num_gpus": 1.0}
        assert ex.train_resources == {"num_cpus": 1.0, "num_gpus": 0.25}
        assert RayExecutor(None, "cpu").extract_resources["num_gpus"] == 0
    finally:
        ray.shutdown()
    mine, local = comparable(out), comparable(grid["dir"])
    assert mine.keys() == local.keys()
    for triple in local:
        assert mine[triple]["rows"] == local[triple]["rows"], triple
        assert mine[triple]["predictions"] == local[triple]["predictions"], triple
        for (f, c, a), (_, _, b) in zip(mine[triple]["valid_loss"], local[triple]["valid_loss"]):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_dry_run_plans_hours_and_flops_and_reports_missing_corpora(tmp_path, monkeypatch, cli):
    from bench_support import make_tones

    roots = {"tones": make_tones(tmp_path / "tones")}
    set_registry(make_registry())
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path / "nothing-here"))
    plan = plan_bench(grid_options(tmp_path / "b", roots, corpora=("tones", "emodb"),
                                   dry_run=True))
    (ext_fbank, ext_mfcc) = plan.extractions
    assert (ext_fbank.id, ext_fbank.utterances) == ("extract:fbank:tones", 36)
    assert ext_fbank.audio_hours == pytest.approx(36 * TONE_SECONDS / 3600)
    # 0.3 s = 4800 samples -> 28 frames x 55648 FLOP (6*400 + 2.5*512*9 + 3*256 + 2*256*80)
    assert ext_fbank.flops == pytest.approx(36 * 28 * 55648) and ext_fbank.flops_source == "model"
    assert [m.corpus for m in plan.missing] == ["emodb"]
    assert plan.missing[0].utterances == 535  # the published table's size
    assert len(plan.trainings) == 2 * 3 and not plan.finished

    res = cli("bench", "-u", "fbank,mfcc", "-c", "tones,emodb", "--root-map",
              f"tones={roots['tones']}", "--dry-run", "--out", tmp_path / "b")
    assert res.code == 0, res
    assert "extract:fbank:tones" in res.out and "56.1 MFLOP" in res.out
    assert "not on this machine: emodb (published: 535 utterances, 0.4 h)" in res.err
    assert f"root {tmp_path / 'nothing-here' / 'emodb'} does not exist" in res.err
    assert not (tmp_path / "b").exists()  # a dry run writes nothing

    # every EmoBox corpus, none of them here: each is listed with its published size
    res = cli("bench", "-u", "fbank", "-c", "all", "--dry-run", "--out", tmp_path / "b")
    assert res.code == 0, res
    lines = [ln for ln in res.err.splitlines() if ln.startswith("not on this machine:")
             and not ln.startswith("not on this machine: tones ")]  # the test plugin's corpus
    assert len(lines) == 32 and all("(published: " in ln for ln in lines)
    assert any(ln.startswith("not on this machine: iemocap (published: ") for ln in lines)


def test_transformer_estimate_from_the_spec_by_hand():
    spec = UpstreamSpec(name="x", build=lambda **k: None, num_layers=12, hidden_size=768,
                        frame_rate=50.0, checkpoint="hub/x")
    # 1 s -> T = 50 frames; per block 2*T*(4d^2 + 8d^2) + 4*T^2*d
    per_block = 2 * 50 * 12 * 768 ** 2 + 4 * 50 ** 2 * 768
    assert transformer_flops(16000, spec) == pytest.approx(12 * per_block)
    assert per_block * 12 == 8_585_625_600


def test_bench_errors_are_one_line(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path))
    res = cli("bench", "-u", "fbnak", "-c", "demo", "--out", tmp_path / "b")
    assert res.code == 2 and "did you mean 'fbank'" in res.err
    res = cli("bench", "-u", "fbank", "-c", "emodb", "--out", tmp_path / "b", "-q")
    assert res.code == 2 and "nothing to run: no requested corpus is on this machine" in res.err
    res = cli("bench", "-u", "fbank", "-c", "demo", "--root-map", "demo", "--out", tmp_path)
    assert res.code == 2 and "--root-map 'demo': expected corpus=DIR" in res.err
    assert "Traceback" not in res.err


def test_a_failing_task_is_reported_and_the_rest_still_runs(tmp_path, cli):
    from bench_support import make_tones

    root = make_tones(tmp_path / "tones")
    bad = root / "s2" / "s2_low_1.wav"
    bad.write_bytes(b"not audio")
    set_registry(make_registry())
    res = cli("bench", "-u", "fbank", "-c", "tones,demo", "--root-map", f"tones={root}",
              "--grid", "lr=1e-3 hidden=8", "--epochs", "1", "--warmup", "0", "-q",
              "--fold", "1", "--out", tmp_path / "b")
    assert res.code == 3, res
    assert "failed: extract:fbank:tones:" in res.err and "s2_low_1.wav" in res.err
    assert "failed: train:fbank:tones:linear_probe:fold1: not run: its extraction failed" in res.err
    rows = read_jsonl(tmp_path / "b" / "runs" / "fbank__demo__linear_probe" / "results.jsonl")
    assert [r["fold"] for r in rows] == [1]  # the demo still ran
    assert "| fbank | demo | linear_probe | 1/1 |" in res.out  # the bench's summary
    assert "| fbank | tones | linear_probe | 0/1 |" in res.out
    shutil.rmtree(tmp_path / "b")


def test_emobox_corpora_publish_their_reference_table():
    from emobox.plugin.registry import get_registry

    ref = get_registry().corpus("emodb").reference_table()
    assert (len(ref.label), ref.n_folds, len(ref.test_keys(1))) == (535, 5, 107)
    assert ref.label["emodb-03a01Nc"] == "Neutral"  # the adapter's fix of EmoBox's 'neutral'
    assert ref.duration["emodb-03a01Fa"] == pytest.approx(1.89825)
    assert "emodb-03a01Fa" in ref.train_keys(1) and "emodb-03a01Fa" in ref.test_keys(5)
    for spec in get_registry().specs("corpus"):
        if spec.reference_table is not None:
            table = spec.reference_table()
            assert set(table.label.values()) <= set(table.labels), spec.name


def test_bench_extracts_with_the_requested_precision(tmp_path, cli):
    res = cli("bench", "-u", "fbank", "-c", "demo", "--precision", "bf16", "--batch-seconds", "4",
              "--grid", "lr=1e-3 hidden=8", "--epochs", "1", "--warmup", "0", "-q", "--fold", "1",
              "--out", tmp_path / "b", "--features-dir", tmp_path / "f")
    assert res.code == 0, res
    rows = read_jsonl(tmp_path / "b" / "runs" / "fbank__demo__linear_probe" / "results.jsonl")
    assert rows and all(r["precision"] == "bf16" for r in rows)
    metas = [json.loads(p.read_text()) for p in (tmp_path / "f").rglob("meta.json")]
    assert [m["precision"] for m in metas] == ["bf16"]


def test_every_run_option_the_bench_has_reaches_its_runs():
    from emobox.tracks.bench import BenchOptions

    opts = BenchOptions(upstreams=("fbank",), seed=3, precision="bf16", batch_seconds=7.0,
                        train_precision="bf16", schedule="constant", folds=(2,), layer=0,
                        on_bad_audio="skip", device="auto")
    run = opts.run_options("fbank", "demo", "linear_probe", "/data/demo", Path("/o"), "/f")
    assert (run.upstream, run.corpus, run.downstream, run.root, run.out) == (
        "fbank", "demo", "linear_probe", "/data/demo", "/o")
    assert (run.seed, run.precision, run.batch_seconds, run.train_precision, run.schedule,
            run.folds, run.layer, run.on_bad_audio) == (3, "bf16", 7.0, "bf16", "constant",
                                                        (2,), 0, "skip")
    assert run.device == "cpu" and run.features_dir == "/f"  # the executor places the task


def test_upstream_options_reach_only_their_upstream(tmp_path, cli):
    res = cli("bench", "-u", "fbank,mfcc", "-c", "demo", "-U", "fbank:num_mel_bins=40",
              "--grid", "lr=1e-3 hidden=8", "--epochs", "1", "--warmup", "0", "-q", "--fold", "1",
              "--out", tmp_path / "b", "--features-dir", tmp_path / "f")
    assert res.code == 0, res
    dims = {m["upstream"]: m["layers"]["0"]["dim"] for m in (
        json.loads(p.read_text()) for p in (tmp_path / "f").rglob("meta.json"))}
    assert dims == {"fbank": 40, "mfcc": 13}
    config = json.loads((tmp_path / "b" / "runs" / "fbank__demo__linear_probe" / "config.json")
                        .read_text())
    assert config["upstream_options"] == {"num_mel_bins": 40}
    res = cli("bench", "-u", "fbank", "-c", "demo", "-U", "mfcc:num_ceps=20", "-q",
              "--out", tmp_path / "c")
    assert res.code == 2 and "--upstream-option for mfcc, which is not among" in res.err
    res = cli("bench", "-u", "fbank", "-c", "demo", "-U", "fbank:num_mel_bins", "--out", tmp_path)
    assert res.code == 2 and "expected name=value or UPSTREAM:name=value" in res.err


def test_a_bench_resumed_over_changed_audio_does_not_count_old_folds_as_done(tmp_path, cli):
    """A finished fold counts only while the audio its run directory's config.json records is
    the audio there now (as `emobox run` compares it); unchanged audio whose store was removed
    is extracted again and the folds kept, nothing trained."""
    from bench_support import make_tones
    from emobox.testing import write_audio

    root = make_tones(tmp_path / "tones")
    set_registry(make_registry())
    args = ["bench", "-u", "fbank", "-c", "tones", "--root-map", f"tones={root}", "--grid",
            "lr=1e-2 hidden=8", "--epochs", "1", "--warmup", "0", "-q", "--fold", "1",
            "--fold", "2", "--out", tmp_path / "b", "--features-dir", tmp_path / "features"]
    res = cli(*args)
    assert res.code == 0, res
    run = tmp_path / "b" / "runs" / "fbank__tones__linear_probe"
    results = (run / "results.jsonl").read_text()
    store = json.loads((run / "config.json").read_text())["features"]

    def tasks_now() -> list[str]:
        return [t["task"] for t in read_jsonl(tmp_path / "b" / "tasks.jsonl")]

    # the same audio, its store removed: extracted again to check it, nothing trained
    shutil.rmtree(store)
    n = len(tasks_now())
    res = cli(*args)
    assert res.code == 0, res
    assert tasks_now()[n:] == ["extract:fbank:tones"]
    assert (run / "results.jsonl").read_text() == results

    wav = root / "s1" / "s1_low_0.wav"
    write_audio(wav, seconds=0.3, freq=777.0)  # another recording under the same name
    res = cli(*args)
    assert res.code == 3, res
    assert "failed: extract:fbank:tones:" in res.err
    assert f"the audio changed since these features were extracted: {wav}" in res.err
    assert "failed: train:fbank:tones:linear_probe:fold1: not run: its extraction failed" in res.err
    assert cli("features", "rm", store).code == 0
    res = cli(*args)
    assert res.code == 3, res
    assert (f"failed: train:fbank:tones:linear_probe:fold1: {run} holds a run made with other "
            f"options (audio_sha256: ") in res.err
    assert (run / "results.jsonl").read_text() == results  # nothing mixed in


def test_missing_weights_and_a_missing_corpus_are_both_reported_before_anything_runs(
        tmp_path, cli, monkeypatch):
    """An upstream whose checkpoint is not on this machine is left out of the plan with where
    it was looked for, beside a missing corpus; the rest of the grid runs."""
    monkeypatch.setenv("EMOBOX_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = cli("bench", "-u", "hubert_base,fbank", "-c", "demo,ravdess", "-d", "linear_probe",
              "--dry-run", "--out", tmp_path / "b")
    assert res.code == 0, res
    err = " ".join(res.err.split())
    assert "not on this machine: ravdess (published: 1440 utterances" in err
    assert ("not on this machine: hubert_base (its tasks are left out): no checkpoint for "
            "upstream 'hubert_base' on this machine; looked in:") in err
    assert "hf download facebook/hubert-base-ls960" in err
    assert "extract:fbank:demo" in res.out and "extract:hubert_base:demo" not in res.out
    assert "dry run: 4 tasks to run" in res.out  # fbank on demo: one extraction, three folds
    # on Ray the workers look for the weights themselves: the driver plans the tasks
    res = cli("bench", "-u", "hubert_base,fbank", "-c", "demo", "-d", "linear_probe",
              "--executor", "ray", "--dry-run", "--out", tmp_path / "b")
    assert res.code == 0 and "extract:hubert_base:demo" in res.out, res
    assert "dry run: 8 tasks to run" in res.out and "hubert_base (its tasks" not in res.err

    res = cli("bench", "-u", "hubert_base,fbank", "-c", "demo,ravdess", "-d", "linear_probe",
              "--epochs", "2", "--warmup", "1", "-q", "--out", tmp_path / "b")
    assert res.code == 0, res
    summary = (tmp_path / "b" / "summary.md").read_text()
    assert "| fbank | demo | linear_probe | 3/3 |" in summary
    assert "hubert_base | demo" not in summary and "failed:" not in res.err
    assert "- hubert_base: no checkpoint for upstream 'hubert_base'" in summary
    assert "- ravdess: corpus 'ravdess': root" in summary

    # nothing left to run: both reasons, one error line each, before any work
    res = cli("bench", "-u", "hubert_base", "-c", "demo", "--out", tmp_path / "c", "-q")
    assert res.code == 2, res
    lines = res.err.strip().splitlines()
    assert lines[0].startswith("error: nothing to run: no checkpoint for upstream "
                               "'hubert_base' on this machine"), res.err
    assert not (tmp_path / "c").exists() and "Traceback" not in res.err
    res = cli("bench", "-u", "hubert_base", "-c", "ravdess", "--out", tmp_path / "c", "-q")
    assert res.code == 2, res
    assert res.err.startswith("error: nothing to run: no requested corpus is on this machine "
                              "(missing: ravdess)"), res.err
    assert "\nerror: no checkpoint for upstream 'hubert_base'" in res.err
