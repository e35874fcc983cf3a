"""Catalogue, corpora and manifests: files a corpus lists but lacks, labels it does not know,
keys given twice, and manifests whose paths try to read outside their root. Scanned corpora go
through their adapters (demo layout, EmoDB's lists); user manifests through ``emobox corpora
manifest`` / ``import-emobox`` and the ``imported`` corpus, as a user would give them."""

from __future__ import annotations

import csv
import json
import os

import pytest
import soundfile as sf

from emobox import DataError, Manifest, Utterance
from emobox.io import read_jsonl

from reliability_support import (RUN, SR, assert_user_error, key, rel, run_args, skipped_rows,
                                 store_of, tone)
from corpus_writers import write_fixture

IMPORTED = [a if a != "demo" else "imported" for a in RUN]


@pytest.fixture
def user_manifest(tree, tmp_path, cli):
    """The demo-layout tree described by a manifest file (``emobox corpora manifest``)."""
    tsv = tmp_path / "manifest" / "mini.tsv"
    res = cli("corpora", "manifest", "-c", "demo", "--root", tree, "-o", tsv)
    assert res.code == 0, res
    return tsv


def edit_rows(tsv, utt_key, **changes):
    with open(tsv, encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        fields, rows = reader.fieldnames, list(reader)
    hit = [r for r in rows if r["key"] == utt_key]
    assert hit, utt_key
    hit[0].update(changes)
    with open(tsv, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def run_imported(cli, tsv, out, *extra):
    return cli(*IMPORTED, "--root", tsv, "--out", out, *extra)


# -- files listed but missing -------------------------------------------------------------

def test_file_listed_by_the_corpus_but_missing_is_reported_and_listed(cli, tmp_path):
    """EmoDB's lists name a file that is not on disk: the run goes on without it, says so, and
    the run directory lists it (never a silent drop)."""
    from emobox.corpora._emobox import reference_rows
    from emobox.corpora.emodb import EmoDB

    root = tmp_path / "emodb"
    rows = [r for r in reference_rows("emodb")
            if r["speaker"] in ("male_03", "female_08", "male_10", "female_09")]
    write_fixture(EmoDB, root, rows)
    (root / "wav" / "03a01Fa.wav").unlink()
    out = tmp_path / "run"
    res = cli(*[a if a != "demo" else "emodb" for a in RUN], "--root", root, "--out", out)
    assert res.code == 0, res
    assert skipped_rows(out) == [{
        "stage": "scan", "key": "", "path": "wav/03a01Fa.wav",
        "reason": "listed in lists/emotions/happy.txt but the audio file is missing"}]
    assert "1 files skipped while scanning the corpus" in res.err
    assert "emodb-03a01Fa" not in store_of(out).index()[0]


def test_file_in_a_user_manifest_but_missing_stops_or_is_skipped(cli, user_manifest, tmp_path):
    edit_rows(user_manifest, key("s1", "sad", 1), path="audio/s1/gone.flac")
    res = run_imported(cli, user_manifest, tmp_path / "a")
    missing = user_manifest.parent.parent / "corpus" / "audio" / "s1" / "gone.flac"
    assert_user_error(res, 3, f"{missing}: file not found", key("s1", "sad", 1))
    res = run_imported(cli, user_manifest, tmp_path / "b", "--on-bad-audio", "skip")
    assert res.code == 0, res
    assert skipped_rows(tmp_path / "b") == [{
        "stage": "audio", "key": key("s1", "sad", 1), "path": "audio/s1/gone.flac",
        "reason": f"{missing}: file not found"}]


# -- labels and keys --------------------------------------------------------------------------

def test_unknown_raw_label_names_the_file_and_the_label(cli, tree, tmp_path):
    path = tree / "audio" / "s2" / "s2_bored_00.flac"
    sf.write(path, tone(), SR)
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 3, "unknown emotion label 'bored'", str(path),
                      "known: angry, happy, neutral, sad")


def test_label_outside_a_user_manifests_classes(cli, user_manifest, tmp_path):
    edit_rows(user_manifest, key("s2", "happy", 0), emotion="Bored")
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, "label 'Bored' of 'audio/s2/s2_happy_00.flac' is not one of the "
                      "corpus's classes ['Angry', 'Happy', 'Neutral', 'Sad']")


def test_duplicate_keys_from_two_files_name_both(cli, tree, tmp_path):
    """The same utterance as .flac and as .wav gives one key twice."""
    sf.write(tree / rel("s3", "sad", 1, "wav"), tone(), SR)
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 3, f"duplicate utterance key {key('s3', 'sad', 1)!r}",
                      f"'{rel('s3', 'sad', 1)}'", f"'{rel('s3', 'sad', 1, 'wav')}'")


