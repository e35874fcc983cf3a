"""Catalogue, submissions and leaderboards from someone else, and names that break outputs.

A submission zip may be a zip bomb, hold names that climb out, lie about its sizes, carry
metadata of the wrong types, or predictions in an editor's encoding; a leaderboard file may be
edited, damaged, a link, or written by several processes at once. Each is refused (or read)
with one line naming the file and the fault, never a traceback, never by reading it whole.
Names (classes, corpora, paths, entry names) holding Rich markup, Markdown, HTML or LaTeX are
shown as written in every output."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import re
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from emobox.plugin.registry import get_registry
from emobox.reporting.submission import gold_for

from reliability_support import assert_user_error, make_tree, run_args

FOLD1 = "predictions/demo/fold1.tsv"


# -- building submissions for the demo corpus ---------------------------------------------------

@pytest.fixture(scope="module")
def gold():
    return gold_for("demo", {"scheme": "emobox", "seed": 0}, get_registry(), {})


def demo_meta(gold, upstream: str = "enc") -> dict:
    return {"kind": "emobox.submission", "schema_version": 1, "emobox_version": "0.1.0",
            "created": "2024-01-01T00:00:00",
            "upstream": {"name": upstream, "checkpoint_id": "ckpt-1", "parameters": 1000,
                         "options": {}, "layer": 3, "precision": "fp32"},
            "corpora": {"demo": {
                "downstream": "linear_probe", "grid": {"lr": [0.001], "hidden": [8]},
                "scheme": "emobox", "seed": 0, "folds": [1, 2, 3], "n_folds": 3,
                "select": "valid", "labels": list(gold.labels), "epochs": 2,
                "contaminated": False, "run_fingerprint": "abc"}}}


def fold_text(gold, fold: int, wrong: int = 0) -> str:
    """Fold ``fold``'s test keys with their gold class, the first ``wrong`` of them shifted to
    the next class (so UA is known)."""
    lines = ["key\tpredicted"]
    for i, key in enumerate(gold.test[fold]):
        label = gold.label[key]
        if i < wrong:
            label = gold.labels[(gold.labels.index(label) + 1) % len(gold.labels)]
        lines.append(f"{key}\t{label}")
    return "\n".join(lines) + "\n"


def demo_files(gold, wrong: int = 0) -> dict[str, str]:
    return {f"predictions/demo/fold{k}.tsv": fold_text(gold, k, wrong) for k in (1, 2, 3)}


def write_zip(path: Path, members) -> Path:
    """``members``: (name, text or bytes) pairs, written in order (names as given)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data,
                        compress_type=zipfile.ZIP_DEFLATED)
    return path


def submission(path: Path, gold, meta: dict | None = None, files: dict | None = None,
               upstream: str = "enc", wrong: int = 0) -> Path:
    meta = demo_meta(gold, upstream) if meta is None else meta
    members = [("metadata.json", json.dumps(meta) if not isinstance(meta, (str, bytes))
                else meta)]
    members += sorted((demo_files(gold, wrong) if files is None else files).items())
    return write_zip(path, members)


def raw_zip(path: Path, entries) -> Path:
    """A zip written byte by byte, so that it can say what a real one would not: ``entries``
    are (name, compressed data, crc32, declared uncompressed size, method)."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size, method in entries:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data),
                           size, len(n), 0) + n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                               crc, len(data), size, len(n), 0, 0, 0, 0, 0, offset) + n
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                                 len(central), start, 0)
    path.write_bytes(bytes(out))
    return path


def stored(name: str, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    return (name, data, zlib.crc32(data), len(data), 0)


def zero_bomb(mib: int) -> bytes:
    """Raw deflate of ``mib`` MiB of zero bytes, built from one compressed 16 MiB block (a
    full flush makes every block compress alike): 1536 MiB take about 1.5 MB."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * (16 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (mib // 16) + c.flush()


def problems(res) -> list[str]:
    return [line[len("problem: "):] for line in res.err.splitlines()
            if line.startswith("problem: ")]


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the zip itself -----------------------------------------------------------------------------

def test_a_good_hand_made_submission_scores_as_computed_by_hand(gold, tmp_path, cli):
    """The reference the hostile cases are built from: 4 wrong of each fold's 64 test keys
    (the 4 first keys, all Angry, predicted Happy) give Angry recall 12/16 and UA 0.9375."""
    sub = submission(tmp_path / "s.zip", gold, wrong=4)
    res = cli("submit", "validate", sub)
    assert res.code == 0 and "valid (1 corpora, 3 folds)" in res.out, res
    res = cli("submit", "score", sub)
    assert res.code == 0, res
    assert "demo: UA 93.75 ± 0.00  WA 93.75 ± 0.00" in res.out


