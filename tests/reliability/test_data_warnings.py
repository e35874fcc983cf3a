"""Catalogue, data a tired user or a careless script produces: EmoBox lists with values of the
wrong type, manifests with impossible segments, label folders that differ only by case, classes
a fold cannot learn. Bad values stop with one line naming the file, the line and the utterance;
what is legal but worth knowing is a warning, in the run (stderr and summary.md) and in
``emobox corpora check`` (which still exits 0: the folds are the corpus's own)."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from reliability_support import SR, assert_user_error, key, tone

from test_bad_corpora import edit_rows, run_imported, user_manifest  # noqa: F401  (fixture)

# -- import-emobox: EmoBox's jsonl lists ----------------------------------------------------------

GOOD = [{"key": "mini-a", "wav": "downloads/mini/a.wav", "emo": "ang", "channel": 1,
         "length": 0.2},
        {"key": "mini-b", "wav": "downloads/mini/b.wav", "emo": "sad", "channel": 1,
         "length": 0.2}]


def emobox_data(tmp_path, second_line: str | bytes) -> tuple:
    """EmoBox's data/mini/: mini.jsonl whose second line is ``second_line``, and one fold."""
    data = tmp_path / "EmoBox" / "data" / "mini"
    (data / "fold_1").mkdir(parents=True)
    first = json.dumps(GOOD[0]).encode() + b"\n"
    second = second_line if isinstance(second_line, bytes) else second_line.encode()
    (data / "mini.jsonl").write_bytes(first + second + b"\n")
    (data / "fold_1" / "mini_test_fold_1.jsonl").write_text(json.dumps(GOOD[0]) + "\n")
    return data, data / "mini.jsonl"


def _rec(**changes) -> str:
    rec = dict(GOOD[1])
    for k, v in changes.items():
        if v is _DROP:
            rec.pop(k)
        else:
            rec[k] = v
    return json.dumps(rec)


_DROP = object()


@pytest.mark.parametrize("line, message", [
    (_rec(key=123), "field 'key' is a number (123), expected a string"),
    (_rec(wav=["a.wav"]), "field 'wav' is a list ([\"a.wav\"]), expected a string"),
    (_rec(emo={"label": "sad"}), "field 'emo' is an object ({\"label\": \"sad\"}), expected a "
                                 "string"),
    (_rec(emo=3), "field 'emo' is a number (3), expected a string"),
    (_rec(emo=_DROP), "an EmoBox record needs 'key', 'wav' and 'emo'; this one has no 'emo'"),
    (_rec(key=""), "field 'key' is empty"),
    (_rec(key="mini\tb"), "field 'key' holds a tab, line break or other control character"),
    (_rec(channel="left"), "field 'channel' is \"left\", expected a channel number from 1"),
    (_rec(channel=0), "field 'channel' is 0, expected a channel number from 1"),
    (_rec(start_time="0.5", end_time=1.0), "field 'start_time' is a string (\"0.5\"), expected "
                                           "seconds (a number)"),
    (_rec(start_time=2.0, end_time=1.0), "utterance 'mini-b': start_time 2.0 is not before "
                                         "end_time 1.0: the segment is empty"),
    (_rec(start_time=-1.0, end_time=1.0), "utterance 'mini-b': start_time is -1.0, not a time"),
    (_rec(start_time=0).replace('"start_time": 0', '"start_time": 0, "end_time": 1e999'),
     "utterance 'mini-b': end_time is inf, not a time in the file"),
    (_rec(start_time=0).replace('"start_time": 0', '"start_time": NaN'),
     "not a JSON line (NaN is not a JSON number)"),
    ("[1, 2]", "expected a JSON object (an EmoBox record), got a list ([1, 2])"),
    ('"mini-b"', "expected a JSON object (an EmoBox record), got a string"),
    ("[" * 100_000, "not a JSON line (nested too deeply)"),
    ('{"key": "mini-b", "wav": "b.wav", "emo": "sad"' + " " * (2 << 20) + "}",
     "line longer than 1 MiB; not what EmoBox writes"),
    (b'{"key": "mini-\xe9", "wav": "b.wav", "emo": "sad"}',
     "not UTF-8 text (byte 0xe9 at column 15)"),
])
def test_odd_values_in_emobox_lists_name_the_file_and_line(cli, tmp_path, line, message):
    data, jsonl = emobox_data(tmp_path, line)
    res = cli("corpora", "import-emobox", data.parent, "-o", tmp_path / "imports", "-q")
    assert_user_error(res, 3, f"{jsonl}:2: ", message)


