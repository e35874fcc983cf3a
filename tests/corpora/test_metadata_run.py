"""`emobox run -u fbank -c emodb -d linear_probe --root FIXTURE` end to end on EmoBox's 5 folds."""

from __future__ import annotations

from emobox.corpora._emobox import reference_rows
from emobox.corpora.emodb import EmoDB
from emobox.io import read_jsonl
from corpus_writers import write_fixture


def test_run_emodb_fixture_all_five_folds(tmp_path, cli):
    rows = [r for r in reference_rows("emodb") if r["speaker"] in ("male_03", "female_16")]
    n_test = [sum(r["test_fold"] == str(k) for r in rows) for k in range(1, 6)]
    root = tmp_path / "emodb"
    write_fixture(EmoDB, root, rows, clutter=True)
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


def _meld_with_its_damaged_dev_clip(root, keys=()):
    """A MELD fixture (a few rows of each split, and ``keys``) whose dev sheet also lists
    ``dia110_utt7``, a clip the release ships damaged and EmoBox's table leaves out; its file
    here is empty."""
    from emobox.corpora.meld import MELD
    from emobox.datasets.splits import seeded_order

    rows = reference_rows("meld")
    chosen = [r for r in rows if r["key"] in set(keys)]
    for split, n in (("train", 24), ("dev", 8), ("test", 8)):
        part = {r["key"]: r for r in rows if r["key"].endswith(f"-{split}") and r not in chosen}
        chosen += [part[k] for k in seeded_order(part, 0, split)[:n]]
    damaged = dict(next(r for r in rows if r["key"] == "meld-dia110_utt6-dev"),
                   key="meld-dia110_utt7-dev", path="dev_splits_complete/dia110_utt7.mp4",
                   emotion_raw="neutral", emotion="Neutral")
    write_fixture(MELD, root, chosen + [damaged])
    clip = root / damaged["path"]
    clip.unlink()  # fixture files are hard links of one file: never write through them
    clip.write_bytes(b"")
    return damaged["key"]


def test_meld_runs_past_the_clip_emobox_could_not_load(tmp_path, cli):
    root = tmp_path / "meld"
    key = _meld_with_its_damaged_dev_clip(root)
    check = cli("corpora", "check", "-c", "meld", "--root", root, "-q")
    assert "not in the reference: 1" in check.out and key in check.out, check
    assert "cannot be read" not in check.err  # a file no split uses is not a problem
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "meld", "-d", "linear_probe", "--root", root,
              "--epochs", "1", "--warmup", "0", "--grid", "lr=1e-3 hidden=8", "-q",
              "--out", out)
    assert res.code == 0, res
    row = read_jsonl(out / "results.jsonl")[0]
    assert (row["n_train"], row["n_valid"], row["n_test"]) == (24, 8, 8)
    skipped = (out / "skipped.tsv").read_text().splitlines()
    assert (f"folds\t{key}\tdev_splits_complete/dia110_utt7.mp4\tnot in the corpus's "
            f"published fold table (scheme emobox)") in skipped
    assert "1 utterances of the scan are in no fold of scheme emobox" in res.err
    # emobox extract extracts what the run did, into the same store
    ext = cli("extract", "-u", "fbank", "-c", "meld", "--root", root, "-q")
    assert ext.code == 0 and "features reused from" in ext.out, ext
    assert "1 utterances of the scan are in no split of scheme emobox" in " ".join(ext.err.split())


def test_the_cross_corpus_track_leaves_the_unlisted_meld_clip_out(tmp_path):
    from emobox.tracks.cross import CrossOptions, _track_corpus
    from emobox.datasets.labels import CROSS_CORPUS_CLASSES, canonical_classes
    from emobox.plugin.registry import get_registry

    spec = get_registry().corpus("meld")
    root = tmp_path / "meld"
    key = _meld_with_its_damaged_dev_clip(root, spec.balanced_test_set().excluded_from_training())
    opts = CrossOptions(upstream="fbank", root_map={"meld": str(root)})
    tc = _track_corpus(spec, opts, canonical_classes(CROSS_CORPUS_CLASSES), None)
    assert key in tc.corpus.manifest  # scanned, and then left out:
    assert key not in tc.manifest  # not extracted
    assert key not in tc.train + tc.valid + tc.test
    assert any("1 utterances of the scan are left out" in n for n in tc.notes)