def test_a_zip_bomb_is_refused_without_being_inflated(gold, tmp_path, cli):
    """1.5 MB on disk, 1.5 GiB inflated: the member is refused by its size, unread."""
    members = [stored("metadata.json", json.dumps(demo_meta(gold)))]
    members.append((FOLD1, zero_bomb(1536), 0x400AE278, 1536 << 20, 8))
    members += [stored(f"predictions/demo/fold{k}.tsv", fold_text(gold, k)) for k in (2, 3)]
    bomb = raw_zip(tmp_path / "bomb.zip", members)
    assert bomb.stat().st_size < 2 << 20
    before = max_rss_mib()
    res = cli("submit", "validate", bomb)
    assert res.code == 5, res
    assert problems(res) == [f"{FOLD1}: 1536 MiB or more uncompressed, more than this file may "
                             f"be (64 MiB); it is not read"]
    res = cli("leaderboard", "add", bomb, "--file", tmp_path / "board.json")
    assert_user_error(res, 3, str(bomb), "not a valid submission", "it is not read")
    assert max_rss_mib() - before < 300  # nothing near 1.5 GiB was held
    assert not (tmp_path / "board.json").exists()


def test_a_member_larger_than_it_declares_is_caught(gold, tmp_path, cli):
    """A member that says 100 bytes and inflates to 100 MiB: never more than 100 bytes are
    taken, and the lie is named."""
    members = [stored("metadata.json", json.dumps(demo_meta(gold)))]
    members.append((FOLD1, zero_bomb(96), 0, 100, 8))
    members += [stored(f"predictions/demo/fold{k}.tsv", fold_text(gold, k)) for k in (2, 3)]
    res = cli("submit", "validate", raw_zip(tmp_path / "liar.zip", members))
    assert res.code == 5, res
    assert problems(res) == [f"{FOLD1}: cannot be read from the zip (Bad CRC-32 for file "
                             f"'{FOLD1}')"]


def test_an_unknown_compression_method_is_a_problem_not_a_traceback(gold, tmp_path, cli):
    members = [stored("metadata.json", json.dumps(demo_meta(gold)))]
    members.append((FOLD1, b"xxxx", 0, 4, 99))
    members += [stored(f"predictions/demo/fold{k}.tsv", fold_text(gold, k)) for k in (2, 3)]
    res = cli("submit", "validate", raw_zip(tmp_path / "odd.zip", members))
    assert res.code == 5, res
    [problem] = problems(res)
    assert problem.startswith(f"{FOLD1}: cannot be read from the zip (")


def test_a_zip_listing_too_many_members_is_refused_before_it_is_parsed(gold, tmp_path, cli):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(demo_meta(gold)))
        for i in range(10_001):
            zf.writestr(f"x/{i}", "")
    res = cli("submit", "validate", path)
    assert_user_error(res, 3, str(path), "the zip lists 10002 members",
                      "a submission has at most 10000")


def test_a_zip_too_large_on_disk_is_refused(gold, tmp_path, cli, monkeypatch):
    import emobox.reporting.submission_io as sio

    sub = submission(tmp_path / "s.zip", gold)
    monkeypatch.setattr(sio, "MAX_ZIP_BYTES", 1000)
    res = cli("submit", "validate", sub)
    assert_user_error(res, 3, str(sub), "larger than a submission may be (1000 bytes)")


def test_the_whole_zip_has_a_budget(gold, tmp_path, cli, monkeypatch):
    """Members under their own cap still stop once together they pass the zip's budget."""
    import emobox.reporting.submission_io as sio

    sub = submission(tmp_path / "s.zip", gold)
    sizes = [len(t.encode()) for _, t in sorted(demo_files(gold).items())]
    monkeypatch.setattr(sio, "MAX_TOTAL_BYTES", sizes[0] + sizes[1] + 1000)  # + metadata
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    assert problems(res) == [f"predictions/demo/fold3.tsv: not read: the members read so far "
                             f"and this one exceed {sio.MAX_TOTAL_BYTES} bytes uncompressed"]


@pytest.mark.parametrize("name, why", [
    ("/etc/passwd", "is an absolute path"),
    ("../../escape.tsv", "climbs out with '..'"),
    ("predictions/demo/../demo/fold1.tsv", "climbs out with '..'"),
    ("predictions\\demo\\fold1.tsv", "holds a backslash"),
    ("C:/x.tsv", "is an absolute path"),
    ("predictions//demo/fold1.tsv", "has an empty or '.' component"),
    ("pred\nictions.tsv", "holds a control character"),
])
def test_member_names_must_be_plain_relative_paths(gold, tmp_path, cli, name, why):
    members = [("metadata.json", json.dumps(demo_meta(gold)))]
    members += sorted(demo_files(gold).items()) + [(name, "key\tpredicted\n")]
    res = cli("submit", "validate", write_zip(tmp_path / "s.zip", members))
    assert res.code == 5, res
    assert problems(res) == [f"{name[:60]!r}: member name {why}; a submission holds only "
                             f"metadata.json and predictions/<corpus>/fold<k>.tsv"]


