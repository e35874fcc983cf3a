"""`emobox report`, `emobox submit pack|validate|score` and `emobox leaderboard` on the grid."""

from __future__ import annotations

import csv
import io
import json
import statistics
import zipfile

import pytest

from bench_support import local_grid
from emobox.io import read_jsonl
from emobox.plugin.registry import set_registry


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return local_grid(tmp_path_factory)


@pytest.fixture(autouse=True)
def _registry(grid):
    set_registry(grid["registry"])  # the tones corpus and fbank_seen are in-process plugins


def _expected(run_dir, metric):
    sel = [r[metric] for r in read_jsonl(run_dir / "results.jsonl") if r["selected"]]
    return 100 * statistics.fmean(sel), 100 * statistics.pstdev(sel)


# -- report -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seen_run(grid):
    """fbank_seen (trained on tones: contaminated) x tones, fold 1 only, selected by TEST."""
    from emobox.tracks.runner import RunOptions, run

    set_registry(grid["registry"])
    out = grid["base"] / "seen"
    run(RunOptions(upstream="fbank_seen", corpus="tones", downstream="linear_probe",
                   root=str(grid["roots"]["tones"]), out=str(out), folds=(1,), select="test",
                   grid={"lr": [1e-2], "hidden": [16]}, epochs=2, warmup_epochs=1,
                   features_dir=str(grid["base"] / "features")))
    return out


def test_report_tables_match_results(grid, tmp_path, cli):
    res = cli("report", grid["dir"], "--out", tmp_path / "rep")
    assert res.code == 0, res
    rep = tmp_path / "rep"
    rows = list(csv.DictReader(io.StringIO((rep / "table.csv").read_text())))
    assert [r["upstream"] for r in rows] == ["fbank", "mfcc"]
    for r in rows:
        for corpus in ("demo", "emodb", "tones"):
            run_dir = grid["dir"] / "runs" / f"{r['upstream']}__{corpus}__linear_probe"
            for metric, name in (("ua", "UA"), ("wa", "WA"), ("f1", "F1")):
                mean, std = _expected(run_dir, metric)
                assert r[f"{corpus} {name}"] == f"{mean:.2f}", (corpus, metric)
                assert r[f"{corpus} {name} std"] == f"{std:.2f}"
    md = (rep / "table.md").read_text()
    tex = (rep / "table.tex").read_text()
    # one table per metric: the head as row group, columns grouped by language, then Avg
    assert md.count("| head | upstream | demo (English) | emodb (German) | tones (Tonal) | Avg |"
                    ) == 3
    assert r"\multicolumn{1}{c}{English} & \multicolumn{1}{c}{German}" in tex
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 3
    assert r"\label{tab:emobox-ua}" in tex and r"\caption{UA (\%) per corpus" in tex
    ua = {u: {c: _expected(grid["dir"] / "runs" / f"{u}__{c}__linear_probe", "ua")
              for c in ("demo", "emodb", "tones")} for u in ("fbank", "mfcc")}
    for corpus in ("demo", "tones"):
        best = max(ua, key=lambda u: round(ua[u][corpus][0], 2))
        mean, std = ua[best][corpus]
        assert f"**{mean:.2f}** ± {std:.2f}" in md
        assert rf"\textbf{{{mean:.2f}}}$\pm${std:.2f}" in tex
    # Avg: the unweighted mean of the three corpus means, on each row, in every format
    tsv = [line.split("\t") for line in (rep / "table_ua.tsv").read_text().splitlines()]
    assert tsv[0] == ["head", "upstream", "demo (English)", "emodb (German)", "tones (Tonal)",
                      "Avg"]
    for line in tsv[1:]:
        u = line[1]
        avg = statistics.fmean(ua[u][c][0] for c in ("demo", "emodb", "tones"))
        assert line[0] == "linear_probe" and line[-1] == f"{avg:.2f}"
        assert line[2] == "{:.2f} ± {:.2f}".format(*ua[u]["demo"])
        assert f"| {u} |" in md and f"{avg:.2f}" in md
    cells = list(csv.DictReader(io.StringIO((rep / "cells.csv").read_text())))
    assert len(cells) == 6 and {c["language"] for c in cells} == {"English", "German", "Tonal"}
    assert "published intra-corpus numbers (its Table 4) are not shipped with emobox" in md
    for name in ("ua", "wa", "f1"):
        png = rep / "plots" / f"{name}_by_corpus_linear_probe_emobox.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_marks_test_selection_contamination_and_partial_folds(grid, seen_run, tmp_path):
    from emobox.reporting.report import write_report

    report = write_report([grid["dir"], seen_run], tmp_path / "rep", plots=False)
    md = report.files["table.md"].read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("|  | fbank_seen |"))
    assert "†§*(1/3)" in line  # selected by test, contaminated, 1 of 3 folds
    assert "selected by TEST" in md and "contaminated: the upstream was trained" in md
    tex = report.files["table.tex"].read_text()
    assert r"$^\dagger$$^\S$$^*$" in tex
    # the legend says what each mark means, under every table that uses them
    assert tex.count(r"{\footnotesize $^\dagger$ selected by test (optimistic); $^\S$ "
                     r"contaminated") == 3
    tsv = report.files["table_ua.tsv"].read_text()
    assert "\tfbank_seen\t–\t–\t" in tsv and "†§*(1/3)" in tsv
    cell = next(c for c in csv.DictReader(io.StringIO(report.files["cells.csv"].read_text()))
                if c["upstream"] == "fbank_seen")
    assert (cell["selected_by_test"], cell["contaminated"], cell["folds"]) == ("1", "1", "1")


