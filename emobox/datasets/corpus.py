"""The corpus contract: scan a local copy of a corpus in its native layout -> manifest -> folds.

A corpus adapter subclasses :class:`Corpus`, sets its class attributes (the corpus card) and
implements :meth:`Corpus.scan`. Scanning is pure: it reads the download as it is and never
touches the network, resamples or caches. It tolerates what real downloads look like: the
corpus inside one extra top folder, ``__MACOSX/`` copies, ``.DS_Store`` and other stray files,
upper-case extensions, read-only folders; it never follows a path outside the root.
Whatever it skips on purpose is recorded in :attr:`Corpus.skipped` so that nothing is dropped
silently.
"""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator, Mapping, Sequence

from emobox.errors import DataError, EmoboxUsageError
from emobox.datasets.manifest import Manifest, Utterance
from emobox.datasets.splits import (SCHEMES, Fold, FoldTableRow, leakage, speaker_independent_folds,
                                    table_folds)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".mp4", ".webm", ".avi", ".aiff",
                  ".aif")
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__MACOSX", ".git", ".svn", "@eaDir", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class ReferenceTable:
    """A corpus as published, known without its audio: every key's class, its fold membership
    in scheme ``emobox`` and its duration. Corpus plugins offer it through
    ``CorpusSpec.reference_table``; submission checks and scoring read it."""

    corpus: str
    labels: tuple[str, ...]  # the class set
    label: Mapping[str, str]  # key -> class
    folds: Mapping[str, FoldTableRow]  # key -> membership (test_fold, valid)
    duration: Mapping[str, float] = field(default_factory=dict)  # key -> seconds

    @property
    def n_folds(self) -> int:
        return max((r.test_fold for r in self.folds.values()), default=0)

    def test_keys(self, fold: int) -> list[str]:
        return [k for k, r in self.folds.items() if r.test_fold == fold]

    def train_keys(self, fold: int) -> list[str]:
        """Keys on the training side (train or valid) of ``fold``."""
        return [k for k, r in self.folds.items() if r.test_fold not in (fold, -1)]


def nfc(text: str) -> str:
    """Unicode NFC form: names decomposed by some unzip tools (e.g. 'é' as e + U+0301) compare equal."""
    return unicodedata.normalize("NFC", text)


