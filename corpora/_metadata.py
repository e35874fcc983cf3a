"""Shared machinery of the EmoBox corpora labelled by metadata files (not by file names).

These adapters read labels and speakers from the corpus's own metadata (CSV, JSON, YAML, text
lists) exactly where EmoBox did, match every metadata entry to its audio file, and report both
kinds of mismatch in ``corpus.skipped``: entries whose audio is missing, and audio files no entry
names. Nothing is dropped silently.

Fold membership (scheme ``emobox``) is EmoBox's published table, key for key: a scanned utterance
the table lacks (a clip EmoBox could not load, e.g. MELD's dev ``dia110_utt7``) is in no split,
and ``emobox corpora check`` lists it. The one exception is a part the table does not list at all
(MSP-Podcast's training turns, see :meth:`MetadataCorpus.unlisted_fold_row`); EmoBox's test sets
are never changed.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from emobox import DataError, FoldTableRow, Utterance
from emobox.datasets.corpus import AUDIO_SUFFIXES, nfc

from ._emobox import EmoboxCorpus

TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


class AudioIndex:
    """The audio files under a corpus root, found by relative path whatever the case.

    Lookups are exact first, then case-insensitive (``X.WAV`` answers ``X.wav``), after Unicode
    NFC normalisation. Files never looked up are the ones no metadata entry names.
    """

    def __init__(self, paths: Iterable[str]):
        self.paths = list(paths)
        self._exact = {nfc(p): p for p in self.paths}
        self._folded: dict[str, str] = {}
        self._by_name: dict[str, list[str]] = {}
        for p in self.paths:
            folded = nfc(p).casefold()
            self._folded.setdefault(folded, p)
            self._by_name.setdefault(folded.rsplit("/", 1)[-1], []).append(p)
        self.used: set[str] = set()

    def find(self, rel: str) -> str | None:
        """The actual relative path of ``rel``, or None when no such file exists."""
        key = nfc(rel)
        path = self._exact.get(key) or self._folded.get(key.casefold())
        if path is not None:
            self.used.add(path)
        return path

    def find_any(self, *candidates: str) -> str | None:
        for cand in candidates:
            path = self.find(cand)
            if path is not None:
                return path
        return None

    def by_name(self, name: str) -> list[str]:
        """Every file called ``name`` (case-insensitive), wherever it lies; not marked used."""
        return list(self._by_name.get(nfc(name).casefold(), ()))

    def mark_used(self, path: str) -> None:
        self.used.add(path)

    def unused(self) -> list[str]:
        return [p for p in self.paths if p not in self.used]


class MetadataCorpus(EmoboxCorpus):
    """An EmoBox corpus whose labels come from metadata files."""

    audio_suffixes: ClassVar[tuple[str, ...]] = AUDIO_SUFFIXES

    # -- metadata files ----------------------------------------------------------------------
    def metadata_file(self, *candidates: str, what: str = "metadata file") -> Path:
        """The first of ``candidates`` (relative to the root, any case) that exists.

        A missing file is a :class:`DataError` naming every place looked at.
        """
        found = self.find_file(*candidates)
        if found is None:
            where = " or ".join(str(self.root / c) for c in candidates)
            raise DataError(f"{self.name}: {what} not found: looked for {where}"
                            + (f"; the corpus root should contain {self.expected_top_level}"
                               if self.expected_top_level else ""),
                            path=str(self.root / candidates[0]))
        return found

    def rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def read_text(self, path: Path, encodings: Sequence[str] = TEXT_ENCODINGS) -> str:
        """A text file's content; tries ``encodings`` in turn (UTF-8 first)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{self.name}: cannot read {path}: {exc.strerror}", path=str(path))
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return data.decode("utf-16")
        for enc in encodings:
            try:
                return data.decode(enc)
            except UnicodeDecodeError:
                continue
        raise DataError(f"{self.name}: {path} is not text in any of {', '.join(encodings)}",
                        path=str(path))

    def read_table(self, path: Path, required: Sequence[str], delimiter: str = ",",
                   encodings: Sequence[str] = TEXT_ENCODINGS) -> list[tuple[int, dict]]:
        """Rows of a CSV file as (line number, row dict); required columns are checked."""
        text = self.read_text(path, encodings)
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(f"{self.name}: {path} lacks column(s) {', '.join(missing)} "
                            f"(found: {', '.join(columns) or 'no header'})", path=str(path))
        reader.fieldnames = columns
        rows = []
        for row in reader:
            if not any((v or "").strip() for k, v in row.items() if k is not None):
                continue  # blank line
            rows.append((reader.line_num, {k: (v.strip() if isinstance(v, str) else v)
                                           for k, v in row.items() if k is not None}))
        return rows

    def int_field(self, row: Mapping[str, str], column: str, path: Path, lineno: int) -> int:
        try:
            return int(row[column])
        except (TypeError, ValueError):
            raise DataError(f"{self.name}: {path}:{lineno}: {column} is {row[column]!r}, not a "
                            f"whole number", path=str(path))

    def load_json(self, path: Path) -> Any:
        import json

        try:
            return json.loads(self.read_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.name}: {path} is not valid JSON (line {exc.lineno}: "
                            f"{exc.msg})", path=str(path))

    # -- audio ---------------------------------------------------------------------------------
    def audio_index(self, under: str = "", suffixes: Sequence[str] | None = None) -> AudioIndex:
        if under and not (self.root / under).is_dir():
            return AudioIndex(())
        return AudioIndex(self.iter_files(suffixes or self.audio_suffixes, under))

    def report_unused(self, index: AudioIndex, source: str) -> None:
        for path in index.unused():
            self.skipped.append((path, f"audio file has no entry in {source}"))

    def report_missing(self, expected: str, source: str) -> None:
        self.skipped.append((expected, f"listed in {source} but the audio file is missing"))

    # -- folds ---------------------------------------------------------------------------------
    def fold_table(self) -> dict[str, FoldTableRow]:
        table = super().fold_table()
        for utt in self.manifest:
            if utt.key not in table:
                row = self.unlisted_fold_row(utt)
                if row is not None:
                    table[utt.key] = row
        return table

    def unlisted_fold_row(self, utt: Utterance) -> FoldTableRow | None:
        """Fold row of a scanned utterance EmoBox's table lacks; None = in no split.

        EmoBox's tables list every utterance it used, so by default such an utterance is left
        out of every split. An adapter whose table omits a whole part of the corpus (MSP-Podcast:
        only the test and validation turns are published) places that part here, never into a
        test set.
        """
        return None