def test_a_member_named_twice_is_refused(gold, tmp_path, cli):
    """Two members under one name: a checker would see one and a scorer the other."""
    members = [("metadata.json", json.dumps(demo_meta(gold)))]
    members += sorted(demo_files(gold).items())
    members.append((FOLD1, fold_text(gold, 1, wrong=64)))
    with pytest.warns(UserWarning, match="Duplicate name"):
        sub = write_zip(tmp_path / "twice.zip", members)
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    assert problems(res) == [f"{FOLD1}: the zip holds this name twice"]


def test_unexpected_members_are_named_and_never_read(gold, tmp_path, cli, monkeypatch):
    import emobox.reporting.submission_io as sio

    members = [("metadata.json", json.dumps(demo_meta(gold)))] + sorted(demo_files(gold).items())
    members += [("README.txt", "hello"), ("predictions/tones/fold1.tsv", "key\tpredicted\n")]
    sub = write_zip(tmp_path / "s.zip", members)
    read: list[str] = []
    original = sio.SubmissionZip.read
    monkeypatch.setattr(sio.SubmissionZip, "read",
                        lambda self, name, limit: read.append(name) or original(self, name, limit))
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    assert problems(res) == [
        "README.txt: unexpected file (predictions go in predictions/<corpus>/fold<k>.tsv); it "
        "is not read",
        "predictions/tones/fold1.tsv: corpus 'tones' is not listed in metadata.json; it is not "
        "read"]
    assert read == ["metadata.json"] + [f"predictions/demo/fold{k}.tsv" for k in (1, 2, 3)]


# -- metadata.json --------------------------------------------------------------------------------

def _edit(meta: dict, path: str, value) -> dict:
    meta = copy.deepcopy(meta)
    node = meta
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return meta


@pytest.mark.parametrize("field, value, message", [
    ("corpora.demo.seed", "0", "field 'corpora.demo.seed': Input should be a valid integer"),
    ("corpora.demo.seed", 1.5, "field 'corpora.demo.seed': Input should be a valid integer"),
    ("corpora.demo.folds", ["1", "2"], "field 'corpora.demo.folds[0]': Input should be a "
                                       "valid integer"),
    ("corpora.demo.folds", [1, 2, 3, 0], "field 'corpora.demo.folds[3]': Input should be "
                                         "greater than or equal to 1"),
    ("corpora.demo.n_folds", True, "field 'corpora.demo.n_folds': Input should be a valid "
                                   "integer"),
    ("corpora.demo.labels", [1, 2], "field 'corpora.demo.labels[0]': Input should be a valid "
                                    "string"),
    ("corpora.demo.labels", "Angry", "field 'corpora.demo.labels': Input should be a valid "
                                     "list"),
    ("corpora.demo.select", "train", "field 'corpora.demo.select': Input should be 'valid' "
                                     "or 'test'"),
    ("corpora.demo.contaminated", "no", "field 'corpora.demo.contaminated': Input should be "
                                        "a valid boolean"),
    ("corpora.demo.grid", {"lr": "0.1"}, "field 'corpora.demo.grid.lr': Input should be a "
                                         "valid list"),
    ("corpora.demo.epochs", 10 ** 30, "field 'corpora.demo.epochs': Input should be less "
                                      "than or equal to 10000000"),
    ("upstream.name", 5, "field 'upstream.name': Input should be a valid string"),
    ("upstream.name", "x" * 300, "field 'upstream.name': String should have at most 200 "
                                 "characters"),
    ("upstream.name", "two\nlines", "field 'upstream.name': String should match pattern"),
    ("upstream.parameters", -1, "field 'upstream.parameters': Input should be greater than "
                                "or equal to 0"),
    ("upstream.parameters", "1e999", "field 'upstream.parameters': Input should be a valid "
                                     "integer"),  # JSON 1e999 reads as an infinite float
    ("corpora.demo.grid", {"lr": ["1e999"]}, "field 'corpora.demo.grid.lr[0]'"),
    ("upstream.options", {"mode": {"deep": {"er": 1}}}, "field 'upstream.options.mode': Input "
                                                     "should be one of: boolean, integer"),
    ("upstream", [], "field 'upstream' is missing or not an object"),
    ("corpora", [], "field 'corpora' is missing or empty"),
])
def test_metadata_of_the_wrong_type_is_named_by_field(gold, tmp_path, cli, field, value,
                                                      message):
    text = json.dumps(_edit(demo_meta(gold), field, value)).replace('"1e999"', "1e999")
    sub = submission(tmp_path / "s.zip", gold, meta=text)
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    assert any(p.startswith("metadata.json: ") and message in p for p in problems(res)), res.err
    res = cli("submit", "score", sub)
    assert_user_error(res, 3, str(sub), "not a valid submission", message)


