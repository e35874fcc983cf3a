"""`emobox corpora import-emobox`: EmoBox's data/ folder as manifests, folds and a runnable corpus."""

from __future__ import annotations

import csv
import json

import pytest

from emobox import DataError, EmoboxUsageError
from emobox.corpora._emobox import reference_rows
from emobox.corpora.imported import ImportedCorpus
from emobox.corpora.ravdess import Ravdess
from emobox.datasets.emobox_import import import_emobox
from emobox.io import read_jsonl
from emobox.testing import populate_tree
from corpus_writers import write_fixture


def write_emobox_data(emobox_root, name, rows, label_map, folds, official_valid=False,
                      stm=True, full=True):
    """EmoBox's data/<name>/ for ``rows`` as its scripts write it (jsonl lists per fold)."""
    data = emobox_root / "data" / name

    def record(r):
        rec = {"key": r["key"], "dataset": name, "wav": f"downloads/{name}/{r['path']}",
               "type": "raw", "sample_rate": 16000, "num_frame": 1600.0, "task": "category",
               "length": 0.1, "emo": r["emotion_raw"], "channel": int(r.get("channel") or 1)}
        return json.dumps(rec)

    def write(path, rs):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(record(r) + "\n" for r in rs))

    if full:
        write(data / f"{name}.jsonl", rows)
    for k in folds:
        test = [r for r in rows if r["test_fold"] == str(k)]
        valid = [r for r in rows if official_valid and r["valid"] == "1"]
        train = [r for r in rows if r not in test and r not in valid and r["test_fold"] != "-1"]
        write(data / f"fold_{k}" / f"{name}_train_fold_{k}.jsonl", train)
        write(data / f"fold_{k}" / f"{name}_test_fold_{k}.jsonl", test)
        if valid:
            write(data / f"fold_{k}" / f"{name}_valid_fold_{k}.jsonl", valid)
    (data / "label_map.json").write_text(json.dumps(label_map))
    if stm:
        (data / "data.seg.wrd.stm").write_text("".join(
            f"{r['key']} 1 {r['speaker'].replace(' ', '_')} 0 0.1 <id={r['key']},lang=en,"
            f"spk={r['speaker']},emotion={r['emotion_raw']}> {r['emotion_raw']}\n" for r in rows))
    return data


