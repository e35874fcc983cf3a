"""What a researcher sees: shell completion, upstream search by part of a name, and the
learned layer weights a weighted_sum head may record in a result row."""

from __future__ import annotations

import pytest

from emobox.reporting.results import RowError, check_row


def test_shell_completion_options_are_offered(cli):
    res = cli("--help")
    assert res.code == 0
    assert "--install-completion" in res.out and "--show-completion" in res.out


def test_upstreams_list_matches_part_of_a_name_and_globs(cli):
    res = cli("upstreams", "list", "bank")  # part of "fbank"
    assert res.code == 0 and "fbank" in res.out
    res = cli("upstreams", "list", "fb*")
    assert res.code == 0 and "fbank" in res.out
    res = cli("upstreams", "list", "zz_nothing_like_this")
    assert res.code == 0
    assert "no upstream matches 'zz_nothing_like_this'" in res.out
    assert "fbank" not in res.out


def _row(**extra):
    row = {"upstream": "u", "corpus": "c", "downstream": "weighted_sum", "scheme": "s",
           "fold": 1, "config_id": "a", "config": {}, "selected": True, "best_epoch": 1,
           "ua": 0.75, "wa": 0.75, "f1": 0.7333333333333334, "valid_ua": 0.5, "valid_loss": 1.0,
           "confusion": [[2, 0], [1, 1]], "per_class_recall": [1.0, 0.5], "labels": ["a", "b"],
           "seed": 0, "emobox_version": "0"}
    row.update(extra)
    return row


def test_row_checker_accepts_layer_weights_and_refuses_bad_ones():
    assert check_row(_row(layer_weights=[0.25, 0.75]))["layer_weights"] == [0.25, 0.75]
    with pytest.raises(RowError, match="'layer_weights' is .* not a list of numbers from 0 to 1"):
        check_row(_row(layer_weights=[0.5, "x"]))
    with pytest.raises(RowError, match="layer_weights"):
        check_row(_row(layer_weights=[1.5]))


# -- the combined report table ----------------------------------------------------------------

def _table(rows, groups):
    """A Table of hand-made cells: rows = [(label, {corpus: ua_percent_mean})]."""
    from pathlib import Path

    from emobox.reporting.report import Cell, Row, Table, columns_for
    from emobox.reporting.tables import _mark_best
    from emobox.tracks.rundirs import RunDir

    run = RunDir(Path("."), {"select": "valid", "n_folds": 2}, [])
    out = []
    for label, means in rows:
        cells = {c: Cell(label, c, run, {m: (v / 100, 0.01) for m in ("ua", "wa", "f1")}, 2, 2)
                 for c, v in means.items()}
        out.append(Row("linear_probe", "emobox", label, label, cells))
    table = Table(out, groups, columns_for(groups))
    _mark_best(table)
    return table


def test_language_groups_get_their_average_and_the_table_its_overall_average():
    from emobox.reporting.report import to_markdown, to_tsv

    groups = [("English", ["a", "b"]), ("German", ["c"])]
    table = _table([("u1", {"a": 60.0, "b": 71.0, "c": 20.0}), ("u2", {"a": 50.0, "c": 30.0})],
                   groups)
    assert [c.label for c in table.columns] == ["a", "b", "English avg", "c", "Avg"]
    tsv = [line.split("\t") for line in to_tsv(table, "ua").splitlines()]
    assert tsv[0][2:] == ["a (English)", "b (English)", "English avg", "c (German)", "Avg"]
    # (60 + 71) / 2 = 65.5; (60 + 71 + 20) / 3 = 50.33; u2 lacks b: no average over it
    assert tsv[1][2:] == ["60.00 ± 1.00", "71.00 ± 1.00", "65.50", "20.00 ± 1.00", "50.33"]
    assert tsv[2][2:] == ["50.00 ± 1.00", "–", "–", "30.00 ± 1.00", "–"]
    md = to_markdown(table)
    # bold: the best of a column with two or more values; b, its average and Avg have one row
    assert "| linear_probe | u1 | **60.00** ± 1.00 | 71.00 ± 1.00 | 65.50 | 20.00 ± 1.00 | 50.33 |" \
        in md
    assert "|  | u2 | 50.00 ± 1.00 | – | – | **30.00** ± 1.00 | – |" in md


def test_a_one_row_table_has_no_bold():
    from emobox.reporting.report import to_latex, to_markdown

    table = _table([("u1", {"a": 60.0, "c": 20.0})], [("English", ["a"]), ("German", ["c"])])
    assert "**" not in to_markdown(table)
    assert r"\textbf" not in to_latex(table)


