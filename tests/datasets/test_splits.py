"""Folds: speaker-independent rule, stratified validation, fold tables, disjointness."""

from __future__ import annotations

from collections import Counter

import pytest

from emobox import DataError, EmoboxUsageError, Manifest, Utterance
from emobox.datasets.splits import (Fold, FoldTableRow, leakage, speaker_groups,
                           speaker_independent_folds, stratified_split, table_folds)


def manifest_of(n_speakers: int, per_label: int = 5, labels=("A", "B", "C")) -> Manifest:
    utts = [Utterance(key=f"s{s:02d}-{lab}-{i}", path=f"s{s:02d}/{lab}{i}.wav", label=lab,
                      speaker=f"s{s:02d}")
            for s in range(n_speakers) for lab in labels for i in range(per_label)]
    return Manifest("toy", "/tmp", utts, tuple(labels))


def test_stratified_split_holds_twenty_percent_of_every_label():
    labels = {f"k{i}": ("x" if i < 50 else "y" if i < 60 else "z") for i in range(61)}
    rest, held = stratified_split(list(labels), labels, 0.2, seed=3)
    counts = Counter(labels[k] for k in held)
    assert counts == {"x": 10, "y": 2}  # z has one member: it stays in train
    assert set(rest) | set(held) == set(labels) and not set(rest) & set(held)
    assert stratified_split(list(labels), labels, 0.2, seed=3) == (rest, held)
    assert stratified_split(list(labels), labels, 0.2, seed=4)[1] != held


@pytest.mark.parametrize("n", [4, 5, 6])
def test_four_to_six_speakers_leave_one_out(n):
    m = manifest_of(n)
    folds = speaker_independent_folds(m, seed=0)
    assert len(folds) == n
    assert [sorted({m[k].speaker for k in f.test}) for f in folds] == [[f"s{i:02d}"] for i in
                                                                       range(n)]
    assert not any(leakage(m, folds).values())


def test_many_speakers_groups_of_about_four_and_no_leakage():
    m = manifest_of(24)
    folds = speaker_independent_folds(m, seed=0)
    assert len(folds) == 6
    groups = [sorted({m[k].speaker for k in f.test}) for f in folds]
    assert all(len(g) == 4 for g in groups)
    assert sorted(s for g in groups for s in g) == m.speakers()
    assert not any(leakage(m, folds).values())
    for f in folds:  # validation speakers are held out of train too
        assert not {m[k].speaker for k in f.valid} & {m[k].speaker for k in f.train}
        assert f.valid_rule == "held-out-speakers"
        assert sorted(f.train + f.valid + f.test) == sorted(m.keys)


def test_speaker_groups_depend_on_seed_only():
    m = manifest_of(12)
    assert speaker_groups(m, seed=1) == speaker_groups(m, seed=1)
    assert speaker_groups(m, seed=1) != speaker_groups(m, seed=2)


def test_fewer_than_four_speakers_is_refused():
    with pytest.raises(EmoboxUsageError, match="at least 4 speakers; this corpus has 3"):
        speaker_independent_folds(manifest_of(3), seed=0)


def test_no_real_speaker_ids_is_refused():
    with pytest.raises(EmoboxUsageError, match="no real speaker ids"):
        speaker_independent_folds(manifest_of(8), seed=0, has_speaker_ids=False)


def test_table_folds_follow_the_table_and_official_valid():
    m = manifest_of(4, per_label=2)
    keys = m.keys
    table = {k: FoldTableRow(test_fold=(1 if i % 4 == 0 else 0), valid=(i % 4 == 1))
             for i, k in enumerate(keys)}
    table[keys[2]] = FoldTableRow(test_fold=-1, valid=False)  # in no split
    (fold,) = table_folds(m, table, official_valid=True)
    assert set(fold.test) == {k for k in keys if table[k].test_fold == 1}
    assert set(fold.valid) == {k for k in keys if table[k].valid}
    assert keys[2] not in fold.train + fold.valid + fold.test
    assert fold.valid_rule == "official"


def test_fold_rejects_overlap():
    with pytest.raises(DataError, match="fold 2: 1 keys are in both train/test"):
        Fold(2, ("a", "b"), ("c",), ("b",))


def test_emobox_scheme_validation_is_a_seeded_stratified_fifth_of_train_never_test():
    m = manifest_of(4, per_label=10)  # 120 utterances, 3 labels
    table = {k: FoldTableRow(test_fold=1 + i % 2, valid=False) for i, k in enumerate(m.keys)}
    folds = table_folds(m, table, seed=7)
    assert len(folds) == 2
    for f in folds:
        assert f.valid_rule == "stratified-20%"
        assert not set(f.valid) & set(f.test) and not set(f.valid) & set(f.train)
        assert set(f.test) == {k for k in m.keys if table[k].test_fold == f.index}
        side = Counter(m[k].label for k in f.train + f.valid)
        held = Counter(m[k].label for k in f.valid)
        assert held == {lab: round(0.2 * n) for lab, n in side.items()}
    assert table_folds(m, table, seed=7) == folds
    assert table_folds(m, table, seed=8)[0].valid != folds[0].valid