def test_duplicate_keys_in_a_user_manifest(cli, user_manifest, tmp_path):
    edit_rows(user_manifest, key("s2", "sad", 0), key=key("s2", "sad", 1))
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"duplicate utterance key {key('s2', 'sad', 1)!r}")


# -- manifests that try to leave their root -------------------------------------------------

@pytest.fixture
def secret(tmp_path):
    """Audio outside the corpus root that a manifest must not be able to read."""
    path = tmp_path / "elsewhere" / "secret.flac"
    path.parent.mkdir()
    sf.write(path, tone(), SR)
    return path


def test_manifest_path_climbing_out_with_dotdot_is_refused(cli, user_manifest, secret,
                                                           tmp_path):
    edit_rows(user_manifest, key("s1", "happy", 0), path="../elsewhere/secret.flac")
    res = run_imported(cli, user_manifest, tmp_path / "run", "--on-bad-audio", "skip")
    assert_user_error(res, 3, f"utterance {key('s1', 'happy', 0)!r} has audio path "
                      "'../elsewhere/secret.flac', which climbs out with '..'",
                      "must stay inside it")
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_manifest_absolute_path_is_refused(cli, user_manifest, secret, tmp_path):
    edit_rows(user_manifest, key("s1", "happy", 0), path=str(secret))
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"has audio path {str(secret)!r}, which is absolute")


def test_manifest_path_through_a_symlink_out_is_refused(cli, user_manifest, tree, secret,
                                                        tmp_path):
    link = tree / "audio" / "s1" / "link.flac"
    os.symlink(secret, link)
    edit_rows(user_manifest, key("s1", "happy", 0), path="audio/s1/link.flac")
    res = run_imported(cli, user_manifest, tmp_path / "run", "--on-bad-audio", "skip")
    assert_user_error(res, 3, f"{link}: leads outside the corpus root",
                      f"a symbolic link to {secret}")


def test_emobox_lists_with_paths_out_of_the_root_are_refused_on_import(cli, tmp_path, secret):
    data = tmp_path / "EmoBox" / "data" / "mini"
    (data / "fold_1").mkdir(parents=True)
    recs = [{"key": "mini-a", "wav": "downloads/mini/a.wav", "emo": "ang"},
            {"key": "mini-b", "wav": "downloads/mini/../../../elsewhere/secret.flac",
             "emo": "sad"}]
    (data / "mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (data / "fold_1" / "mini_test_fold_1.jsonl").write_text(json.dumps(recs[0]) + "\n")
    res = cli("corpora", "import-emobox", data.parent, "-o", tmp_path / "imports", "-q")
    assert_user_error(res, 3, "'mini-b' has audio path", "which climbs out with '..'")


def test_scanned_corpus_never_follows_a_link_out_and_lists_it(cli, tree, secret, tmp_path):
    os.symlink(secret, tree / rel("s2", "angry", 7))
    out = tmp_path / "run"
    res = cli(*run_args(tree, out))
    assert res.code == 0, res
    assert {"stage": "scan", "key": "", "path": rel("s2", "angry", 7),
            "reason": "link leads outside the corpus root"} in skipped_rows(out)
    assert key("s2", "angry", 7) not in store_of(out).index()[0]


def test_library_manifest_refuses_escaping_paths(tmp_path):
    """The same rule for plugins that build manifests themselves."""
    for bad, why in [("../x.wav", "climbs out"), ("/abs/x.wav", "is absolute"),
                     ("a/../../x.wav", "climbs out"), ("", "is empty")]:
        with pytest.raises(DataError, match=why):
            Manifest("c", tmp_path, [Utterance("k", bad, "A")])
    ok = Manifest("c", tmp_path, [Utterance("k", "a/b..c/x.wav", "A")])
    assert ok.audio_path(ok["k"]) == tmp_path / "a/b..c/x.wav"


def test_finished_results_never_hold_a_skipped_key(cli, tree, tmp_path):
    """With --on-bad-audio skip the folds shrink by the skipped utterance, nothing else."""
    (tree / rel("s0", "neutral", 1)).write_bytes(b"")  # a test utterance of fold 1
    out = tmp_path / "run"
    res = cli(*run_args(tree, out, "--on-bad-audio", "skip"))
    assert res.code == 0, res
    [row] = read_jsonl(out / "results.jsonl")
    assert row["n_test"] == 7 and sum(map(sum, row["confusion"])) == 7
    preds = (out / "predictions" / "fold1.tsv").read_text()
    assert key("s0", "neutral", 1) not in preds and preds.count("\n") == 1 + 7
