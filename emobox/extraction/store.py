"""The feature store: frame-level features of one (upstream, corpus), extracted once.

Layout of a store folder (``$EMOBOX_HOME/features/<upstream>/<corpus>/<digest>/``)::

    meta.json          what made it: upstream, checkpoint id, options, precision, corpus, manifest
                       hash, emobox version, frame rate, counts, skipped utterances, per finished
                       layer its dim and the SHA-256 of its files, the audio's digest, and a
                       SHA-256 of meta.json's own content (``meta_sha256``); written last
    index.tsv          key, offset (first frame row), length (frames) per utterance, manifest order
    audio.tsv          per audio file read (manifest order): path, size, modification time and
                       SHA-256 of the file as it was extracted
    layer_<L>.f16      raw float16 rows [n_frames, D] of layer L (memory-mapped when read)
    pooled_<L>.npy     float32 utterance means [n_utterances, D] of layer L
    sessions.jsonl     one line per extraction session (device, time, throughput); history only
    .partial/          an extraction under way: journal.jsonl and the files it appends to

The folder name is a digest of everything that changes the numbers (upstream, checkpoint id,
options, feature version, precision, corpus, manifest hash, store format), so a store made with
another checkpoint, manifest or precision is a different folder; ``meta.json`` is checked again
on open and a mismatch is refused, never silently reused. Layers are added to a finished store
without touching the others (every layer shares the one index).

Every file of a store is untrusted when read: ``meta.json`` is validated field by field and
against its own checksum, ``index.tsv`` and ``audio.tsv`` against the checksums in ``meta.json``,
and a layer file by its size and, when opened for training, its SHA-256 (files up to
:data:`FULL_CHECK_BYTES`) or the SHA-256 of :data:`SAMPLE_BLOCKS` blocks spread over it (larger
files); a store file that is a symbolic link is refused. The audio is checked too: a file whose
size or modification time differs from ``audio.tsv`` is hashed again, and a store whose audio
changed is refused (stale features), while a file that was only touched or copied keeps its
store.

Extraction appends whole chunks (consecutive utterances in manifest order): the data of a chunk is
written and flushed to disk before the journal records it, so a killed extraction resumes after
the last chunk the journal holds, cutting away anything written after it, and the finished files
are byte-identical to those of an uninterrupted extraction. Finishing is journalled too: a kill
while the finished files are moved into place is completed by the next run without computing
anything again.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from emobox.errors import DataError, EmoboxUsageError
from emobox.io import (_TEMPORARY, append_jsonl, atomic_write_text, open_regular, read_jsonl,
                       remove_temporaries)
from emobox._version import __version__

FORMAT = "emobox.features"
SCHEMA_VERSION = 3
PARTIAL = ".partial"
JOURNAL = "journal.jsonl"
SESSIONS = "sessions.jsonl"
INDEX_HEADER = "key\toffset\tlength\n"
AUDIO_HEADER = "path\tsize\tmtime_ns\tsha256\n"
FP16_MAX = float(np.finfo(np.float16).max)
# layer files up to this size are hashed whole when a store is opened for training; larger
# ones by SAMPLE_BLOCKS blocks of SAMPLE_BLOCK bytes spread evenly over the file (and their size)
FULL_CHECK_BYTES = 256 << 20
SAMPLE_BLOCKS = 64
SAMPLE_BLOCK = 64 << 10
# bounds on what a store's text files may hold (larger ones are damaged, never read whole)
META_MAX_BYTES = 64 << 20
JOURNAL_MAX_BYTES = 256 << 20
MAX_NAME_BYTES = 4096  # a key or a path: more than any file system allows
MAX_COUNT = 1 << 48  # utterances, frames
MAX_DIM = 1 << 20
MAX_LAYER = 10_000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoreRequest:
    """Everything that determines a store's content."""

    upstream: str
    checkpoint_id: str
    corpus: str
    manifest_hash: str
    precision: str = "fp32"
    options: Mapping[str, Any] = field(default_factory=dict)
    # the upstream's feature version (``Upstream.feature_version``): bumped when what it computes
    # for the same weights and options changes, so stores of the old features are never reused
    feature_version: str = ""

    def identity(self) -> dict[str, Any]:
        ident = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "upstream": self.upstream,
                 "checkpoint_id": self.checkpoint_id, "corpus": self.corpus,
                 "manifest_hash": self.manifest_hash, "precision": self.precision,
                 "options": json.loads(json.dumps(dict(sorted(self.options.items())),
                                                  default=str))}
        if self.feature_version:  # absent for upstreams that never changed: their keys stay
            ident["feature_version"] = str(self.feature_version)
        return ident

    def digest(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def path(self, base: Path) -> Path:
        return Path(base) / self.upstream / self.corpus / self.digest()


def identity_diff(meta: Mapping[str, Any], request: StoreRequest) -> str:
    """Empty when ``meta`` was made by ``request``, else what differs (one clause per field)."""
    return "; ".join(f"{k}: store has {meta.get(k)!r}, requested {v!r}"
                     for k, v in request.identity().items() if meta.get(k) != v)


# -- names -------------------------------------------------------------------------------------
def name_problem(text: Any) -> str:
    """Why ``text`` cannot be an utterance key or an audio path in emobox's tab-separated files
    ("" when it can): empty, a control character (tab, newline, ...), not encodable as UTF-8
    (a file name in another encoding), or longer than any file system allows."""
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not text"
    if not text:
        return "is empty"
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return f"contains the control character {ch!r} (a tab, newline or similar)"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (a file name in an encoding other than UTF-8)"
    if len(data) > MAX_NAME_BYTES:
        return f"is {len(data)} bytes long (at most {MAX_NAME_BYTES})"
    return ""


# -- meta.json ---------------------------------------------------------------------------------
def meta_checksum(meta: Mapping[str, Any]) -> str:
    """SHA-256 of ``meta``'s content without its ``meta_sha256`` field."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True)
                          .encode()).hexdigest()


def _is_int(v: Any, lo: int = 0, hi: int = MAX_COUNT) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_hex(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX64.match(v))


def meta_problem(meta: Mapping[str, Any]) -> str:
    """What is wrong with the fields of a (format-checked) meta.json, or ""."""
    for key in ("upstream", "checkpoint_id", "corpus", "manifest_hash", "precision"):
        if not isinstance(meta.get(key), str):
            return f"field {key!r} is {_shown(meta.get(key))}, expected text"
    if not isinstance(meta.get("options"), dict):
        return f"field 'options' is {_shown(meta.get('options'))}, expected a mapping"
    if meta.get("complete") is not True:
        return f"field 'complete' is {_shown(meta.get('complete'))}, expected true"
    for key in ("n_utterances", "n_frames"):
        if not _is_int(meta.get(key)):
            return (f"field {key!r} is {_shown(meta.get(key))}, expected a count from 0 to "
                    f"{MAX_COUNT}")
    if not _is_hex(meta.get("index_sha256")):
        return f"field 'index_sha256' is {_shown(meta.get('index_sha256'))}, expected a SHA-256"
    layers = meta.get("layers")
    if not isinstance(layers, dict) or not layers:
        return f"field 'layers' is {_shown(layers)}, expected a mapping of layers"
    for name, info in layers.items():
        if not (name.isdigit() and name.isascii() and int(name) <= MAX_LAYER
                and str(int(name)) == name):
            return f"layer {name!r} is not a layer number"
        if not isinstance(info, dict):
            return f"layer {name}: {_shown(info)}, expected a mapping"
        if not _is_int(info.get("dim"), 1, MAX_DIM):
            return f"layer {name}: 'dim' is {_shown(info.get('dim'))}, expected 1 to {MAX_DIM}"
        for key in ("sha256", "sample_sha256", "pooled_sha256"):
            if not _is_hex(info.get(key)):
                return f"layer {name}: {key!r} is {_shown(info.get(key))}, expected a SHA-256"
        if not _is_int(info.get("fp16_saturated", 0)):
            return f"layer {name}: 'fp16_saturated' is {_shown(info.get('fp16_saturated'))}"
        if not isinstance(info.get("engine", {}), dict):
            return f"layer {name}: 'engine' is {_shown(info.get('engine'))}, expected a mapping"
    skipped = meta.get("skipped")
    if not isinstance(skipped, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in skipped.items()):
        return f"field 'skipped' is {_shown(skipped)}, expected a mapping of keys to reasons"
    audio = meta.get("audio")
    if not (isinstance(audio, dict) and _is_int(audio.get("files"))
            and _is_hex(audio.get("sha256")) and isinstance(audio.get("root", ""), str)):
        return f"field 'audio' is {_shown(audio)}, expected files, sha256 and root"
    if not isinstance(meta.get("engine", {}), dict):
        return f"field 'engine' is {_shown(meta.get('engine'))}, expected a mapping"
    for key in ("frame_rate", "sample_rate"):  # descriptive; checked when present
        v = meta.get(key)
        if key in meta and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                and 0 < v < 1e7):
            return f"field {key!r} is {_shown(v)}, expected a positive number"
    if not _is_hex(meta.get("meta_sha256")):
        return f"field 'meta_sha256' is {_shown(meta.get('meta_sha256'))}, expected a SHA-256"
    return ""


def _shown(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else repr(v)
    return "missing" if v is None else (text if len(text) <= 40 else text[:37] + "...")


def _damaged(path: Path, what: str, store: Path) -> DataError:
    return DataError(f"{path}: {what}; the store was edited or damaged: delete it with "
                     f"`emobox features rm {store}` and extract again", path=str(path))


def _read_regular(path: Path, limit: int, what: str, store: Path) -> bytes:
    """The bytes of a regular file of a store (never through a symbolic link, at most
    ``limit`` bytes); a missing file raises FileNotFoundError."""
    try:
        # non-blocking: a fifo put in place of a store file must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EISDIR):
            raise _damaged(path, f"{what} is not a regular file", store) from None
        if exc.errno == errno.ELOOP:
            raise _damaged(path, f"{what} is a symbolic link (a store holds regular files "
                                 f"only)", store) from None
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                    str(path)) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _damaged(path, f"{what} is not a regular file", store)
        if st.st_size > limit:
            raise _damaged(path, f"{what} is {st.st_size} bytes (at most {limit} expected)",
                           store)
        os.set_blocking(fd, True)
        return fh.read(limit + 1)


class FeatureStore:
    """Read access to a store folder; every problem found is a :class:`DataError` naming a file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._meta: dict | None = None
        self._index: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self._audio: dict[str, AudioRecord] | None = None

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r})"

    @property
    def meta(self) -> dict:
        if self._meta is None:
            self._meta = read_meta(self.path)
        return self._meta

    def exists(self) -> bool:
        return os.path.lexists(self.path / "meta.json")

    @property
    def complete(self) -> bool:
        return self.exists() and bool(self.meta.get("complete"))

    @property
    def partial(self) -> bool:
        """An extraction into this folder was started and has not finished."""
        return (self.path / PARTIAL / JOURNAL).exists()

    def layers(self) -> list[int]:
        return sorted(int(k) for k in self.meta.get("layers", {}))

    def dim(self, layer: int) -> int:
        try:
            return int(self.meta["layers"][str(layer)]["dim"])
        except KeyError:
            raise DataError(f"{self.path}: the store holds layers {self.layers()}, not layer "
                            f"{layer}", path=str(self.path))

    @property
    def n_frames(self) -> int:
        return int(self.meta["n_frames"])

    def matches(self, request: StoreRequest) -> str:
        """Empty string when the store was made by ``request``, else what differs."""
        return identity_diff(self.meta, request)

    def index(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Keys, frame offsets and frame lengths, in store order (checked against the SHA-256
        in meta.json, then for consistency)."""
        if self._index is None:
            path = self.path / "index.tsv"
            n = int(self.meta["n_utterances"])
            limit = len(INDEX_HEADER) + n * (MAX_NAME_BYTES + 42)
            try:
                data = _read_regular(path, limit, "the index", self.path)
            except FileNotFoundError:
                raise DataError(f"{path}: feature store index is missing", path=str(path))
            if hashlib.sha256(data).hexdigest() != self.meta["index_sha256"]:
                raise _damaged(path, "the index does not match its checksum in meta.json "
                                     "(edited, swapped or cut)", self.path)
            self._index = parse_index(path, data, n, self.n_frames)
        return self._index

    def layer(self, layer: int) -> np.ndarray:
        """Memory-mapped raw float16 frames ``[n_frames, D]`` of one layer."""
        path = self.path / f"layer_{layer}.f16"
        dim = self.dim(layer)
        expected = self.n_frames * dim * 2
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise _damaged(path, "feature file is a symbolic link (a store holds regular files "
                                 "only)", self.path)
        size = st.st_size if st is not None and stat.S_ISREG(st.st_mode) else -1
        if size != expected:
            what = ("is missing" if st is None else "is not a regular file" if size < 0
                    else f"has {size} bytes, expected {expected} ({self.n_frames} frames x "
                         f"{dim} dims x 2)")
            raise DataError(f"{path}: feature file {what}; the store is truncated or corrupt: "
                            f"delete it with `emobox features rm {self.path}` and extract "
                            f"again", path=str(path))
        if self.n_frames == 0:
            return np.zeros((0, dim), np.float16)
        return np.memmap(path, dtype=np.float16, mode="r", shape=(self.n_frames, dim))

    def pooled(self, layer: int) -> np.ndarray:
        path = self.path / f"pooled_{layer}.npy"
        shape = (int(self.meta["n_utterances"]), self.dim(layer))
        try:
            data = _read_regular(path, 256 + shape[0] * shape[1] * 4, "pooled features",
                                 self.path)
        except FileNotFoundError:
            raise DataError(f"{path}: pooled features are missing", path=str(path))
        if hashlib.sha256(data).hexdigest() != self.meta["layers"][str(layer)]["pooled_sha256"]:
            raise _damaged(path, "pooled features do not match their checksum in meta.json",
                           self.path)
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt pooled features ({exc})", path=str(path))
        if arr.shape != shape or arr.dtype != np.float32:
            raise DataError(f"{path}: pooled features have shape {arr.shape} {arr.dtype}, "
                            f"expected {shape} float32; the store is corrupt", path=str(path))
        return arr

    def skipped(self) -> dict[str, str]:
        return dict(self.meta.get("skipped", {}))

    def audio_records(self) -> dict[str, "AudioRecord"]:
        """What ``audio.tsv`` recorded of each audio file at extraction, by manifest path
        (checked against the digest in meta.json)."""
        if self._audio is None:
            path = self.path / "audio.tsv"
            n = int(self.meta["audio"]["files"])
            try:
                data = _read_regular(path, len(AUDIO_HEADER) + n * (MAX_NAME_BYTES + 110),
                                     "the audio record", self.path)
            except FileNotFoundError:
                raise _damaged(path, "the audio record is missing", self.path) from None
            records = parse_audio_records(path, data, self.path)
            if len(records) != n or audio_digest(records) != self.meta["audio"]["sha256"]:
                raise _damaged(path, "the audio record does not match its checksum in "
                                     "meta.json", self.path)
            self._audio = {r.path: r for r in records}
        return self._audio

    # -- checks ------------------------------------------------------------------------------
    def check(self) -> None:
        """Fast structural check: meta, index and the size of every file."""
        self.index()
        for layer in self.layers():
            self.layer(layer)
            path = self.path / f"pooled_{layer}.npy"
            if not path.exists():
                raise DataError(f"{path}: pooled features are missing", path=str(path))

    def check_for_training(self, layers: Iterable[int]) -> None:
        """What opening the store for training checks: meta.json (fields and checksum), the
        index (SHA-256), and each of ``layers``' files: its size, and its SHA-256 when it is at
        most :data:`FULL_CHECK_BYTES`, else the SHA-256 of blocks sampled over it. A file
        checked once in this process is not hashed again while its size, time and inode are
        unchanged."""
        self.index()
        for layer in layers:
            self.layer(layer)  # size
            info = self.meta["layers"][str(layer)]
            path = self.path / f"layer_{layer}.f16"
            st = os.stat(path)
            size = st.st_size
            full = size <= FULL_CHECK_BYTES
            expected = info["sha256"] if full else info["sample_sha256"]
            memo = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, expected)
            if memo in _CHECKED:
                continue
            actual = file_sha256(path) if full else sampled_sha256(path, size)
            if actual != expected:
                how = "its SHA-256" if full else f"the SHA-256 of {SAMPLE_BLOCKS} sampled blocks"
                raise _damaged(path, f"feature file does not match {how} in meta.json "
                                     f"(edited, reordered or damaged)", self.path)
            _CHECKED.add(memo)

    def verify(self, progress: Callable[[int], None] | None = None) -> None:
        """Full check: every file's SHA-256 against meta.json (reads the whole store)."""
        self.check()
        self.audio_records()
        files = {}
        for layer in self.layers():
            files[f"layer_{layer}.f16"] = self.meta["layers"][str(layer)]["sha256"]
        for name, expected in files.items():
            path = self.path / name
            actual = file_sha256(path, progress)
            if actual != expected:
                raise DataError(f"{path}: content does not match its checksum in meta.json "
                                f"(sha256 {actual[:16]}..., recorded {str(expected)[:16]}...); "
                                f"the file is corrupt: delete the store with `emobox features rm "
                                f"{self.path}` and extract again", path=str(path))
        self.pooled_check()

    def pooled_check(self) -> None:
        for layer in self.layers():
            self.pooled(layer)

    def size_bytes(self) -> int:
        total = 0
        for p in self.path.rglob("*"):
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
        return total

    def sessions(self) -> list[dict]:
        """The extraction sessions' records (times in seconds: finite, not negative)."""
        return read_jsonl(self.path / SESSIONS, check=_check_session,
                          hint="the file records past extractions only; delete it")

    def engine(self, layer: int | None = None) -> dict:
        """The engine settings that computed ``layer`` (precision, autocast, attention,
        batching, torch version, threads...): recorded with the layer, else (stores written
        before layers carried them, or ``layer`` None) those of the store's last extraction."""
        info = self.meta["layers"].get(str(layer)) if layer is not None else None
        engine = (info or {}).get("engine") or self.meta.get("engine") or {}
        return dict(engine)


def _check_session(row: dict) -> dict:
    for key, value in row.items():
        if key == "seconds" or key.endswith("_s"):
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"{key} is {json.dumps(value, default=str)[:40]}, not a "
                                 f"number of seconds")
    return row


