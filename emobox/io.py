"""Crash-safe file writing: whole files appear atomically, JSON-lines rows are appended whole.

Reading is as careful: files emobox reads back (run and bench directories, grid files, stores'
journals) may have been edited, replaced or planted by someone else. They are opened without
following symbolic links and only when they are regular files, read up to a size cap, and
parsed with a cap on nesting depth; YAML is read without aliases. Every problem is one
:class:`emobox.EmoboxError` naming the file. Every write that fails for the operating system
(a full disk, a file-size limit, permissions) raises an :class:`OSError` that names the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import re
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import DataError, EmoboxError, EmoboxUsageError

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


@contextlib.contextmanager
def naming(path: Path | str) -> Iterator[None]:
    """Give an :class:`OSError` raised inside without a file name (``write`` on a full disk,
    ``fsync``, a file-size limit) the name ``path``, so that the error says where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
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
    """``text`` as UTF-8; a file name that is not UTF-8 (held as surrogates) is written with
    its odd bytes escaped (``\\udcff``) rather than failing the whole file."""
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """JSON text of ``obj`` as emobox writes it: never ``NaN`` or ``Infinity`` (not JSON; other
    readers refuse them), which raise :class:`ValueError` here instead."""
    kwargs.setdefault("sort_keys", True)
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(obj, allow_nan=False, **kwargs)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj, indent=2) + "\n")


def jsonl_text(rows: Iterable[dict]) -> str:
    return "".join(dumps_json(r) + "\n" for r in rows)


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append rows as one write (each row one line), flushed to disk before returning.

    A file whose last line was cut by a crash is repaired first (the partial line is dropped), so
    a new row never glues onto a fragment. A link or anything but a regular file at ``path`` is
    refused, never written through.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = jsonl_text(rows).encode("utf-8")
    _repair_tail(path)
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with naming(path), os.fdopen(fd, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def _repair_tail(path: Path) -> None:
    try:
        fd = open_regular(path, os.O_RDWR)
    except FileNotFoundError:
        return
    with naming(path), os.fdopen(fd, "rb+") as fh:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        # the last complete line ends before the cut one: look back in blocks
        pos, cut = size, 0
        while pos > 0:
            start = max(0, pos - (1 << 16))
            fh.seek(start)
            block = fh.read(pos - start)
            found = block.rfind(b"\n")
            if found >= 0:
                cut = start + found + 1
                break
            pos = start
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


# -- reading untrusted files ---------------------------------------------------------------------

MAX_JSON_DEPTH = 64  # nesting of JSON/YAML read from files (run rows nest 3 deep)
MAX_MAPPING_BYTES = 1 << 20  # a grid or options file
MAX_CONFIG_BYTES = 16 << 20  # config.json, bench.json
MAX_JSONL_BYTES = 1 << 30  # results.jsonl, tasks.jsonl, sessions.jsonl
MAX_JSONL_ROWS = 1_000_000  # records of one such file (a grid of 1,000 x 100 folds is 100,000)


def _data_error(message: str, path: Path | str) -> Exception:
    return DataError(message, path=str(path))


def open_regular(path: Path | str, flags: int = os.O_RDONLY, what: str = "",
                 follow_links: bool = False) -> int:
    """``os.open`` that follows no symbolic link at ``path`` (unless ``follow_links``: a path
    the user named) and accepts only a regular file (a fifo, a device or a folder there is
    refused without blocking). Returns the descriptor; :class:`emobox.DataError` names the
    path otherwise; a missing file raises :class:`FileNotFoundError`."""
    path = Path(path)
    nofollow = 0 if follow_links else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                     0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _data_error(f"{path}: is a symbolic link; emobox does not follow links "
                              f"{what or 'in the folders it writes'}: remove it", path)
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a fifo without a writer, a folder
            raise _data_error(f"{path}: is not a regular file; remove it", path)
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a fifo" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise _data_error(f"{path}: is {kind}, not a regular file; remove it", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes_capped(path: Path | str, limit: int, what: str = "",
                      follow_links: bool = False,
                      too_big: str = "not a file emobox wrote (remove or replace it)") -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`), refused with
    :class:`emobox.DataError` (``too_big`` says why) when larger than ``limit``."""
    fd = open_regular(path, os.O_RDONLY, what, follow_links)
    with naming(path), os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _data_error(f"{path}: larger than {_size(limit)}; {too_big}", path)
    return data


def read_text_capped(path: Path | str, limit: int, what: str = "",
                     follow_links: bool = False) -> str:
    data = read_bytes_capped(path, limit, what, follow_links)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _data_error(f"{path}: not UTF-8 text (byte {exc.start}); the file is corrupt",
                          path)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (strings skipped)."""
    depth = deepest = 0
    for ch in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` (a ``ValueError``, never a
    ``RecursionError``)."""
    if ("[" in text or "{" in text) and json_depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return json.loads(text)


def read_json_file(path: Path | str, limit: int = MAX_CONFIG_BYTES, what: str = "",
                   follow_links: bool = False) -> Any:
    """The JSON value in ``path`` (a regular file, at most ``limit`` bytes, nested at most
    :data:`MAX_JSON_DEPTH` deep; a link only with ``follow_links``, for a file the user named);
    :class:`emobox.DataError` names the file otherwise."""
    text = read_text_capped(path, limit, what, follow_links)
    try:
        return loads_json(text)
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _data_error(f"{path}: not valid JSON ({msg})", path)


def read_jsonl(path: Path, repair: bool = False, limit: int = MAX_JSONL_BYTES,
               what: str = "", check: Callable[[dict], dict] | None = None,
               hint: str = "the file is corrupt") -> list[dict]:
    """Objects of a JSON-lines file; a last line cut by a crash is skipped with a warning.

    A line that is not a JSON object (not JSON, a number, a list), text that is not UTF-8, a
    file above ``limit`` bytes, a link or anything but a regular file is a
    :class:`emobox.DataError` naming the file (and the line), ending with ``hint``. ``check``
    (which raises :class:`ValueError` saying what is wrong) vets, and may normalise, each
    object."""
    path = Path(path)
    try:
        data = read_bytes_capped(path, limit, what)
    except FileNotFoundError:
        return []
    rows = []
    tail = b""
    for i, raw in enumerate(io.BytesIO(data), start=1):  # line by line: no list of every line
        if not raw.endswith(b"\n"):
            tail = raw
            break
        if not raw.strip():
            continue
        if len(rows) >= MAX_JSONL_ROWS:
            raise _data_error(f"{path}:{i}: more than {MAX_JSONL_ROWS:,} records; {hint}", path)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _data_error(f"{path}:{i}: not UTF-8 text; {hint}", path)
        try:
            row = loads_json(line)
        except ValueError as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise _data_error(f"{path}:{i}: not a JSON object ({msg}); {hint}", path)
        if not isinstance(row, dict):
            raise _data_error(f"{path}:{i}: not a JSON object (a JSON {_json_type(row)}); "
                              f"{hint}", path)
        if check is not None:
            try:
                row = check(row)
            except ValueError as exc:
                raise _data_error(f"{path}:{i}: {exc}; {hint}", path)
        rows.append(row)
    if tail.strip():
        warnings.warn(f"{path}: last line is incomplete (an interrupted write); it is ignored"
                      + (" and removed" if repair else ""))
        if repair:
            _repair_tail(path)
    return rows


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {list: "list", str: "string", type(None): "null"}.get(type(value), "value")


def _yaml_loader() -> type:
    """A safe YAML loader that refuses aliases (``*name``: the way a tiny file expands to
    gigabytes, or loops) and nesting deeper than :data:`MAX_JSON_DEPTH`."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):  # noqa: ANN001
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"uses the alias *{event.anchor}; aliases are not allowed "
                                f"(write the values out)", event.start_mark)
            self.depth += 1
            if self.depth > MAX_JSON_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_JSON_DEPTH} levels",
                    self.peek_event().start_mark)
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):  # noqa: ANN001
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {str(key)[:40]!r} is given twice (which one was "
                                    f"meant?)", key_node.start_mark)
                seen.add(key if isinstance(key, (str, int, float, bool)) else id(key_node))
            return super().construct_mapping(node, deep)

    return Loader