def test_corpora_are_grouped_by_the_language_their_plugin_declares():
    from emobox.reporting.tables import _group_order, corpus_language

    assert corpus_language("emodb") == "German" and corpus_language("iemocap") == "English"
    assert corpus_language("esd") == "Mix"  # Mandarin and English
    assert corpus_language("asvpesd") == "Mix"  # declared "mixed"
    order = sorted(["Mix", "Tonal", "German", "Greek", "English", "Mandarin"], key=_group_order)
    # EmoBox's 12 English corpora first, then Mandarin (3), German (2), one-corpus languages
    assert order == ["English", "Mandarin", "German", "Greek", "Tonal", "Mix"]


# -- plots ------------------------------------------------------------------------------------

def test_bar_chart_shows_every_error_bar_values_and_a_legend_outside_the_bars():
    from emobox.reporting.plots import bar_figure

    scores = {"a": {"u1": (90.0, 8.0), "u2": (50.0, 30.0)}, "b": {"u1": (10.0, 20.0)}}
    fig, ax = bar_figure(scores, "UA", marks={("u1", "b"): "†"})
    bottom, top = ax.get_ylim()
    assert bottom <= 10.0 - 20.0 and top >= 90.0 + 8.0  # mean ± std of every bar is visible
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # right of the axes, over no bar
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["10.0†", "50.0", "90.0"]


def test_bar_chart_leaves_values_off_when_bars_are_too_many_to_read():
    from emobox.reporting.plots import bar_figure

    scores = {f"c{i}": {"u1": (40.0, 2.0), "u2": (60.0, 3.0)} for i in range(12)}
    fig, ax = bar_figure(scores, "UA", marks={("u2", "c3"): "§"})
    assert [t.get_text() for t in ax.texts] == ["§"]
    assert ax.get_ylim()[1] >= 63.0


# -- one parameter count per upstream ----------------------------------------------------------

class _CountedPlugin:
    """``fbank_counted``: declares 4,242 parameters; its module holds 10 more elements (a fixed
    table, as Whisper's sinusoidal positions), which the declared count leaves out."""

    import emobox as _emobox

    @_emobox.hookimpl
    def emobox_upstreams(self):
        from emobox import UpstreamSpec

        def build(ckpt=None, device="cpu", **options):
            import torch

            from emobox.upstreams.kaldi import Fbank

            up = Fbank(**options)
            up.table = torch.nn.Parameter(torch.zeros(10), requires_grad=False)
            return up.to(device)

        return [UpstreamSpec(name="fbank_counted", build=build, num_layers=0, hidden_size=80,
                             frame_rate=100.0, parameters=4242)]


def test_one_parameter_count_in_info_config_submission_and_leaderboard(tmp_path, cli):
    import json
    import zipfile

    from bench_support import make_registry, make_tones

    from emobox.extraction.upstream_catalog import parameter_count
    from emobox.plugin.registry import set_registry
    from emobox.tracks.runner import RunOptions, run

    registry = make_registry()
    registry.register(_CountedPlugin(), name="counted-tests")
    set_registry(registry)
    res = cli("upstreams", "info", "fbank_counted")
    assert res.code == 0 and "4,242" in res.out
    out = tmp_path / "run"
    run(RunOptions(upstream="fbank_counted", corpus="tones", downstream="linear_probe",
                   root=str(make_tones(tmp_path / "tones")), out=str(out),
                   grid={"lr": [1e-2], "hidden": [8]}, epochs=1, warmup_epochs=0,
                   features_dir=str(tmp_path / "features")), registry=registry)
    assert json.loads((out / "config.json").read_text())["upstream_parameters"] == 4242
    res = cli("submit", "pack", out, "-o", tmp_path / "s.zip")
    assert res.code == 0, res
    with zipfile.ZipFile(tmp_path / "s.zip") as z:
        assert json.loads(z.read("metadata.json"))["upstream"]["parameters"] == 4242
    board = tmp_path / "board.json"
    assert cli("leaderboard", "add", tmp_path / "s.zip", "--file", board).code == 0
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0 and ",4242," in res.out
    # a spec that declares nothing: the built module's parameters are counted
    import torch
    from types import SimpleNamespace

    assert parameter_count(SimpleNamespace(parameters=None), torch.nn.Linear(3, 2)) == 8
    assert parameter_count(SimpleNamespace(parameters=None)) is None


# -- bench --dry-run counts Whisper's 30-s padding ---------------------------------------------