_CHECKED: set[tuple] = set()  # layer files whose content was checked in this process


def read_meta(folder: Path) -> dict:
    """The validated meta.json of a store folder (:class:`DataError` naming the file)."""
    meta_path = Path(folder) / "meta.json"
    try:
        data = _read_regular(meta_path, META_MAX_BYTES, "meta.json", Path(folder))
    except FileNotFoundError:
        raise DataError(f"{meta_path}: feature store has no meta.json (incomplete or not "
                        f"a store)", path=str(meta_path))
    try:
        meta = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, and
        # a number of more than 4300 digits are ValueErrors
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DataError(f"{meta_path}: corrupt meta.json ({reason}); delete the store with "
                        f"`emobox features rm {folder}` and extract again",
                        path=str(meta_path))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{meta_path}: not an emobox feature store", path=str(meta_path))
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{meta_path}: store format version {_shown(meta.get('schema_version'))}"
                        f" (this emobox reads version {SCHEMA_VERSION}); delete it with "
                        f"`emobox features rm {folder}` and extract again",
                        path=str(meta_path))
    problem = meta_problem(meta)
    if problem:
        raise _damaged(meta_path, f"meta.json: {problem}", Path(folder))
    if meta_checksum(meta) != meta["meta_sha256"]:
        raise _damaged(meta_path, "meta.json does not match its own checksum (a field was "
                                  "edited)", Path(folder))
    return meta


