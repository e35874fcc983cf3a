"""Checks shared by the checkpoint readers: every file of a checkpoint is untrusted.

- :func:`read_json_object`: a JSON object from a small file (size, encoding, nesting and type
  checked), or one :class:`CheckpointDataError` naming the file.
- :func:`weight_files`: the weight files of a transformers folder, the index's ``weight_map``
  checked (plain file names of regular files inside the folder, nothing else), so that no weight
  is read from outside the folder whose content :func:`emobox.extraction.checkpoints.checkpoint_id`
  hashes.
- :func:`int_field`, :func:`positive_float_field`: configuration values checked for type and
  range before anything is built from them (the caps are named in the messages).
- :func:`loading`: around the reading and building of one checkpoint, turns what is left of a
  damaged file's failures into one :class:`CheckpointDataError` naming it and the cause.
- :func:`check_replaceable`: ``--overwrite`` replaces only a folder a converter wrote.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from emobox.errors import DataError, EmoboxError, EmoboxUsageError
from emobox.io import MAX_JSON_DEPTH, json_depth, read_bytes_capped

MAX_JSON_BYTES = 16 << 20  # an index of a thousand-shard model is a few hundred KiB

# generous bounds on configuration values: far above every released model, far below sizes
# whose allocation would exhaust memory
MAX_WIDTH = 65536  # hidden sizes, feed-forward sizes, channels, mel bins
MAX_LAYERS = 1024  # transformer blocks
MAX_CONV_LAYERS = 64  # convolutions of a feature encoder
MAX_KERNEL = 1024  # kernel sizes and strides
MAX_POSITIONS = 100_000  # position-table rows


class CheckpointDataError(DataError):
    """A checkpoint file that is damaged, inconsistent or not what its name says."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line or type(exc).__name__


def _fail(path: Path, message: str) -> CheckpointDataError:
    return CheckpointDataError(f"{path}: {message}", path=str(path))


