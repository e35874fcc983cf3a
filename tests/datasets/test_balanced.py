"""Balanced test sets: files, quotas, the builder and pseudo-labels."""

from __future__ import annotations

import json

import pytest

from emobox import DataError, EmoboxUsageError, Manifest, Utterance
from emobox.datasets.balanced import (BalancedItem, BalancedSet, Quota, build_balanced_set,
                             read_pseudo_labels, read_recipe, recipe_from, run_pseudo_labels)

CLASSES = ("Angry", "Happy", "Neutral", "Sad")


def toy_manifest(speakers=6, per=5, short=None) -> Manifest:
    """``speakers`` x 5 classes (the 4 shared + Fear) x ``per`` utterances; ``short`` =
    {(speaker index, class): count} overrides."""
    utts = []
    for s in range(speakers):
        for c in CLASSES + ("Fear",):
            n = (short or {}).get((s, c), per)
            for k in range(n):
                utts.append(Utterance(f"toy-s{s}-{c}-{k}", f"s{s}/{c}{k}.wav", c, f"s{s}",
                                      custom={"emobox_speaker": f"dialog{s % 2}"}))
    return Manifest("toy", "/nonexistent", utts, CLASSES + ("Fear",))


def test_builder_fills_the_quota_exactly_and_only_with_the_classes():
    bset = build_balanced_set(toy_manifest(), CLASSES, Quota(4, 3), seed=0)
    structure = bset.structure()
    assert len(structure) == 4
    assert all(per == {c: 3 for c in CLASSES} for per in structure.values())
    assert bset.quota() == (4, 3) and len(bset) == 48
    manifest = toy_manifest()
    for item in bset.items:  # every key is the speaker's and the class's
        assert manifest[item.key].label == item.label and manifest[item.key].speaker == item.speaker


def test_builder_is_deterministic_given_the_seed():
    a = build_balanced_set(toy_manifest(), CLASSES, Quota(4, 3), seed=7)
    b = build_balanced_set(toy_manifest(), CLASSES, Quota(4, 3), seed=7)
    c = build_balanced_set(toy_manifest(), CLASSES, Quota(4, 3), seed=8)
    assert a.keys == b.keys and a.content_hash() == b.content_hash()
    assert a.keys != c.keys


def test_quota_all_takes_every_speaker():
    bset = build_balanced_set(toy_manifest(speakers=3), CLASSES, Quota(None, 5))
    assert bset.quota() == (3, 5)


def test_a_short_speaker_is_skipped_when_others_can_fill_the_quota():
    m = toy_manifest(speakers=5, short={(2, "Sad"): 1})
    bset = build_balanced_set(m, CLASSES, Quota(4, 3))
    assert sorted(bset.structure()) == ["s0", "s1", "s3", "s4"]


def test_an_unmeetable_quota_names_the_short_speakers_and_classes():
    m = toy_manifest(speakers=5, short={(2, "Sad"): 1, (4, "Happy"): 2})
    with pytest.raises(EmoboxUsageError) as exc:
        build_balanced_set(m, CLASSES, Quota(4, 3))
    msg = str(exc.value)
    assert "toy: quota 4x3" in msg and "only 3 of its 5 speakers can fill it, 4 are needed" in msg
    assert "s2: Sad 1/3" in msg and "s4: Happy 2/3" in msg
    with pytest.raises(EmoboxUsageError, match=r"quota 'all' needs every speaker.*s2: Sad 1/3"):
        build_balanced_set(m, CLASSES, Quota(None, 3))
    with pytest.raises(EmoboxUsageError, match="it has only 5 speakers with utterances of these "
                                               "classes, 6 are needed"):
        build_balanced_set(m, CLASSES, Quota(6, 1))
    with pytest.raises(EmoboxUsageError, match=r"toy has no utterance of Calm"):
        build_balanced_set(m, CLASSES + ("Calm",), Quota(2, 1))


def test_listed_speakers_are_used_or_refused_by_name():
    m = toy_manifest(speakers=5, short={(2, "Sad"): 1})
    bset = build_balanced_set(m, CLASSES, Quota(2, 2), speakers=["s4", "s0"])
    assert sorted(bset.structure()) == ["s0", "s4"]
    with pytest.raises(EmoboxUsageError,
                       match=r"1 of the 2 listed speakers are short.*s2: Sad 1/2"):
        build_balanced_set(m, CLASSES, Quota(2, 2), speakers=["s0", "s2"])
    with pytest.raises(EmoboxUsageError, match=r"speakers 'nobody' have no utterance"):
        build_balanced_set(m, CLASSES, Quota(1, 2), speakers=["nobody"])


def test_speaker_field_emobox_counts_emobox_s_speaker():
    bset = build_balanced_set(toy_manifest(), CLASSES, Quota(None, 4), speaker_field="emobox")
    assert bset.structure() == {"dialog0": {c: 4 for c in CLASSES},
                                "dialog1": {c: 4 for c in CLASSES}}