def test_report_puts_published_numbers_beside_where_shipped(grid, tmp_path, monkeypatch):
    import emobox.reporting.paper as paper
    from emobox.reporting.report import write_report

    tables = json.loads(json.dumps(paper.paper_tables()))
    tables["table4"]["results"] = {"fbank": {"demo": {"UA": 61.5, "WA": 62.25, "F1": 60.0}}}
    monkeypatch.setattr(paper, "paper_tables", lambda: tables)
    md = write_report([grid["dir"]], tmp_path / "rep", plots=False).files["table.md"].read_text()
    assert "| | fbank (paper) | _61.50_ |  |  |  |" in md
    assert "| | fbank (paper) | _62.25_ |  |  |  |" in md
    assert "are not shipped with emobox" not in md


def test_cross_corpus_heatmap_draws_a_train_by_test_matrix(tmp_path):
    from emobox.reporting.paper import cross_corpus_average, cross_corpus_matrix
    from emobox.reporting.plots import cross_corpus_heatmap

    matrix = cross_corpus_matrix("whisper_large_v3")
    assert matrix[0][0] is None and len(matrix) == 4
    # EmoBox Eq. 1 over the 12 published pairs (Figure 1's value)
    assert cross_corpus_average(matrix) == pytest.approx(46.8483, abs=1e-4)
    png = cross_corpus_heatmap(matrix, list("IMRS"), list("IMRS"), tmp_path / "h.png", "w")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_report_errors(tmp_path, cli):
    res = cli("report", tmp_path)
    assert res.code == 2 and "holds no emobox run directory" in res.err


# -- submissions --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def submission(grid):
    from emobox.reporting.submission import pack

    set_registry(grid["registry"])
    runs = [grid["dir"] / "runs" / f"fbank__{c}__linear_probe" for c in ("demo", "tones")]
    return pack(runs, grid["base"] / "fbank.zip").path


