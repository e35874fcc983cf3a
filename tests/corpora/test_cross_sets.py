"""EmoBox's four cross-corpus test sets, resolved to the adapters' keys and checked on fixture
trees of every reference row."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import PurePosixPath

import pytest

from emobox.corpora._cross import emobox_cross_rows
from emobox.corpora._emobox import emobox_speaker, reference_rows
from emobox.tracks.cross import CrossOptions, plan_cross
from emobox.datasets.labels import canonical
from emobox.reporting.paper import paper_tables
from emobox.plugin.registry import get_registry

CORPORA = ("iemocap", "meld", "ravdess", "savee")
TABLE3 = {row["corpus_id"]: row for row in paper_tables()["table3"]}


def published(name):
    return get_registry().corpus(name).balanced_test_set()


@pytest.mark.parametrize("name", CORPORA)
def test_set_has_table3_structure(name):
    bset = published(name)
    row = TABLE3[name]
    assert len(bset) == row["total"] == 240
    assert bset.classes == ("Angry", "Happy", "Neutral", "Sad")
    structure = bset.structure()
    assert len(structure) == row["speakers"]
    for speaker, per in structure.items():
        assert per == {c: row["per_speaker_per_emotion"] for c in bset.classes}, speaker
    assert Counter(i.label for i in bset.items) == {c: 60 for c in bset.classes}


@pytest.mark.parametrize("name", CORPORA)
def test_every_published_row_maps_to_one_key_with_its_label_and_speaker(name):
    rows = emobox_cross_rows(name)
    bset = published(name)
    ref = {r["key"]: r for r in reference_rows(name)}
    assert len(rows) == len(bset) == len(set(bset.keys)) == 240
    for row, item in zip(rows, bset.items):
        assert item.source == row["wav_filename"]
        assert item.key in ref
        assert item.label == canonical(row["label"]) == ref[item.key]["emotion"]
        assert item.speaker == row["speaker"]
        expected_speaker = f"Ses{row['speaker']}" if name == "iemocap" else row["speaker"]
        assert ref[item.key]["speaker"] == expected_speaker
        # the key is the file the row names
        stem = PurePosixPath(row["wav_filename"]).stem.replace("final_videos_test", "")
        assert stem in item.key


def test_meld_paths_without_split_are_resolved_by_speaker_and_label():
    bset = published("meld")
    splits = Counter(i.key.rsplit("-", 1)[1] for i in bset.items)
    assert splits == {"train": 183, "test": 41, "dev": 16}
    by_source = {i.source: i for i in bset.items}
    # the test folder's second copy of a clip is the test clip
    assert by_source["audio/final_videos_testdia100_utt5.wav"].key == "meld-dia100_utt5-test"
    assert by_source["audio/final_videos_testdia12_utt3.wav"].key == "meld-dia12_utt3-test"
    # dia12_utt3 exists in all three splits; only the test clip is Ross and angry
    assert by_source["audio/dia933_utt6.wav"].key == "meld-dia933_utt6-train"
    # the two rows that fit a test and a train clip alike: the test clip, the other kept out
    twins = {i.key: i.also_excluded for i in bset.items if i.also_excluded}
    assert twins == {"meld-dia208_utt1-test": ("meld-dia208_utt1-train",),
                     "meld-dia252_utt15-test": ("meld-dia252_utt15-train",)}


def test_iemocap_set_is_balanced_by_emobox_s_speaker_not_the_talking_actor():
    bset = published("iemocap")
    by_actor = Counter(i.key[len("iemocap-Ses"):len("iemocap-Ses") + 2] + i.key[-4]
                       for i in bset.items)
    assert len(by_actor) == 10 and set(by_actor.values()) != {24}
    assert min(by_actor.values()) == 19 and max(by_actor.values()) == 29


def test_shipped_jsonl_is_emobox_s_data_unchanged(tmp_path):
    """Every row keeps EmoBox's three fields (the resolution adds nothing to the file)."""
    for name in CORPORA:
        for row in emobox_cross_rows(name):
            assert set(row) == {"wav_filename", "label", "speaker"}
            json.dumps(row)


def test_sets_resolve_on_fixture_trees_and_never_train(scanned):
    """On fixture trees of all reference rows the track finds every test key with its label and
    speaker, and no test key (nor a MELD twin) is on its corpus's training side."""
    corpora = {name: scanned(name)[0] for name in CORPORA}
    plan = plan_cross(CrossOptions(upstream="fbank", corpora=CORPORA), corpora=corpora)
    for tc in plan.corpora:
        manifest = corpora[tc.name].manifest
        assert len(tc.test) == 240 and len(set(tc.test)) == 240
        items = {i.key: i for i in tc.test_set.items}
        for key in tc.test:
            utt = manifest[key]
            assert utt.label == items[key].label
            speaker = emobox_speaker(utt)
            assert speaker == (f"Ses{items[key].speaker}" if tc.name == "iemocap"
                               else items[key].speaker)
        side = set(tc.train) | set(tc.valid)
        assert not side & tc.test_set.excluded_from_training()
        assert not set(tc.train) & set(tc.valid)
        # the training side is every other utterance of the four classes
        four = {u.key for u in manifest if u.label in plan.classes}
        assert side == four - tc.test_set.excluded_from_training()
        assert tc.valid_rule == "stratified-20%"
        assert abs(len(tc.valid) / len(side) - 0.2) < 0.01
    meld = next(tc for tc in plan.corpora if tc.name == "meld")
    assert "meld-dia208_utt1-train" in corpora["meld"].manifest
    assert "meld-dia208_utt1-train" not in set(meld.train) | set(meld.valid)


def test_official_validation_uses_meld_s_dev_split_minus_the_test_set(scanned):
    corpora = {name: scanned(name)[0] for name in ("meld", "savee")}
    plan = plan_cross(CrossOptions(upstream="fbank", corpora=("meld", "savee"),
                                   valid="official"), corpora=corpora)
    meld, savee = plan.corpora
    dev = {r["key"] for r in reference_rows("meld") if r["valid"] == "1"
           and r["emotion"] in plan.classes}
    assert meld.valid_rule == "official"
    assert set(meld.valid) == dev - meld.test_set.excluded_from_training()
    assert len(dev) - len(meld.valid) == 16  # the set's 16 dev clips test instead
    assert savee.valid_rule == "stratified-20%"
    assert any("savee has no official dev split" in n for n in savee.notes)
