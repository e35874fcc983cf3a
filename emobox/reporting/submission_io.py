"""Reading a submission zip and the JSON files of submissions and leaderboards, none of which
emobox wrote itself.

- :class:`SubmissionZip`: the zip's directory is sized before :mod:`zipfile` parses it; member
  names must be plain relative paths, each once; a member is read only when asked for, by a
  streaming read refused past its cap (whatever size the zip declares) and past a budget for
  the whole zip.
- :func:`parse_json`: JSON that is not UTF-8, not JSON, holds NaN or Infinity, or nests too
  deeply for Python is one :class:`~emobox.DataError` naming the file.
- :class:`SubmissionMeta` (``metadata.json``) and :class:`ScoreCard` (a leaderboard entry) are
  checked field by field by :func:`schema_problems`: JSON types exactly (``"5"`` is not 5, ``1``
  is not ``true``), strings of bounded length without control characters, numbers in range and
  finite. Only the known fields are kept, so nothing else a file carries is copied on.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emobox.errors import DataError, EmoboxUsageError

# what a submission may be; a real one is a few MB (30 corpora x 10 folds of predictions)
MAX_ZIP_BYTES = 256 << 20
MAX_MEMBERS = 10_000
MAX_DIRECTORY_BYTES = 4 << 20  # the zip's central directory
MAX_METADATA_BYTES = 1 << 20
MAX_PREDICTIONS_BYTES = 64 << 20  # one fold file, uncompressed
MAX_TOTAL_BYTES = 512 << 20  # everything read from one zip, uncompressed
MAX_NAME_CHARS = 512


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


# -- schemas ----------------------------------------------------------------------------------

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters (tabs, line breaks)
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)]
Text = Annotated[str, Field(max_length=1000, pattern=_PRINTABLE)]
Short = Annotated[str, Field(max_length=64, pattern=_PRINTABLE)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1.0)]
Scalar = Union[bool, Annotated[int, Field(ge=-2 ** 63, le=2 ** 63 - 1)], Finite, Text, None]
FoldIndex = Annotated[int, Field(ge=1, le=1000)]
Count = Annotated[int, Field(ge=0, le=10 ** 9)]


class StrictModel(BaseModel):
    """JSON types exactly (no "5" for 5, no 1 for true); unknown fields are dropped."""

    model_config = ConfigDict(strict=True, extra="ignore")


class UpstreamMeta(StrictModel):
    name: Name
    checkpoint_id: Text
    parameters: Optional[Annotated[int, Field(ge=0, le=10 ** 13)]]
    options: Annotated[dict[Name, Union[Scalar, Annotated[list[Scalar], Field(max_length=100)],
                                        Annotated[dict[Name, Scalar], Field(max_length=100)]]],
                       Field(max_length=100)] = {}
    layer: Union[Annotated[int, Field(ge=-1000, le=1000)], Short, None] = None
    precision: Optional[Short] = None


class CorpusMeta(StrictModel):
    downstream: Name
    grid: Annotated[dict[Name, Annotated[list[Scalar], Field(max_length=1000)]],
                    Field(max_length=100)]
    scheme: Annotated[str, Field(min_length=1, max_length=64, pattern=_PRINTABLE)]
    seed: Annotated[int, Field(ge=-2 ** 63, le=2 ** 63 - 1)]
    folds: Annotated[list[FoldIndex], Field(max_length=1000)]
    n_folds: FoldIndex
    select: Literal["valid", "test"]
    labels: Annotated[list[Name], Field(min_length=1, max_length=1000)]
    epochs: Optional[Annotated[int, Field(ge=0, le=10 ** 7)]] = None
    contaminated: bool = False
    run_fingerprint: Short = ""


class SubmissionMeta(StrictModel):
    kind: Literal["emobox.submission"]
    schema_version: Literal[1]
    emobox_version: Short
    created: Short = ""
    upstream: UpstreamMeta
    corpora: Annotated[dict[Name, CorpusMeta], Field(min_length=1, max_length=1000)]


class FoldScore(StrictModel):
    fold: FoldIndex
    ua: Fraction
    wa: Fraction
    f1: Fraction
    n_test: Count
    confusion: Annotated[list[Annotated[list[Count], Field(max_length=1000)]],
                         Field(max_length=1000)]


class ScoredCorpus(CorpusMeta):
    gold: Text
    folds: Annotated[list[FoldScore],  # type: ignore[assignment]
                     Field(min_length=1, max_length=1000)]
    ua: Fraction
    ua_std: Fraction
    wa: Fraction
    wa_std: Fraction
    f1: Fraction
    f1_std: Fraction


class ScoreCard(StrictModel):
    """What ``submit score`` computes: one leaderboard entry."""

    kind: Literal["emobox.score"]
    schema_version: Literal[1]
    submission: Text
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    content_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = ""
    upstream: UpstreamMeta
    emobox_version: Short
    submission_emobox_version: Short
    name: Name
    corpora: Annotated[dict[Name, ScoredCorpus], Field(min_length=1, max_length=1000)]


def schema_problems(model: type[BaseModel], data: Any, where: str,
                    limit: int = 5) -> tuple[dict | None, list[str]]:
    """``data`` checked against ``model``: (its known fields, []) or (None, problems), each
    problem naming the field by its path in ``data`` (``where: field 'a.b': what is wrong``)."""
    try:
        return model.model_validate(data).model_dump(), []
    except ValidationError as exc:
        by_field: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False, include_input=False):
            msgs = by_field.setdefault(_field_path(data, err["loc"]), [])
            if err["msg"] not in msgs:
                msgs.append(err["msg"])
        out = [f"{where}: field '{path}': {_one_message(msgs)}"
               for path, msgs in by_field.items()]
        if len(out) > limit:
            out = out[:limit] + [f"{where}: ... ({len(out) - limit} more problems not shown)"]
        return None, out


def _one_message(msgs: list[str]) -> str:
    """pydantic's messages for one field: one of them, or for a value that fits none of several
    accepted types, the list of those types."""
    kinds = [m[len("Input should be a valid "):] for m in msgs
             if m.startswith("Input should be a valid ")]
    if len(msgs) > 1 and len(kinds) == len(msgs):
        return f"Input should be one of: {', '.join(dict.fromkeys(kinds))}"
    return msgs[0]


def _field_path(data: Any, loc: tuple) -> str:
    """The part of a pydantic error location that exists in ``data`` (union member names and
    validator tags are left out)."""
    parts, node = [], data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            parts.append(shorten(part, 40) if "." not in part else repr(shorten(part, 40)))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            parts.append(f"[{part}]")
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not parts:
            parts.append(part)  # a missing top-level field
            break
        elif isinstance(node, dict) and isinstance(part, str) and part.isidentifier() \
                and part not in ("bool", "int", "float", "str", "none", "list", "dict"):
            parts.append(part)  # a missing field below
            break
        else:
            break
    return ".".join(parts).replace(".[", "[") or "(top level)"


def shorten(text: Any, n: int = 60) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + f"... ({len(text)} characters)"


def parse_json(data: bytes | str, where: str) -> Any:
    """JSON from a file emobox did not write: not UTF-8, not JSON, NaN/Infinity, numbers too
    long to read and nesting too deep for Python are each a :class:`DataError` naming ``where``."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=no_constant)
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start})", path=where)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno} column "
                        f"{exc.colno})", path=where)
    except RecursionError:
        raise DataError(f"{where}: not valid JSON (nested too deeply)", path=where)
    except ValueError as exc:  # NaN/Infinity, or an integer with too many digits
        raise DataError(f"{where}: not valid JSON ({shorten(exc, 120)})", path=where)