def _rewrite(src, dst, change=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            text = zin.read(name).decode()
            if change and name in change:
                text = change[name](text)
            zout.writestr(name, text)
        for name, fn in (change or {}).items():
            if name not in zin.namelist():
                zout.writestr(name, fn(""))
    return dst


def test_pack_writes_predictions_and_metadata(grid, submission):
    with zipfile.ZipFile(submission) as zf:
        names = sorted(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
        fold1 = zf.read("predictions/tones/fold1.tsv").decode().splitlines()
    assert names == ["metadata.json"] + [f"predictions/demo/fold{k}.tsv" for k in (1, 2, 3)] + [
        f"predictions/tones/fold{k}.tsv" for k in (1, 2, 3)]
    assert meta["upstream"]["name"] == "fbank"
    assert meta["upstream"]["checkpoint_id"].startswith("kaldi-fbank-80")
    assert meta["upstream"]["parameters"] is None  # fbank has no weights
    assert meta["corpora"]["tones"]["grid"] == {"lr": [0.01, 0.001], "hidden": [16]}
    assert meta["corpora"]["tones"]["downstream"] == "linear_probe"
    assert meta["emobox_version"]
    pred = (grid["dir"] / "runs" / "fbank__tones__linear_probe" / "predictions" / "fold1.tsv")
    expected = [f"{k}\t{p}" for k, _, p in (ln.split("\t") for ln in
                                            pred.read_text().splitlines()[1:])]
    assert fold1 == ["key\tpredicted"] + expected and len(expected) == 9


def test_validate_and_score_a_good_submission(grid, submission, cli):
    res = cli("submit", "validate", submission)
    assert res.code == 0, res
    assert "valid (2 corpora, 6 folds)" in res.out
    from emobox.reporting.submission import score

    card = score(submission)
    assert card["corpora"]["tones"]["gold"] == "published fold table"
    assert card["corpora"]["demo"]["gold"].startswith("scan of ")
    for corpus in ("demo", "tones"):
        rows = read_jsonl(grid["dir"] / "runs" / f"fbank__{corpus}__linear_probe" /
                          "results.jsonl")
        sel = {r["fold"]: r for r in rows if r["selected"]}
        for f in card["corpora"][corpus]["folds"]:
            for m in ("ua", "wa", "f1"):
                assert f[m] == pytest.approx(sel[f["fold"]][m])
            assert f["confusion"] == sel[f["fold"]]["confusion"]


@pytest.mark.parametrize("case, expected", [
    ("missing key", "predictions/tones/fold1.tsv: missing 1 of 9 test keys of fold 1, e.g. "
                    "'tones-s1_high_0'"),
    ("duplicate key", "predictions/tones/fold1.tsv: line 3: duplicate key 'tones-s1_high_0' "
                      "(first on line 2)"),
    ("unknown label", "predictions/tones/fold1.tsv: line 2: unknown label 'Happpy' for "
                      "'tones-s1_high_0' (classes of tones: high, low, mid)"),
    ("train key", "predictions/tones/fold1.tsv: line 11: 'tones-s4_low_0' is a training key "
                  "of fold 1, not a test key"),
    ("key of another fold", "predictions/tones/fold1.tsv: line 11: 'tones-s2_low_0' is a test "
                            "key of fold 2, not of fold 1 (wrong fold)"),
    ("fold out of range", "predictions/tones/fold4.tsv: wrong fold: tones has folds 1..3 in "
                          "scheme emobox"),
    ("missing fold", "predictions/tones/fold3.tsv: missing (tones has folds 1..3; every fold's "
                     "test predictions are needed)"),
    ("missing metadata", "metadata.json is missing"),
    ("missing metadata field", "metadata.json: field 'upstream.checkpoint_id' is missing"),
    ("unknown key", "predictions/demo/fold2.tsv: line 2: unknown key 'nope' (not in demo)"),
])
def test_validate_rejects_malformed_submissions(submission, tmp_path, cli, case, expected):
    f1 = "predictions/tones/fold1.tsv"

    def lines_edit(fn):
        return lambda text: "\n".join(fn(text.splitlines())) + "\n"

    def meta_edit(text):
        meta = json.loads(text)
        del meta["upstream"]["checkpoint_id"]
        return json.dumps(meta)

    edits = {
        "missing key": ({f1: lines_edit(lambda ls: [ls[0]] + ls[2:])}, ()),
        "duplicate key": ({f1: lines_edit(lambda ls: ls[:2] + [ls[1]] + ls[2:])}, ()),
        "unknown label": ({f1: lines_edit(lambda ls: [ls[0], ls[1].split("\t")[0] + "\tHapppy"]
                                          + ls[2:])}, ()),
        "train key": ({f1: lines_edit(lambda ls: ls + ["tones-s4_low_0\tlow"])}, ()),
        "key of another fold": ({f1: lines_edit(lambda ls: ls + ["tones-s2_low_0\tlow"])}, ()),
        "fold out of range": ({"predictions/tones/fold4.tsv": lambda _: "key\tpredicted\n"},
                              ()),
        "missing fold": (None, ("predictions/tones/fold3.tsv",)),
        "missing metadata": (None, ("metadata.json",)),
        "missing metadata field": ({"metadata.json": meta_edit}, ()),
        "unknown key": ({"predictions/demo/fold2.tsv": lines_edit(
            lambda ls: [ls[0], "nope\tHappy"] + ls[1:])}, ()),
    }
    change, drop = edits[case]
    bad = _rewrite(submission, tmp_path / "bad.zip", change, drop)
    res = cli("submit", "validate", bad)
    assert res.code == 5, res
    assert expected in res.err.replace("\n", " ") or expected in " ".join(res.err.split()), res.err
    assert "Traceback" not in res.err


def test_score_refuses_an_invalid_submission(submission, tmp_path, cli):
    bad = _rewrite(submission, tmp_path / "bad.zip", drop=("predictions/demo/fold1.tsv",))
    res = cli("submit", "score", bad)
    assert res.code == 3 and "not a valid submission" in res.err
    res = cli("submit", "validate", tmp_path / "nothing.zip")
    assert res.code == 2 and "does not exist" in res.err


def test_emodb_fixture_run_is_checked_against_the_published_table(grid, tmp_path):
    from emobox.reporting.submission import pack, validate

    packed = pack([grid["dir"] / "runs" / "mfcc__emodb__linear_probe"], tmp_path / "e.zip")
    result = validate(packed.path)
    assert result.gold["emodb"].source == "published fold table"
    missing = [p for p in result.problems if "test keys of fold 1" in p]
    n_fixture = sum(1 for ln in (grid["dir"] / "runs" / "mfcc__emodb__linear_probe" /
                                 "predictions" / "fold1.tsv").read_text().splitlines()[1:])
    assert missing == [f"predictions/emodb/fold1.tsv: missing {107 - n_fixture} of 107 test keys "
                       f"of fold 1, e.g. {missing[0].split('e.g. ')[1]}"]
    # the run's fixture holds a part of EmoDB: pack says what validate then refuses
    assert any(f"missing {107 - n_fixture} of 107 test keys of fold 1" in note
               for note in packed.notes)


def test_pack_refuses_two_upstreams(grid, tmp_path, cli):
    res = cli("submit", "pack", grid["dir"], "-o", tmp_path / "x.zip")
    assert res.code == 2 and "a submission holds one upstream checkpoint" in res.err
    res = cli("submit", "pack", grid["dir"], "-u", "mfcc", "-o", tmp_path / "x.zip")
    assert res.code == 0 and "mfcc on demo (3 folds), emodb (5 folds), tones (3 folds)" in res.out


def test_leaderboard_add_and_show(submission, tmp_path, cli):
    board = tmp_path / "board.json"
    res = cli("leaderboard", "add", submission, "--file", board)
    assert res.code == 0 and "added fbank (2 corpora)" in res.out
    res = cli("leaderboard", "add", submission, "--file", board, "--name", "fbank-again")
    assert res.code == 0 and "replaced fbank-again" in res.out
    entries = json.loads(board.read_text())["entries"]
    assert len(entries) == 1
    demo, tones = (entries[0]["corpora"][c]["ua"] for c in ("demo", "tones"))
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0
    row = next(csv.DictReader(io.StringIO(res.out)))
    assert row["submission"] == "fbank-again"
    assert row["mean_ua"] == f"{100 * (demo + tones) / 2:.2f}"
    assert row["demo UA"] == f"{100 * demo:.2f}"
    res = cli("leaderboard", "show", "--file", board)
    assert "| 1 | fbank-again |" in res.out
