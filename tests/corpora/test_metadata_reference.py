"""The corpora labelled by metadata files: a native-layout fixture built from EVERY reference row
scans to EmoBox's keys, labels and speakers, and folds to EmoBox's membership, key by key;
the same with a cluttered download."""

from __future__ import annotations

import pytest

from emobox.corpora._emobox import emobox_speaker, reference_rows
from emobox.plugins import get_registry

METADATA_CORPORA = ["emns", "emodb", "emozionalmente", "esd", "iemocap", "m3ed", "meld",
                    "mer2023", "msppodcast", "pavoque", "resd", "shemo"]


def assert_matches_reference(corpus, rows, extras):
    cls = type(corpus)
    manifest = corpus.manifest
    ref = {r["key"]: r for r in rows}
    missing = sorted(set(ref) - set(manifest.keys))
    unexpected = sorted(set(manifest.keys) - set(ref) - set(extras))
    assert not missing and not unexpected, (missing[:5], unexpected[:5], corpus.skipped[:5])
    wrong_label = [(k, manifest[k].label, r["emotion"]) for k, r in ref.items()
                   if manifest[k].label != cls.reference_label_fixes.get(r["emotion"], r["emotion"])]
    assert not wrong_label, wrong_label[:5]
    wrong_speaker = [(k, emobox_speaker(manifest[k]), r["speaker"]) for k, r in ref.items()
                     if r["speaker"] and emobox_speaker(manifest[k]) != r["speaker"]]
    assert not wrong_speaker, wrong_speaker[:5]
    expected = {k: cls.reference_fold_row(r) for k, r in ref.items()} | dict(extras)
    folds = corpus.folds()
    assert len(folds) == max(row.test_fold for row in expected.values())
    for fold in folds:
        test = {k for k, row in expected.items() if row.test_fold == fold.index}
        train_side = {k for k, row in expected.items() if row.test_fold not in (fold.index, -1)}
        assert set(fold.test) == test
        assert set(fold.train) | set(fold.valid) == train_side
        if cls.official_valid:
            assert set(fold.valid) == {k for k in train_side if expected[k].valid}


@pytest.mark.parametrize("clutter", [False, True], ids=["native", "cluttered"])
@pytest.mark.parametrize("name", METADATA_CORPORA)
def test_fixture_scans_to_the_reference(name, clutter, tmp_path):
    spec = get_registry().corpus(name)
    rows = reference_rows(name)
    extras = spec.build.make_fixture(tmp_path, rows, clutter=clutter)
    corpus = spec.build(tmp_path)
    assert_matches_reference(corpus, rows, extras)
    if clutter:
        assert corpus.root != tmp_path  # found inside the extra top folder
        assert not any("__MACOSX" in p or "/._" in p for p, _ in corpus.skipped)
