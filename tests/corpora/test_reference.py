"""Every EmoBox corpus adapter against EmoBox's published table, utterance by utterance.

For each registered corpus with a reference table, a fixture tree in the corpus's native layout
is written from ALL of the table's rows (tiny audio, native metadata files), scanned, and the
manifest's keys, paths, speakers (EmoBox's, where the adapter corrects them), labels and the
``emobox`` scheme's folds must equal the table exactly; the same again with the corpus inside an
extra top folder and the clutter of real downloads around it.
"""

from __future__ import annotations

import importlib
import os
from collections import defaultdict

import pytest

from emobox import EmoboxUsageError
from emobox.datasets.corpus import nfc
from emobox.corpora import _emobox
from emobox.corpora._emobox import emobox_speaker, reference_rows
from emobox.datasets.splits import leakage

from corpus_fixtures import REFERENCE_CORPORA, build_fixture

NAMES = sorted(REFERENCE_CORPORA)


def _same_path(a: str, b: str) -> bool:
    """Equal after NFC normalisation, the suffix compared case-insensitively."""
    a, b = nfc(a), nfc(b)
    ha, _, sa = a.rpartition(".")
    hb, _, sb = b.rpartition(".")
    return ha == hb and sa.lower() == sb.lower()


def _diff(what: str, pairs: list[tuple[str, object, object]]) -> str:
    shown = "; ".join(f"{k}: expected {e!r}, got {g!r}" for k, e, g in pairs[:5])
    return f"{len(pairs)} utterances with the wrong {what}: {shown}"


def assert_matches_reference(corpus, rows, extras=None) -> None:
    """``extras``: fold rows of utterances the fixture added beyond the reference rows."""
    cls = type(corpus)
    manifest = corpus.manifest
    ref = {r["key"]: r for r in rows}
    extras = dict(extras or {})
    missing = sorted(set(ref) - set(manifest.keys))
    extra = sorted(set(manifest.keys) - set(ref) - set(extras))
    assert not missing and not extra, (
        f"{len(missing)} reference keys not scanned (e.g. {missing[:3]}), {len(extra)} scanned "
        f"keys not in the reference (e.g. {extra[:3]}); skipped: {corpus.skipped[:5]}")

    wrong = defaultdict(list)
    for u in manifest:
        if u.key in extras:
            continue
        r = ref[u.key]
        if not _same_path(u.path, r["path"]):
            wrong["path"].append((u.key, r["path"], u.path))
        if r["speaker"]:  # a blank reference speaker means EmoBox recorded none
            if emobox_speaker(u) != r["speaker"]:
                wrong["speaker"].append((u.key, r["speaker"], emobox_speaker(u)))
        if u.speaker is None or u.speaker == "":
            wrong["real speaker"].append((u.key, "a speaker id", u.speaker))
        if u.label != cls.reference_label(r):
            wrong["label"].append((u.key, cls.reference_label(r), u.label))
        if u.channel is not None and u.channel != int(r["channel"]):
            wrong["channel"].append((u.key, int(r["channel"]), u.channel))
        for field in ("start", "end"):
            value = getattr(u, field)
            if value is not None and abs(value - float(r[field])) > 1e-6:
                wrong[field].append((u.key, float(r[field]), value))
    assert not wrong, " | ".join(_diff(w, p) for w, p in wrong.items())
    assert set(manifest.labels) >= {cls.reference_label(r) for r in rows}

    folds = corpus.folds("emobox")
    expected = {k: cls.reference_fold_row(r) for k, r in ref.items()} | extras
    assert len(folds) == max(int(r["test_fold"]) for r in rows)
    for fold in folds:
        test = {k for k, r in ref.items() if int(r["test_fold"]) == fold.index}
        train_side = {k for k, row in expected.items() if row.test_fold not in (fold.index, -1)}
        assert set(fold.test) == test, f"fold {fold.index}: test set differs from EmoBox's"
        used = set(fold.train) | set(fold.valid)
        assert used == train_side, (
            f"fold {fold.index}: train side differs: {len(used - train_side)} extra "
            f"(e.g. {sorted(used - train_side)[:3]}), {len(train_side - used)} missing "
            f"(e.g. {sorted(train_side - used)[:3]})")
        if cls.official_valid:
            official = {k for k in train_side if expected[k].valid}
            assert set(fold.valid) == official, f"fold {fold.index}: not the official dev set"
            assert fold.valid_rule == "official"
        else:
            assert fold.valid_rule == "stratified-20%"
            assert abs(len(fold.valid) - 0.2 * len(used)) <= len(manifest.labels) + 1


@pytest.mark.parametrize("name", NAMES)
def test_clean_tree_equals_reference(name, scanned):
    corpus, extras = scanned(name)
    assert_matches_reference(corpus, reference_rows(type(corpus).table_name()), extras)


