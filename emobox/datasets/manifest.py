"""Manifests: one row per utterance of a corpus, as a file a user can open.

A manifest row says where the audio is (``path`` relative to the corpus root, optional 1-based
``channel`` and ``start``/``end`` seconds for segmented files), who speaks (``speaker``) and which
emotion it carries (``label``: the canonical class after the corpus's label map; ``raw_label``: as
the corpus writes it). ``key`` is the utterance's stable id (EmoBox's key for the EmoBox corpora).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterable, Iterator, Mapping, Sequence

from emobox.errors import DataError

SCHEMA_VERSION = 1
BASE_COLUMNS = ("key", "path", "speaker", "emotion", "emotion_raw", "channel", "start", "end")


@dataclass(frozen=True)
class Utterance:
    key: str
    path: str
    label: str
    speaker: str | None = None
    raw_label: str | None = None
    channel: int | None = None  # 1-based; None = mix all channels down
    start: float | None = None  # seconds; None = from the beginning
    end: float | None = None  # seconds; None = to the end
    duration: float | None = None
    custom: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """The utterances of one corpus, in a stable order, with the corpus's class list."""

    corpus: str
    root: Path
    utterances: list[Utterance]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._root_real: str | None = None
        seen: dict[str, Utterance] = {}
        for utt in self.utterances:
            problem = name_problem(utt.path)
            if problem:
                raise DataError(
                    f"{self.corpus}: the audio path {utt.path!r} of utterance {utt.key!r} "
                    f"{problem}; rename the file (emobox writes paths and keys to "
                    f"tab-separated files)", path=str(self.root / _printable(utt.path)))
            problem = name_problem(utt.key)
            if problem:
                raise DataError(
                    f"{self.root / utt.path}: its utterance key {utt.key!r} {problem}; rename "
                    f"the file, or give it a key in the corpus's metadata (emobox writes keys "
                    f"to tab-separated files)", path=str(self.root / utt.path))
            reason = path_escape_reason(utt.path)
            if reason:
                raise DataError(
                    f"{self.corpus}: utterance {utt.key!r} has audio path {utt.path!r}, which "
                    f"{reason}; manifest paths are relative to the corpus root {self.root} and "
                    f"must stay inside it", path=str(self.root))
            if utt.start is not None or utt.end is not None or utt.channel is not None:
                why = segment_problem(utt.start, utt.end, utt.channel)
                if why:
                    raise DataError(f"{self.corpus}: utterance {utt.key!r} ({utt.path}): {why}",
                                    path=str(self.root / utt.path))
            if utt.key in seen:
                raise DataError(
                    f"{self.corpus}: duplicate utterance key {utt.key!r} for "
                    f"{seen[utt.key].path!r} and {utt.path!r}", path=str(self.root / utt.path))
            seen[utt.key] = utt
        self._by_key = seen
        if not self.labels:
            self.labels = tuple(sorted({u.label for u in self.utterances}))
        else:
            unknown = {u.label for u in self.utterances} - set(self.labels)
            if unknown:
                bad = next(u for u in self.utterances if u.label in unknown)
                raise DataError(f"{self.corpus}: label {bad.label!r} of {bad.path!r} is not one of "
                                f"the corpus's classes {list(self.labels)}",
                                path=str(self.root / bad.path))

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __getitem__(self, key: str) -> Utterance:
        return self._by_key[key]

    @property
    def keys(self) -> list[str]:
        return [u.key for u in self.utterances]

    def subset(self, keys: Iterable[str]) -> "Manifest":
        return Manifest(self.corpus, self.root, [self._by_key[k] for k in keys], self.labels)

    def label_counts(self) -> Counter:
        return Counter(u.label for u in self.utterances)

    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances if u.speaker is not None})

    def audio_path(self, utt: Utterance) -> Path:
        """Where ``utt``'s audio is; a path that leads outside the corpus root through a
        symbolic link is a :class:`DataError` (a manifest never reads outside its root)."""
        path = self.root / utt.path
        if self._root_real is None:
            self._root_real = os.path.realpath(self.root)
        real = os.path.realpath(path)
        root = self._root_real.rstrip(os.sep) + os.sep
        if real != self._root_real and not real.startswith(root):
            raise DataError(f"{path}: leads outside the corpus root {self.root} (a symbolic link "
                            f"to {real}); utterance {utt.key!r} is refused: manifest paths must "
                            f"stay inside the corpus root", path=str(path))
        return path

    def content_hash(self) -> str:
        """Hash of what determines extracted features: keys, audio locations and segments."""
        h = hashlib.sha256()
        for u in self.utterances:
            h.update(f"{u.key}\t{u.path}\t{u.channel}\t{u.start}\t{u.end}\n".encode())
        return h.hexdigest()[:16]

    # -- files -----------------------------------------------------------------------------
    def to_tsv(self, path: str | Path | None = None,
               extra: Mapping[str, Mapping[str, Any]] | None = None,
               extra_columns: Sequence[str] = ()) -> str:
        """Write (or return) the manifest as TSV; ``extra[key][column]`` adds per-row columns."""
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
        writer.writerow(list(BASE_COLUMNS) + list(extra_columns))
        for u in self.utterances:
            row = [u.key, u.path, _fmt(u.speaker), u.label, _fmt(u.raw_label), _fmt(u.channel),
                   _fmt(u.start), _fmt(u.end)]
            row += [_fmt((extra or {}).get(u.key, {}).get(c)) for c in extra_columns]
            writer.writerow(row)
        text = buf.getvalue()
        if path is not None:
            from emobox.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_tsv(cls, path: str | Path, corpus: str, root: str | Path,
                 labels: Sequence[str] = ()) -> "Manifest":
        path = Path(path)
        utts = []
        for i, r in read_tsv_rows(path, ("key", "path", "emotion")):
            try:
                utts.append(utterance_from_row(r))
            except (ValueError, TypeError) as exc:
                raise DataError(f"{path}:{i}: bad manifest row: {exc}", path=str(path))
        return cls(corpus, Path(root), utts, tuple(labels))


