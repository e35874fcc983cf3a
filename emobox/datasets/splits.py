"""Folds: which utterances train, validate and test in each fold, and the rules that build them.

Two schemes exist for every corpus:

``emobox``
    EmoBox's published fold membership, key by key (a fold table shipped by the corpus plugin).
    Validation = the official dev split where the corpus has one, else a seeded, stratified 20%
    of the fold's training keys.
``speaker-independent``
    Built by rule from the speaker ids, seeded: 4-6 speakers -> leave one speaker out; more ->
    folds of about 4 speakers (at most ``max_folds`` folds), balanced in size and label mix; no
    speaker is ever in both train and test. Validation = held-out training speakers (about 20%),
    so that model selection is speaker-independent too. Impossible with fewer than 4 speakers
    or without real speaker ids, and the error says so.

All randomness is a seeded hash of (seed, salt, item), never global RNG state.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from emobox.errors import DataError, EmoboxUsageError
from emobox.datasets.manifest import Manifest

SCHEMES = ("emobox", "speaker-independent")
VALID_FRACTION = 0.2


@dataclass(frozen=True)
class Fold:
    """One fold: disjoint key sets. ``index`` is 1-based."""

    index: int
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]
    scheme: str = "emobox"
    valid_rule: str = "stratified-20%"  # official | stratified-20% | held-out-speakers

    def __post_init__(self) -> None:
        sets = [set(self.train), set(self.valid), set(self.test)]
        for (a, b), name in zip([(0, 1), (0, 2), (1, 2)],
                                ["train/valid", "train/test", "valid/test"]):
            both = sets[a] & sets[b]
            if both:
                raise DataError(f"fold {self.index}: {len(both)} keys are in both {name}, e.g. "
                                f"{sorted(both)[0]!r}")

    @property
    def name(self) -> str:
        return f"fold{self.index}"

    def role_of(self, key: str) -> str | None:
        for role in ("train", "valid", "test"):
            if key in getattr(self, role):
                return role
        return None


def seeded_order(items: Iterable[str], seed: int, salt: str = "") -> list[str]:
    """Items sorted by a hash of (seed, salt, item): a reproducible shuffle."""
    def h(item: str) -> str:
        return hashlib.sha256(f"{seed}\x1f{salt}\x1f{item}".encode()).hexdigest()
    return sorted(items, key=lambda x: (h(x), x))


def stratified_split(keys: Sequence[str], labels: Mapping[str, str], fraction: float,
                     seed: int, salt: str = "") -> tuple[list[str], list[str]]:
    """Split ``keys`` into (rest, held) with about ``fraction`` of every label held out.

    Per label, round(fraction * n) keys are held, at least one when the label has two or more.
    """
    by_label: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        by_label[labels[k]].append(k)
    held: set[str] = set()
    for label in sorted(by_label):
        members = seeded_order(by_label[label], seed, f"{salt}/{label}")
        n = len(members)
        take = int(math.floor(fraction * n + 0.5))
        if n >= 2:
            take = max(1, min(take, n - 1))
        else:
            take = 0
        held.update(members[:take])
    rest = [k for k in keys if k not in held]
    return rest, [k for k in keys if k in held]


def random_split(keys: Sequence[str], seed: int, train_share: float = 0.8
                 ) -> tuple[list[str], list[str]]:
    """Split ``keys`` into (train, valid) as EmoBox's ``dataset_prepare.split_sets`` does, not
    stratified: the indices 0..n-1 shuffled by Python's ``random`` seeded with ``seed``, the
    first ``int(n * 0.8)`` train and the rest validate (both kept in ``keys`` order). EmoBox
    drew over its train list's order with its script's seed (1234 in its README), so the
    draw matches EmoBox's key for key only for the same order and seed."""
    order = list(range(len(keys)))
    random.Random(seed).shuffle(order)
    n_train = int(len(keys) * train_share)
    train = set(order[:n_train])
    return ([k for i, k in enumerate(keys) if i in train],
            [k for i, k in enumerate(keys) if i not in train])