def read_json_object(path: Path, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """The JSON object in ``path``; anything else (unreadable, too large, not UTF-8 JSON,
    nested too deeply, not an object) is one :class:`CheckpointDataError` naming it."""
    path = Path(path)
    try:  # a regular file (a fifo is refused, never waited on), a link the user made followed
        raw = read_bytes_capped(path, max_bytes, follow_links=True,
                                too_big="not a checkpoint's JSON file")
    except OSError as exc:
        raise _fail(path, f"cannot read it ({exc.strerror or first_line(exc)})") from None
    except DataError as exc:
        raise _fail(path, str(exc).removeprefix(f"{path}: ")) from None
    try:
        text = raw.decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise RecursionError
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise _fail(path, "not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise _fail(path, "not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # a number of more than 4300 digits
        raise _fail(path, f"not valid JSON ({first_line(exc)})") from None
    if not isinstance(value, dict):
        raise _fail(path, f"expected a JSON object, found {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


INDEX_FILES = {"model.safetensors.index.json": ".safetensors",
               "pytorch_model.bin.index.json": ".bin"}
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def index_weight_files(folder: Path, index: Path, suffix: str) -> list[Path]:
    """The shard files a ``*.index.json`` names: plain file names ending in ``suffix`` of regular
    files in ``folder``; otherwise one error naming the index."""
    data = read_json_object(index)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise _fail(index, "expected a non-empty 'weight_map' object of tensor name -> file name")
    names = set()
    for key, name in weight_map.items():
        if not isinstance(name, str):
            raise _fail(index, f"weight_map[{key!r}] is {_json_type(name)}, not a file name")
        names.add(name)
    files = []
    for name in sorted(names):
        if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
                or os.path.isabs(name) or ":" in name):
            raise _fail(index, f"weight_map names {name!r}; shards must be plain file names "
                               f"inside {folder}")
        if not name.endswith(suffix):
            raise _fail(index, f"weight_map names {name!r}; shards of this index end in "
                               f"{suffix}")
        file = folder / name
        if not _is_regular_file(file):
            raise _fail(index, f"weight_map names {name!r}, which is not a file in {folder}")
        files.append(file)
    return files


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a transformers checkpoint folder: the shards its index names
    (checked by :func:`index_weight_files`), else ``model.safetensors`` or
    ``pytorch_model.bin``; an empty list when it has none."""
    folder = Path(folder)
    for index_name, suffix in INDEX_FILES.items():
        index = folder / index_name
        if index.exists():
            return index_weight_files(folder, index, suffix)
    for name in SINGLE_FILES:
        file = folder / name
        if file.exists():
            if not _is_regular_file(file):
                raise _fail(file, "not a regular file")
            return [file]
    return []


# -- configuration values ---------------------------------------------------------------------

def int_field(cfg: Mapping, key: str, where: Path | str, low: int = 1, high: int = MAX_WIDTH,
              default: Any = None, label: str = "") -> int:
    """``cfg[key]`` as an int in ``[low, high]`` (``default`` when absent and not None);
    ``label`` names the value in the error (default ``key``)."""
    label = label or key
    value = cfg.get(key, default)
    if value is None:
        raise _fail(Path(where), f"{label} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(Path(where), f"{label} must be a whole number, not {value!r:.40}")
    if not low <= value <= high:
        raise _fail(Path(where), f"{label} is {value}; it must be between {low} and {high}")
    return value


def int_list_field(cfg: Mapping, key: str, where: Path | str, low: int = 1,
                   high: int = MAX_WIDTH, max_len: int = MAX_CONV_LAYERS) -> list[int]:
    """``cfg[key]`` as a non-empty list of at most ``max_len`` ints in ``[low, high]``."""
    value = cfg.get(key)
    if not isinstance(value, list) or not 1 <= len(value) <= max_len:
        raise _fail(Path(where), f"{key} must be a list of 1 to {max_len} whole numbers, not "
                                 f"{value!r:.60}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise _fail(Path(where), f"{key} holds {v!r:.40}; each must be a whole number "
                                     f"between {low} and {high}")
    return value


def positive_float_field(cfg: Mapping, key: str, where: Path | str, default: Any = None,
                         high: float = 1.0) -> float:
    """``cfg[key]`` as a finite number in ``(0, high]`` (e.g. a layer norm's epsilon)."""
    value = cfg.get(key, default)
    if value is None:
        raise _fail(Path(where), f"{key} is missing")
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 < value <= high):
        raise _fail(Path(where), f"{key} is {value!r:.40}; it must be a finite number above 0 "
                                 f"and at most {high:g}")
    return float(value)


# -- loading ---------------------------------------------------------------------------------

@contextlib.contextmanager
def loading(path: Path | str, what: str) -> Iterator[None]:
    """Around the reading and building of the checkpoint ``path`` (a ``what`` model): a
    failure that is not already emobox's own error becomes one :class:`CheckpointDataError`
    naming the file and the first line of the cause."""
    try:
        yield
    except EmoboxError:
        raise
    except Exception as exc:  # a damaged file: the libraries that read it fail in many ways
        raise CheckpointDataError(f"{path}: cannot load it as a {what} checkpoint "
                                  f"({type(exc).__name__}: {first_line(exc)})",
                                  path=str(path)) from exc


# -- converters' output folders --------------------------------------------------------------

def check_replaceable(out: Path, own_files: Iterable[str]) -> None:
    """Refuse to replace ``out`` unless it is a converter's output: a folder holding only the
    files the converter writes (``own_files``), or nothing."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise EmoboxUsageError(f"--out {out}: not a folder; --overwrite replaces only a folder "
                               f"written by `emobox upstreams convert`")
    own = set(own_files)
    try:
        entries = sorted(os.listdir(out))
    except OSError as exc:
        raise EmoboxUsageError(f"--out {out}: cannot list it ({exc.strerror})") from None
    foreign = [e for e in entries if e not in own or not _is_regular_file(out / e)
               or (out / e).is_symlink()]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        raise EmoboxUsageError(
            f"--out {out}: holds {shown}, which `emobox upstreams convert` did not write; "
            f"--overwrite replaces only a converted folder ({', '.join(sorted(own))}): choose "
            f"another --out or empty it yourself")
