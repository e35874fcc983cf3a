"""The feature store: frame-level features of one (upstream, corpus), extracted once.

Layout of a store folder (``$EMOBOX_HOME/features/<upstream>/<corpus>/<digest>/``)::

    meta.json          what made it: upstream, checkpoint id, options, precision, corpus, manifest
                       hash, emobox version, frame rate, counts, skipped utterances, and per
                       finished layer its dim and the SHA-256 of its files; written last
    index.tsv          key, offset (first frame row), length (frames) per utterance, manifest order
    layer_<L>.f16      raw float16 rows [n_frames, D] of layer L (memory-mapped when read)
    pooled_<L>.npy     float32 utterance means [n_utterances, D] of layer L
    sessions.jsonl     one line per extraction session (device, time, throughput); history only
    .partial/          an extraction under way: journal.jsonl and the files it appends to

The folder name is a digest of everything that changes the numbers (upstream, checkpoint id,
options, feature version, precision, corpus, manifest hash, store format), so a store made with
another checkpoint, manifest or precision is a different folder; ``meta.json`` is checked again
on open and a mismatch is refused, never silently reused. Layers are added to a finished store
without touching the others (every layer shares the one index).

Extraction appends whole chunks (consecutive utterances in manifest order): the data of a chunk is
written and flushed to disk before the journal records it, so a killed extraction resumes after
the last chunk the journal holds, cutting away anything written after it, and the finished files
are byte-identical to those of an uninterrupted extraction.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .errors import DataError, EmoboxUsageError

FORMAT = "emobox.features"
SCHEMA_VERSION = 2
PARTIAL = ".partial"
JOURNAL = "journal.jsonl"
SESSIONS = "sessions.jsonl"
INDEX_HEADER = "key\toffset\tlength\n"
FP16_MAX = float(np.finfo(np.float16).max)


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


class FeatureStore:
    """Read access to a store folder; every problem found is a :class:`DataError` naming a file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._meta: dict | None = None
        self._index: tuple[list[str], np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r})"

    @property
    def meta(self) -> dict:
        if self._meta is None:
            meta_path = self.path / "meta.json"
            try:
                meta = json.loads(meta_path.read_text())
            except FileNotFoundError:
                raise DataError(f"{meta_path}: feature store has no meta.json (incomplete or not "
                                f"a store)", path=str(meta_path))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{meta_path}: corrupt meta.json ({exc}); delete the store with "
                                f"`emobox features rm` and extract again", path=str(meta_path))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise DataError(f"{meta_path}: not an emobox feature store", path=str(meta_path))
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise DataError(f"{meta_path}: store format version {meta.get('schema_version')} "
                                f"(this emobox reads version {SCHEMA_VERSION}); delete it with "
                                f"`emobox features rm` and extract again", path=str(meta_path))
            self._meta = meta
        return self._meta

    def exists(self) -> bool:
        return (self.path / "meta.json").exists()

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
        """Keys, frame offsets and frame lengths, in store order (checked for consistency)."""
        if self._index is None:
            self._index = read_index(self.path / "index.tsv", int(self.meta["n_utterances"]),
                                     self.n_frames)
        return self._index

    def layer(self, layer: int) -> np.ndarray:
        """Memory-mapped raw float16 frames ``[n_frames, D]`` of one layer."""
        path = self.path / f"layer_{layer}.f16"
        dim = self.dim(layer)
        expected = self.n_frames * dim * 2
        size = path.stat().st_size if path.exists() else -1
        if size != expected:
            what = "is missing" if size < 0 else f"has {size} bytes, expected {expected} " \
                f"({self.n_frames} frames x {dim} dims x 2)"
            raise DataError(f"{path}: feature file {what}; the store is truncated or corrupt: "
                            f"delete it with `emobox features rm` and extract again",
                            path=str(path))
        if self.n_frames == 0:
            return np.zeros((0, dim), np.float16)
        return np.memmap(path, dtype=np.float16, mode="r", shape=(self.n_frames, dim))

    def pooled(self, layer: int) -> np.ndarray:
        path = self.path / f"pooled_{layer}.npy"
        shape = (int(self.meta["n_utterances"]), self.dim(layer))
        try:
            arr = np.load(path)
        except FileNotFoundError:
            raise DataError(f"{path}: pooled features are missing", path=str(path))
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt pooled features ({exc})", path=str(path))
        if arr.shape != shape or arr.dtype != np.float32:
            raise DataError(f"{path}: pooled features have shape {arr.shape} {arr.dtype}, "
                            f"expected {shape} float32; the store is corrupt", path=str(path))
        return arr

    def skipped(self) -> dict[str, str]:
        return dict(self.meta.get("skipped", {}))

    # -- checks ------------------------------------------------------------------------------
    def check(self) -> None:
        """Fast structural check: meta, index and the size of every file."""
        self.index()
        for layer in self.layers():
            self.layer(layer)
            path = self.path / f"pooled_{layer}.npy"
            if not path.exists():
                raise DataError(f"{path}: pooled features are missing", path=str(path))

    def verify(self, progress: Callable[[int], None] | None = None) -> None:
        """Full check: every file's SHA-256 against meta.json (reads the whole store)."""
        self.check()
        files = {"index.tsv": self.meta.get("index_sha256")}
        for layer in self.layers():
            info = self.meta["layers"][str(layer)]
            files[f"layer_{layer}.f16"] = info.get("sha256")
            files[f"pooled_{layer}.npy"] = info.get("pooled_sha256")
        for name, expected in files.items():
            path = self.path / name
            actual = file_sha256(path, progress)
            if expected is None or actual != expected:
                raise DataError(f"{path}: content does not match its checksum in meta.json "
                                f"(sha256 {actual[:16]}..., recorded {str(expected)[:16]}...); "
                                f"the file is corrupt: delete the store with `emobox features rm`"
                                f" and extract again", path=str(path))
        self.pooled_check()

    def pooled_check(self) -> None:
        for layer in self.layers():
            self.pooled(layer)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def sessions(self) -> list[dict]:
        from .io import read_jsonl

        return read_jsonl(self.path / SESSIONS)


