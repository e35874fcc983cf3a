"""EmoDB: EmoBox's lists/ folder, the neutral-label fix, fallbacks and the errors a user sees."""

from __future__ import annotations

import shutil

import pytest

from emobox import DataError
from emobox.corpora._emobox import reference_rows
from emobox.corpora.emodb import EmoDB
from corpus_writers import write_fixture


@pytest.fixture
def emodb_root(tmp_path):
    rows = [r for r in reference_rows("emodb") if r["speaker"] in ("male_03", "female_08")]
    write_fixture(EmoDB, tmp_path, rows)
    return tmp_path


def test_neutral_is_mapped_unlike_emobox_table(emodb_root):
    m = EmoDB(emodb_root).manifest
    utt = m["emodb-03a01Nc"]
    assert (utt.label, utt.raw_label, utt.speaker) == ("Neutral", "neutral", "male_03")
    assert m["emodb-03a01Wa"].label == "Angry"
    assert set(m.label_counts()) == set(EmoDB.labels)


def test_unknown_emotion_list_names_file_and_label(emodb_root):
    (emodb_root / "lists/emotions/boredom.txt").write_text("03a01Fa.wav\n")
    with pytest.raises(DataError, match=r"unknown emotion label 'boredom' in .*lists/emotions/boredom\.txt"):
        EmoDB(emodb_root).manifest


def test_missing_emotion_list_is_named(emodb_root):
    (emodb_root / "lists/emotions/sad.txt").unlink()
    with pytest.raises(DataError, match=r"EmoBox emotion list not found: looked for .*lists/emotions/sad\.txt"):
        EmoDB(emodb_root).manifest


def test_missing_and_unlisted_audio_are_reported(emodb_root):
    (emodb_root / "wav/03a01Fa.wav").unlink()
    shutil.copy(emodb_root / "wav/03a01Nc.wav", emodb_root / "wav/99x99Xa.wav")
    corpus = EmoDB(emodb_root)
    assert "emodb-03a01Fa" not in corpus.manifest
    assert ("wav/03a01Fa.wav", "listed in lists/emotions/happy.txt but the audio file is missing"
            ) in corpus.skipped
    assert ("wav/99x99Xa.wav", "audio file has no entry in lists/emotions/*.txt") in corpus.skipped


def test_without_lists_labels_and_speakers_come_from_file_names(emodb_root):
    with_lists = EmoDB(emodb_root).manifest
    shutil.rmtree(emodb_root / "lists")
    without = EmoDB(emodb_root).manifest
    assert without.keys == with_lists.keys
    assert [(u.label, u.speaker) for u in without] == [(u.label, u.speaker) for u in with_lists]