@pytest.mark.parametrize("text, message", [
    ('{"kind": "emobox.submission", "x": NaN}', "NaN is not a JSON number"),
    ('{"kind": "emobox.submission", "x": Infinity}', "Infinity is not a JSON number"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"kind": "emobox.submission", "x": ' + "9" * 5000 + "}", "not valid JSON"),
    (b'{"kind": "emobox.submission\xff"}', "not UTF-8 text (byte 0xff at offset 27)"),
    ('{"kind": ', "not valid JSON (Expecting value"),
])
def test_metadata_that_is_not_plain_json_is_named(gold, tmp_path, cli, text, message):
    sub = submission(tmp_path / "s.zip", gold, meta=text)
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    [problem] = problems(res)
    assert problem.startswith("metadata.json: ") and message in problem, problem


def test_a_200_mb_metadata_field_is_refused_unread_and_a_big_one_never_reaches_the_board(
        gold, tmp_path, cli):
    meta = demo_meta(gold)
    meta["comment"] = "x" * (200 << 20)
    res = cli("submit", "validate", submission(tmp_path / "huge.zip", gold, meta=meta))
    assert res.code == 5, res
    assert problems(res) == ["metadata.json: 200 MiB or more uncompressed, more than this "
                             "file may be (1 MiB); it is not read"]
    meta["comment"] = "y" * 500_000  # under the cap: unknown, so dropped
    meta["corpora"]["demo"]["notes"] = "z" * 100_000
    board = tmp_path / "board.json"
    res = cli("leaderboard", "add", submission(tmp_path / "big.zip", gold, meta=meta),
              "--file", board)
    assert res.code == 0, res
    assert board.stat().st_size < 20_000
    entry = json.loads(board.read_text())["entries"][0]
    assert "comment" not in entry and "notes" not in entry["corpora"]["demo"]


def test_a_future_format_version_asks_for_a_newer_emobox(gold, tmp_path, cli):
    sub = submission(tmp_path / "s.zip", gold, meta=_edit(demo_meta(gold), "schema_version", 2))
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    assert problems(res) == ["metadata.json: format version 2 is newer than this emobox reads "
                             "(1); upgrade emobox to check it"]


def test_another_emobox_version_is_noted_and_checked_against_these_folds(gold, tmp_path, cli):
    sub = submission(tmp_path / "s.zip", gold, meta=_edit(demo_meta(gold), "emobox_version",
                                                          "9.9.9"))
    res = cli("submit", "validate", sub)
    assert res.code == 0, res
    assert "note: made with emobox 9.9.9 (this is 0.1.0); checked against this version's folds" \
        in res.err


def test_a_corpus_emobox_does_not_know(gold, tmp_path, cli):
    meta = demo_meta(gold)
    meta["corpora"]["nosuchcorpus"] = meta["corpora"]["demo"]
    files = dict(demo_files(gold), **{"predictions/nosuchcorpus/fold1.tsv": "key\tpredicted\n"})
    res = cli("submit", "validate", submission(tmp_path / "s.zip", gold, meta=meta, files=files))
    assert res.code == 5, res
    [problem] = problems(res)
    assert problem.startswith("nosuchcorpus: cannot get its folds: no corpus named "
                              "'nosuchcorpus'")


def test_metadata_that_contradicts_the_corpus_is_named(gold, tmp_path, cli):
    meta = _edit(demo_meta(gold), "corpora.demo.n_folds", 5)
    meta["corpora"]["demo"]["labels"] = ["Angry", "Bored", "Happy"]
    res = cli("submit", "validate", submission(tmp_path / "s.zip", gold, meta=meta))
    assert res.code == 5, res
    assert problems(res) == [
        "metadata.json: corpora.demo.n_folds is 5, but demo has 3 folds in scheme emobox",
        "metadata.json: corpora.demo.labels name 'Bored', not a class of demo (Angry, Happy, "
        "Neutral, Sad)"]


def test_a_submission_that_is_a_pipe_is_refused_without_waiting(tmp_path, cli_subprocess):
    fifo = tmp_path / "s.zip"
    os.mkfifo(fifo)
    res = cli_subprocess("submit", "validate", fifo, timeout=120)
    assert_user_error(res, 2, f"{fifo} is not a regular file")


# -- predictions ---------------------------------------------------------------------------------

def test_a_fold_number_with_a_leading_zero_is_named_not_ignored(gold, tmp_path, cli):
    files = demo_files(gold)
    files["predictions/demo/fold01.tsv"] = files.pop(FOLD1)
    res = cli("submit", "validate", submission(tmp_path / "s.zip", gold, files=files))
    assert res.code == 5, res
    assert problems(res) == [
        "predictions/demo/fold01.tsv: unexpected file name (fold numbers are written without "
        "leading zeros: fold1.tsv); it is not read",
        f"{FOLD1}: missing (demo has folds 1..3; every fold's test predictions are needed)"]


def test_predictions_with_a_byte_order_mark_and_crlf_lines_are_read(gold, tmp_path, cli):
    """As a spreadsheet or Windows editor saves them."""
    files = {name: "\ufeff" + text.replace("\n", "\r\n")
             for name, text in demo_files(gold, wrong=4).items()}
    sub = submission(tmp_path / "s.zip", gold, files=files)
    res = cli("submit", "score", sub)
    assert res.code == 0, res
    assert "demo: UA 93.75 ± 0.00" in res.out


def test_keys_of_another_corpus_are_unknown_keys(gold, tmp_path, cli):
    from emobox.corpora._emobox import reference_rows

    emodb = [r["key"] for r in reference_rows("emodb")][:64]
    files = demo_files(gold)
    files[FOLD1] = "key\tpredicted\n" + "".join(f"{k}\tAngry\n" for k in emodb)
    res = cli("submit", "validate", submission(tmp_path / "s.zip", gold, files=files))
    assert res.code == 5, res
    found = problems(res)
    assert found[0] == f"{FOLD1}: line 2: unknown key {emodb[0]!r} (not in demo)"
    assert len(found) == 6 and found[-1] == f"{FOLD1}: ... (more problems not shown)"


def test_a_fold_file_of_ten_million_lines_stops_at_the_first_problems(gold, tmp_path, cli):
    """10 million 4-byte lines (40 MB, under the size cap): read lazily, stopped after the
    problems shown, never held as 10 million rows."""
    files = demo_files(gold)
    files[FOLD1] = "key\tpredicted\n" + "k\tA\n" * 10_000_000
    sub = submission(tmp_path / "s.zip", gold, files=files)
    before = max_rss_mib()
    res = cli("submit", "validate", sub)
    assert res.code == 5, res
    found = problems(res)
    assert found[0] == f"{FOLD1}: line 2: unknown key 'k' (not in demo)"
    assert found[-1] == f"{FOLD1}: ... (more problems not shown)" and len(found) == 6
    assert max_rss_mib() - before < 400  # the text (40 MB) and its decoding, not the rows


@pytest.mark.parametrize("text, message", [
    (b"key\tpredicted\n\xff\xfe\tAngry\n", "not UTF-8 text (byte 0xff at offset 14)"),
    ("key\tpredicted\n" + "x" * 200_000 + "\tAngry\n", "field larger than field limit"),
    ("key,predicted\n", "first line must be the header 'key<TAB>predicted'"),
])
def test_unreadable_predictions_are_a_problem_of_their_file(gold, tmp_path, cli, text, message):
    files = demo_files(gold)
    files[FOLD1] = text
    res = cli("submit", "validate", submission(tmp_path / "s.zip", gold, files=files))
    assert res.code == 5, res
    assert any(p.startswith(f"{FOLD1}: ") and message in p for p in problems(res)), res.err


# -- the leaderboard -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def card(gold, tmp_path_factory):
    """One scored entry, to build boards from."""
    from emobox.reporting.submission import score

    return score(submission(tmp_path_factory.mktemp("card") / "s.zip", gold, wrong=4))


def write_board(path: Path, entries) -> Path:
    path.write_text(json.dumps({"kind": "emobox.leaderboard", "schema_version": 1,
                                "entries": entries}))
    return path


def entry(card, name: str, **changes) -> dict:
    e = copy.deepcopy(card)
    e["name"] = name
    e["sha256"] = hashlib.sha256(name.encode()).hexdigest()
    e["content_sha256"] = hashlib.sha256(b"content " + name.encode()).hexdigest()
    e.update(changes)
    return e


@pytest.mark.parametrize("poison, message", [
    ({"corpora": {"demo": {"ua": "abc"}}}, "field 'corpora.demo"),
    ({"corpora": []}, "field 'corpora': Input should be a valid dictionary"),
    ({"sha256": None}, "field 'sha256': Input should be a valid string"),
    ({"name": "n" * 1000}, "field 'name': String should have at most 200 characters"),
    ({"corpora": {"demo": "ua 7"}}, "field 'corpora.demo': Input should be a valid dictionary"),
])
def test_a_poisoned_board_entry_is_left_out_with_a_warning(card, tmp_path, cli, poison,
                                                            message):
    bad = entry(card, "bad")
    bad.update(poison)
    board = write_board(tmp_path / "board.json", [entry(card, "good"), bad])
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0, res
    assert "Traceback" not in res.err
    [warning] = [ln for ln in res.err.splitlines() if ln.startswith("warning:")]
    assert warning.startswith(f"warning: {board}: entry 2") and message in warning
    assert warning.endswith("the entry is left out")
    assert [r["submission"] for r in csv.DictReader(io.StringIO(res.out))] == ["good"]


def test_scores_out_of_range_in_a_board_are_left_out(card, tmp_path, cli):
    bad = entry(card, "bad")
    bad["corpora"]["demo"]["ua"] = 7.0
    board = write_board(tmp_path / "board.json", [bad, entry(card, "good")])
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0, res
    assert (f"warning: {board}: entry 1 ('bad'): field 'corpora.demo.ua': Input should be less "
            f"than or equal to 1; the entry is left out") in res.err
    assert [r["submission"] for r in csv.DictReader(io.StringIO(res.out))] == ["good"]


def test_adding_to_a_poisoned_board_keeps_the_bad_entry_as_it_is(card, gold, tmp_path, cli):
    bad = entry(card, "bad", corpora="not a mapping")
    board = write_board(tmp_path / "board.json", [bad])
    res = cli("leaderboard", "add", submission(tmp_path / "s.zip", gold), "--file", board)
    assert res.code == 0, res
    assert "the entry is kept as it is" in res.err
    entries = json.loads(board.read_text())["entries"]
    assert entries[0] == bad and entries[1]["name"] == "enc"


@pytest.mark.parametrize("content, message", [
    (b'{"kind": "emobox.leaderboard", "entries": [', "not valid JSON"),
    (b'\xff\xfe{"kind"', "not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"kind": "emobox.leaderboard", "entries": [NaN]}', "NaN is not a JSON number"),
    (b'{"kind": "emobox.leaderboard", "entries": {}}', "field 'entries' is not a list"),
    (b'{"kind": "emobox.leaderboard", "schema_version": 7, "entries": []}',
     "leaderboard format version 7 is not the one this emobox reads (1)"),
    (b'{"kind": "something else"}', "not an emobox leaderboard file"),
])
def test_a_damaged_board_file_is_one_error_naming_it(tmp_path, cli, content, message):
    board = tmp_path / "board.json"
    board.write_bytes(content)
    res = cli("leaderboard", "show", "--file", board)
    assert_user_error(res, 3, str(board), message)


def test_a_board_file_too_large_is_refused(card, tmp_path, cli, monkeypatch):
    import emobox.reporting.leaderboard as lb

    board = write_board(tmp_path / "board.json", [entry(card, "a")])
    monkeypatch.setattr(lb, "MAX_BOARD_BYTES", 100)
    res = cli("leaderboard", "show", "--file", board)
    assert_user_error(res, 3, str(board), "more than emobox reads")


def test_a_board_that_is_a_symlink_is_refused_and_its_target_untouched(card, gold, tmp_path,
                                                                       cli):
    target = write_board(tmp_path / "real.json", [entry(card, "a")])
    before = target.read_bytes()
    link = tmp_path / "board.json"
    link.symlink_to(target)
    res = cli("leaderboard", "add", submission(tmp_path / "s.zip", gold), "--file", link)
    assert_user_error(res, 2, str(link), "is a symbolic link", f"--file {target}")
    assert link.is_symlink() and target.read_bytes() == before


def test_the_same_predictions_packed_twice_are_one_entry(gold, tmp_path, cli):
    """Packing again changes the zip's bytes (its creation time), not what it says."""
    board = tmp_path / "board.json"
    first = submission(tmp_path / "a.zip", gold)
    meta = demo_meta(gold)
    meta["created"] = "2025-06-01T12:00:00"
    again = submission(tmp_path / "b.zip", gold, meta=meta)
    assert first.read_bytes() != again.read_bytes()
    assert cli("leaderboard", "add", first, "--file", board).code == 0
    res = cli("leaderboard", "add", again, "--file", board)
    assert res.code == 0 and "replaced enc" in res.out, res
    assert len(json.loads(board.read_text())["entries"]) == 1
    other = submission(tmp_path / "c.zip", gold, wrong=1)  # other predictions: a new entry
    assert cli("leaderboard", "add", other, "--file", board).code == 0
    assert len(json.loads(board.read_text())["entries"]) == 2


def test_an_odd_submission_file_name_still_makes_a_readable_entry(gold, tmp_path, cli):
    """The entry records the zip's path: a line break in it must not make the entry one that
    every later `show` leaves out."""
    sub = submission(tmp_path / "odd\nname.zip", gold)
    board = tmp_path / "board.json"
    assert cli("leaderboard", "add", sub, "--file", board).code == 0
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert res.code == 0 and "warning" not in res.err, res
    entry = json.loads(board.read_text())["entries"][0]
    assert entry["submission"] == str(tmp_path / "odd name.zip")


def test_packing_a_run_whose_config_was_edited_is_one_error(tree, tmp_path, cli):
    out = tmp_path / "run"
    assert cli(*run_args(tree, out)).code == 0
    config = json.loads((out / "config.json").read_text())
    del config["grid"]
    (out / "config.json").write_text(json.dumps(config))
    res = cli("submit", "pack", out, "-o", tmp_path / "s.zip")
    assert_user_error(res, 3, str(out / "config.json"))
    assert not (tmp_path / "s.zip").exists()


_RACER = """
import sys, time
from pathlib import Path
from emobox.cli import main
import emobox.reporting.leaderboard, emobox.reporting.submission  # everything imported before the start
go = Path(sys.argv[1])
Path(sys.argv[4]).touch()
while not go.exists():
    time.sleep(0.005)
sys.exit(main(["leaderboard", "add", sys.argv[2], "--file", sys.argv[3]]))
"""


def test_four_concurrent_adds_lose_no_entry(card, gold, tmp_path):
    """Four processes add four submissions at the same moment to a board of 2000 entries (so
    that reading and writing it takes a while): all 2004 entries are there afterwards."""
    board = write_board(tmp_path / "board.json",
                        [entry(card, f"old{i}") for i in range(2000)])
    subs = [submission(tmp_path / f"s{i}.zip", gold, upstream=f"racer{i}") for i in range(4)]
    go = tmp_path / "go"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(go), str(s), str(board),
                               str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
             for s, r in zip(subs, ready)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
            r.exists() or p.poll() is not None for r, p in zip(ready, procs)):
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    names = [e["name"] for e in json.loads(board.read_text())["entries"]]
    assert len(names) == 2004
    assert sorted(n for n in names if n.startswith("racer")) == [f"racer{i}" for i in range(4)]


# -- names that break outputs ---------------------------------------------------------------------

MARKUP = "[/red]"


def test_rich_markup_in_an_entry_name_is_printed_as_written(gold, tmp_path, cli):
    board = tmp_path / "board.json"
    name = f"{MARKUP}[bold]x :cat:"
    res = cli("leaderboard", "add", submission(tmp_path / "s.zip", gold), "--file", board,
              "--name", name)
    assert res.code == 0, res
    assert f"added {name} (1 corpora)" in res.out
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    assert next(csv.DictReader(io.StringIO(res.out)))["submission"] == name


def test_a_name_with_a_line_break_is_refused(gold, tmp_path, cli):
    res = cli("leaderboard", "add", submission(tmp_path / "s.zip", gold), "--file",
              tmp_path / "b.json", "--name", "two\nlines")
    assert_user_error(res, 2, "--name: String should match pattern")


def test_markdown_and_html_in_names_are_escaped_in_the_board(gold, tmp_path, cli):
    board = tmp_path / "board.json"
    name = "a|b <script>alert(1)</script> `x` *y* _z_ [l](http://e)"
    cli("leaderboard", "add", submission(tmp_path / "s.zip", gold), "--file", board,
        "--name", name)
    res = cli("leaderboard", "show", "--file", board)
    assert res.code == 0, res
    row = next(ln for ln in res.out.splitlines() if ln.startswith("| 1 |"))
    cells = re.split(r"(?<!\\)\|", row)[1:-1]
    assert len(cells) == 7  # #, name, checkpoint, params, downstream, mean, demo
    assert cells[1].strip() == (r"a\|b \<script\>alert(1)\</script\> \`x\` \*y\* \_z\_ "
                                r"\[l\](http://e)")
    assert not re.search(r"(?<!\\)<", res.out)


@pytest.fixture
def brackets(tmp_path) -> Path:
    """A folder whose path holds ``[/red]`` (a folder ``[`` holding ``red]``)."""
    path = tmp_path / "[" / "red]"
    path.mkdir(parents=True)
    return path


def test_markup_in_a_path_never_crashes_after_writing(brackets, cli):
    """Paths are printed after the work is written: markup in one must not end the command
    with a traceback."""
    tree, out = make_tree(brackets / "corpus"), brackets / "run"
    res = cli(*run_args(tree, out))
    assert res.code == 0, res
    assert f"run directory: {out}" in res.out and MARKUP in str(out)
    res = cli("submit", "pack", out, "-o", brackets / "s.zip")
    assert res.code == 0, res
    assert f"wrote {brackets / 's.zip'}: fbank on demo (1 folds)" in res.out
    res = cli("corpora", "check", "-c", "demo", "--root", tree, "--no-audio", "-q")
    assert res.code == 0 and f"demo at {tree}: 32 utterances" in res.out, res
    res = cli("corpora", "manifest", "-c", "demo", "--root", tree, "-o", brackets / "m.tsv")
    assert res.code == 0 and f"-> {brackets / 'm.tsv'}" in res.out, res


def test_hostile_class_names_are_escaped_in_summary_and_plots(tmp_path, cli):
    """Label folders named with Markdown, HTML and matplotlib math: summary.md keeps its
    table, shows them as written, and confusion.png is drawn."""
    from reliability_support import SR, tone

    import soundfile as sf

    labels = ["a|b <img src=x>", "$\\frac{$ `c`", "[x]*d*"]
    root = tmp_path / "corpus"
    for e, label in enumerate(labels):
        for spk in ("s0", "s1", "s2", "s3"):
            for n in range(2):
                path = root / label / f"{spk}_{n}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone(freq=150 + 90 * e + 5 * n), SR)
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "folder", "-d", "linear_probe", "-q", "--epochs", "1",
              "--warmup", "0", "--grid", "lr=1e-3 hidden=8", "--fold", "1", "--root", root,
              "--out", out)
    assert res.code == 0, res
    summary = (out / "summary.md").read_text()
    recall = summary.split("| class | recall |")[1].split("\n\n")[0].splitlines()[2:]
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in recall]
    assert [c[0].strip() for c in cells] == [
        r"$\\frac{$ \`c\`".replace("$", r"\$"), r"\[x\]\*d\*", r"a\|b \<img src=x\>"]
    assert not re.search(r"(?<!\\)<", summary)  # no tag a viewer would render
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_tables_escape_names_per_format(tmp_path):
    """Markdown: cells stay cells and nothing renders; LaTeX: the ten special characters;
    CSV: the csv module quotes, so the name reads back whole."""
    from emobox.reporting.report import (Cell, Row, Table, columns_for, to_csv, to_latex,
                                         to_markdown, to_tsv)
    from emobox.tracks.rundirs import RunDir

    up, corpus = "u|p <b>x</b> _y_", "c$&%#{}~^\\_"
    run = RunDir(tmp_path, {"select": "valid", "n_folds": 1}, [])
    cell = Cell(up, corpus, run, {"ua": (0.5, 0.0), "wa": (0.5, 0.0), "f1": (0.5, 0.0)}, 1, 1)
    groups = [("Other", [corpus])]
    table = Table([Row("linear_probe", "emobox", up, up, {corpus: cell})], groups,
                  columns_for(groups), {"ua": set(), "wa": set(), "f1": set()})
    md = to_markdown(table)
    row = next(ln for ln in md.splitlines() if ln.startswith("| linear_probe | u\\|"))
    assert re.split(r"(?<!\\)\|", row)[2].strip() == r"u\|p \<b\>x\</b\> \_y\_"
    assert not re.search(r"(?<!\\)<", md)
    tex = to_latex(table)
    assert r"c\$\&\%\#\{\}\textasciitilde{}\^{}\textbackslash{}\_" in tex
    assert r"u\textbar{}p \textless{}b\textgreater{}x\textless{}/b\textgreater{} \_y\_" in tex
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert rows[1][2] == up and rows[0][3] == f"{corpus} UA"
    assert to_tsv(table, "ua").splitlines()[1].split("\t")[1] == up


def test_cross_outputs_escape_corpus_and_class_names():
    from types import SimpleNamespace

    from emobox.reporting.cross_report import _grid, matrix_tsv

    names = ["a|b", "c\td"]
    result = SimpleNamespace(corpora=names, cells={
        (s, t): {"wa": 0.5, "ua": 0.5, "f1": 0.5, "n_test": 4, "contaminated": False}
        for s in names for t in names})
    tsv = matrix_tsv(result, None).splitlines()
    assert all(len(line.split("\t")) == 10 for line in tsv)
    assert tsv[1].split("\t")[:2] == ["a|b", "a|b"] and tsv[4].split("\t")[:2] == ["c d", "c d"]
    grid = _grid(result, [[0.5, 0.5], [0.5, 0.5]], 100, False)
    assert all(len(re.split(r"(?<!\\)\|", line)) == 6 for line in grid)
