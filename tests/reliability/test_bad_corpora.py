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


# -- hostile files in a corpus and its manifest -------------------------------------------------

def test_a_fifo_in_place_of_an_audio_file_is_named_without_waiting(cli, user_manifest, tree,
                                                                   tmp_path):
    """Opening a fifo for reading waits for a writer: extraction and `corpora check` must
    name it instead of hanging."""
    path = tree / rel("s1", "sad", 1)
    path.unlink()
    os.mkfifo(path)
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"{path}: is a fifo, not an audio file", key("s1", "sad", 1))
    check = cli("corpora", "check", "-c", "demo", "--root", tree)
    assert check.code != 0 and f"{rel('s1', 'sad', 1)}" in check.out + check.err, check
    assert "is a fifo, not an audio file" in check.out + check.err, check


def test_a_segment_end_beyond_any_file_is_an_error_not_an_overflow(cli, user_manifest, tmp_path):
    edit_rows(user_manifest, key("s1", "sad", 1), start="0", end="1e308")
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"{rel('s1', 'sad', 1)}: segment ends at 1e+308 s but the file "
                      f"lasts")


def test_a_wav_header_libsndfile_refuses_is_unreadable_in_corpora_check(cli, tree, tmp_path):
    """A WAV whose fmt chunk says 0 channels: the container opens, the audio does not, and
    `corpora check` says so rather than OK."""
    path = tree / rel("s2", "happy", 0, "wav")
    (tree / rel("s2", "happy", 0)).unlink()
    sf.write(path, tone(), SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"fmt ") + 10  # fmt chunk: tag (2 bytes), then the channel count
    data[at:at + 2] = b"\x00\x00"
    path.write_bytes(bytes(data))
    res = cli("corpora", "check", "-c", "demo", "--root", tree)
    text = res.out + res.err
    assert res.code != 0 and rel("s2", "happy", 0, "wav") in text, res
    assert "check: OK" not in text


def test_a_manifest_corpus_name_cannot_lead_the_store_out_of_its_folder(cli, user_manifest,
                                                                        tmp_path):
    """The description's corpus name names the store's folder: '../..' would write elsewhere."""
    info = user_manifest.with_suffix(".json")
    meta = json.loads(info.read_text())
    meta["corpus"] = "../../escaped"
    info.write_text(json.dumps(meta))
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"{info}: the corpus name '../../escaped' is not a name")
    assert not list(tmp_path.rglob("escaped"))


@pytest.mark.parametrize("field, value, words", [
    ("labels", "Angry", "labels is \"Angry\", not a list of class names"),
    ("official_valid", "no", "official_valid is \"no\", not true or false"),
    ("audio_root", 5, "audio_root is 5, not a folder"),
])
def test_wrong_types_in_a_manifest_description_are_named(cli, user_manifest, tmp_path, field,
                                                         value, words):
    info = user_manifest.with_suffix(".json")
    meta = json.loads(info.read_text())
    meta[field] = value
    info.write_text(json.dumps(meta))
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"{info}: {words}")


def test_an_unbalanced_quote_in_a_manifest_never_swallows_rows(cli, user_manifest, tmp_path):
    """A field starting with '"' runs to the next quote, taking the rows between with it: that is
    an error naming the line, not a corpus with fewer utterances."""
    edit_rows(user_manifest, key("s1", "sad", 0), emotion_raw='"sad')
    edit_rows(user_manifest, key("s2", "sad", 0), emotion_raw='sad"')
    text = user_manifest.read_text().replace('"""sad"', '"sad').replace('"sad"""', 'sad"')
    user_manifest.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), start=1)
                if row.startswith(key("s1", "sad", 0)))
    res = cli("corpora", "check", "-c", "imported", "--root", user_manifest)
    assert_user_error(res, 3, f"{user_manifest}:{line}: a field runs over lines {line}-",
                      "an unbalanced '\"'")