MAX_TABLE_BYTES = 256 << 20  # a manifest TSV: hundreds of thousands of rows fit


def read_tsv_rows(path: str | Path, required: Sequence[str], what: str = "manifest"
                  ) -> list[tuple[int, dict[str, str]]]:
    """The rows of tab-separated file ``path`` (a header line, then one row per line) as
    (line number, row). The file is untrusted: one at most :data:`MAX_TABLE_BYTES` regular file
    (a link the user named is followed), UTF-8, every row with as many fields as the header, no
    field running over a line break (a stray ``"`` would quietly swallow the rows up to the
    next one); anything else is a :class:`DataError` naming the file and the line."""
    from emobox.io import read_bytes_capped

    path = Path(path)
    try:
        data = read_bytes_capped(path, MAX_TABLE_BYTES, follow_links=True,
                                 too_big=f"not a {what} emobox can read")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what}: {exc.strerror or exc}",
                        path=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the {what} "
                        f"as UTF-8", path=str(path)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}: a {what} needs the columns {', '.join(required)} "
                            f"(missing: {', '.join(missing)}; found: "
                            f"{', '.join(header)[:200] or 'no header line'})", path=str(path))
        end = reader.line_num
        for r in reader:
            start, end = end + 1, reader.line_num
            values = [v for k, v in r.items() if k is not None]
            if None in r or any(v is None for v in values):
                n = len(values) + len(r.get(None) or []) - sum(v is None for v in values)
                raise DataError(f"{path}:{start}: the row has {n} fields, the header "
                                f"{len(header)}", path=str(path))
            if any("\n" in v or "\r" in v for v in values):
                raise DataError(f"{path}:{start}: a field runs over lines {start}-{end}: an "
                                f"unbalanced '\"' (quote the whole field and double the quotes "
                                f"inside, or remove it)", path=str(path))
            rows.append((start, r))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not a tab-separated {what} row ({exc})",
                        path=str(path)) from None
    return rows


def utterance_from_row(r: Mapping[str, str]) -> Utterance:
    """The utterance of one manifest TSV row (the columns of :data:`BASE_COLUMNS`; empty optional
    fields are None). A malformed number, or a segment that is not one (NaN or infinite times,
    a negative time, a start not before its end, a channel below 1), raises ValueError naming
    the utterance."""
    key = r["key"]

    def number(column: str, kind: type) -> Any:
        text = r.get(column)
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"utterance {key!r}: {column} is {text!r}, not {what}") from None

    channel, start, end = number("channel", int), number("start", float), number("end", float)
    why = segment_problem(start, end, channel)
    if why:
        raise ValueError(f"utterance {key!r}: {why}")
    return Utterance(
        key=key, path=r["path"], label=r["emotion"],
        speaker=r.get("speaker") or None, raw_label=r.get("emotion_raw") or None,
        channel=channel, start=start, end=end)


def segment_problem(start: float | None, end: float | None, channel: int | None = None) -> str:
    """Why ``start``/``end`` (seconds) and ``channel`` (1-based) do not select audio of a file
    ("" when they do; None is "from the beginning", "to the end", "all channels")."""
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} is {value!r}, not a number of seconds"
        if not math.isfinite(value):
            return f"{name} is {value!r}, not a finite number of seconds"
        if value < 0:
            return f"{name} is {value!r}, a negative time"
    if end is not None and end <= (start or 0.0):
        return (f"start {start or 0.0!r} is not before end {end!r}: the segment is empty")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int)
                                or channel < 1):
        return f"channel is {channel!r}; channels are counted from 1"
    return ""


def name_problem(text: Any) -> str:
    """Why ``text`` cannot be an utterance key or an audio path ("" when it can): empty, a
    control character such as a tab or newline, not UTF-8, or over 4096 bytes."""
    from emobox.extraction.store import name_problem as problem

    return problem(text)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8") \
        .replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def path_escape_reason(path: str) -> str:
    """Why a manifest path would read outside its corpus root ("" when it does not): an
    absolute path, a ``..`` component, or no path at all."""
    if not path:
        return "is empty"
    posix = path.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(path).drive:
        return "is absolute"
    if ".." in PurePosixPath(posix).parts:
        return "climbs out with '..'"
    return ""


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    return {
        "corpus": manifest.corpus,
        "utterances": len(manifest),
        "speakers": len(manifest.speakers()),
        "labels": dict(sorted(manifest.label_counts().items())),
        "schema_version": SCHEMA_VERSION,
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)