def test_pseudo_labels_keep_only_agreeing_utterances():
    m = toy_manifest(speakers=2, per=4)
    pseudo = {u.key: u.label for u in m}
    wrong = [u.key for u in m if u.speaker == "s0" and u.label == "Happy"][:3]
    for k in wrong:
        pseudo[k] = "Sad"
    missing = [u.key for u in m if u.speaker == "s1" and u.label == "Angry"][0]
    del pseudo[missing]
    bset = build_balanced_set(m, CLASSES, Quota(2, 1), pseudo_labels=pseudo)
    assert not set(wrong) & set(bset.keys) and missing not in bset.keys
    assert bset.notes and bset.notes[0].startswith("4 utterances")
    with pytest.raises(EmoboxUsageError, match=r"s0: Happy 1/2 \(4 before filtering\)"):
        build_balanced_set(m, CLASSES, Quota(2, 2), pseudo_labels=pseudo)


def test_set_file_round_trip(tmp_path):
    bset = BalancedSet("meld", (BalancedItem("meld-a-test", "Sad", "Joey", "audio/a.wav",
                                             ("meld-a-train",)),
                                BalancedItem("meld-b-dev", "Happy", "Ross")), "made by hand")
    path = tmp_path / "meld.tsv"
    bset.to_tsv(path)
    assert path.read_text().splitlines()[0] == "key\tlabel\tspeaker\tsource\talso_excluded"
    back = BalancedSet.from_tsv(path)
    assert back.corpus == "meld" and back.items == bset.items
    assert back.excluded_from_training() == {"meld-a-test", "meld-a-train", "meld-b-dev"}
    assert back.content_hash() == bset.content_hash()


def test_bad_set_files_are_clear_errors(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("key\tclass\nk1\tSad\n")
    with pytest.raises(DataError, match="needs the columns key, label, speaker"):
        BalancedSet.from_tsv(bad)
    bad.write_text("key\tlabel\tspeaker\nk1\tgrumpy\ts\n")
    with pytest.raises(DataError, match=r"x.tsv:2: bad row"):
        BalancedSet.from_tsv(bad)
    with pytest.raises(DataError, match="listed twice"):
        BalancedSet("c", (BalancedItem("k", "Sad", "s"), BalancedItem("k", "Sad", "s")))


def test_quota_parsing():
    assert Quota.parse("10x6") == Quota(10, 6) and str(Quota.parse("allx15")) == "allx15"
    assert Quota.parse({"speakers": 4, "per_class": 15}) == Quota(4, 15)
    for text in ("10", "x6", "0x3", "3x0", "tenx6"):
        with pytest.raises(EmoboxUsageError, match="SPEAKERSxPER_CLASS|must be positive"):
            Quota.parse(text)


def test_recipe_quotas_per_corpus_with_defaults():
    r = recipe_from(["a", "b", "c"], ["angry", "sad"], {"a": "2x3", "default": "allx1"},
                    default_quotas={"c": Quota(9, 9)})
    assert r.classes == ("Angry", "Sad")
    assert r.quotas == {"a": Quota(2, 3), "b": Quota(None, 1), "c": Quota(None, 1)}
    with pytest.raises(EmoboxUsageError, match="no quota for a: pass --quota a="):
        recipe_from(["a", "c"], ["angry"], None, default_quotas={"c": Quota(9, 9)})
    with pytest.raises(EmoboxUsageError, match="quota given for z"):
        recipe_from(["a"], ["angry"], {"z": "1x1"})


def test_recipe_file_unknown_entries_are_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("classes: [angry]\nquotas: 3x3\n")
    with pytest.raises(EmoboxUsageError, match=r"unknown entries \['quotas'\]"):
        read_recipe(path)


def test_pseudo_label_files_in_every_accepted_form(tmp_path):
    (tmp_path / "a.tsv").write_text("key\tlabel\nk1\tjoy\nk2\t<unk>\n")
    (tmp_path / "b.csv").write_text("k1,anger\nk2,sadness\n")
    (tmp_path / "c.json").write_text(json.dumps({"k1": "生气/angry", "k2": "中立/neutral"}))
    (tmp_path / "d.tsv").write_text("key\tgold\tpredicted\nk1\tSad\tHappy\n")
    assert read_pseudo_labels(tmp_path / "a.tsv") == {"k1": "Happy", "k2": None}
    assert read_pseudo_labels(tmp_path / "b.csv") == {"k1": "Angry", "k2": "Sad"}
    assert read_pseudo_labels(tmp_path / "c.json") == {"k1": "Angry", "k2": "Neutral"}
    assert read_pseudo_labels(tmp_path / "d.tsv") == {"k1": "Happy"}
    (tmp_path / "e.tsv").write_text("key\tgold\nk1\tSad\n")
    with pytest.raises(DataError, match="names no label column"):
        read_pseudo_labels(tmp_path / "e.tsv")


def test_run_predictions_are_out_of_fold_pseudo_labels(tmp_path):
    pred = tmp_path / "predictions"
    pred.mkdir()
    (pred / "fold1.tsv").write_text("key\tgold\tpredicted\nk1\tSad\tSad\n")
    (pred / "fold2.tsv").write_text("key\tgold\tpredicted\nk2\tAngry\tHappy\n")
    assert run_pseudo_labels(tmp_path) == {"k1": "Sad", "k2": "Happy"}
    with pytest.raises(EmoboxUsageError, match="no predictions/fold"):
        run_pseudo_labels(tmp_path / "predictions")