def test_a_manifest_line_that_is_not_utf8_is_named(cli, user_manifest, tmp_path):
    data = user_manifest.read_bytes().split(b"\n")
    data[3] = data[3].replace(b"sad", b"s\xffd", 1) if b"sad" in data[3] else data[3] + b"\xff"
    user_manifest.write_bytes(b"\n".join(data))
    res = cli("corpora", "check", "-c", "imported", "--root", user_manifest)
    assert_user_error(res, 3, f"{user_manifest}:4: not UTF-8 text")


def _lhotse_export(cli, tree, out):
    res = cli("corpora", "manifest", "-c", "demo", "--root", tree, "--format", "lhotse",
              "-o", out)
    assert res.code == 0, res
    return out / "demo_cuts_all.jsonl.gz"


def _rewrite_gz(path, lines):
    import gzip

    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(json.dumps(x).encode() + b"\n" for x in lines))


def _read_gz(path):
    import gzip

    with gzip.open(path, "rb") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_a_lhotse_file_name_cannot_lead_the_store_out_of_its_folder(cli, tree, tmp_path):
    pytest.importorskip("lhotse")
    cuts = _lhotse_export(cli, tree, tmp_path / "lh")
    odd = tmp_path / "odd"
    odd.mkdir()
    bad = odd / ".._cuts_all.jsonl.gz"
    bad.write_bytes(cuts.read_bytes())
    res = cli("corpora", "check", "-c", "lhotse", "--root", odd)
    assert_user_error(res, 3, f"{bad}: the corpus name '..' taken from the file name")


def test_lhotse_fold_keys_and_ids_of_the_wrong_kind_are_named(cli, tree, tmp_path):
    pytest.importorskip("lhotse")
    cuts = _lhotse_export(cli, tree, tmp_path / "lh")
    lines = _read_gz(cuts)
    lines[1]["supervisions"][0]["custom"]["folds"] = {"\u00b2": "test"}
    _rewrite_gz(cuts, lines)
    res = cli("corpora", "check", "-c", "lhotse", "--root", cuts)
    assert_user_error(res, 3, f"{cuts}:2: cut ", "'folds' should map fold numbers")
    recs = tmp_path / "lh" / "demo_recordings_all.jsonl.gz"
    cuts.unlink()
    lines = _read_gz(recs)
    lines[2]["id"] = ["x"]
    _rewrite_gz(recs, lines)
    res = cli("corpora", "check", "-c", "lhotse", "--root", tmp_path / "lh")
    assert_user_error(res, 3, f"{recs}:3: a recording without an id")


def test_a_lhotse_manifest_of_empty_lines_is_refused_at_its_cap(cli, tmp_path):
    """Lines are read in blocks: 2 MiB of newlines past a 1 MiB cap is refused at once."""
    import gzip

    folder = tmp_path / "bomb"
    folder.mkdir()
    path = folder / "bomb_cuts_all.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n" * (2 << 20))
    res = cli("corpora", "check", "-c", "lhotse", "--root", path, "-C", "max_mb=1")
    assert_user_error(res, 3, f"{path}: larger than 1 MiB decompressed")
    bad = cli("corpora", "check", "-c", "lhotse", "--root", path, "-C", "max_mb=abc")
    assert_user_error(bad, 2, "max_mb='abc': give a whole number of MiB")


def test_lhotse_audio_root_confines_where_a_manifest_may_read(cli, tree, tmp_path, secret):
    pytest.importorskip("lhotse")
    cuts = _lhotse_export(cli, tree, tmp_path / "lh")
    assert cli("corpora", "check", "-c", "lhotse", "--root", cuts, "-C",
               f"audio_root={tree}").code == 0
    lines = _read_gz(cuts)
    lines[0]["recording"]["sources"][0]["source"] = str(secret)
    _rewrite_gz(cuts, lines)
    res = cli("corpora", "check", "-c", "lhotse", "--root", cuts, "-C", f"audio_root={tree}")
    assert_user_error(res, 3, f"{cuts}:1: recording ", f"is audio at {secret}, outside "
                      f"audio_root {tree}")