def read_index(path: Path, n_utterances: int, n_frames: int
               ) -> tuple[list[str], np.ndarray, np.ndarray]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise DataError(f"{path}: feature store index is missing", path=str(path))
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
            if len(parts) != 3 or offset != expected_offset or length < 1:
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


# -- writing ---------------------------------------------------------------------------------
@dataclass
class ChunkData:
    """Features of consecutive utterances (manifest order) ready to append."""

    keys: list[str]
    frames: dict[int, list[np.ndarray]]  # layer -> per utterance fp16 [n_i, D]
    pooled: dict[int, list[np.ndarray]]  # layer -> per utterance float32 [D]
    next_position: int  # manifest position after the chunk's last utterance
    skipped: dict[str, str] = field(default_factory=dict)
    saturated: dict[int, int] = field(default_factory=dict)  # layer -> values clipped to fp16


class StoreWriter:
    """Appends chunks to ``.partial/`` with a journal; resumes; publishes atomically at the end.

    ``plan`` holds the settings that decide chunk and batch boundaries; a resumed extraction
    reuses the journal's plan, so its files come out identical to an uninterrupted one.
    """

    def __init__(self, path: Path, request: StoreRequest, layers: Sequence[int],
                 plan: Mapping[str, Any], extra_meta: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.request = request
        self.layers = sorted(layers)
        self.extra_meta = dict(extra_meta or {})
        self.partial = self.path / PARTIAL
        self.notes: list[str] = []
        header = {"kind": "header", "identity": request.identity(), "layers": self.layers,
                  "plan": dict(plan)}
        self.state = self._resume(header)
        if self.state is None:
            if self.partial.exists():
                shutil.rmtree(self.partial)
            self.partial.mkdir(parents=True)
            self.plan = dict(plan)
            self.state = {"chunk": 0, "next": 0, "frames": 0, "rows": 0,
                          "index_bytes": len(INDEX_HEADER.encode()), "skipped": {},
                          "saturated": {str(L): 0 for L in self.layers}, "dims": {}}
            for L in self.layers:
                (self.partial / f"layer_{L}.f16").write_bytes(b"")
                (self.partial / f"pooled_{L}.f32").write_bytes(b"")
            (self.partial / "index.tsv").write_text(INDEX_HEADER, encoding="utf-8")
            _write_line(self.partial / JOURNAL, header, fresh=True)
        self.dims: dict[int, int] = {int(k): v for k, v in self.state["dims"].items()}

    @property
    def resume_position(self) -> int:
        """Manifest position of the first utterance still to extract."""
        return int(self.state["next"])

    def _resume(self, header: dict) -> dict | None:
        journal = self.partial / JOURNAL
        if not journal.exists():
            return None
        lines = journal.read_text(encoding="utf-8").split("\n")
        entries = []
        for line in lines[:-1]:  # the text after the last newline is a torn write
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break
        if not entries or entries[0].get("kind") != "header":
            self.notes.append(f"{journal}: unreadable journal; extracting from the start")
            return None
        old = entries[0]
        if old["identity"] != header["identity"] or old["layers"] != header["layers"]:
            self.notes.append("an unfinished extraction of other layers or settings was found "
                              "in this store and is discarded")
            return None
        self.plan = old["plan"]
        if old["plan"] != header["plan"]:
            self.notes.append(f"resuming with the settings of the interrupted extraction "
                              f"{old['plan']} (not {header['plan']}) so that the store comes out "
                              f"identical")
        chunks = [e for e in entries[1:] if e.get("kind") == "chunk"]
        state = chunks[-1] if chunks else {
            "chunk": 0, "next": 0, "frames": 0, "rows": 0,
            "index_bytes": len(INDEX_HEADER.encode()), "skipped": {},
            "saturated": {str(L): 0 for L in self.layers}, "dims": {}}
        # cut away whatever a killed chunk wrote after the last journal entry
        sizes = {"index.tsv": state["index_bytes"]}
        for L in self.layers:
            dim = state["dims"].get(str(L), 0)
            sizes[f"layer_{L}.f16"] = state["frames"] * dim * 2
            sizes[f"pooled_{L}.f32"] = state["rows"] * dim * 4
        for name, size in sizes.items():
            p = self.partial / name
            if not p.exists() or p.stat().st_size < size:
                self.notes.append(f"{p}: shorter than its journal says; extracting from the "
                                  f"start")
                return None
            if p.stat().st_size > size:
                with open(p, "rb+") as fh:
                    fh.truncate(size)
                    os.fsync(fh.fileno())
        # drop a torn journal tail
        good = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries[:1] + chunks)
        if journal.read_text(encoding="utf-8") != good:
            from .io import atomic_write_text

            atomic_write_text(journal, good)
        if chunks:
            self.notes.append(f"resuming an interrupted extraction at utterance "
                              f"{state['next'] + 1} ({state['rows']} done)")
        return dict(state)

    def append_chunk(self, chunk: ChunkData) -> None:
        for L in self.layers:
            for arr in chunk.frames[L]:
                dim = self.dims.setdefault(L, int(arr.shape[1]))
                if arr.shape[1] != dim:
                    raise DataError(f"layer {L} changed its dim from {dim} to {arr.shape[1]}")
        new_rows, lines = 0, []
        offset = self.state["frames"]
        first = self.layers[0]
        for i, key in enumerate(chunk.keys):
            n = int(chunk.frames[first][i].shape[0])
            lines.append(f"{key}\t{offset}\t{n}\n")
            offset += n
            new_rows += 1
        index_text = "".join(lines).encode("utf-8")
        for L in self.layers:
            with open(self.partial / f"layer_{L}.f16", "ab") as fh:
                for arr in chunk.frames[L]:
                    fh.write(memoryview(np.ascontiguousarray(arr, dtype=np.float16)).cast("B"))
                fh.flush()
                os.fsync(fh.fileno())
            with open(self.partial / f"pooled_{L}.f32", "ab") as fh:
                for vec in chunk.pooled[L]:
                    fh.write(memoryview(np.ascontiguousarray(vec, dtype=np.float32)).cast("B"))
                fh.flush()
                os.fsync(fh.fileno())
        with open(self.partial / "index.tsv", "ab") as fh:
            fh.write(index_text)
            fh.flush()
            os.fsync(fh.fileno())
        state = dict(self.state)
        state.update({"kind": "chunk", "chunk": state["chunk"] + 1, "next": chunk.next_position,
                      "frames": offset, "rows": state["rows"] + new_rows,
                      "index_bytes": state["index_bytes"] + len(index_text),
                      "skipped": {**state["skipped"], **chunk.skipped},
                      "saturated": {str(L): state["saturated"].get(str(L), 0)
                                    + chunk.saturated.get(L, 0) for L in self.layers},
                      "dims": {str(L): d for L, d in self.dims.items()}})
        _write_line(self.partial / JOURNAL, state)
        self.state = state

    def finish(self, upstream_meta: Mapping[str, Any]) -> FeatureStore:
        """Move the finished layers into the store and write meta.json (last)."""
        from . import __version__
        from .io import atomic_write_bytes, atomic_write_json

        state = self.state
        existing = FeatureStore(self.path)
        old_meta = existing.meta if existing.exists() else None
        index_partial = self.partial / "index.tsv"
        if old_meta is not None:
            same = (index_partial.read_bytes() == (self.path / "index.tsv").read_bytes()
                    and old_meta.get("skipped", {}) == state["skipped"])
            if not same:
                raise DataError(f"{self.path}: the new layers' frame counts or skipped "
                                f"utterances differ from the store's index; delete the store "
                                f"with `emobox features rm` and extract all layers again",
                                path=str(self.path / "index.tsv"))
        layers_meta = dict(old_meta["layers"]) if old_meta else {}
        for L in self.layers:
            dim = self.dims.get(L, int(self.extra_meta.get("hidden_size") or 0))
            raw = np.fromfile(self.partial / f"pooled_{L}.f32", dtype=np.float32)
            pooled = raw.reshape(state["rows"], dim) if dim else raw.reshape(state["rows"], 0)
            buf = io.BytesIO()
            np.save(buf, pooled)
            atomic_write_bytes(self.path / f"pooled_{L}.npy", buf.getvalue())
            layer_path = self.path / f"layer_{L}.f16"
            (self.partial / f"layer_{L}.f16").replace(layer_path)
            layers_meta[str(L)] = {"dim": dim, "sha256": file_sha256(layer_path),
                                   "pooled_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                                   "fp16_saturated": int(state["saturated"].get(str(L), 0))}
        if old_meta is None:
            index_partial.replace(self.path / "index.tsv")
        meta = self.request.identity()
        meta.update(self.extra_meta)
        meta.update({
            "emobox_version": __version__,
            "layers": layers_meta,
            "n_utterances": state["rows"],
            "n_frames": state["frames"],
            "skipped": dict(sorted(state["skipped"].items())),
            "index_sha256": file_sha256(self.path / "index.tsv"),
            "complete": True,
        })
        atomic_write_json(self.path / "meta.json", meta)
        shutil.rmtree(self.partial, ignore_errors=True)
        return FeatureStore(self.path)


def _write_line(path: Path, obj: dict, fresh: bool = False) -> None:
    with open(path, "w" if fresh else "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def store_lock(path: Path, on_wait: Callable[[str], None] | None = None,
               name: str = ".lock") -> Iterator[None]:
    """Exclusive lock on a store folder: one extraction (or removal) at a time. ``name`` is
    the lock file in ``path`` (another name locks one file of a folder, e.g. a leaderboard)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fh = open(path / name, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(f"another process is writing {path}; waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def append_session(path: Path, record: Mapping[str, Any]) -> None:
    from .io import append_jsonl

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


def remove_store(path: Path) -> int:
    """Delete one store folder; returns the bytes freed."""
    path = Path(path)
    if not (path / "meta.json").exists() and not (path / PARTIAL).exists():
        raise EmoboxUsageError(f"{path} is not a feature store")
    with store_lock(path):
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        for child in path.iterdir():
            if child.name != ".lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.rmtree(path, ignore_errors=True)
    for parent in (path.parent, path.parent.parent):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
    return size
