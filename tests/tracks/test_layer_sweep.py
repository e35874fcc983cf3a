"""Layer-wise probing: `--layer` lists and ranges in run and bench, one extraction for every
layer, each layer a run of its own, the per-layer report, learned layer weights."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from emobox.errors import EmoboxUsageError
from emobox.io import read_jsonl
from extract_fakes import TinyLayersPlugin

FAST = ("--fold", "1", "--epochs", "4", "--warmup", "1", "--grid", "lr=1e-2 hidden=16", "-q")


@pytest.fixture
def tiny(monkeypatch):
    from emobox.plugin.registry import Registry, set_registry

    reg = Registry()
    reg.register(TinyLayersPlugin(), name="tiny_layers_plugin")
    set_registry(reg)
    return reg


@pytest.mark.parametrize("text, expected", [
    ("8", 8), ("-1", -1), ("last", "last"), ("all", "all"), ("ALL", "all"),
    ("4,8,12", (4, 8, 12)), ("0-3", (0, 1, 2, 3)), ("0-3,8", (0, 1, 2, 3, 8)),
    ("8,0-2", (0, 1, 2, 8)), ("4,", 4), ("3,3", 3), ("2-2", 2), ("1 2", (1, 2)),
])
def test_layer_forms(text, expected):
    from emobox.cli.layers import parse_layer_arg

    assert parse_layer_arg(text) == expected


@pytest.mark.parametrize("text, message", [
    ("5-2", "--layer 5-2: the range runs backwards; write 2-5"),
    ("x", "--layer 'x': not a layer; use a layer number (8), a list (4,8,12), a range (0-12)"),
    ("1-2-3", "--layer '1-2-3': not a layer"),
    ("", "--layer '': no layer given"),
    ("all,3", "--layer 'all,3': 'all' stands alone"),
    ("0-99999", "--layer 0-99999: no upstream has a layer 99999"),
])
def test_bad_layer_forms_are_one_line(text, message):
    from emobox.cli.layers import parse_layer_arg

    with pytest.raises(EmoboxUsageError) as exc:
        parse_layer_arg(text)
    assert str(exc.value).startswith(message)


def test_extract_layers_takes_ranges():
    from emobox.cli.extract_cmd import parse_layers

    assert parse_layers(["0-2", "5"]) == [0, 1, 2, 5]
    assert parse_layers(["all"]) == "all" and parse_layers([]) is None
    with pytest.raises(EmoboxUsageError, match="--layers 'all' stands alone"):
        parse_layers(["all,3"])


@pytest.mark.parametrize("command", ["run", "bench"])
@pytest.mark.parametrize("layer, down, message", [
    ("0-7", "linear_probe", "error: --layer 0-7: tiny_layers has layers 0..2; layer 3 does "
                            "not exist"),
    ("0,1,5", "linear_probe", "error: --layer 0,1,5: tiny_layers has layers 0..2; layer 5 does "
                              "not exist"),
    ("2-1", "linear_probe", "error: --layer 2-1: the range runs backwards; write 1-2"),
    ("0,2", "weighted_sum", "error: downstream 'weighted_sum' learns a weighting of every "
                            "layer of the upstream; a list of layers (0,2) trains one head "
                            "per layer"),
])
def test_bad_layers_stop_before_any_extraction(tiny, cli, tmp_path, command, layer, down,
                                               message):
    res = cli(command, "-u", "tiny_layers", "-c", "demo", "-d", down, "--layer", layer,
              "--features-dir", tmp_path / "features", "--out", tmp_path / "out", *FAST)
    assert res.code == 2, res
    lines = [x for x in res.err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.err
    assert not (tmp_path / "features").exists() and not (tmp_path / "out").exists()


def _ua(run_dir: Path) -> list[float]:
    return [r["ua"] for r in read_jsonl(run_dir / "results.jsonl")]


def _run_dirs(out: str) -> dict[int, Path]:
    dirs = {}
    for line in out.splitlines():
        if line.startswith("layer ") and ": run directory " in line:
            layer, path = line[len("layer "):].split(": run directory ")
            dirs[int(layer)] = Path(path)
    return dirs


def test_layer_sweep_extracts_once_and_each_layer_is_the_single_layer_run(
        tiny, cli, tmp_path, monkeypatch):
    res = cli("run", "-u", "tiny_layers", "-c", "demo", "--layer", "0,2", *FAST)
    assert res.code == 0, res
    assert "tiny_layers x demo x linear_probe by layer" in res.out
    dirs = _run_dirs(res.out)
    assert sorted(dirs) == [0, 2]
    configs = {n: json.loads((d / "config.json").read_text()) for n, d in dirs.items()}
    assert [(c["layer"], c["layers"]) for c in configs.values()] == [(0, [0]), (2, [2])]
    # one store, extracted in one session, holds both layers
    store = Path(configs[0]["features"])
    assert configs[2]["features"] == str(store)
    assert sorted(json.loads((store / "meta.json").read_text())["layers"]) == ["0", "2"]
    sessions = read_jsonl(store / "sessions.jsonl")
    assert len(sessions) == 1 and sessions[0]["layers"] == [0, 2]
    assert all(r["layer"] == n for n, d in dirs.items() for r in read_jsonl(d / "results.jsonl"))
    # the per-layer table prints each layer's mean UA
    for n, d in dirs.items():
        ua = 100 * next(r["ua"] for r in read_jsonl(d / "results.jsonl") if r["selected"])
        assert any(line.split("│")[1].strip() == str(n) and f"{ua:.2f} ± 0.00" in line
                   for line in res.out.splitlines() if line.count("│") > 3)

    # `--layer 2` alone later finds the sweep's run: same directory, nothing trained
    again = cli("run", "-u", "tiny_layers", "-c", "demo", "--layer", "2", *FAST)
    assert again.code == 0, again
    assert "already complete" in again.out
    assert f"run directory: {dirs[2]}" in again.out

    # and from scratch (another home, another feature store), the same numbers
    monkeypatch.setenv("EMOBOX_HOME", str(tmp_path / "fresh"))
    alone = cli("run", "-u", "tiny_layers", "-c", "demo", "--layer", "2", *FAST)
    assert alone.code == 0 and "already complete" not in alone.out, alone
    fresh = Path(alone.out.split("run directory: ")[1].split()[0])
    assert fresh.name == dirs[2].name  # the same fingerprint
    assert _ua(fresh) == _ua(dirs[2])

    # the report over the sweep: one row per layer, and the per-layer table and plot
    report = cli("report", *dirs.values(), "--out", tmp_path / "report")
    assert report.code == 0, report
    assert "tiny_layers (layer 0)" in report.out and "tiny_layers (layer 2)" in report.out
    layers_md = (tmp_path / "report" / "layers.md").read_text()
    for n, d in dirs.items():
        sel = next(r for r in read_jsonl(d / "results.jsonl") if r["selected"])
        assert (f"| {n} | " in layers_md and f"{100 * sel['ua']:.2f} ± 0.00" in layers_md
                and f"{100 * sel['f1']:.2f} ± 0.00 | 1/3 |" in layers_md)
    png = tmp_path / "report" / "plots" / "layers.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_layer_sweep_with_out_writes_one_folder_per_layer(tiny, cli, tmp_path):
    res = cli("run", "-u", "tiny_layers", "-c", "demo", "--layer", "1-2", "--out",
              tmp_path / "sweep", *FAST)
    assert res.code == 0, res
    assert _run_dirs(res.out) == {1: tmp_path / "sweep" / "layer1",
                                  2: tmp_path / "sweep" / "layer2"}
    # the per-layer view beside them, each layer's scores as its own run directory has them
    assert f"by layer: {tmp_path / 'sweep' / 'layers.md'}" in res.out
    layers_md = (tmp_path / "sweep" / "layers.md").read_text()
    for n in (1, 2):
        rows = [r for r in read_jsonl(tmp_path / "sweep" / f"layer{n}" / "results.jsonl")
                if r["selected"]]
        ua = sum(r["ua"] for r in rows) / len(rows)
        assert f"| {n} | " in layers_md and f"{100 * ua:.2f} ± " in layers_md, layers_md
    png = tmp_path / "sweep" / "plots" / "layers.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a later single-layer run pointed at that folder resumes it
    again = cli("run", "-u", "tiny_layers", "-c", "demo", "--layer", "1", "--out",
                tmp_path / "sweep" / "layer1", *FAST)
    assert again.code == 0 and "already complete" in again.out, again


def test_weighted_sum_records_its_learned_layer_weights(tiny, cli, tmp_path):
    out = tmp_path / "ws"
    # `all` is what a head of every layer reads anyway: the same run as without --layer
    res = cli("run", "-u", "tiny_layers", "-c", "demo", "-d", "weighted_sum", "--layer", "all",
              "--out", out, *FAST)
    assert res.code == 0, res
    config = json.loads((out / "config.json").read_text())
    assert config["layer"] == "all" and config["layers"] == [0, 1, 2]
    rows = read_jsonl(out / "results.jsonl")
    for r in rows:
        w = r["layer_weights"]
        assert len(w) == 3 and abs(sum(w) - 1) < 1e-4 and all(0 < x < 1 for x in w)
    assert any(abs(x - 1 / 3) > 1e-4 for x in rows[0]["layer_weights"])  # trained, not uniform
    summary = (out / "summary.md").read_text()
    sel = next(r for r in rows if r["selected"])
    assert "Learned layer weights (softmax)" in summary
    assert f"| 1 | {sel['layer_weights'][1]:.4f} ± 0.0000 |" in summary
    assert (out / "layer_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same run without --layer: already there
    again = cli("run", "-u", "tiny_layers", "-c", "demo", "-d", "weighted_sum", "--out", out,
                *FAST)
    assert again.code == 0 and "already complete" in again.out, again

    report = cli("report", out, "--out", tmp_path / "report")
    assert report.code == 0, report
    md = (tmp_path / "report" / "layers.md").read_text()
    assert "# Learned layer weights" in md
    assert f"| 2 | {sel['layer_weights'][2]:.4f} ± 0.0000 |" in md
    assert (tmp_path / "report" / "plots" / "layer_weights.png").is_file()


def test_bench_layers_multiply_the_triples(tiny, cli, tmp_path):
    res = cli("bench", "-u", "tiny_layers", "-c", "demo", "-d", "linear_probe", "--layer",
              "0,2", "--out", tmp_path / "bench", "--device", "cpu", *FAST)
    assert res.code == 0, res
    runs = tmp_path / "bench" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == [
        "tiny_layers__demo__linear_probe__layer0", "tiny_layers__demo__linear_probe__layer2"]
    summary = (tmp_path / "bench" / "summary.md").read_text()
    assert "| upstream | corpus | downstream | layer | folds |" in summary
    store = {json.loads((p / "config.json").read_text())["features"] for p in runs.iterdir()}
    assert len(store) == 1
    assert len(read_jsonl(Path(store.pop()) / "sessions.jsonl")) == 1
    tasks = [t["task"] for t in read_jsonl(tmp_path / "bench" / "tasks.jsonl")]
    assert sorted(tasks) == ["extract:tiny_layers:demo",
                             "train:tiny_layers:demo:linear_probe:layer0:fold1",
                             "train:tiny_layers:demo:linear_probe:layer2:fold1"]
    # the bench's layer 2 is `emobox run --layer 2`: the same numbers
    alone = cli("run", "-u", "tiny_layers", "-c", "demo", "--layer", "2", "--out",
                tmp_path / "alone", *FAST)
    assert alone.code == 0, alone
    assert _ua(tmp_path / "alone") == _ua(runs / "tiny_layers__demo__linear_probe__layer2")


def test_progress_off_a_terminal_prints_whole_lines():
    from rich.console import Console

    from emobox.progress import Prefixed, RichReporter

    buf = io.StringIO()
    reporter = Prefixed(RichReporter(Console(file=buf, width=40)), "whisper_tiny_en x demo "
                                                                  "(layer 3): ")
    with reporter.task("linear_probe fold 1/5", 4, "epoch") as task:
        for _ in range(4):
            task.advance(1)
        task.note("best valid UA 0.500")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "whisper_tiny_en x demo (layer 3): linear_probe fold 1/5 ..."
    assert lines[-1].startswith("whisper_tiny_en x demo (layer 3): linear_probe fold 1/5: "
                                "finished, 4/4 epoch, ")
    assert lines[-1].endswith("best valid UA 0.500")


def test_library_run_refuses_a_sweep_and_run_layers_runs_it(tiny, tmp_path):
    from emobox.tracks.runner import RunOptions, run, run_layers

    opts = RunOptions(upstream="tiny_layers", corpus="demo", downstream="linear_probe",
                      layer=(0, 1), folds=(1,), epochs=2, warmup_epochs=1,
                      grid={"lr": [1e-2], "hidden": [16]}, out=str(tmp_path / "sweep"))
    with pytest.raises(EmoboxUsageError, match="several layers .* run them with run_layers"):
        run(opts)
    results = run_layers(opts)
    assert [(r.config["layer"], r.out) for r in results] == [
        (0, tmp_path / "sweep" / "layer0"), (1, tmp_path / "sweep" / "layer1")]
    assert all(len(r.folds) == 1 and not r.already_complete for r in results)


def test_all_layers_of_an_upstream_with_one_output_is_that_layer_run(cli, tmp_path):
    res = cli("run", "-u", "fbank", "-c", "demo", "--layer", "all", "--out", tmp_path / "f",
              *FAST)
    assert res.code == 0, res
    assert "by layer" not in res.out and f"run directory: {tmp_path / 'f'}" in res.out
    assert json.loads((tmp_path / "f" / "config.json").read_text())["layer"] == 0


def test_bench_gives_each_head_the_layers_it_reads(tiny, cli, tmp_path):
    # one extraction for both heads: linear_probe reads the last layer, weighted_sum all three
    res = cli("bench", "-u", "tiny_layers", "-c", "demo", "-d", "linear_probe,weighted_sum",
              "--out", tmp_path / "bench", "--device", "cpu", *FAST)
    assert res.code == 0, res
    runs = tmp_path / "bench" / "runs"
    configs = {p.name: json.loads((p / "config.json").read_text()) for p in runs.iterdir()}
    assert {k: (c["layer"], c["layers"]) for k, c in configs.items()} == {
        "tiny_layers__demo__linear_probe": (2, [2]),
        "tiny_layers__demo__weighted_sum": ("all", [0, 1, 2])}
    ws = read_jsonl(runs / "tiny_layers__demo__weighted_sum" / "results.jsonl")
    assert all(len(r["layer_weights"]) == 3 for r in ws)