def load_yaml(text: str) -> Any:
    """Safe YAML without aliases and with a nesting cap (see :func:`_yaml_loader`)."""
    loader = _yaml_loader()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_mapping(path: Path, what: str, hint: str, limit: int = MAX_MAPPING_BYTES) -> dict:
    """A JSON (``.json``) or YAML (any other suffix) file holding a mapping. Every problem is an
    :class:`emobox.EmoboxUsageError` starting with ``what`` (e.g. ``--grid file x.yaml``);
    ``hint`` says what the mapping should hold. The file is read up to ``limit`` bytes, nested
    at most :data:`MAX_JSON_DEPTH` deep, YAML without aliases."""
    path = Path(path)
    try:
        data = read_bytes_capped(path, limit, follow_links=True,
                                 too_big="far larger than such a file needs to be")
    except FileNotFoundError:
        raise EmoboxUsageError(f"{what} does not exist")
    except EmoboxError as exc:
        raise EmoboxUsageError(f"{what}: {str(exc).removeprefix(f'{path}: ')}")
    except OSError as exc:
        raise EmoboxUsageError(f"{what}: cannot read: {exc.strerror}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EmoboxUsageError(f"{what}: not UTF-8 text (byte {exc.start})")
    try:
        if path.suffix.lower() == ".json":
            data = loads_json(text)
        else:
            data = load_yaml(text)
    except RecursionError:
        raise EmoboxUsageError(f"{what}: cannot parse (nested too deeply)")
    except Exception as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        if mark is not None and problem:  # YAML: say where, without the echoed source
            reason = f"line {mark.line + 1}: {problem}"
        else:
            reason = " ".join(str(exc).split())
        raise EmoboxUsageError(f"{what}: cannot parse ({reason})")
    if not isinstance(data, dict):
        raise EmoboxUsageError(f"{what}: expected a mapping {hint}")
    return data


@contextlib.contextmanager
def file_lock(folder: Path | str, on_wait: Callable[[str], None] | None = None,
              what: str = "") -> Iterator[None]:
    """Exclusive lock on ``folder`` (its ``.lock`` file, ``flock``): one writer at a time. A
    second process waits, saying so once (``on_wait(message)``, else a warning). The lock goes
    with the process (a killed holder frees it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    fd = open_regular(lock, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = (f"another emobox process is writing {what or folder}; waiting for it "
                       f"to finish")
            if on_wait is not None:
                on_wait(message)
            else:
                warnings.warn(message)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