def read_index(path: Path, n_utterances: int, n_frames: int
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: feature store index is missing", path=str(path))
    return parse_index(Path(path), data, n_utterances, n_frames)


def parse_index(path: Path, data: bytes, n_utterances: int, n_frames: int
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: corrupt index (not UTF-8 text)", path=str(path))
    if lines[0] + "\n" != INDEX_HEADER or lines[-1] != "":
        raise DataError(f"{path}: corrupt or truncated index (bad header or last line)",
                        path=str(path))
    keys, offsets, lengths = [], [], []
    expected_offset = 0
    for i, line in enumerate(lines[1:-1], start=2):
        parts = line.split("\t")
        try:
            key, offset, length = parts[0], int(parts[1]), int(parts[2])
            if len(parts) != 3 or offset != expected_offset or length < 1 or name_problem(key):
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{path}:{i}: corrupt index line {line[:80]!r}", path=str(path))
        keys.append(key)
        offsets.append(offset)
        lengths.append(length)
        expected_offset += length
    if len(keys) != n_utterances or expected_offset != n_frames:
        raise DataError(f"{path}: index lists {len(keys)} utterances and {expected_offset} frames, "
                        f"meta.json says {n_utterances} and {n_frames}; the store is corrupt",
                        path=str(path))
    if len(set(keys)) != len(keys):
        raise DataError(f"{path}: index lists a key twice; the store is corrupt", path=str(path))
    return keys, np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while True:
                block = fh.read(8 << 20)
                if not block:
                    break
                h.update(block)
                if progress:
                    progress(len(block))
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing from the store", path=str(path))
    return h.hexdigest()


def sampled_sha256(path: Path, size: int | None = None) -> str:
    """SHA-256 of the file size and :data:`SAMPLE_BLOCKS` blocks spread evenly over the file
    (first and last included): a cheap check of a large file against its recorded sample."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size if size is None else size
        h.update(f"{size}\n".encode())
        if size <= SAMPLE_BLOCKS * SAMPLE_BLOCK:
            h.update(fh.read(size))
        else:
            span = size - SAMPLE_BLOCK
            for i in range(SAMPLE_BLOCKS):
                fh.seek(span * i // (SAMPLE_BLOCKS - 1))
                h.update(fh.read(SAMPLE_BLOCK))
    return h.hexdigest()


# -- audio records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioRecord:
    """One audio file as an extraction read it: size -1 (and no hash) when it was missing."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    def line(self) -> str:
        return f"{self.path}\t{self.size}\t{self.mtime_ns}\t{self.sha256}\n"


def audio_record(root: Path, rel: str) -> AudioRecord:
    """Size, modification time and SHA-256 of the audio file ``rel`` under ``root`` now."""
    path = Path(root) / rel
    h = hashlib.sha256()
    try:
        # non-blocking: opening a fifo must not wait for a writer (it is refused below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return AudioRecord(rel, -1, 0, "")
            os.set_blocking(fd, True)
            while True:
                block = fh.read(1 << 20)
                if not block:
                    break
                h.update(block)
    except OSError:
        return AudioRecord(rel, -1, 0, "")
    return AudioRecord(rel, int(st.st_size), int(st.st_mtime_ns), h.hexdigest())


def audio_digest(records: Iterable[AudioRecord]) -> str:
    """Digest of the audio's content (paths, sizes, hashes; not the modification times)."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.path}\t{r.size}\t{r.sha256}\n".encode())
    return h.hexdigest()


def parse_audio_records(path: Path, data: bytes, store: Path) -> list[AudioRecord]:
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise _damaged(path, "the audio record is not UTF-8 text", store) from None
    if lines[0] + "\n" != AUDIO_HEADER or lines[-1] != "":
        raise _damaged(path, "the audio record has a bad header or last line", store)
    out = []
    for i, line in enumerate(lines[1:-1], start=2):
        parts = line.split("\t")
        try:
            rel, size, mtime, sha = parts[0], int(parts[1]), int(parts[2]), parts[3]
            if (len(parts) != 4 or name_problem(rel) or size < -1
                    or not (sha == "" if size < 0 else bool(_HEX64.match(sha)))):
                raise ValueError
        except (ValueError, IndexError):
            raise _damaged(path, f"line {i} of the audio record is corrupt", store) from None
        out.append(AudioRecord(rel, size, mtime, sha))
    return out


@dataclass
class AudioCheck:
    """What :func:`check_audio` found: changed files (path, why) and records refreshed
    because only a file's time changed (its content hash still matches)."""

    changed: list[tuple[str, str]] = field(default_factory=list)
    refreshed: dict[str, AudioRecord] = field(default_factory=dict)
    hashed: int = 0


def check_audio(store: FeatureStore, root: Path, paths: Iterable[str]) -> AudioCheck:
    """Compare the audio files ``paths`` (relative to ``root``) with what the store recorded:
    same size and modification time = unchanged; same size, other time = hashed again
    (unchanged when the hash matches: a copied or touched file); else changed."""
    records = store.audio_records()
    out = AudioCheck()
    for rel in dict.fromkeys(paths):
        rec = records.get(rel)
        if rec is None:
            out.changed.append((rel, "not recorded in the store"))
            continue
        try:
            st = os.stat(Path(root) / rel)
            size, mtime = (int(st.st_size), int(st.st_mtime_ns)) if stat.S_ISREG(st.st_mode) \
                else (-1, 0)
        except OSError:
            size, mtime = -1, 0
        if size < 0 or rec.size < 0:
            if size != rec.size:
                out.changed.append((rel, "is missing now" if size < 0 else
                                    "was missing at extraction and is there now"))
            continue
        if size != rec.size:
            out.changed.append((rel, f"size {size} bytes, {rec.size} at extraction"))
        elif mtime != rec.mtime_ns:
            now = audio_record(root, rel)
            out.hashed += 1
            if now.sha256 != rec.sha256:
                out.changed.append((rel, "content changed (SHA-256 differs)"))
            else:
                out.refreshed[rel] = now
    return out


def stale_audio_message(store: FeatureStore, root: Path, found: AudioCheck) -> str:
    rel, why = found.changed[0]
    more = f" (and {len(found.changed) - 1} more)" if len(found.changed) > 1 else ""
    return (f"{store.path}: the audio changed since these features were extracted: "
            f"{Path(root) / rel}: {why}{more}; the stored features are stale: remove the store "
            f"with `emobox features rm {store.path}` and run again to extract them anew")


def refresh_audio_records(store: FeatureStore, refreshed: Mapping[str, AudioRecord]) -> bool:
    """Record the new modification times of files whose content is unchanged (so they are not
    hashed again); False when the store cannot be written (e.g. a read-only disk)."""
    records = dict(store.audio_records())
    records.update(refreshed)
    text = AUDIO_HEADER + "".join(r.line() for r in records.values())
    try:
        atomic_write_text(store.path / "audio.tsv", text)
    except OSError:
        return False
    store._audio = records
    return True


# -- writing ---------------------------------------------------------------------------------
@dataclass
class ChunkData:
    """Features of consecutive utterances (manifest order) ready to append.

    ``lengths`` (frames per key) is given when the frames were already appended to the layer
    files while they were computed (a long utterance streamed window by window); ``frames``
    is then empty."""

    keys: list[str]
    frames: dict[int, list[np.ndarray]]  # layer -> per utterance fp16 [n_i, D]
    pooled: dict[int, list[np.ndarray]]  # layer -> per utterance float32 [D]
    next_position: int  # manifest position after the chunk's last utterance
    skipped: dict[str, str] = field(default_factory=dict)
    saturated: dict[int, int] = field(default_factory=dict)  # layer -> values clipped to fp16
    audio: list[AudioRecord] = field(default_factory=list)  # files read, manifest order
    lengths: list[int] | None = None


def _initial_state(layers: Sequence[int]) -> dict:
    return {"chunk": 0, "next": 0, "frames": 0, "rows": 0,
            "index_bytes": len(INDEX_HEADER.encode()), "audio_bytes": len(AUDIO_HEADER),
            "skipped": {}, "saturated": {str(L): 0 for L in layers}, "dims": {}}


def _state_problem(state: Any, layers: Sequence[int]) -> str:
    if not isinstance(state, dict):
        return "an entry is not a mapping"
    for key in ("chunk", "next", "frames", "rows", "index_bytes", "audio_bytes"):
        if not _is_int(state.get(key)):
            return f"{key!r} is {_shown(state.get(key))}"
    dims, sat, skipped = state.get("dims"), state.get("saturated"), state.get("skipped")
    if not (isinstance(dims, dict) and all(k in {str(L) for L in layers}
                                           and _is_int(v, 1, MAX_DIM) for k, v in dims.items())):
        return f"'dims' is {_shown(dims)}"
    if not (isinstance(sat, dict) and all(_is_int(v) for v in sat.values())):
        return f"'saturated' is {_shown(sat)}"
    if not (isinstance(skipped, dict) and all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in skipped.items())):
        return f"'skipped' is {_shown(skipped)}"
    return ""


def _plan_problem(old: Any, new: Mapping[str, Any]) -> str:
    if not isinstance(old, dict) or set(old) != set(new):
        return "its plan has other fields"
    for k, v in new.items():
        o = old[k]
        if isinstance(v, bool) or isinstance(o, bool) or v is None or o is None:
            if type(o) is not type(v) and not (o is None or v is None):
                return f"plan field {k!r} is {_shown(o)}"
            if isinstance(o, (int, float)) and not isinstance(o, bool) and o <= 0:
                return f"plan field {k!r} is {_shown(o)}"
        elif isinstance(v, (int, float)):
            if not (isinstance(o, (int, float)) and not isinstance(o, bool) and 0 <= o < 1e12):
                return f"plan field {k!r} is {_shown(o)}"
    return ""


def _append(path: Path, parts: Iterable[bytes | memoryview], sync: bool = True) -> None:
    """Append ``parts`` to ``path``, flushed (and fsynced) to disk; an OS error (a full disk)
    names the file."""
    try:
        with open(path, "ab") as fh:
            for part in parts:
                fh.write(part)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


class StoreWriter:
    """Appends chunks to ``.partial/`` with a journal; resumes; publishes atomically at the end.

    ``plan`` holds the settings that decide chunk and batch boundaries; a resumed extraction
    reuses the journal's plan, so its files come out identical to an uninterrupted one.
    """

    def __init__(self, path: Path, request: StoreRequest, layers: Sequence[int],
                 plan: Mapping[str, Any], extra_meta: Mapping[str, Any] | None = None,
                 audio_root: str | Path | None = None):
        self.path = Path(path)
        self.request = request
        self.layers = sorted(layers)
        self.extra_meta = dict(extra_meta or {})
        self.audio_root = str(audio_root) if audio_root is not None else ""
        self.partial = self.path / PARTIAL
        self.notes: list[str] = []
        self.finishing: dict | None = None  # the journal's finish entry (files being moved)
        self.seen_paths: set[str] = set()
        self._streaming = False
        # a process killed inside an atomic write (finishing a store) left its temporary file;
        # the writer holds the store's lock, so nothing else is writing here
        remove_temporaries(self.path)
        header = {"kind": "header", "identity": request.identity(), "layers": self.layers,
                  "plan": dict(plan)}
        self.state = self._resume(header)
        if self.state is None:
            if os.path.lexists(self.partial):
                if self.partial.is_symlink() or not self.partial.is_dir():
                    self.partial.unlink()
                else:
                    shutil.rmtree(self.partial)
            self.partial.mkdir(parents=True)
            self.plan = dict(plan)
            self.state = _initial_state(self.layers)
            for L in self.layers:
                (self.partial / f"layer_{L}.f16").write_bytes(b"")
                (self.partial / f"pooled_{L}.f32").write_bytes(b"")
            (self.partial / "index.tsv").write_text(INDEX_HEADER, encoding="utf-8")
            (self.partial / "audio.tsv").write_text(AUDIO_HEADER, encoding="utf-8")
            _write_line(self.partial / JOURNAL, header, fresh=True)
        self.dims: dict[int, int] = {int(k): v for k, v in self.state["dims"].items()}

    @property
    def resume_position(self) -> int:
        """Manifest position of the first utterance still to extract."""
        return int(self.state["next"])

    def _resume(self, header: dict) -> dict | None:
        journal = self.partial / JOURNAL
        if not os.path.lexists(journal):
            return None
        try:
            entries = _read_journal(journal)
        except ValueError as exc:
            self.notes.append(f"{journal}: unreadable journal ({exc}); extracting from the "
                              f"start")
            return None
        old = entries[0]
        if old.get("identity") != header["identity"] or old.get("layers") != header["layers"]:
            self.notes.append("an unfinished extraction of other layers or settings was found "
                              "in this store and is discarded")
            return None
        problem = _plan_problem(old.get("plan"), header["plan"])
        if problem:
            self.notes.append(f"{journal}: damaged journal ({problem}); extracting from the "
                              f"start")
            return None
        self.plan = dict(old["plan"])
        if old["plan"] != header["plan"]:
            self.notes.append(f"resuming with the settings of the interrupted extraction "
                              f"{old['plan']} (not {header['plan']}) so that the store comes out "
                              f"identical")
        chunks, finish = [], None
        for e in entries[1:]:
            if e.get("kind") == "chunk":
                chunks.append(e)
                finish = None
            elif e.get("kind") == "finish":
                finish = e
        state = chunks[-1] if chunks else _initial_state(self.layers)
        problem = _state_problem(state, self.layers)
        if problem or (finish is not None and _finish_problem(finish, self.layers)):
            self.notes.append(f"{journal}: damaged journal ({problem or 'finish entry'}); "
                              f"extracting from the start")
            return None
        good = "".join(json.dumps(e, sort_keys=True) + "\n"
                       for e in entries[:1] + chunks + ([finish] if finish else []))
        if finish is not None:
            self.finishing = finish
            self.notes.append("finishing an extraction whose every utterance was done")
            self._rewrite_journal(journal, good)
            return dict(state)
        # cut away whatever a killed chunk wrote after the last journal entry
        sizes = {"index.tsv": state["index_bytes"], "audio.tsv": state["audio_bytes"]}
        for L in self.layers:
            dim = state["dims"].get(str(L), 0)
            sizes[f"layer_{L}.f16"] = state["frames"] * dim * 2
            sizes[f"pooled_{L}.f32"] = state["rows"] * dim * 4
        for name, size in sizes.items():
            p = self.partial / name
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                st = None
            if st is None or not stat.S_ISREG(st.st_mode) or st.st_size < size:
                self.notes.append(f"{p}: missing or shorter than its journal says; extracting "
                                  f"from the start")
                return None
            if st.st_size > size:
                with open(p, "rb+") as fh:
                    fh.truncate(size)
                    os.fsync(fh.fileno())
        try:
            records = parse_audio_records(self.partial / "audio.tsv",
                                          (self.partial / "audio.tsv").read_bytes(), self.path)
        except DataError:
            self.notes.append(f"{self.partial / 'audio.tsv'}: damaged; extracting from the start")
            return None
        self.seen_paths = {r.path for r in records}
        self._rewrite_journal(journal, good)
        if chunks:
            self.notes.append(f"resuming an interrupted extraction at utterance "
                              f"{state['next'] + 1} ({state['rows']} done)")
        return dict(state)

    @staticmethod
    def _rewrite_journal(journal: Path, good: str) -> None:
        """Drop a torn journal tail (and entries after a finish that no longer count)."""
        if journal.read_text(encoding="utf-8") != good:
            from emobox.io import atomic_write_text

            atomic_write_text(journal, good)

    # -- appending -----------------------------------------------------------------------------
    def _check_dims(self, frames: Mapping[int, Sequence[np.ndarray]]) -> None:
        for L in self.layers:
            for arr in frames.get(L, ()):
                dim = self.dims.setdefault(L, int(arr.shape[1]))
                if arr.shape[1] != dim:
                    raise DataError(f"layer {L} changed its dim from {dim} to {arr.shape[1]}")

    def stream_frames(self, frames: Mapping[int, np.ndarray]) -> None:
        """Append frames of the utterance being streamed (not journalled until the chunk that
        ends it is appended with ``lengths``; :meth:`stream_abort` takes them back)."""
        self._check_dims({L: [a] for L, a in frames.items()})
        self._streaming = True
        for L in self.layers:
            _append(self.partial / f"layer_{L}.f16",
                    [memoryview(np.ascontiguousarray(frames[L], dtype=np.float16)).cast("B")],
                    sync=False)

    def stream_abort(self) -> None:
        """Cut the layer files back to what the journal holds (a streamed utterance failed)."""
        for L in self.layers:
            size = self.state["frames"] * self.dims.get(L, 0) * 2
            with open(self.partial / f"layer_{L}.f16", "rb+") as fh:
                fh.truncate(size)
        self._streaming = False

    def append_chunk(self, chunk: ChunkData) -> None:
        for key in chunk.keys:
            problem = name_problem(key)
            if problem:
                raise DataError(f"utterance key {key!r} {problem}; it cannot be stored")
        first = self.layers[0]
        if chunk.lengths is None:
            self._check_dims(chunk.frames)
            lengths = [int(a.shape[0]) for a in chunk.frames[first]]
        else:
            lengths = [int(n) for n in chunk.lengths]
        new_rows, lines = 0, []
        offset = self.state["frames"]
        for key, n in zip(chunk.keys, lengths):
            lines.append(f"{key}\t{offset}\t{n}\n")
            offset += n
            new_rows += 1
        index_text = "".join(lines).encode("utf-8")
        audio_text = "".join(r.line() for r in chunk.audio
                             if r.path not in self.seen_paths).encode("utf-8")
        for L in self.layers:
            layer_path = self.partial / f"layer_{L}.f16"
            if chunk.lengths is None:
                _append(layer_path, [memoryview(np.ascontiguousarray(arr, dtype=np.float16))
                                     .cast("B") for arr in chunk.frames[L]])
            else:
                size = offset * self.dims.get(L, 0) * 2
                if layer_path.stat().st_size != size:
                    raise DataError(f"{layer_path}: {layer_path.stat().st_size} bytes after a "
                                    f"streamed utterance, {size} expected")
                _append(layer_path, [])
            _append(self.partial / f"pooled_{L}.f32",
                    [memoryview(np.ascontiguousarray(vec, dtype=np.float32)).cast("B")
                     for vec in chunk.pooled[L]])
        _append(self.partial / "index.tsv", [index_text])
        _append(self.partial / "audio.tsv", [audio_text])
        self.seen_paths.update(r.path for r in chunk.audio)
        self._streaming = False
        state = dict(self.state)
        state.update({"kind": "chunk", "chunk": state["chunk"] + 1, "next": chunk.next_position,
                      "frames": offset, "rows": state["rows"] + new_rows,
                      "index_bytes": state["index_bytes"] + len(index_text),
                      "audio_bytes": state["audio_bytes"] + len(audio_text),
                      "skipped": {**state["skipped"], **chunk.skipped},
                      "saturated": {str(L): state["saturated"].get(str(L), 0)
                                    + chunk.saturated.get(L, 0) for L in self.layers},
                      "dims": {str(L): d for L, d in self.dims.items()}})
        _write_line(self.partial / JOURNAL, state)
        self.state = state

    # -- finishing -----------------------------------------------------------------------------
    def _pooled_bytes(self, L: int, dim: int) -> bytes:
        raw = np.fromfile(self.partial / f"pooled_{L}.f32", dtype=np.float32)
        rows = int(self.state["rows"])
        buf = io.BytesIO()
        np.save(buf, raw.reshape(rows, dim) if dim else raw.reshape(rows, 0))
        return buf.getvalue()

    def _prepare_finish(self, old_meta: dict | None) -> dict:
        """Hash the finished files and journal it: from here on a kill is finished by the next
        run without computing anything."""
        state = self.state
        if old_meta is not None:
            same = ((self.partial / "index.tsv").read_bytes()
                    == (self.path / "index.tsv").read_bytes()
                    and old_meta.get("skipped", {}) == state["skipped"])
            if not same:
                raise DataError(f"{self.path}: the new layers' frame counts or skipped "
                                f"utterances differ from the store's index; delete the store "
                                f"with `emobox features rm {self.path}` and extract all layers "
                                f"again",
                                path=str(self.path / "index.tsv"))
        records = parse_audio_records(self.partial / "audio.tsv",
                                      (self.partial / "audio.tsv").read_bytes(), self.path)
        digest = audio_digest(records)
        if old_meta is not None and old_meta["audio"]["sha256"] != digest:
            raise DataError(f"{self.path}: the audio changed since the store's other layers were "
                            f"extracted; delete the store with `emobox features rm {self.path}` "
                            f"and extract all layers again", path=str(self.path / "audio.tsv"))
        layers = {}
        for L in self.layers:
            dim = self.dims.get(L, int(self.extra_meta.get("hidden_size") or 0))
            layer_path = self.partial / f"layer_{L}.f16"
            layers[str(L)] = {"dim": dim, "sha256": file_sha256(layer_path),
                              "sample_sha256": sampled_sha256(layer_path),
                              "pooled_sha256": hashlib.sha256(self._pooled_bytes(L, dim))
                              .hexdigest(),
                              "fp16_saturated": int(state["saturated"].get(str(L), 0))}
        entry = {"kind": "finish", "layers": layers,
                 "index_sha256": file_sha256(self.partial / "index.tsv"),
                 "audio": {"files": len(records), "sha256": digest,
                           "file_sha256": file_sha256(self.partial / "audio.tsv")}}
        _write_line(self.partial / JOURNAL, entry)
        return entry

    def _move(self, name: str, sha256: str) -> None:
        """Move ``.partial/name`` into the store; when it is gone, a kill came after the move:
        the store's file must then be the one the journal recorded."""
        src, dst = self.partial / name, self.path / name
        if os.path.lexists(src):
            src.replace(dst)
            return
        if os.path.lexists(dst) and not dst.is_symlink() and file_sha256(dst) == sha256:
            return
        raise DataError(f"{src}: missing from an extraction that was being finished; delete "
                        f"the store with `emobox features rm {self.path}` and extract again",
                        path=str(src))

    def finish(self, upstream_meta: Mapping[str, Any] | None = None,
               layer_meta: Mapping[str, Any] | None = None) -> FeatureStore:
        """Move the finished layers into the store and write meta.json (last); ``upstream_meta``
        adds to (or replaces) the keys given at construction, ``layer_meta`` is recorded with
        each layer this writer computed (layers already in the store keep theirs)."""
        from emobox.io import atomic_write_bytes, atomic_write_json

        state = self.state
        existing = FeatureStore(self.path)
        old_meta = existing.meta if existing.exists() else None
        fin = self.finishing or self._prepare_finish(old_meta)
        self.finishing = fin
        layers_meta = dict(old_meta["layers"]) if old_meta else {}
        for L in self.layers:
            info = dict(fin["layers"][str(L)])
            info.update(layer_meta or {})
            atomic_write_bytes(self.path / f"pooled_{L}.npy", self._pooled_bytes(L, info["dim"]))
            self._move(f"layer_{L}.f16", info["sha256"])
            layers_meta[str(L)] = info
        if old_meta is None:
            self._move("index.tsv", fin["index_sha256"])
        self._move("audio.tsv", fin["audio"]["file_sha256"])
        meta = self.request.identity()
        meta.update(self.extra_meta)
        meta.update(upstream_meta or {})
        meta.update({
            "emobox_version": __version__,
            "layers": layers_meta,
            "n_utterances": state["rows"],
            "n_frames": state["frames"],
            "skipped": dict(sorted(state["skipped"].items())),
            "index_sha256": fin["index_sha256"] if old_meta is None else old_meta["index_sha256"],
            "audio": {"files": fin["audio"]["files"], "sha256": fin["audio"]["sha256"],
                      "root": self.audio_root},
            "complete": True,
        })
        meta["meta_sha256"] = meta_checksum(json.loads(json.dumps(meta, default=str)))
        atomic_write_json(self.path / "meta.json", meta)
        shutil.rmtree(self.partial, ignore_errors=True)
        return FeatureStore(self.path)


def _finish_problem(entry: Any, layers: Sequence[int]) -> str:
    if not isinstance(entry, dict) or not _is_hex(entry.get("index_sha256")):
        return "bad finish entry"
    info = entry.get("layers")
    if not isinstance(info, dict) or set(info) != {str(L) for L in layers}:
        return "bad finish entry"
    for v in info.values():
        if not (isinstance(v, dict) and _is_int(v.get("dim"), 0, MAX_DIM)
                and all(_is_hex(v.get(k)) for k in ("sha256", "sample_sha256", "pooled_sha256"))
                and _is_int(v.get("fp16_saturated"))):
            return "bad finish entry"
    audio = entry.get("audio")
    if not (isinstance(audio, dict) and _is_int(audio.get("files"))
            and _is_hex(audio.get("sha256")) and _is_hex(audio.get("file_sha256"))):
        return "bad finish entry"
    return ""


def _read_journal(journal: Path) -> list[dict]:
    """The complete entries of a journal (a torn last line is dropped); ValueError when it is
    not one emobox wrote."""
    try:
        data = _read_regular(journal, JOURNAL_MAX_BYTES, "the journal", journal.parent.parent)
    except DataError as exc:
        raise ValueError(str(exc).split("; the store")[0]) from None
    lines = data.decode("utf-8", errors="replace").split("\n")
    entries = []
    for line in lines[:-1]:  # the text after the last newline is a torn write
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            break
        if not isinstance(entry, dict):
            break
        entries.append(entry)
    if not entries or entries[0].get("kind") != "header":
        raise ValueError("no header")
    return entries


def _write_line(path: Path, obj: dict, fresh: bool = False) -> None:
    line = (json.dumps(obj, sort_keys=True) + "\n").encode("utf-8")
    if fresh:
        path.write_bytes(b"")
    _append(path, [line])


@contextmanager
def store_lock(path: Path, on_wait: Callable[[str], None] | None = None,
               name: str = ".lock", wait: bool = True) -> Iterator[None]:
    """Exclusive lock on a store folder: one extraction (or removal) at a time. ``name`` is
    the lock file in ``path`` (another name locks one file of a folder, e.g. a leaderboard).
    With ``wait=False`` a folder another process holds raises :class:`EmoboxUsageError`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # never through a link: a .lock linked elsewhere would create or lock a file outside
    fh = os.fdopen(open_regular(path / name, os.O_RDWR | os.O_CREAT,
                                "for the lock of a folder it writes"), "r+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise EmoboxUsageError(f"another process is writing {path} (an extraction "
                                       f"under way); wait for it to finish or stop it")
            if on_wait:
                on_wait(f"another process is writing {path}; waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def append_session(path: Path, record: Mapping[str, Any]) -> None:
    append_jsonl(Path(path) / SESSIONS, [dict(record, time=time.strftime("%Y-%m-%dT%H:%M:%S"))])


# -- finding and removing stores --------------------------------------------------------------
@dataclass
class StoreEntry:
    path: Path
    upstream: str
    corpus: str
    digest: str
    status: str  # complete | partial | corrupt
    meta: dict | None
    problem: str = ""


def list_stores(base: Path, upstream: str | None = None, corpus: str | None = None
                ) -> list[StoreEntry]:
    """Every store folder under ``base`` (``features/<upstream>/<corpus>/<digest>``)."""
    base = Path(base)
    out: list[StoreEntry] = []
    if not base.exists():
        return out
    for folder in sorted(base.glob("*/*/*")):
        if not folder.is_dir():
            continue
        up, cor, digest = folder.relative_to(base).parts
        if (upstream and up != upstream) or (corpus and cor != corpus):
            continue
        store = FeatureStore(folder)
        meta, status, problem = None, "partial", ""
        if store.exists():
            try:
                meta = store.meta
                status = "complete" if store.complete else "partial"
            except DataError as exc:
                status, problem = "corrupt", str(exc)
        elif not store.partial:
            continue
        out.append(StoreEntry(folder, up, cor, digest, status, meta, problem))
    return out


_STORE_FILE = re.compile(r"^(meta\.json|index\.tsv|audio\.tsv|sessions\.jsonl|\.lock|"
                         r"layer_\d+\.f16|pooled_\d+\.npy)$")
_PARTIAL_FILE = re.compile(r"^(journal\.jsonl|index\.tsv|audio\.tsv|layer_\d+\.f16|"
                           r"pooled_\d+\.f32)$")
_DIGEST = re.compile(r"^[0-9a-f]{12}$")


def _temporary(name: str) -> bool:
    return bool(_TEMPORARY.match(name))


def _marker(folder: Path) -> bool:
    """meta.json (or an unfinished extraction's journal) says the folder is an emobox store."""
    try:
        meta = json.loads(_read_regular(folder / "meta.json", META_MAX_BYTES, "meta.json",
                                        folder).decode("utf-8"))
        if isinstance(meta, dict) and meta.get("format") == FORMAT:
            return True
    except (OSError, ValueError, DataError, RecursionError):
        pass
    try:
        header = _read_journal(folder / PARTIAL / JOURNAL)[0]
        identity = header.get("identity")
        return isinstance(identity, dict) and identity.get("format") == FORMAT
    except (OSError, ValueError):
        return False


def store_problem(path: Path) -> str:
    """Why ``path`` is not provably an emobox feature store ("" when it is): a store is a real
    folder (not a link) holding only a store's files (no other file, folder or link), with a
    meta.json or journal marking it as one, or, damaged, sitting in a digest-named folder
    with a store's data files."""
    path = Path(path)
    if path.is_symlink():
        return "is a symbolic link, not a store folder (remove the link itself)"
    if not path.is_dir():
        return "is not a folder" if path.exists() else "does not exist"
    foreign: list[str] = []
    names: set[str] = set()
    with os.scandir(path) as entries:
        for entry in entries:
            names.add(entry.name)
            if entry.is_symlink():
                foreign.append(f"{entry.name} (a link)")
            elif entry.name == PARTIAL and entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as subs:
                    for sub in subs:
                        if sub.is_symlink() or not sub.is_file(follow_symlinks=False) or not (
                                _PARTIAL_FILE.match(sub.name) or _temporary(sub.name)):
                            foreign.append(f"{PARTIAL}/{sub.name}")
            elif not (entry.is_file(follow_symlinks=False)
                      and (_STORE_FILE.match(entry.name) or _temporary(entry.name))):
                foreign.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
        return f"holds {shown}, which an emobox feature store does not hold"
    if _marker(path):
        return ""
    data = names & {"index.tsv", PARTIAL} or {n for n in names if n.startswith("layer_")}
    if _DIGEST.match(path.name) and data:
        return ""  # a damaged store: its meta.json is unreadable, the rest is a store's
    return "is not marked as an emobox feature store (no meta.json of format emobox.features)"


def remove_store(path: Path, features_root: Path | None = None) -> int:
    """Delete one store folder, only when it is provably a store (:func:`store_problem`) and
    no extraction is writing it; returns the bytes freed. Emptied ``<corpus>`` and
    ``<upstream>`` folders are removed too when they lie inside ``features_root``."""
    path = Path(path)
    problem = store_problem(path)
    if problem:
        raise EmoboxUsageError(f"{path} {problem}; not removed")
    size = FeatureStore(path).size_bytes()
    with store_lock(path, wait=False):
        for child in path.iterdir():
            if child.name == ".lock":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    (path / ".lock").unlink(missing_ok=True)
    try:
        path.rmdir()
    except OSError:
        pass
    if features_root is not None:
        root = os.path.realpath(features_root)
        for parent in (path.parent, path.parent.parent):
            real = os.path.realpath(parent)
            if real == root or not real.startswith(root.rstrip(os.sep) + os.sep):
                break
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
    return size
