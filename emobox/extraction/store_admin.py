"""Library twins of ``emobox features info / verify / rm``: find, describe, check, delete stores.

Stores live under ``$EMOBOX_HOME/features`` (or any folder given as ``features_dir``) as
``<upstream>/<corpus>/<digest>/``; they are selected by a folder path or by upstream, corpus and
precision.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emobox import paths
from emobox.errors import DataError, EmoboxUsageError
from emobox.extraction.store import (PARTIAL, FeatureStore, StoreEntry, check_audio, list_stores,
                                     remove_store, stale_audio_message)


def find_stores(path: str | Path | None = None, upstream: str | None = None,
                corpus: str | None = None, precision: str | None = None,
                features_dir: str | Path | None = None) -> list[StoreEntry]:
    """Stores matching the selection; a ``path`` must be a store folder."""
    if path is not None:
        folder = Path(path).expanduser()
        if not (folder / "meta.json").exists() and not (folder / PARTIAL).exists():
            raise EmoboxUsageError(f"{folder} is not a feature store (no meta.json); "
                                   f"`emobox features info` lists the stores")
        store = FeatureStore(folder)
        status, meta, problem = "partial", None, ""
        if store.exists():
            try:
                meta = store.meta
                status = "complete" if store.complete else "partial"
            except DataError as exc:
                status, problem = "corrupt", str(exc)
        return [StoreEntry(folder, (meta or {}).get("upstream", folder.parent.parent.name),
                           (meta or {}).get("corpus", folder.parent.name), folder.name, status,
                           meta, problem)]
    base = Path(features_dir).expanduser() if features_dir else paths.features_dir()
    entries = list_stores(base, upstream, corpus)
    if precision:
        entries = [e for e in entries if (e.meta or {}).get("precision") == precision]
    return entries


@dataclass
class StoreInfo:
    entry: StoreEntry
    size_bytes: int
    layers: dict[int, int]  # layer -> dim
    n_utterances: int | None
    n_frames: int | None
    skipped: int
    partial_progress: str  # "" or what an unfinished extraction has done
    sessions: list[dict]


def store_info(entry: StoreEntry) -> StoreInfo:
    store = FeatureStore(entry.path)
    meta = entry.meta or {}
    layers = {int(k): int(v.get("dim", 0)) for k, v in meta.get("layers", {}).items()}
    progress = ""
    journal = entry.path / PARTIAL / "journal.jsonl"
    if journal.exists():
        from emobox.extraction.store import _read_journal

        try:
            entries = _read_journal(journal)
            chunks = [e for e in entries if e.get("kind") == "chunk"]
            done = chunks[-1].get("next", 0) if chunks else 0
            progress = (f"unfinished extraction of layers {entries[0].get('layers')}: "
                        f"{done} utterances done")
        except (OSError, ValueError):
            progress = "unfinished extraction (journal unreadable)"
    try:
        sessions = store.sessions()
    except DataError as exc:  # the record of past extractions only: the features stand
        warnings.warn(f"{exc} (the sessions are not shown)")
        sessions = []
    return StoreInfo(entry, store.size_bytes(), layers, meta.get("n_utterances"),
                     meta.get("n_frames"), len(meta.get("skipped", {})), progress, sessions)


@dataclass
class Verified:
    """What :func:`verify_store_audio` found: a problem ("" when none) and a note on the audio
    check (which root was compared, or why the audio was not checked)."""

    problem: str
    audio_note: str


def verify_store(entry: StoreEntry, progress: Callable[[int], None] | None = None) -> str:
    """Empty string when every file of the store matches its checksum, else the problem."""
    return verify_store_audio(entry, progress, check_audio_files=False).problem


def verify_store_audio(entry: StoreEntry, progress: Callable[[int], None] | None = None,
                       root: str | Path | None = None, check_audio_files: bool = True
                       ) -> Verified:
    """:func:`verify_store`, and the audio files against what the store recorded of them
    (under ``root``, default the corpus root recorded at extraction when it exists)."""
    if entry.status == "corrupt":
        return Verified(entry.problem, "")
    if entry.status == "partial" and not (entry.path / "meta.json").exists():
        return Verified(f"{entry.path}: no finished layer yet (an extraction is unfinished)", "")
    store = FeatureStore(entry.path)
    try:
        store.verify(progress)
    except DataError as exc:
        return Verified(str(exc), "")
    if not check_audio_files:
        return Verified("", "")
    recorded = store.meta["audio"].get("root") or ""
    base = Path(root).expanduser() if root else Path(recorded) if recorded else None
    if base is None or not base.is_dir():
        where = f"{base} is not here" if base else "no corpus root recorded"
        return Verified("", f"audio not checked ({where}; give --root DIR)")
    found = check_audio(store, base, list(store.audio_records()))
    if found.changed:
        return Verified(stale_audio_message(store, base, found), "")
    return Verified("", f"audio unchanged under {base} ({len(store.audio_records())} files, "
                        f"{found.hashed} hashed again)")


def remove_stores(entries: list[StoreEntry], features_dir: str | Path | None = None) -> int:
    """Delete the stores (each only when it is provably a store); returns the bytes freed.
    Emptied ``<upstream>/<corpus>`` folders inside the features folder go too, never a folder
    outside it."""
    base = Path(features_dir).expanduser() if features_dir else paths.features_dir()
    return sum(remove_store(e.path, base) for e in entries)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
