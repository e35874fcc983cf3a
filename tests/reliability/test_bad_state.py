"""Catalogue, state on disk: a damaged feature store, a results file cut by a crash or edited,
a damaged run directory, and places emobox cannot write. Damage that a crash can cause is
repaired on the next run with nothing lost or duplicated; damage a crash cannot cause (emobox
writes whole files atomically) stops with one line naming the file and what to do."""

from __future__ import annotations

import os

import pytest

from emobox.io import read_jsonl

from reliability_support import RUN, assert_user_error, run_args, store_of

TWO_FOLDS = ("--fold", "2")  # with RUN's --fold 1: folds 1 and 2


@pytest.fixture
def finished(cli, tree, tmp_path):
    """A finished two-fold run: (its command, its directory, its results.jsonl text)."""
    out = tmp_path / "run"
    args = run_args(tree, out, *TWO_FOLDS)
    res = cli(*args)
    assert res.code == 0, res
    return args, out, (out / "results.jsonl").read_text()


# -- feature store ----------------------------------------------------------------------------

def test_corrupt_store_metadata_is_named(cli, finished, tmp_path):
    args, out, _ = finished
    meta = store_of(out).path / "meta.json"
    meta.write_text('{"format": "emobox.features", "comple')
    res = cli(*args[:-2], "--out", tmp_path / "again")
    assert_user_error(res, 3, str(meta), "corrupt meta.json")


def test_truncated_store_file_is_named_with_what_to_do(cli, finished, tmp_path):
    args, out, _ = finished
    layer = store_of(out).path / "layer_0.f16"
    size = layer.stat().st_size
    os.truncate(layer, size // 3)
    res = cli(*args[:-2], "--out", tmp_path / "again")
    assert_user_error(res, 3, str(layer), "truncated or corrupt", "emobox features rm")


# -- results file -----------------------------------------------------------------------------

def test_results_cut_mid_line_are_repaired_and_the_fold_redone(cli, finished):
    """A crash in the middle of appending fold 2's row: the rerun drops the fragment (saying
    so), redoes fold 2, and ends with exactly the rows of an uninterrupted run."""
    args, out, text = finished
    lines = text.splitlines(keepends=True)
    assert len(lines) == 2
    (out / "results.jsonl").write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    res = cli(*args)
    assert res.code == 0, res
    assert f"{out / 'results.jsonl'}: last line is incomplete" in res.err
    assert (out / "results.jsonl").read_text() == text


def test_a_finished_folds_lost_predictions_make_it_run_again(cli, finished):
    args, out, text = finished
    (out / "predictions" / "fold1.tsv").unlink()
    res = cli(*args)
    assert res.code == 0, res
    assert (out / "predictions" / "fold1.tsv").exists()
    rows = read_jsonl(out / "results.jsonl")
    assert sorted(r["fold"] for r in rows) == [1, 2]  # redone once, not duplicated
    assert sorted(text.splitlines()) == sorted((out / "results.jsonl").read_text().splitlines())


def test_a_damaged_line_inside_results_is_named(cli, finished):
    args, out, text = finished
    lines = text.splitlines(keepends=True)
    (out / "results.jsonl").write_text("{not json}\n" + lines[1])
    res = cli(*args)
    assert_user_error(res, 3, f"{out / 'results.jsonl'}:1: not a JSON object",
                      "the file is corrupt")
    assert (out / "results.jsonl").read_text() == "{not json}\n" + lines[1]  # left as it was


def test_report_of_a_run_whose_results_were_cut(cli, finished, tmp_path):
    args, out, text = finished
    lines = text.splitlines(keepends=True)
    (out / "results.jsonl").write_text(lines[0] + lines[1][:40])
    res = cli("report", out, "--out", tmp_path / "report")
    assert res.code == 0, res
    assert "last line is incomplete" in res.err
    assert "*(1/4)" in (tmp_path / "report" / "table.md").read_text()  # 1 of 4 folds is kept


# -- run directory and places to write ------------------------------------------------------

def test_damaged_run_config_is_named(cli, finished):
    args, out, _ = finished
    (out / "config.json").write_text('{"kind": "emobox.run", ')
    res = cli(*args)
    assert_user_error(res, 3, str(out / "config.json"), "not valid JSON", "choose another --out")


def test_out_holding_a_run_with_other_options_says_which(cli, finished):
    args, out, _ = finished
    res = cli(*args, "--seed", "7")
    assert_user_error(res, 2, f"{out} holds a run made with other options",
                      "seed: 0 there, 7 now")


def test_out_that_is_a_file(cli, tree, tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("notes\n")
    res = cli(*run_args(tree, out))
    assert_user_error(res, 2, f"run directory {out} is a file")


def test_emobox_home_inside_a_file(cli, tree, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("EMOBOX_HOME", str(blocker / "home"))
    res = cli(*RUN, "--root", tree)
    assert_user_error(res, 6, str(blocker / "home"), "Not a directory",
                      "a file stands where emobox needs a folder")