def test_a_good_emobox_list_still_imports(cli, tmp_path):
    data, _ = emobox_data(tmp_path, json.dumps(GOOD[1]))
    res = cli("corpora", "import-emobox", data.parent, "-o", tmp_path / "imports", "-q")
    assert res.code == 0, res
    rows = (tmp_path / "imports" / "mini" / "manifest.tsv").read_text().splitlines()
    assert [r.split("\t")[:4] for r in rows[1:]] == [["mini-a", "a.wav", "", "ang"],
                                                     ["mini-b", "b.wav", "", "sad"]]


@pytest.mark.parametrize("content, message", [
    ('{"ang": ["angry"]}', "label 'ang' maps to a list ([\"angry\"]), expected a class name"),
    ('{"ang": 1}', "label 'ang' maps to a number (1), expected a class name"),
    ('["ang"]', "expected a JSON object raw label -> class, got a list"),
    ('{"ang": NaN}', "NaN is not a JSON number"),
])
def test_an_odd_label_map_names_its_file(cli, tmp_path, content, message):
    data, _ = emobox_data(tmp_path, json.dumps(GOOD[1]))
    (data / "label_map.json").write_text(content)
    res = cli("corpora", "import-emobox", data.parent, "-o", tmp_path / "imports", "-q")
    assert_user_error(res, 3, str(data / "label_map.json"), message)


def test_a_speaker_file_that_is_not_utf8_names_the_line(cli, tmp_path):
    data, _ = emobox_data(tmp_path, json.dumps(GOOD[1]))
    (data / "data.seg.wrd.stm").write_bytes(b"mini-a 1 s 0 0.1 <spk=s1> ang\n"
                                            b"mini-b 1 s 0 0.1 <spk=s\xff2> sad\n")
    res = cli("corpora", "import-emobox", data.parent, "-o", tmp_path / "imports", "-q")
    assert_user_error(res, 3, f"{data / 'data.seg.wrd.stm'}:2: not UTF-8 text (byte 0xff")


# -- manifests read back: -c imported -------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"start": "nan", "end": "0.1"}, "start is nan, not a finite number of seconds"),
    ({"start": "0", "end": "inf"}, "end is inf, not a finite number of seconds"),
    ({"start": "0.15", "end": "0.05"}, "start 0.15 is not before end 0.05: the segment is empty"),
    ({"start": "-0.1", "end": "0.1"}, "start is -0.1, a negative time"),
    ({"start": "zero", "end": "0.1"}, "start is 'zero', not a number"),
    ({"end": "1e999"}, "end is inf, not a finite number of seconds"),
    ({"channel": "0"}, "channel is 0; channels are counted from 1"),
    ({"channel": "left"}, "channel is 'left', not an integer"),
])
def test_impossible_segments_in_a_manifest_name_file_line_and_utterance(
        cli, user_manifest, tmp_path, changes, message):
    utt = key("s1", "happy", 1)
    edit_rows(user_manifest, utt, **changes)
    line = 1 + [ln.split("\t")[0] for ln in user_manifest.read_text().splitlines()].index(utt)
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert_user_error(res, 3, f"{user_manifest}:{line}: ", f"utterance {utt!r}: {message}")


def test_a_valid_segment_in_a_manifest_is_read(cli, user_manifest, tmp_path):
    edit_rows(user_manifest, key("s1", "happy", 1), start="0.05", end="0.15")
    res = run_imported(cli, user_manifest, tmp_path / "run")
    assert res.code == 0, res


def test_library_manifests_refuse_impossible_segments(tmp_path):
    from emobox import DataError, Manifest, Utterance

    with pytest.raises(DataError, match=r"utterance 'k' \(a.wav\): start 3.0 is not before end "
                                        r"1.0: the segment is empty"):
        Manifest("c", tmp_path, [Utterance("k", "a.wav", "x", start=3.0, end=1.0)])


# -- the folder corpus: label folders and their map -----------------------------------------------

def folder_tree(root, labels, speakers=("s0", "s1", "s2", "s3"), n=2):
    for e, label in enumerate(labels):
        for spk in speakers:
            for i in range(n):
                path = root / label / f"{spk}_{i}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone(freq=150 + 90 * e + 5 * i), SR)
    return root


FOLDER_RUN = ("run", "-u", "fbank", "-c", "folder", "-d", "linear_probe", "-q", "--epochs", "1",
              "--warmup", "0", "--grid", "lr=1e-3 hidden=8", "--fold", "1")