def test_dry_run_counts_whisper_padding_to_30_seconds(tmp_path):
    import pytest
    from bench_support import grid_options, make_registry, make_tones

    from emobox.plugin.registry import set_registry
    from emobox.tracks.bench import plan_bench

    roots = {"tones": make_tones(tmp_path / "tones")}  # 36 clips of 0.3 s
    set_registry(make_registry())
    # whisper tiny (80 mels, d = 384, FFN 1536, 4 blocks), faithful: every clip is a 30-s window,
    # 3000 mel frames, 1500 positions:
    #   mel bank 2*80*201*3000 = 96,480,000; conv1 2*3000*384*80*3 = 552,960,000;
    #   conv2 2*1500*384*384*3 = 1,327,104,000;
    #   blocks 4*(8*1500*384^2 + 4*1500^2*384 + 4*1500*384*1536) = 35,057,664,000
    per_clip = 96_480_000 + 552_960_000 + 1_327_104_000 + 35_057_664_000
    assert per_clip == 37_034_208_000
    plan = plan_bench(grid_options(tmp_path / "b", roots, upstreams=("whisper_tiny_en",),
                                   corpora=("tones",), dry_run=True))
    (ext,) = plan.extractions
    assert ext.flops_source == "plugin" and ext.flops == pytest.approx(36 * per_clip)
    # trimmed: 0.3 s = 4800 samples, 30 mel frames, 15 positions
    trimmed = (2 * 80 * 201 * 30 + 2 * 30 * 384 * 80 * 3 + 2 * 15 * 384 * 384 * 3
               + 4 * (8 * 15 * 384 ** 2 + 4 * 15 ** 2 * 384 + 4 * 15 * 384 * 1536))
    plan = plan_bench(grid_options(tmp_path / "b", roots, upstreams=("whisper_tiny_en",),
                                   corpora=("tones",), dry_run=True,
                                   upstream_options={"whisper_tiny_en": {"mode": "trimmed"}}))
    assert plan.extractions[0].flops == pytest.approx(36 * trimmed)


# -- epochs are counted from 1 everywhere ------------------------------------------------------

def test_rows_of_earlier_releases_are_read_with_epochs_counted_from_1():
    old = check_row(_row(best_epoch=0, schema_version=1))  # the first epoch, as written before
    assert (old["best_epoch"], old["schema_version"]) == (1, 2)
    assert check_row(_row(best_epoch=0))["best_epoch"] == 1  # no version: an early release
    assert check_row(_row(best_epoch=4, schema_version=2))["best_epoch"] == 4
    failed = _row(best_epoch=-1, schema_version=1, selected=False, failed="diverged", ua=None,
                  wa=None, f1=None, valid_ua=None, valid_loss=None)
    assert check_row(failed)["best_epoch"] == -1


def test_summary_and_results_rows_count_epochs_from_1(tmp_path):
    import json
    import re

    from bench_support import make_registry, make_tones

    from emobox.io import read_jsonl
    from emobox.plugin.registry import set_registry
    from emobox.tracks.runner import RunOptions, run

    registry = make_registry()
    set_registry(registry)
    out = tmp_path / "run"
    run(RunOptions(upstream="fbank", corpus="tones", downstream="linear_probe",
                   root=str(make_tones(tmp_path / "tones")), out=str(out), folds=(1,),
                   grid={"lr": [1e-2], "hidden": [8]}, epochs=3, warmup_epochs=0,
                   features_dir=str(tmp_path / "features")), registry=registry)
    (row,) = read_jsonl(out / "results.jsonl")
    assert json.loads((out / "results.jsonl").read_text())["schema_version"] == 2
    assert 1 <= row["best_epoch"] <= 3
    summary = (out / "summary.md").read_text()
    fold1 = next(ln for ln in summary.splitlines() if ln.startswith("| 1 |"))
    assert re.split(r"\s*\|\s*", fold1)[6] == str(row["best_epoch"])


# -- a grid that leaves a hyper-parameter out records the value used ----------------------------

def test_a_grid_without_a_hyper_parameter_records_the_value_used(tmp_path):
    import json

    from bench_support import make_registry, make_tones

    from emobox.io import read_jsonl
    from emobox.plugin.registry import set_registry
    from emobox.tracks.runner import RunOptions, run

    registry = make_registry()
    set_registry(registry)
    out = tmp_path / "run"
    # linear_probe's build takes hidden=256; the trainer's learning rate defaults to 1e-3
    run(RunOptions(upstream="fbank", corpus="tones", downstream="linear_probe",
                   root=str(make_tones(tmp_path / "tones")), out=str(out), folds=(1,),
                   grid={"weight_decay": [0.0, 0.01]}, epochs=1, warmup_epochs=0,
                   features_dir=str(tmp_path / "features")), registry=registry)
    rows = read_jsonl(out / "results.jsonl")
    assert sorted(r["config_id"] for r in rows) == ["weight_decay=0.0", "weight_decay=0.01"]
    assert sorted((r["config"]["weight_decay"], r["config"]["lr"], r["config"]["hidden"])
                  for r in rows) == [(0.0, 1e-3, 256), (0.01, 1e-3, 256)]
    config = json.loads((out / "config.json").read_text())
    assert config["grid_defaults"] == {"lr": 1e-3, "hidden": 256}
    assert "(not in the grid: hidden=256,lr=0.001)" in (out / "summary.md").read_text()
