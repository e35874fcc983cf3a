"""Finding upstream weights on this machine, never on the network by surprise, and naming them.

Order of the search for an upstream called ``name``:

1. ``--upstream-ckpt PATH`` (a file or a folder), when given;
2. ``$EMOBOX_MODELS/<name>`` (a folder or a single file; default ``$EMOBOX_HOME/models``);
3. the Hugging Face cache, offline only (``local_files_only``), for the spec's hub id and revision.

When nothing is found, :class:`CheckpointNotFoundError` lists every place looked at and how to
obtain the weights. :func:`checkpoint_id` names a checkpoint by the content of its files, so that
a feature store made with other weights is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

from emobox import paths
from emobox.errors import CheckpointNotFoundError, DataError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".json", ".txt",
                   ".model", ".yaml")


def find_checkpoint(name: str, ckpt: str | os.PathLike | None = None, hub_id: str = "",
                    revision: str = "", how_to_get: str = "",
                    must_contain: Sequence[str] = ()) -> Path:
    """Local path of ``name``'s weights (file or folder); see the module docstring.

    must_contain: file names a folder must hold to count (e.g. ``config.json``).
    """
    looked: list[str] = []
    if ckpt:
        path = Path(ckpt).expanduser()
        if _usable(path, must_contain):
            return path
        raise CheckpointNotFoundError(
            f"--upstream-ckpt {path}: " + ("does not exist" if not path.exists() else
                                           f"is not a {name} checkpoint (expected "
                                           f"{', '.join(must_contain)} in it)"))
    local = paths.models_dir() / name
    looked.append(str(local))
    if _usable(local, must_contain):
        return local
    for suffix in (".pt", ".safetensors", ".bin"):
        single = local.with_name(name + suffix)
        if single.is_file():
            return single
    if hub_id:
        looked.append(f"Hugging Face cache ({hub_id}{'@' + revision if revision else ''})")
        cached = _hf_cached(hub_id, revision)
        if cached is not None and _usable(cached, must_contain):
            return cached
    msg = f"no checkpoint for upstream {name!r} on this machine; looked in: {'; '.join(looked)}."
    hint = how_to_get or (f"download it with `hf download {hub_id}` (online), or "
                          f"put it in {local}" if hub_id else f"put it in {local}")
    raise CheckpointNotFoundError(f"{msg} To obtain it: {hint}; or pass --upstream-ckpt PATH")


def _usable(path: Path, must_contain: Sequence[str]) -> bool:
    if path.is_file():
        return True
    if not path.is_dir():
        return False
    return all((path / f).exists() for f in must_contain) and any(path.iterdir())


def _hf_cached(hub_id: str, revision: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(hub_id, revision=revision or None, local_files_only=True))
    except Exception:  # not cached (or the cache is unreadable): treat as absent
        return None


def checkpoint_id(path: str | os.PathLike, extra: str = "") -> str:
    """Content hash of a checkpoint file or folder (cached by path, size and mtime)."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
    stamp = [(str(p.relative_to(path) if p != path else p.name), p.stat().st_size,
              p.stat().st_mtime_ns) for p in files]
    cache_path = paths.home() / "checkpoint_ids.json"
    cache_key = hashlib.sha256(json.dumps([str(path), stamp, extra]).encode()).hexdigest()
    cache = _read_cache(cache_path)
    cached = cache.get(cache_key)
    if isinstance(cached, str) and ID_FORM.fullmatch(cached):
        return cached
    h = hashlib.sha256(extra.encode())
    for p, (rel, size, _) in zip(files, stamp):
        h.update(f"{rel}\t{size}\n".encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    digest = "sha256:" + h.hexdigest()[:16]
    cache[cache_key] = digest
    try:
        from emobox.io import atomic_write_json

        atomic_write_json(cache_path, cache)
    except OSError:
        pass
    return digest


ID_FORM = re.compile(r"sha256:[0-9a-f]{16}")
KEY_FORM = re.compile(r"[0-9a-f]{64}")
MAX_CACHE_BYTES = 64 << 20


def _read_cache(path: Path) -> dict[str, str]:
    """The cached ids: ``{key: id}`` entries of the expected forms. A damaged cache (not a JSON
    object, or entries of another form) is treated as empty, with a warning naming the file;
    it is rewritten with the next id computed."""
    from emobox.io import read_json_file

    try:  # capped, depth-limited; a fifo or link in its place is refused, never waited on
        data = read_json_file(path, MAX_CACHE_BYTES)
        if not isinstance(data, dict):
            raise DataError(f"{path}: not a JSON object", path=str(path))
    except FileNotFoundError:  # computed afresh (and written)
        return {}
    except DataError as exc:
        why = str(exc).removeprefix(f"{path}: ")
        warnings.warn(f"{path}: damaged checkpoint id cache ({why}); ignoring it and computing "
                      f"checkpoint ids afresh")
        return {}
    except OSError:  # unreadable: computed afresh (and rewritten if possible)
        return {}
    good = {k: v for k, v in data.items()
            if KEY_FORM.fullmatch(k) and isinstance(v, str) and ID_FORM.fullmatch(v)}
    if len(good) != len(data):
        warnings.warn(f"{path}: {len(data) - len(good)} damaged entries in the checkpoint id "
                      f"cache; ignoring them and computing those ids afresh")
    return good