@pytest.mark.parametrize("twins", [("Angry", "angry"), ("angry", "angry "), ("sad", " SAD")])
def test_label_folders_differing_only_by_case_or_spaces_are_refused(cli, tmp_path, twins):
    root = folder_tree(tmp_path / "c", [*twins, "happy"])
    for args in ((*FOLDER_RUN, "--root", root, "--out", tmp_path / "run"),
                 ("corpora", "check", "-c", "folder", "--root", root, "--no-audio", "-q")):
        res = cli(*args)
        a, b = sorted(twins)
        assert_user_error(res, 3, f"label folders {a!r} and {b!r} in {root}",
                          "differ only in upper/lower case or spaces",
                          "folders are not merged unasked")


def test_a_label_map_joining_the_twin_folders_is_the_way_out(cli, tmp_path):
    root = folder_tree(tmp_path / "c", ["Angry", "angry ", "happy"])
    (root / "labels.json").write_text(json.dumps({"Angry": "angry", "angry ": "angry",
                                                  "happy": "happy"}))
    res = cli("corpora", "check", "-c", "folder", "--root", root, "--no-audio", "-q")
    assert res.code == 0, res
    assert "24 utterances, 4 speakers, 2 labels" in res.out  # angry: 16, happy: 8


@pytest.mark.parametrize("content, message", [
    ('{"ang": ["angry"]}', "folder 'ang' maps to ['angry'], not a class name (a string)"),
    ('{"ang": 7}', "folder 'ang' maps to 7, not a class name (a string)"),
    ('{"ang": "an\\ngry"}', "the class of folder 'ang' holds a tab or line break"),
])
def test_a_label_map_of_odd_types_is_refused(cli, tmp_path, content, message):
    root = folder_tree(tmp_path / "c", ["ang", "hap"])
    (root / "labels.json").write_text(content)
    res = cli("corpora", "check", "-c", "folder", "--root", root, "--no-audio", "-q")
    assert_user_error(res, 2, f"label map {root / 'labels.json'}: {message}")


# -- classes a fold cannot learn ------------------------------------------------------------------

def test_a_class_missing_from_a_folds_training_side_is_a_warning(cli, tmp_path):
    """'calm' is spoken only by s0, the test speaker of fold 1: fold 1 cannot learn it. The
    run warns (stderr, summary.md); corpora check lists it and still exits 0."""
    root = folder_tree(tmp_path / "c", ["angry", "happy"])
    folder_tree(root, ["calm"], speakers=("s0",))
    out = tmp_path / "run"
    res = cli(*FOLDER_RUN, "--root", root, "--out", out)
    assert res.code == 0, res
    expected = ("fold 1: class 'Calm' has no training utterance (2 in test, 0 in validation): "
                "the head cannot learn it in this fold")
    assert f"warning: folder: {expected}" in res.err
    assert f"- {expected}" in (out / "summary.md").read_text()
    res = cli("corpora", "check", "-c", "folder", "--root", root, "--no-audio", "-q")
    assert res.code == 0, res
    warnings = [ln for ln in res.err.splitlines() if ln.startswith("warning:")]
    assert f"warning: {expected}" in warnings
    for fold in (2, 3, 4):  # s1..s3 test there; s0's 'calm' trains
        assert not any(w.startswith(f"warning: fold {fold}:") for w in warnings)
    assert "check: OK" in res.out


def test_a_class_with_a_single_utterance_is_a_warning(cli, tmp_path):
    root = folder_tree(tmp_path / "c", ["angry", "happy"])
    folder_tree(root, ["calm"], speakers=("s2",), n=1)
    res = cli("corpora", "check", "-c", "folder", "--root", root, "--no-audio", "-q")
    assert res.code == 0, res
    assert ("warning: class 'Calm' has a single utterance ('calm/s2_0'): it cannot be both "
            "trained on and tested") in res.err
    out = tmp_path / "run"
    res = cli(*FOLDER_RUN, "--root", root, "--out", out)
    assert res.code == 0, res
    assert "class 'Calm' has a single utterance" in (out / "summary.md").read_text()


def test_a_corpus_whose_classes_every_fold_learns_has_no_class_warning(cli, tmp_path):
    root = folder_tree(tmp_path / "c", ["angry", "happy"])
    res = cli(*FOLDER_RUN, "--root", root, "--out", tmp_path / "run")
    assert res.code == 0, res
    assert "class '" not in res.err
    assert "Notes:" not in (tmp_path / "run" / "summary.md").read_text()
