"""`emobox run -u fbank -c emodb -d linear_probe --root FIXTURE` end to end on EmoBox's 5 folds."""

from __future__ import annotations

from emobox.corpora._emobox import reference_rows
from emobox.corpora.emodb import EmoDB
from emobox.io import read_jsonl


def test_run_emodb_fixture_all_five_folds(tmp_path, cli):
    rows = [r for r in reference_rows("emodb") if r["speaker"] in ("male_03", "female_16")]
    n_test = [sum(r["test_fold"] == str(k) for r in rows) for k in range(1, 6)]
    root = tmp_path / "emodb"
    EmoDB.make_fixture(root, rows, clutter=True)
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "emodb", "-d", "linear_probe", "--root", root,
              "--epochs", "2", "--warmup", "1", "--grid", "lr=1e-3 hidden=32", "-q",
              "--out", out)
    assert res.code == 0, res
    results = read_jsonl(out / "results.jsonl")
    assert [r["fold"] for r in results if r["selected"]] == [1, 2, 3, 4, 5]
    assert [r["n_test"] for r in results] == n_test  # EmoBox's cv_k_fold lists
    for r in results:
        assert r["selection"] == "valid" and r["valid_rule"] == "stratified-20%"
        assert len(r["confusion"]) == 7  # Neutral is a class of its own (not EmoBox's 'neutral')
    preds = (out / "predictions" / "fold1.tsv").read_text().splitlines()
    assert preds[0] == "key\tgold\tpredicted" and len(preds) == 1 + n_test[0]
    assert {line.split("\t")[1] for line in preds[1:]} <= set(EmoDB.labels)