def read_tsv(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def emobox_checkout(tmp_path_factory):
    """An EmoBox checkout with RAVDESS prepared: data/ravdess/ and downloads/ravdess/."""
    root = tmp_path_factory.mktemp("EmoBox")
    rows = reference_rows("ravdess")
    write_emobox_data(root, "ravdess", rows, Ravdess.label_map, range(1, 7))
    write_fixture(Ravdess, root / "downloads" / "ravdess", rows)
    return root


def test_import_gives_emobox_folds_key_by_key(emobox_checkout, tmp_path, cli):
    out = tmp_path / "imports"
    res = cli("corpora", "import-emobox", emobox_checkout / "data", "-o", out, "-q")
    assert res.code == 0, res
    assert f"emobox run -u fbank -c imported --root {out / 'ravdess'}" in res.out
    rows = {r["key"]: r for r in read_tsv(out / "ravdess" / "manifest.tsv")}
    ref = {r["key"]: r for r in reference_rows("ravdess")}
    assert {k: (r["path"], r["speaker"], r["emotion"], r["emotion_raw"], r["test_fold"])
            for k, r in rows.items()} == {
        k: (r["path"], r["speaker"], r["emotion"], r["emotion_raw"], r["test_fold"])
        for k, r in ref.items()}
    info = json.loads((out / "ravdess" / "corpus.json").read_text())
    assert info["audio_root"] == str(emobox_checkout / "downloads" / "ravdess")
    assert (info["folds"], info["speakers"], info["official_valid"]) == (6, 24, False)

    imported = ImportedCorpus(out / "ravdess")
    native = Ravdess(emobox_checkout / "downloads" / "ravdess")
    assert imported.name == "ravdess"
    assert imported.manifest.content_hash() == native.manifest.content_hash()  # same features
    for scheme in ("emobox", "speaker-independent"):  # and the same channels in each scheme
        assert imported.manifest_for(scheme).content_hash() == \
            native.manifest_for(scheme).content_hash()
    assert {u.channel for u in imported.manifest_for("emobox")} == {1}  # EmoBox's channel 1
    assert {u.channel for u in imported.manifest_for("speaker-independent")} == {None}  # mix
    for a, b in zip(imported.folds(), native.folds()):
        assert set(a.test) == set(b.test)
        assert set(a.train) | set(a.valid) == set(b.train) | set(b.valid)
        assert a.valid_rule == "stratified-20%" and 0.19 < len(a.valid) / 1200 < 0.21
    si = imported.folds("speaker-independent")
    assert len(si) == 6


def test_imported_corpus_runs(tmp_path, cli):
    rows = [r for r in reference_rows("savee") if r["speaker"] in ("JE", "KL")]
    emobox = tmp_path / "EmoBox"
    write_emobox_data(emobox, "savee", rows, {"a": "Angry", "d": "Disgust", "f": "Fear",
                                              "h": "Happy", "n": "Neutral", "sa": "Sad",
                                              "su": "Surprise"}, (1, 2))
    populate_tree(emobox / "downloads" / "savee", [r["path"] for r in rows])
    out = tmp_path / "imports"
    assert cli("corpora", "import-emobox", emobox / "data" / "savee", "-o", out, "-q").code == 0
    res = cli("run", "-u", "fbank", "-c", "imported", "--root", out / "savee", "-d",
              "linear_probe", "--epochs", "1", "--warmup", "1", "--grid", "lr=1e-3 hidden=16",
              "-q", "--out", tmp_path / "run")
    assert res.code == 0, res
    results = read_jsonl(tmp_path / "run" / "results.jsonl")
    assert [r["fold"] for r in results] == [1, 2]
    assert [r["n_test"] for r in results] == [120, 120]  # JE, then KL: EmoBox's LOSO lists
    assert all(r["corpus"] == "imported" for r in results)


def test_official_valid_unmapped_labels_and_unassigned_rows(tmp_path):
    rows = [
        {"key": "x-1", "path": "a/1.wav", "speaker": "A", "emotion_raw": "joy", "test_fold": "0",
         "valid": "0"},
        {"key": "x-2", "path": "a/2.wav", "speaker": "A", "emotion_raw": "anger",
         "test_fold": "0", "valid": "0"},
        {"key": "x-3", "path": "b/3.wav", "speaker": "B", "emotion_raw": "joy", "test_fold": "0",
         "valid": "1"},
        {"key": "x-4", "path": "c/4.wav", "speaker": "C", "emotion_raw": "meh", "test_fold": "1",
         "valid": "0"},
        {"key": "x-5", "path": "d/5.wav", "speaker": "D", "emotion_raw": "anger",
         "test_fold": "-1", "valid": "0"},  # listed in x.jsonl, in no fold list
    ]
    data = write_emobox_data(tmp_path, "x", rows, {"joy": "Happy", "anger": "Angry"}, (1,),
                             official_valid=True)
    populate_tree(tmp_path / "downloads" / "x", [r["path"] for r in rows])
    (res,) = import_emobox(tmp_path / "data", tmp_path / "out")
    assert res.official_valid and res.folds == 1
    assert "label 'meh' (1 utterances) is not in the label map: kept as a class of its own" \
        in res.notes
    assert "1 utterances are in no fold list (test_fold -1)" in res.notes
    got = {r["key"]: (r["emotion"], r["test_fold"], r["valid"], r["fold1"])
           for r in read_tsv(tmp_path / "out" / "x" / "manifest.tsv")}
    assert got == {"x-1": ("Happy", "0", "0", "train"), "x-2": ("Angry", "0", "0", "train"),
                   "x-3": ("Happy", "0", "1", "valid"), "x-4": ("meh", "1", "0", "test"),
                   "x-5": ("Angry", "-1", "0", "-")}
    (fold,) = ImportedCorpus(tmp_path / "out" / "x").folds()
    assert (fold.train, fold.valid, fold.test, fold.valid_rule) == (
        ("x-1", "x-2"), ("x-3",), ("x-4",), "official")
    assert data.is_dir()


def test_fold_lists_named_the_older_way_and_missing_full_list(tmp_path):
    rows = [{"key": f"y-{i}", "path": f"{i}.wav", "speaker": "S", "emotion_raw": "a",
             "test_fold": str(1 + i % 2), "valid": "0"} for i in range(6)]
    data = write_emobox_data(tmp_path, "y", rows, {"a": "Angry"}, (1, 2), stm=False, full=False)
    for k in (1, 2):  # EmoDB's copies: y_test_fold1.jsonl instead of y_test_fold_1.jsonl
        for split in ("train", "test"):
            (data / f"fold_{k}" / f"y_{split}_fold_{k}.jsonl").rename(
                data / f"fold_{k}" / f"y_{split}_fold{k}.jsonl")
    (res,) = import_emobox(data, tmp_path / "out", audio_root=tmp_path)
    assert res.utterances == 6 and res.folds == 2 and res.speakers == 0
    assert any("y.jsonl is missing" in n for n in res.notes)
    assert any("no speakers" in n for n in res.notes)


def test_import_errors_name_the_file(tmp_path):
    (tmp_path / "notdata" / "x").mkdir(parents=True)
    with pytest.raises(EmoboxUsageError, match="holds no EmoBox corpus folder"):
        import_emobox(tmp_path / "notdata", tmp_path / "out")
    bad = tmp_path / "data" / "z" / "fold_1"
    bad.mkdir(parents=True)
    (bad / "z_test_fold_1.jsonl").write_text('{"key": "z-1", "wav": "a.wav", "emo": "ang"}\n'
                                              'not json\n')
    with pytest.raises(DataError, match=r"z_test_fold_1.jsonl:2: not a JSON line"):
        import_emobox(tmp_path / "data", tmp_path / "out")
    with pytest.raises(EmoboxUsageError, match="has no corpus 'ravdess'; it has z"):
        import_emobox(tmp_path / "data", tmp_path / "out", corpora=["ravdess"])
