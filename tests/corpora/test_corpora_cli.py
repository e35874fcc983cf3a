"""`emobox corpora list | manifest | check | stats`: what a user sees about corpora."""

from __future__ import annotations

import csv
import json

import pytest

from emobox.corpora._emobox import reference_rows
from emobox.corpora.ravdess import Ravdess
from emobox.corpora.savee import Savee
from emobox.corpora.urdu import Urdu
from emobox.corpora.mesd import Mesd
from emobox.datasets.corpus_tools import check_corpus, corpus_stats, list_corpora
from emobox.testing import populate_tree
from corpus_writers import write_fixture


def read_tsv(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def ravdess_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ravdess")
    write_fixture(Ravdess, root, reference_rows("ravdess"))
    return root


def test_list_shows_reference_counts_and_license(cli):
    res = cli("corpora", "list")
    assert res.code == 0, res
    line = next(l for l in res.out.splitlines() if l.lstrip("│ ").startswith("ravdess "))
    for cell in ("English", "1,440", "24", "8", "6", "CC BY-NC-SA 4.0"):
        assert cell in line
    listing = {c.name: c for c in list_corpora()}
    assert (listing["mead"].utterances, listing["mead"].speakers, listing["mead"].labels,
            listing["mead"].folds) == (31729, 48, 8, 1)
    assert listing["demo"].utterances is None  # no published reference


def test_manifest_tsv_has_emobox_folds(ravdess_root, tmp_path, cli):
    out = tmp_path / "ravdess.tsv"
    res = cli("corpora", "manifest", "-c", "ravdess", "--root", ravdess_root, "-o", out)
    assert res.code == 0, res
    assert "1440 utterances, 6 folds (emobox)" in res.out
    rows = read_tsv(out)
    assert list(rows[0])[:10] == ["key", "path", "speaker", "emotion", "emotion_raw", "channel",
                                  "start", "end", "test_fold", "valid"]
    ref = {r["key"]: r for r in reference_rows("ravdess")}
    assert {r["key"]: (r["path"], r["speaker"], r["emotion"], r["test_fold"], r["valid"])
            for r in rows} == {k: (r["path"], r["speaker"], r["emotion"], r["test_fold"],
                                   r["valid"]) for k, r in ref.items()}
    for r in rows:  # the per-fold roles agree with test_fold
        roles = [r[f"fold{k}"] for k in range(1, 7)]
        assert roles.index("test") + 1 == int(r["test_fold"]) and roles.count("test") == 1
        assert set(roles) <= {"train", "valid", "test"}
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["kind"] == "emobox.manifest" and info["folds"] == 6


def test_manifest_speaker_independent_and_corrected_speakers(tmp_path, cli):
    from emobox.corpora.enterface import Enterface

    root = tmp_path / "enterface"
    write_fixture(Enterface, root, reference_rows("enterface"))
    out = tmp_path / "si.tsv"
    res = cli("corpora", "manifest", "-c", "enterface", "--root", root, "-o", out,
              "--scheme", "speaker-independent", "--seed", "1")
    assert res.code == 0, res
    rows = read_tsv(out)
    fold_of = {}
    for r in rows:
        assert fold_of.setdefault(r["speaker"], r["test_fold"]) == r["test_fold"]
    assert "s" not in fold_of and len(fold_of) == 43  # real subjects, not EmoBox's bogus 's'
    assert {r["emobox_speaker"] for r in rows if r["key"] == "enterface-s_3_fe_5.avi"} == {"s"}


def test_check_clean_copy_is_ok(ravdess_root, cli):
    res = cli("corpora", "check", "-c", "ravdess", "--root", ravdess_root, "-q")
    assert res.code == 0, res
    assert "1440 utterances, 24 speakers, 8 labels (reference: 1440, 24, 8)" in res.out
    assert "check: OK" in res.out
    assert "speaker-dependent" not in res.err  # EmoBox's RAVDESS folds keep speakers apart


def test_check_reports_missing_unlisted_unreadable_and_skipped(tmp_path, cli):
    rows = reference_rows("savee")
    write_fixture(Savee, tmp_path, rows)
    (tmp_path / "DC_a01.wav").unlink()  # listed by EmoBox, missing here
    populate_tree(tmp_path, ["JK_a16.wav"])  # present, not listed
    (tmp_path / "KL_n30.wav").unlink()
    (tmp_path / "KL_n30.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")  # unreadable
    populate_tree(tmp_path, ["DC_x.wav"])  # not named as SAVEE names files
    res = cli("corpora", "check", "-c", "savee", "--root", tmp_path, "-q", "--show", "0")
    assert res.code == 5, res
    assert "missing (listed by the reference, not found): 1" in res.out
    assert "savee-DC-a01  DC_a01.wav" in res.out
    assert "not in the reference: 1" in res.out and "savee-JK-a16  JK_a16.wav" in res.out
    assert "unreadable audio: 1" in res.out and "KL_n30.wav" in res.out
    assert "skipped while scanning: 1" in res.out and "DC_x.wav" in res.out
    assert "problem: 1 utterances listed by the reference are missing" in res.err
    assert "problem: 1 audio files cannot be read (e.g. KL_n30.wav" in res.err
    assert "check: 2 problem(s) to fix" in res.out


def test_check_leakage_per_scheme(tmp_path):
    write_fixture(Urdu, tmp_path, reference_rows("urdu"))
    emobox = check_corpus("urdu", tmp_path, audio=False)
    assert emobox.ok and emobox.folds[0].leaked  # EmoBox's URDU fold is speaker-dependent
    assert any("speaker-dependent" in w for w in emobox.warnings)
    si = check_corpus("urdu", tmp_path, scheme="speaker-independent", audio=False)
    assert si.ok and len(si.folds) == 6 and not any(f.leaked for f in si.folds)


def test_check_without_real_speakers_says_so(tmp_path, cli):
    write_fixture(Mesd, tmp_path, reference_rows("mesd"))
    res = cli("corpora", "check", "-c", "mesd", "--root", tmp_path, "--scheme",
              "speaker-independent", "--no-audio")
    assert res.code == 5
    assert "no real speaker ids" in res.err and "Traceback" not in res.err
    res = cli("corpora", "manifest", "-c", "mesd", "--root", tmp_path, "-o", tmp_path / "m.tsv",
              "--scheme", "speaker-independent")
    assert res.code == 2 and "error: mesd: this corpus has no real speaker ids" in res.err


def test_missing_root_is_one_error_line(tmp_path, cli):
    res = cli("corpora", "check", "-c", "cremad", "--root", tmp_path / "CREMA-D")
    assert res.code == 2
    assert res.err.count("\n") == 1 and f"root {tmp_path / 'CREMA-D'} does not exist" in res.err
    assert "AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav" in res.err


def test_stats_puts_table1_beside_the_shipped_tables(cli):
    res = cli("corpora", "stats")
    assert res.code == 0, res
    assert "AESDD" in res.out and "RAVDESS" in res.out and "Total" in res.out
    assert ("aesdd: speakers paper 5 vs metadata 6 (metadata speaker = number in the file "
            "name's parentheses, values 1-6)") in res.out
    rows, note = corpus_stats()
    assert len(rows) == 32 and note
    for r in rows:
        if r.shipped is None:
            continue
        assert len(r.explanations) == len(r.differences)
        assert not any("no explanation recorded" in e for e in r.explanations), r.explanations
    by = {r.corpus: r for r in rows}
    assert by["aesdd"].differences == ["speakers"]
    assert by["asvpesd"].differences == ["emotions"]
    assert by["ravdess"].differences == [] and by["ravdess"].shipped["folds"] == 6
