"""`emobox run -u fbank -c ravdess -d linear_probe --root FIXTURE` runs EmoBox's 6 folds."""

from __future__ import annotations

from collections import Counter

from emobox.corpora._emobox import reference_rows
from emobox.corpora.ravdess import Ravdess
from emobox.io import read_jsonl
from corpus_writers import write_fixture


def test_run_ravdess_fixture_all_six_folds(tmp_path, cli):
    rows = reference_rows("ravdess")
    root = tmp_path / "RAVDESS"
    write_fixture(Ravdess, root, rows, clutter=True)
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "ravdess", "-d", "linear_probe", "--root", root,
              "--epochs", "2", "--warmup", "1", "-q", "--out", out)
    assert res.code == 0, res
    results = read_jsonl(out / "results.jsonl")
    selected = [r for r in results if r["selected"]]
    assert [r["fold"] for r in selected] == [1, 2, 3, 4, 5, 6]
    assert Counter(r["fold"] for r in results) == {k: 4 for k in range(1, 7)}  # 2 lr x 2 hidden
    for r in selected:
        assert (r["n_test"], r["n_train"] + r["n_valid"]) == (240, 1200)
        assert r["scheme"] == "emobox" and r["valid_rule"] == "stratified-20%"
        assert r["labels"] == list(Ravdess.labels)
    test_fold = {r["key"]: int(r["test_fold"]) for r in rows}
    for k in range(1, 7):  # each fold's predictions are EmoBox's test set of that fold
        lines = (out / "predictions" / f"fold{k}.tsv").read_text().splitlines()[1:]
        assert sorted(line.split("\t")[0] for line in lines) == sorted(
            key for key, f in test_fold.items() if f == k)
    assert "| **mean** |" in (out / "summary.md").read_text()
