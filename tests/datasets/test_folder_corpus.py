"""The built-in `folder` corpus: your own data in one folder per label (corpora/folder.py)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from emobox import DataError, EmoboxUsageError
from emobox.plugin.registry import get_registry
from emobox.datasets.splits import leakage
from emobox.testing import write_audio, write_folder_corpus


@pytest.fixture
def root(tmp_path):
    write_folder_corpus(tmp_path / "mine", speakers=6, per_speaker=2, seconds=0.1)
    return tmp_path / "mine"


def build(root, **options):
    return get_registry().corpus("folder").build(root, **options)


def test_labels_from_folders_and_speakers_from_file_names(root):
    spec = get_registry().corpus("folder")
    assert spec.distribution == "emobox" and spec.plugin == "folder"
    assert spec.reader  # reads the user's data: not one of the benchmark's corpora
    corpus = build(root)
    m = corpus.manifest
    assert len(m) == 4 * 6 * 2
    assert m.labels == ("Angry", "Happy", "Neutral", "Sad")  # the canonical spellings
    utt = m["happy/spk04_02"]
    assert (utt.path, utt.label, utt.raw_label, utt.speaker) == (
        "happy/spk04_02.wav", "Happy", "happy", "spk04")
    assert m.speakers() == [f"spk0{i}" for i in range(1, 7)]


def test_default_folds_leave_one_speaker_out(root):
    corpus = build(root)
    folds = corpus.folds()
    assert len(folds) == 6  # 6 speakers: leave one speaker out
    assert [sorted({corpus.manifest[k].speaker for k in f.test}) for f in folds] == [
        [f"spk0{i}"] for i in range(1, 7)]
    assert not any(leakage(corpus.manifest, folds).values())
    assert all(f.valid_rule == "held-out-speakers" for f in folds)
    assert corpus.speaker_independent


def test_label_map_option_file_and_dropping(root):
    corpus = build(root, label_map="angry:anger,happy:joy,neutral:-,sad:sadness")
    m = corpus.manifest
    assert m.labels == ("Angry", "Happy", "Sad")  # mapped, then spelt canonically
    assert len(m) == 36 and m["sad/spk01_01"].label == "Sad"
    assert m["sad/spk01_01"].raw_label == "sad"
    assert sum(1 for _, why in corpus.skipped if "dropped" in why) == 12

    (root / "labels.json").write_text(json.dumps({"angry": "negative", "sad": "negative",
                                                  "happy": "positive", "neutral": None}))
    m = build(root).manifest
    assert Counter(u.label for u in m) == {"negative": 24, "positive": 12}

    (root / "labels.json").unlink()
    (root / "labels.tsv").write_text("# folder\tclass\nangry\ta\nhappy\th\nneutral\tn\nsad\ts\n")
    assert build(root).manifest.labels == ("a", "h", "n", "s")
    assert build(root, label_map={"angry": "x", "happy": "y", "neutral": "y", "sad": "x"}
                 ).manifest.labels == ("x", "y")


def test_a_folder_missing_from_the_label_map_is_an_error_naming_it(root):
    with pytest.raises(DataError) as info:
        build(root, label_map="angry:angry,happy:happy,neutral:neutral").manifest
    assert f"label folder {root / 'sad'} is not in the label map" in str(info.value)
    with pytest.raises(EmoboxUsageError, match="label_map entry 'angry=anger': expected "
                                               "folder:class"):
        build(root, label_map="angry=anger")
    (root / "labels.tsv").write_text("angry anger\n")
    with pytest.raises(EmoboxUsageError, match=r"labels.tsv:1: expected 'folder<TAB>class'"):
        build(root)


def test_speaker_regex_from_sub_folders_and_files_it_does_not_match(tmp_path, root):
    nested = tmp_path / "nested"
    for label in ("calm", "angry"):
        for spk in ("anna", "ben", "cleo", "dan"):
            write_audio(nested / label / spk / f"take{len(spk)}.flac", seconds=0.05)
    corpus = build(nested, speaker_regex=r"^(?P<speaker>[^/]+)/")
    assert corpus.manifest["calm/cleo/take4"].speaker == "cleo"
    assert len(corpus.folds()) == 4

    write_audio(root / "angry" / "nospeaker.wav", seconds=0.05)
    with pytest.raises(DataError) as info:
        build(root).manifest
    msg = str(info.value)
    assert "does not match angry/nospeaker.wav" in msg and str(root / "angry") in msg
    assert "speaker_regex=none" in msg
    with pytest.raises(EmoboxUsageError, match="not a valid regular expression"):
        build(root, speaker_regex="(?P<speaker>")


def test_without_speakers_folds_are_stratified_over_utterances(root):
    corpus = build(root, speaker_regex="none", folds=4)
    assert not corpus.has_speaker_ids
    folds = corpus.folds()
    assert len(folds) == 4
    for f in folds:  # 12 files per label -> 3 per label in every test set
        assert Counter(corpus.manifest[k].label for k in f.test) == {
            "Angry": 3, "Happy": 3, "Neutral": 3, "Sad": 3}
    with pytest.raises(EmoboxUsageError, match="no real speaker ids"):
        corpus.folds(scheme="speaker-independent")


def test_layout_errors_name_the_root(tmp_path):
    with pytest.raises(EmoboxUsageError, match="does not exist"):
        build(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmoboxUsageError, match=f"root {tmp_path / 'empty'} is empty"):
        build(tmp_path / "empty")
    for name in ("a.wav", "b.wav"):
        write_audio(tmp_path / "flat" / name, seconds=0.05)
    with pytest.raises(EmoboxUsageError) as info:
        build(tmp_path / "flat")
    assert "has no label folders (2 audio files lie directly in it, e.g. a.wav)" in str(info.value)
    (tmp_path / "nolabel" / "angry").mkdir(parents=True)
    (tmp_path / "nolabel" / "sad").mkdir()
    (tmp_path / "nolabel" / "angry" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no audio files"):
        build(tmp_path / "nolabel").manifest
    with pytest.raises(EmoboxUsageError, match="unknown option 'speaker'"):
        build(tmp_path / "flat", speaker="x")
    with pytest.raises(EmoboxUsageError, match="needs --root"):
        build(None)


def test_extra_top_folder_and_junk_are_handled(tmp_path):
    write_folder_corpus(tmp_path / "dl" / "MyCorpus", speakers=4, per_speaker=1, seconds=0.05)
    (tmp_path / "dl" / "__MACOSX").mkdir()
    (tmp_path / "dl" / "MyCorpus" / ".DS_Store").write_text("")
    corpus = build(tmp_path / "dl")
    assert corpus.root == tmp_path / "dl" / "MyCorpus"
    assert len(corpus.manifest) == 16


def test_cli_run_on_your_own_folder(cli, root, tmp_path):
    res = cli("run", "-u", "fbank", "-c", "folder", "--root", root, "-d", "linear_probe",
              "--epochs", "2", "--warmup", "1", "--fold", "2", "--grid", "lr=1e-3 hidden=32",
              "-C", "label_map=angry:high,happy:high,neutral:low,sad:low", "-q",
              "--out", tmp_path / "run")
    assert res.code == 0, res
    lines = (tmp_path / "run" / "predictions" / "fold2.tsv").read_text().splitlines()
    assert lines[0] == "key\tgold\tpredicted" and len(lines) == 1 + 8  # one speaker's 8 files
    assert {line.split("\t")[1] for line in lines[1:]} == {"high", "low"}

    res = cli("run", "-u", "fbank", "-c", "folder", "--root", tmp_path / "run" / "predictions",
              "-d", "linear_probe")
    assert res.code == 2
    assert "has no label folders (0 audio files lie directly in it)" in res.err


def test_label_folders_are_spelt_as_the_canonical_classes(tmp_path):
    write_folder_corpus(tmp_path / "c", labels=("anger", "JOY", "calm", "grumpy"), speakers=4,
                        per_speaker=1, seconds=0.05)
    m = build(tmp_path / "c").manifest
    assert m.labels == ("Angry", "Calm", "Happy", "grumpy")  # an unknown word is kept
    assert m["JOY/spk01_01"].label == "Happy" and m["JOY/spk01_01"].raw_label == "JOY"
    write_folder_corpus(tmp_path / "c", labels=("angry",), speakers=4, per_speaker=1,
                        seconds=0.05)
    with pytest.raises(DataError, match="label folders 'anger' and 'angry' in .* both stand for "
                                        "the class 'Angry'; folders are not merged unasked"):
        build(tmp_path / "c").manifest


def test_name_option_names_the_corpus_and_is_validated(root):
    assert build(root).name == "folder"  # the default is unchanged
    corpus = build(root, name="mylab")
    assert corpus.name == "mylab" and corpus.manifest.corpus == "mylab"
    for bad in ("my lab", "../x", "a__b", "", "x" * 65):
        with pytest.raises(EmoboxUsageError, match=r"name .* is not a valid corpus name"):
            build(root, name=bad)
    with pytest.raises(EmoboxUsageError, match="'IEMOCAP' is the name of a registered corpus"):
        build(root, name="IEMOCAP")


def test_folds_that_cannot_be_honoured_are_warned_about(root):
    corpus = build(root, folds=3)  # 6 speakers: leave one speaker out gives 6
    with pytest.warns(UserWarning, match=r"corpus 'folder': folds=3 cannot be honoured: 6 "
                                         r"speakers give 6 speaker-independent folds"):
        assert len(corpus.folds()) == 6
    corpus = build(root, speaker_regex="none", folds=60)  # 48 utterances
    with pytest.warns(UserWarning, match=r"folds=60 cannot be honoured: the stratified split "
                                         r"of 48 utterances \(12 in the largest class\) gives "
                                         r"12 folds"):
        corpus.folds()


def test_two_folder_datasets_get_their_own_runs_and_rows(cli, tmp_path):
    from emobox import paths

    for lab in ("lab_a", "lab_b"):
        write_folder_corpus(tmp_path / lab, speakers=4, per_speaker=2, seconds=0.1)
        res = cli("run", "-u", "fbank", "-c", "folder", "--root", tmp_path / lab, "-C",
                  f"name={lab}", "-d", "linear_probe", "--epochs", "1", "--warmup", "0",
                  "--fold", "1", "--grid", "lr=1e-3 hidden=8", "-q")
        assert res.code == 0, res
    runs = sorted(p.name.split("__")[1] for p in paths.runs_dir().iterdir())
    assert runs == ["lab_a", "lab_b"]
    for run in paths.runs_dir().iterdir():
        config = json.loads((run / "config.json").read_text())
        rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
        assert {r["corpus"] for r in rows} == {config["corpus"]} == {run.name.split("__")[1]}
    res = cli("report", paths.runs_dir(), "--out", tmp_path / "report")
    assert res.code == 0, res
    table = (tmp_path / "report" / "table.md").read_text()
    assert "lab_a" in table and "lab_b" in table

    res = cli("run", "-u", "fbank", "-c", "folder", "--root", tmp_path / "lab_a", "-C",
              "name=my lab", "-d", "linear_probe")
    assert res.code == 2
    assert res.err.startswith("error: ") and "name 'my lab' is not a valid corpus name" in res.err