# -- reading a zip ----------------------------------------------------------------------------

def _name_problem(name: str) -> str:
    """Why a member name is not a plain relative path ("" when it is)."""
    if not name or len(name) > MAX_NAME_CHARS:
        return "is empty" if not name else f"is longer than {MAX_NAME_CHARS} characters"
    if re.search(r"[\x00-\x1f\x7f]", name):
        return "holds a control character"
    if "\\" in name:
        return "holds a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return "climbs out with '..'"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' component"
    return ""


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s24x3H12x")  # a central directory entry: its name, extra
                                               # field and comment lengths


class SubmissionZip:
    """An open submission zip: its member names checked, members read on demand with caps."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.problems: list[str] = []
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.bytes_read = 0
        if not self.path.exists():
            raise EmoboxUsageError(f"{self.path} does not exist")
        if self.path.is_dir():
            raise EmoboxUsageError(f"{self.path} is a folder; give the submission zip")
        if not self.path.is_file():  # a pipe or a device would block or never end
            raise EmoboxUsageError(f"{self.path} is not a regular file; give the submission zip")
        self._fh = open(self.path, "rb")
        try:
            self._open()
        except BaseException:
            self._fh.close()
            raise

    def _open(self) -> None:
        size = self._fh.seek(0, 2)
        if size > MAX_ZIP_BYTES:
            raise DataError(f"{self.path}: {_mib(size)}, larger than a submission may be "
                            f"({_mib(MAX_ZIP_BYTES)})", path=str(self.path))
        self._check_directory(size)
        self._fh.seek(0)
        digest = hashlib.sha256()
        for chunk in iter(lambda: self._fh.read(1 << 20), b""):
            digest.update(chunk)
        self.sha256 = digest.hexdigest()
        self._fh.seek(0)
        try:
            self._zip = zipfile.ZipFile(self._fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise DataError(f"{self.path}: not a submission zip ({exc})", path=str(self.path))
        seen: set[str] = set()
        for info in self._zip.infolist():
            name = info.filename
            why = _name_problem(name)
            if why:
                self.problems.append(f"{shorten(name)!r}: member name {why}; a submission holds "
                                     f"only metadata.json and predictions/<corpus>/fold<k>.tsv")
                continue
            if name in seen:
                self.problems.append(f"{name}: the zip holds this name twice")
                continue
            seen.add(name)
            if not info.is_dir():
                self.members[name] = info

    def _check_directory(self, size: int) -> None:
        """Refuse a zip whose directory lists more members than a submission has (as
        :mod:`zipfile` will find it: through a ZIP64 end record where there is one, and
        counting its entries, whatever count an end record claims), before :mod:`zipfile`
        reads that directory into memory."""
        eocd = self._find_eocd(size)
        record = self._zip64_record(eocd) if eocd >= 0 else ()
        if eocd < 0:
            raise DataError(f"{self.path}: not a submission zip (no zip directory)",
                            path=str(self.path))
        if not record:  # zipfile reads the counts of the end record
            record = self._at(eocd, _EOCD)
            claimed, dir_bytes, end = record[4], record[5], eocd
        else:  # zipfile reads those of the ZIP64 end record, whatever the end record says
            claimed, dir_bytes = max(record[6], record[7]), record[8]
            end = eocd - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size
        if claimed > MAX_MEMBERS or dir_bytes > MAX_DIRECTORY_BYTES:
            where = "the zip's ZIP64 end record" if end != eocd else "the zip"
            raise DataError(f"{self.path}: {where} lists {claimed} members in a "
                            f"{_mib(dir_bytes)} directory; a submission has at most "
                            f"{MAX_MEMBERS} members", path=str(self.path))
        self._count_entries(end - dir_bytes, end, claimed)

    def _zip64_record(self, eocd: int) -> tuple:
        """The ZIP64 end record :mod:`zipfile` reads for the end record at ``eocd`` (empty
        where there is none)."""
        locator = self._at(eocd - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR)
        if not locator or locator[0] != b"PK\x06\x07":
            return ()
        record = self._at(eocd - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size, _ZIP64_EOCD)
        return record if record and record[0] == b"PK\x06\x06" else ()

    def _find_eocd(self, size: int) -> int:
        """Where :mod:`zipfile` finds the end of central directory record (-1: nowhere)."""
        last = self._at(size - _EOCD.size, _EOCD)
        if last and last[0] == b"PK\x05\x06" and last[-1] == 0:
            return size - _EOCD.size
        tail_len = min(size, _EOCD.size + 0xFFFF)
        self._fh.seek(size - tail_len)
        at = self._fh.read(tail_len).rfind(b"PK\x05\x06")
        return -1 if at < 0 or at + _EOCD.size > tail_len else size - tail_len + at

    def _at(self, offset: int, record: struct.Struct) -> tuple:
        """``record`` read at ``offset`` (empty where the file has no room for it)."""
        if offset < 0:
            return ()
        self._fh.seek(offset)
        data = self._fh.read(record.size)
        return record.unpack(data) if len(data) == record.size else ()

    def _count_entries(self, start: int, end: int, claimed: int) -> None:
        """Refuse a directory holding more entries than a submission has, whatever count its
        end record gives."""
        if start < 0:
            return  # zipfile refuses the zip
        self._fh.seek(start)
        data = self._fh.read(end - start)
        at = count = 0
        while at + _CENTRAL_ENTRY.size <= len(data):
            sig, name, extra, comment = _CENTRAL_ENTRY.unpack_from(data, at)
            if sig != b"PK\x01\x02":
                break
            count += 1
            if count > MAX_MEMBERS:
                raise DataError(f"{self.path}: the zip's directory holds more than "
                                f"{MAX_MEMBERS} members (its end record says {claimed}); a "
                                f"submission has at most {MAX_MEMBERS}", path=str(self.path))
            at += _CENTRAL_ENTRY.size + name + extra + comment


    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "SubmissionZip":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read(self, name: str, limit: int) -> bytes:
        """Member ``name``, read in chunks and refused past ``limit`` bytes (declared or
        actual) or past the whole zip's budget."""
        info = self.members[name]
        budget = MAX_TOTAL_BYTES - self.bytes_read
        cap = min(limit, budget)
        if info.file_size > cap:
            raise DataError(self._too_large(name, info.file_size, limit, budget), path=name)
        chunks, total = [], 0
        try:
            with self._zip.open(info) as member:
                while True:
                    chunk = member.read(min(1 << 20, cap + 1 - total))
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > cap:
                        raise DataError(self._too_large(name, total, limit, budget), path=name)
                    chunks.append(chunk)
        except DataError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                NotImplementedError, ValueError) as exc:  # cut, damaged, encrypted, unknown method
            raise DataError(f"{name}: cannot be read from the zip ({shorten(exc, 120)})",
                            path=name)
        finally:
            self.bytes_read += total
        return b"".join(chunks)

    def _too_large(self, name: str, size: int, limit: int, budget: int) -> str:
        if size > limit:
            return (f"{name}: {_mib(size)} or more uncompressed, more than this file may be "
                    f"({_mib(limit)}); it is not read")
        return (f"{name}: not read: the members read so far and this one exceed "
                f"{_mib(MAX_TOTAL_BYTES)} uncompressed")

    def read_text(self, name: str, limit: int) -> str:
        data = self.read(name, limit)
        try:
            return data.decode("utf-8-sig")  # a byte-order mark is not part of the text
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 text (byte {data[exc.start]:#04x} at offset "
                            f"{exc.start})", path=name)


def read_submission(path: str | Path) -> "Submission":
    """The metadata and every expected member of a submission, checked as :func:`validate`
    reads them (for callers that want the files themselves)."""
    with SubmissionZip(path) as sub:
        if sub.problems:
            raise DataError(f"{sub.path}: {sub.problems[0]}", path=str(sub.path))
        meta = None
        if "metadata.json" in sub.members:
            meta = parse_json(sub.read("metadata.json", MAX_METADATA_BYTES),
                              f"{sub.path}: metadata.json")
        files = {}
        for name in sorted(sub.members):
            if name != "metadata.json" and FOLD_FILE.match(name):
                files[name] = sub.read_text(name, MAX_PREDICTIONS_BYTES)
        return Submission(sub.path, meta, files, sub.sha256)


@dataclass
class Submission:
    path: Path
    metadata: Any
    files: dict[str, str]  # name -> text of the fold files
    sha256: str = ""


FOLD_FILE = re.compile(r"^predictions/([^/]+)/fold(\d+)\.tsv$")