class Corpus:
    """Base class of corpus adapters."""

    name: ClassVar[str] = ""
    languages: ClassVar[tuple[str, ...]] = ()
    labels: ClassVar[tuple[str, ...]] = ()  # canonical classes, after the label map
    label_map: ClassVar[Mapping[str, str]] = {}  # raw label -> class
    dropped_labels: ClassVar[frozenset[str]] = frozenset()  # raw labels excluded on purpose
    has_speaker_ids: ClassVar[bool] = True  # False when the speaker field is not a person
    official_valid: ClassVar[bool] = False  # the emobox fold table marks official dev items
    expected_top_level: ClassVar[str] = ""  # what the root contains, for error messages
    markers: ClassVar[tuple[str, ...]] = ()  # glob patterns matching under a correct root
    max_folds: ClassVar[int] = 6  # cap of the speaker-independent scheme's fold count
    # a corpus EmoBox prepared: scheme ``emobox`` reads the channel EmoBox's extraction read
    # (the one its table records, else the first) instead of mixing the channels down
    emobox_channels: ClassVar[bool] = False

    def __init__(self, root: str | Path):
        self.root = self.locate_root(Path(root).expanduser())
        self.skipped: list[tuple[str, str]] = []  # (relative path, reason)
        self._manifest: Manifest | None = None

    # -- to implement ------------------------------------------------------------------------
    def scan(self) -> Manifest:
        """Read the corpus at ``self.root`` into a manifest (keys unique, labels canonical)."""
        raise NotImplementedError

    def fold_table(self) -> Mapping[str, FoldTableRow] | None:
        """EmoBox's published fold membership (scheme ``emobox``); None = build by rule."""
        return None

    # -- provided ----------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = self.scan()
        return self._manifest

    def manifest_for(self, scheme: str = "emobox") -> Manifest:
        """The manifest whose audio a run in ``scheme`` reads (features are extracted from it).

        In scheme ``emobox``, a corpus EmoBox prepared (``emobox_channels``) reads the channel
        EmoBox's extraction read, ``wav[channel - 1]`` of the channel its table records: that
        recorded channel where the scan set one (MELD), else the first. In other schemes, and
        for other corpora, a multi-channel file is mixed down (``channel`` None). The channel
        is part of the manifest's hash and so of the feature store's key: runs in different
        schemes never share features read from different channels."""
        manifest = self.manifest
        if (scheme != "emobox" or not self.emobox_channels
                or all(u.channel is not None for u in manifest)):
            return manifest
        utts = [u if u.channel is not None else dataclasses.replace(u, channel=1)
                for u in manifest]
        return Manifest(manifest.corpus, manifest.root, utts, manifest.labels)

    def folds(self, scheme: str = "emobox", seed: int = 0,
              manifest: Manifest | None = None) -> list[Fold]:
        manifest = manifest or self.manifest
        if scheme not in SCHEMES:
            raise EmoboxUsageError(f"unknown partition scheme {scheme!r}; use one of "
                                   f"{', '.join(SCHEMES)}")
        if scheme == "speaker-independent":
            return speaker_independent_folds(manifest, seed, self.max_folds, self.has_speaker_ids)
        table = self.fold_table()
        if table is None:  # no published folds: scheme emobox is speaker-independent too
            try:
                return speaker_independent_folds(manifest, seed, self.max_folds,
                                                 self.has_speaker_ids)
            except EmoboxUsageError as exc:
                raise self._no_folds(manifest) from exc
        return table_folds(manifest, table, seed, self.official_valid)

    def _no_folds(self, manifest: Manifest) -> EmoboxUsageError:
        why = ("it has no real speaker ids" if not self.has_speaker_ids else
               f"it has {len(manifest.speakers())} speakers and they need at least 4")
        return EmoboxUsageError(
            f"corpus {self.name!r} publishes no fold table, so scheme emobox builds "
            f"speaker-independent folds, which it cannot give: {why} (its adapter must define "
            f"its folds: override fold_table() or folds())")

    def out_of_scheme(self) -> dict[str, str]:
        """Scanned utterances that scheme ``emobox`` puts in no split, with the reason: those
        the published fold table lacks (files present that EmoBox did not list, e.g. a clip it
        could not load) and those it lists in no split. Empty for a corpus without a table."""
        table = self.fold_table()
        if table is None:
            return {}
        out = {}
        for utt in self.manifest:
            row = table.get(utt.key)
            if row is None:
                out[utt.key] = "not in the corpus's published fold table (scheme emobox)"
            elif row.test_fold == -1:
                out[utt.key] = "in no split of the corpus's published fold table (scheme emobox)"
        return out

    @property
    def speaker_independent(self) -> bool:
        """Whether the default (emobox) scheme keeps speakers apart in every fold."""
        if not self.has_speaker_ids:
            return False
        return not any(leakage(self.manifest, self.folds()).values())

    def map_label(self, raw: str, path: str) -> str | None:
        """The class of raw label ``raw`` (None for a deliberately dropped label).

        An unknown raw label is a :class:`DataError` naming the file and the label.
        """
        if raw in self.dropped_labels:
            return None
        if raw in self.label_map:
            return self.label_map[raw]
        if not self.label_map and raw in self.labels:
            return raw
        raise DataError(f"{self.name}: unknown emotion label {raw!r} in {self.root / path} "
                        f"(known: {', '.join(sorted(self.label_map) or self.labels)})",
                        path=str(self.root / path))

    def make_manifest(self, utterances: Sequence[Utterance]) -> Manifest:
        return Manifest(self.name, self.root, list(utterances), tuple(self.labels))

    # -- root and file discovery ---------------------------------------------------------------
    @classmethod
    def locate_root(cls, root: Path) -> Path:
        """The folder holding the corpus: ``root`` itself, or its single meaningful subfolder."""
        if not root.exists():
            raise EmoboxUsageError(_missing_root_message(cls, root, "does not exist"))
        if not root.is_dir():
            raise EmoboxUsageError(_missing_root_message(cls, root, "is not a folder"))
        if not cls.markers or _has_markers(root, cls.markers):
            return root
        subdirs = [d for d in _listdir(root) if (root / d).is_dir() and not _is_junk(d)]
        if len(subdirs) == 1 and _has_markers(root / subdirs[0], cls.markers):
            return root / subdirs[0]
        raise EmoboxUsageError(_missing_root_message(cls, root, "does not look like this corpus"))

    def iter_files(self, suffixes: Sequence[str] = AUDIO_SUFFIXES, under: str = "") -> Iterator[str]:
        """Relative POSIX paths of the files under ``root/under`` with one of ``suffixes``.

        Sorted, case-insensitive on the suffix, skipping junk (``__MACOSX``, dot files, AppleDouble
        ``._*`` files) and any link that leads outside the root (recorded in ``skipped``).
        """
        base = self.root / under if under else self.root
        root_real = os.path.realpath(self.root)
        suffixes = tuple(s.lower() for s in suffixes)
        found: list[str] = []

        def onerror(err: OSError) -> None:
            self.skipped.append((os.path.relpath(err.filename or str(base), self.root),
                                 f"unreadable folder: {err.strerror}"))

        for dirpath, dirnames, filenames in os.walk(base, onerror=onerror, followlinks=False):
            kept = []
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if _is_junk(d):
                    continue
                if os.path.islink(full):
                    rel = os.path.relpath(full, self.root)
                    if _inside(os.path.realpath(full), root_real):
                        self.skipped.append((rel, "symbolic link to a folder (not followed)"))
                    else:
                        self.skipped.append((rel, "link leads outside the corpus root"))
                    continue
                kept.append(d)
            dirnames[:] = sorted(kept)
            for f in filenames:
                if _is_junk(f) or not f.lower().endswith(suffixes):
                    continue
                full = os.path.join(dirpath, f)
                rel = Path(os.path.relpath(full, self.root)).as_posix()
                if os.path.islink(full):
                    if not _inside(os.path.realpath(full), root_real):
                        self.skipped.append((rel, "link leads outside the corpus root"))
                        continue
                    if not os.path.exists(full):
                        self.skipped.append((rel, "broken symbolic link"))
                        continue
                found.append(rel)
        return iter(sorted(found))

    def find_file(self, *candidates: str) -> Path | None:
        """The first existing file among relative ``candidates`` (matched case-insensitively)."""
        for cand in candidates:
            path = self.root / cand
            if path.is_file():
                return path
            parent = path.parent
            if parent.is_dir():
                low = path.name.lower()
                for name in _listdir(parent):
                    if name.lower() == low and (parent / name).is_file():
                        return parent / name
        return None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _is_junk(name: str) -> bool:
    return name in JUNK_NAMES or name in JUNK_DIRS or name.startswith(".")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _has_markers(root: Path, markers: Sequence[str]) -> bool:
    return any(next(iter(root.glob(m)), None) is not None for m in markers)


def _missing_root_message(cls: type[Corpus], root: Path, what: str) -> str:
    msg = f"corpus {cls.name!r}: root {root} {what}"
    if cls.expected_top_level:
        msg += f"; its top level should contain {cls.expected_top_level}"
    msg += (f". Pass --root DIR or put the corpus at $EMOBOX_DATA/{cls.name} (where to get it "
            f"and its layout, see: emobox corpora info {cls.name})")
    return msg
