"""The feature store: frame-level features of one (upstream, corpus), extracted once.

Layout of a store folder (``$EMOBOX_HOME/features/<upstream>/<corpus>/<digest>/``)::

    meta.json          what made it: upstream, checkpoint id, options, precision, corpus,
                       manifest hash, emobox version, layers and their dims, skipped utterances
    index.tsv          key, offset (first frame row), length (frames) per utterance
    layer_<L>.f16      raw float16 rows [n_frames, D] of layer L (memory-mapped when read)
    pooled_<L>.npy     float32 utterance means [n_utterances, D] of layer L

The folder name is a digest of everything that changes the numbers, so a store made with another
checkpoint, manifest or precision is a different folder; ``meta.json`` is checked again on open
and a mismatch is refused, never silently reused. A store is complete when ``meta.json`` has
``"complete": true``; it is written last.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DataError

FORMAT = "emobox.features"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StoreRequest:
    """Everything that determines a store's content."""

    upstream: str
    checkpoint_id: str
    corpus: str
    manifest_hash: str
    precision: str = "fp32"
    options: Mapping[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "upstream": self.upstream,
                "checkpoint_id": self.checkpoint_id, "corpus": self.corpus,
                "manifest_hash": self.manifest_hash, "precision": self.precision,
                "options": dict(sorted(self.options.items()))}

    def digest(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def path(self, base: Path) -> Path:
        return Path(base) / self.upstream / self.corpus / self.digest()


class FeatureStore:
    """Read access to a store folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._meta: dict | None = None
        self._index: tuple[list[str], np.ndarray, np.ndarray] | None = None

    @property
    def meta(self) -> dict:
        if self._meta is None:
            meta_path = self.path / "meta.json"
            try:
                self._meta = json.loads(meta_path.read_text())
            except FileNotFoundError:
                raise DataError(f"{meta_path}: feature store has no meta.json (incomplete or not "
                                f"a store)", path=str(meta_path))
            except json.JSONDecodeError as exc:
                raise DataError(f"{meta_path}: corrupt meta.json ({exc.msg})",
                                path=str(meta_path))
        return self._meta

    def exists(self) -> bool:
        return (self.path / "meta.json").exists()

    @property
    def complete(self) -> bool:
        return self.exists() and bool(self.meta.get("complete"))

    def layers(self) -> list[int]:
        return sorted(int(k) for k in self.meta.get("layers", {}))

    def dim(self, layer: int) -> int:
        return int(self.meta["layers"][str(layer)]["dim"])

    def matches(self, request: StoreRequest) -> str:
        """Empty string when the store was made by ``request``, else what differs."""
        ident = request.identity()
        diffs = [f"{k}: store has {self.meta.get(k)!r}, requested {v!r}"
                 for k, v in ident.items() if self.meta.get(k) != v]
        return "; ".join(diffs)

    def index(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Keys, frame offsets and frame lengths, in store order."""
        if self._index is None:
            path = self.path / "index.tsv"
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                raise DataError(f"{path}: feature store index is missing", path=str(path))
            keys, offsets, lengths = [], [], []
            for i, line in enumerate(lines[1:], start=2):
                parts = line.split("\t")
                if len(parts) != 3:
                    raise DataError(f"{path}:{i}: corrupt index line", path=str(path))
                keys.append(parts[0])
                offsets.append(int(parts[1]))
                lengths.append(int(parts[2]))
            self._index = (keys, np.asarray(offsets, np.int64), np.asarray(lengths, np.int64))
        return self._index

    def layer(self, layer: int) -> np.ndarray:
        """Memory-mapped raw float16 frames ``[n_frames, D]`` of one layer."""
        path = self.path / f"layer_{layer}.f16"
        dim = self.dim(layer)
        n_frames = int(self.meta["n_frames"])
        expected = n_frames * dim * 2
        size = path.stat().st_size if path.exists() else -1
        if size != expected:
            raise DataError(f"{path}: feature file has {size} bytes, expected {expected} "
                            f"({n_frames} frames x {dim} dims x 2); the store is truncated or "
                            f"corrupt: delete it with `emobox features rm` and extract again",
                            path=str(path))
        if n_frames == 0:
            return np.zeros((0, dim), np.float16)
        return np.memmap(path, dtype=np.float16, mode="r", shape=(n_frames, dim))

    def pooled(self, layer: int) -> np.ndarray:
        return np.load(self.path / f"pooled_{layer}.npy")

    def skipped(self) -> dict[str, str]:
        return dict(self.meta.get("skipped", {}))


class StoreWriter:
    """Appends utterances in order, then publishes the store atomically (meta.json last)."""

    def __init__(self, path: Path, request: StoreRequest, layers: Sequence[int],
                 extra_meta: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.request = request
        self.layers = list(layers)
        self.extra_meta = dict(extra_meta or {})
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in ("meta.json", "index.tsv"):
            (self.path / stale).unlink(missing_ok=True)
        self._files = {L: open(self.path / f"layer_{L}.f16.partial", "wb") for L in self.layers}
        self._sums: dict[int, list[np.ndarray]] = {L: [] for L in self.layers}
        self._dims: dict[int, int] = {}
        self._index: list[tuple[str, int, int]] = []
        self._skipped: dict[str, str] = {}
        self._offset = 0

    def append(self, key: str, hidden: Mapping[int, np.ndarray]) -> None:
        lengths = {h.shape[0] for h in hidden.values()}
        if len(lengths) != 1:
            raise DataError(f"{key}: layers disagree on the frame count {sorted(lengths)}")
        n = lengths.pop()
        for L in self.layers:
            arr = np.asarray(hidden[L], dtype=np.float32)
            dim = self._dims.setdefault(L, arr.shape[1])
            if arr.shape[1] != dim:
                raise DataError(f"{key}: layer {L} has dim {arr.shape[1]}, expected {dim}")
            self._files[L].write(arr.astype(np.float16).tobytes())
            self._sums[L].append(arr.mean(0) if n else np.zeros(dim, np.float32))
        self._index.append((key, self._offset, n))
        self._offset += n

    def skip(self, key: str, reason: str) -> None:
        self._skipped[key] = reason

    def finish(self) -> FeatureStore:
        from . import __version__
        from .io import atomic_write_json, atomic_write_text

        for L, fh in self._files.items():
            fh.flush()
            fh.close()
            (self.path / f"layer_{L}.f16.partial").replace(self.path / f"layer_{L}.f16")
            dim = self._dims.get(L, 0)
            pooled = np.stack(self._sums[L]) if self._sums[L] else np.zeros((0, dim), np.float32)
            np.save(self.path / f"pooled_{L}.npy", pooled.astype(np.float32))
        atomic_write_text(self.path / "index.tsv", "key\toffset\tlength\n" + "".join(
            f"{k}\t{o}\t{n}\n" for k, o, n in self._index))
        meta = self.request.identity()
        meta.update(self.extra_meta)
        meta.update({
            "emobox_version": __version__,
            "layers": {str(L): {"dim": self._dims.get(L, 0)} for L in self.layers},
            "n_utterances": len(self._index),
            "n_frames": self._offset,
            "skipped": self._skipped,
            "complete": True,
        })
        atomic_write_json(self.path / "meta.json", meta)
        return FeatureStore(self.path)

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