@pytest.mark.parametrize("name", NAMES)
def test_a_file_the_reference_does_not_list_is_in_no_split(name, scanned, monkeypatch):
    """EmoBox's tables leave out what it could not load (MELD's dev ``dia110_utt7``): in scheme
    emobox a file present but unlisted is in no split, whichever part of the corpus it is in."""
    corpus, _ = scanned(name)
    cls = type(corpus)
    rows = reference_rows(cls.table_name())
    before = corpus.folds("emobox")
    first_of = {}  # one key per part: train only (0), and the test set of every fold
    for r in rows:
        first_of.setdefault(cls.reference_fold_row(r).test_fold, r["key"])
    dropped = {k for part, k in first_of.items() if part != -1}
    assert dropped
    lacking = tuple(r for r in rows if r["key"] not in dropped)
    monkeypatch.setattr(_emobox, "reference_rows",
                        lambda n: lacking if n == cls.table_name() else reference_rows(n))
    after = corpus.folds("emobox")
    assert len(after) == len(before)
    for b, a in zip(before, after):
        assert not dropped & (set(a.train) | set(a.valid) | set(a.test)), f"fold {a.index}"
        assert set(a.test) == set(b.test) - dropped
        assert set(a.train) | set(a.valid) == (set(b.train) | set(b.valid)) - dropped
    out = corpus.out_of_scheme()
    assert dropped <= set(out)
    assert all("not in the corpus's published fold table" in out[k] for k in dropped)


@pytest.mark.parametrize("name", NAMES)
def test_cluttered_tree_equals_reference(name, tmp_path):
    corpus, extras = build_fixture(name, tmp_path, clutter=True)
    assert corpus.root.parent == tmp_path  # the extra top folder was found
    assert_matches_reference(corpus, reference_rows(type(corpus).table_name()), extras)
    paths = [nfc(u.path) for u in corpus.manifest]
    assert not any("__MACOSX" in p or "/._" in p or p.startswith("._") or "linked" in p
                   for p in paths)
    assert not any("__MACOSX" in p or "/._" in p for p, _ in corpus.skipped)  # junk is silent
    outside = [p for p, why in corpus.skipped if "outside the corpus root" in why]
    assert outside, f"the links leading outside the root were not reported: {corpus.skipped[:5]}"
    elsewhere = os.path.realpath(tmp_path / ".elsewhere")
    for u in corpus.manifest:  # nothing was read through a link leading out of the root
        assert not os.path.realpath(corpus.root / u.path).startswith(elsewhere)


@pytest.mark.parametrize("name", NAMES)
def test_missing_root_says_where_and_what(name, tmp_path):
    cls = REFERENCE_CORPORA[name]
    with pytest.raises(EmoboxUsageError) as err:
        cls(tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "does not exist" in msg
    assert cls.expected_top_level and cls.expected_top_level in msg
    (tmp_path / "wrong" / "some folder").mkdir(parents=True)
    (tmp_path / "wrong" / "notes.txt").write_text("not a corpus")
    with pytest.raises(EmoboxUsageError, match="does not look like this corpus"):
        cls(tmp_path / "wrong")


@pytest.mark.parametrize("name", NAMES)
def test_speaker_independent_folds_never_leak(name, scanned):
    corpus, _ = scanned(name)
    manifest = corpus.manifest
    n_speakers = len(manifest.speakers())
    if not corpus.has_speaker_ids:
        with pytest.raises(EmoboxUsageError, match="no real speaker ids"):
            corpus.folds("speaker-independent")
        return
    if n_speakers < 4:
        with pytest.raises(EmoboxUsageError, match=f"at least 4 speakers; this corpus has "
                                                   f"{n_speakers}"):
            corpus.folds("speaker-independent")
        return
    folds = corpus.folds("speaker-independent", seed=3)
    assert all(not leaked for leaked in leakage(manifest, folds).values())
    if n_speakers <= 6:  # leave one speaker out
        assert len(folds) == n_speakers and all(len({manifest[k].speaker for k in f.test}) == 1
                                                for f in folds)
    else:  # groups of about 4 speakers, at most max_folds folds
        assert len(folds) == max(2, min(n_speakers // 4, corpus.max_folds))
    tested = [k for f in folds for k in f.test]
    assert sorted(tested) == sorted(manifest.keys)  # every utterance is tested exactly once
    for f in folds:
        spk = {role: {manifest[k].speaker for k in getattr(f, role)}
               for role in ("train", "valid", "test")}
        assert not spk["valid"] & spk["test"]
        if f.valid_rule == "held-out-speakers":
            assert not spk["valid"] & spk["train"]
        assert set(f.train) | set(f.valid) | set(f.test) == set(manifest.keys)


def test_all_32_emobox_corpora_are_registered():
    from emobox.datasets.corpus_tools import paper_tables
    from emobox.plugin.registry import Registry

    registry = Registry()
    emobox_corpora = paper_tables()["ids"]["corpora"]
    assert len(emobox_corpora) == 32
    assert sorted(REFERENCE_CORPORA) == sorted(emobox_corpora)
    for name in emobox_corpora:
        spec = registry.corpus(name)
        assert spec.distribution == "emobox" and spec.languages and spec.license
        assert spec.expected_top_level and spec.reference is not None
        assert spec.reference()["utterances"] == len(reference_rows(name))
        assert spec.description
        card = importlib.import_module(spec.build.__module__).__doc__ or ""
        assert len(card) > 400, f"{name}: the module docstring is the corpus card"