def with_random_valid(fold: Fold, order: Mapping[str, int], seed: int) -> Fold:
    """``fold`` with its stratified 20% validation replaced by EmoBox's random 20%
    (:func:`random_split` over its training side, in ``order``: key -> manifest position);
    official and held-out-speaker validation sets are kept."""
    if fold.valid_rule != "stratified-20%":
        return fold
    side = sorted(fold.train + fold.valid, key=lambda k: order[k])
    train, valid = random_split(side, seed)
    return Fold(fold.index, tuple(train), tuple(valid), fold.test, fold.scheme, "random-20%")


def speaker_groups(manifest: Manifest, seed: int = 0, max_folds: int = 6) -> list[list[str]]:
    """Test-speaker groups of the speaker-independent scheme (one group per fold)."""
    speakers = manifest.speakers()
    n = len(speakers)
    if n < 4:
        raise EmoboxUsageError(
            f"{manifest.corpus}: speaker-independent folds need at least 4 speakers; this corpus "
            f"has {n}. Use the emobox scheme (speaker-dependent for this corpus).")
    if n <= 6:
        return [[s] for s in speakers]
    n_folds = max(2, min(n // 4, max_folds))
    counts: dict[str, Counter] = {s: Counter() for s in speakers}
    for u in manifest:
        if u.speaker is not None:
            counts[u.speaker][u.label] += 1
    total = Counter(u.label for u in manifest if u.speaker is not None)
    target = {lab: c / n_folds for lab, c in total.items()}
    order = seeded_order(speakers, seed, f"{manifest.corpus}/speaker-folds")
    order.sort(key=lambda s: -sum(counts[s].values()))  # big speakers first, ties by hash
    groups: list[list[str]] = [[] for _ in range(n_folds)]
    fold_counts = [Counter() for _ in range(n_folds)]
    for spk in order:
        fewest = min(len(g) for g in groups)
        candidates = [i for i, g in enumerate(groups) if len(g) == fewest]

        def cost(i: int) -> float:
            c = fold_counts[i] + counts[spk]
            return sum((c[lab] - target[lab]) ** 2 for lab in target)
        best = min(candidates, key=lambda i: (cost(i), i))
        groups[best].append(spk)
        fold_counts[best] += counts[spk]
    return [sorted(g) for g in groups]


def speaker_independent_folds(manifest: Manifest, seed: int = 0, max_folds: int = 6,
                              has_speaker_ids: bool = True) -> list[Fold]:
    if not has_speaker_ids:
        raise EmoboxUsageError(
            f"{manifest.corpus}: this corpus has no real speaker ids (its speaker field is not a "
            f"person), so speaker-independent folds cannot be built; use the emobox scheme")
    no_speaker = [u.key for u in manifest if u.speaker is None]
    if no_speaker:
        raise DataError(f"{manifest.corpus}: {len(no_speaker)} utterances have no speaker, e.g. "
                        f"{no_speaker[0]!r}; speaker-independent folds need every speaker")
    groups = speaker_groups(manifest, seed, max_folds)
    labels = {u.key: u.label for u in manifest}
    folds = []
    for i, group in enumerate(groups, start=1):
        test_spk = set(group)
        train_spk = sorted({u.speaker for u in manifest if u.speaker not in test_spk})
        test = [u.key for u in manifest if u.speaker in test_spk]
        train_keys = [u.key for u in manifest if u.speaker not in test_spk]
        if len(train_spk) >= 3:
            n_valid = max(1, int(math.floor(VALID_FRACTION * len(train_spk) + 0.5)))
            valid_spk = set(seeded_order(train_spk, seed, f"{manifest.corpus}/valid/{i}")[:n_valid])
            valid = [k for k in train_keys if manifest[k].speaker in valid_spk]
            train = [k for k in train_keys if manifest[k].speaker not in valid_spk]
            rule = "held-out-speakers"
        else:
            train, valid = stratified_split(train_keys, labels, VALID_FRACTION, seed,
                                            f"{manifest.corpus}/valid/{i}")
            rule = "stratified-20%"
        folds.append(Fold(i, tuple(train), tuple(valid), tuple(test), "speaker-independent",
                          rule))
    return folds


@dataclass(frozen=True)
class FoldTableRow:
    test_fold: int  # 1..n: test item of that fold; 0: train in every fold; -1: in no split
    valid: bool  # official validation item (train side)
    path: str = ""  # where the table expects the audio, relative to the corpus root ("" = unknown)


def read_fold_table(source: str | Path | bytes) -> dict[str, FoldTableRow]:
    """Read a fold table (TSV, optionally gzipped) with columns ``key test_fold valid``."""
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    else:
        data = source
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")), delimiter="\t")
    table = {}
    for r in reader:
        table[r["key"]] = FoldTableRow(int(r["test_fold"]), r.get("valid", "0") in ("1", "true"),
                                       r.get("path") or "")
    return table


def table_folds(manifest: Manifest, table: Mapping[str, FoldTableRow], seed: int = 0,
                official_valid: bool = False) -> list[Fold]:
    """Folds from a fold table; keys of the manifest that the table lacks are in no fold."""
    labels = {u.key: u.label for u in manifest}
    keys = [u.key for u in manifest if u.key in table]
    n_folds = max((table[k].test_fold for k in keys), default=0)
    if n_folds < 1:
        raise DataError(f"{manifest.corpus}: the fold table puts no scanned utterance in a test "
                        f"set ({len(keys)} of {len(manifest)} scanned keys are listed)")
    folds = []
    for i in range(1, n_folds + 1):
        test = [k for k in keys if table[k].test_fold == i]
        train_side = [k for k in keys if table[k].test_fold not in (i, -1)]
        if official_valid:
            valid = [k for k in train_side if table[k].valid]
            train = [k for k in train_side if not table[k].valid]
            rule = "official"
        else:
            train, valid = stratified_split(train_side, labels, VALID_FRACTION, seed,
                                            f"{manifest.corpus}/valid/{i}")
            rule = "stratified-20%"
        folds.append(Fold(i, tuple(train), tuple(valid), tuple(test), "emobox", rule))
    return folds


def leakage(manifest: Manifest, folds: Sequence[Fold]) -> dict[int, list[str]]:
    """Speakers present in both the train side (train + valid) and test, per fold index."""
    out = {}
    for fold in folds:
        test_spk = {manifest[k].speaker for k in fold.test} - {None}
        train_spk = {manifest[k].speaker for k in fold.train + fold.valid} - {None}
        out[fold.index] = sorted(test_spk & train_spk)
    return out


def class_warnings(manifest: Manifest, folds: Sequence[Fold]) -> list[str]:
    """What keeps a class from being learned or tested: a class with a single utterance in the
    corpus, and per fold a class with no utterance on the fold's training side (the head cannot
    predict it there). Warnings, not errors: the folds are the corpus's own."""
    out = []
    counts = Counter(u.label for u in manifest)
    for label in manifest.labels:
        if counts[label] == 1:
            key = next(u.key for u in manifest if u.label == label)
            out.append(f"class {label!r} has a single utterance ({key!r}): it cannot be both "
                       f"trained on and tested")
    for fold in folds:
        trained = {manifest[k].label for k in fold.train if k in manifest}
        for label in manifest.labels:
            if label in trained or not counts[label]:
                continue
            n_test = sum(1 for k in fold.test if k in manifest and manifest[k].label == label)
            n_valid = sum(1 for k in fold.valid if k in manifest and manifest[k].label == label)
            out.append(f"fold {fold.index}: class {label!r} has no training utterance ({n_test} "
                       f"in test, {n_valid} in validation): the head cannot learn it in this "
                       f"fold")
    return out


def select_folds(folds: Sequence[Fold], wanted: Sequence[int] | None) -> list[Fold]:
    if not wanted:
        return list(folds)
    by_index = {f.index: f for f in folds}
    missing = [w for w in wanted if w not in by_index]
    if missing:
        raise EmoboxUsageError(f"no fold {missing[0]}: this corpus has folds "
                               f"1..{len(folds)} in this scheme")
    return [by_index[w] for w in wanted]
