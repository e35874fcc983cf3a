"""Crash-safe file writing: whole files appear atomically, JSON-lines rows are appended whole."""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

_UMASK = os.umask(0)
os.umask(_UMASK)

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


# the temporary names atomic_write_bytes makes: ".<name>.<8 random characters>.tmp"
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_temporaries(folder: Path) -> list[Path]:
    """Remove what writes cut short by a crash left in ``folder`` (not its subfolders): the
    temporary files of :func:`atomic_write_bytes`. Only for folders no other process is
    writing. Returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if _TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append rows as one write (each row one line), flushed to disk before returning.

    A file whose last line was cut by a crash is repaired first (the partial line is dropped), so
    a new row never glues onto a fragment.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    _repair_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def _repair_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path, repair: bool = False) -> list[dict]:
    """Rows of a JSON-lines file; a last line cut by a crash is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").split("\n")
    complete, tail = lines[:-1], lines[-1]
    for i, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            from .errors import DataError

            raise DataError(f"{path}:{i}: not a JSON object ({exc.msg}); the file is corrupt",
                            path=str(path))
    if tail.strip():
        warnings.warn(f"{path}: last line is incomplete (an interrupted write); it is ignored"
                      + (" and removed" if repair else ""))
        if repair:
            _repair_tail(path)
    return rows


def read_mapping(path: Path, what: str, hint: str) -> dict:
    """A JSON (``.json``) or YAML (any other suffix) file holding a mapping. Every problem is an
    :class:`emobox.EmoboxUsageError` starting with ``what`` (e.g. ``--grid file x.yaml``);
    ``hint`` says what the mapping should hold."""
    from .errors import EmoboxUsageError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmoboxUsageError(f"{what} does not exist")
    except OSError as exc:
        raise EmoboxUsageError(f"{what}: cannot read: {exc.strerror}")
    try:
        if Path(path).suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise EmoboxUsageError(f"{what}: cannot parse ({exc})")
    if not isinstance(data, dict):
        raise EmoboxUsageError(f"{what}: expected a mapping {hint}")
    return data
