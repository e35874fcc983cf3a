"""``emobox corpora import-emobox``: an EmoBox ``data/`` folder as manifests and folds.

EmoBox (github.com/emo-box/EmoBox) prepares each corpus as JSON lines under ``data/<corpus>/``:

    <corpus>.jsonl                          every utterance: key, wav, emo, channel, length,
                                            sample_rate (start_time/end_time for segments)
    fold_<k>/<corpus>_train_fold_<k>.jsonl  the fold's training list
    fold_<k>/<corpus>_test_fold_<k>.jsonl   its test list
    fold_<k>/<corpus>_valid_fold_<k>.jsonl  the official validation list, where one exists
    label_map.json                          raw ``emo`` -> the class trained on
    data.seg.wrd.stm                        one line per utterance with ``<id=...,spk=...>``

``wav`` paths are relative to the folder EmoBox ran in (``downloads/<corpus>/...``). EmoBox
writes ``channel`` 1 for every file except where it picks another (MELD): the field is kept only
then, and the ``imported`` corpus reads channel 1 of the others in scheme ``emobox``, as EmoBox's
extraction did (it read ``wav[channel - 1]``). The import writes, per corpus,
``<out>/<corpus>/manifest.tsv`` (one row per utterance: ``key path speaker emotion emotion_raw
channel start end test_fold valid fold1 ... foldN``, paths relative to the corpus's audio
folder) and ``corpus.json`` (where the audio is, the classes, the label map, notes). The
built-in corpus ``imported`` reads such a folder, so ``emobox run -c imported --root
<out>/<corpus>`` trains on exactly EmoBox's lists. Nothing is
dropped: every listed utterance is a manifest row, one that no fold uses has ``test_fold`` -1,
and a label missing from the label map keeps its raw name as a class of its own (with a note).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from emobox import paths
from emobox.errors import DataError, EmoboxUsageError
from emobox.io import atomic_write_json
from emobox.datasets.manifest import Manifest, Utterance
from emobox.progress import Reporter
from emobox.reporting.submission_io import parse_json

IMPORT_KIND = "emobox.import"
SCHEMA_VERSION = 1
SPLITS = ("train", "valid", "test")
_SPK = re.compile(r"<[^>]*\bspk=([^,>]*)")
_FOLD_DIR = re.compile(r"^fold_?(\d+)$")
MAX_LINE_BYTES = 1 << 20  # an EmoBox record is a few hundred bytes
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class ImportResult:
    corpus: str
    out: Path
    utterances: int
    folds: int
    speakers: int
    official_valid: bool
    audio_root: Path
    notes: list[str] = field(default_factory=list)


def default_out() -> Path:
    return paths.home() / "imports"


def find_corpora(data_dir: Path) -> list[Path]:
    """The corpus folders of an EmoBox ``data/`` folder (or ``data_dir`` itself if it is one)."""
    def is_corpus(d: Path) -> bool:
        return (d / f"{d.name}.jsonl").is_file() or any(
            _FOLD_DIR.match(c.name) for c in d.iterdir() if c.is_dir())

    if not data_dir.is_dir():
        raise EmoboxUsageError(f"{data_dir} is not a folder; give EmoBox's data/ folder")
    if is_corpus(data_dir):
        return [data_dir]
    found = sorted(d for d in data_dir.iterdir() if d.is_dir() and is_corpus(d))
    if not found:
        raise EmoboxUsageError(
            f"{data_dir} holds no EmoBox corpus folder (expected <corpus>/<corpus>.jsonl or "
            f"<corpus>/fold_<k>/<corpus>_test_fold_<k>.jsonl, as in EmoBox's data/)")
    return found


def import_emobox(data_dir: str | Path, out: str | Path | None = None,
                  audio_root: str | Path | None = None, corpora: Sequence[str] = (),
                  reporter: Reporter | None = None) -> list[ImportResult]:
    """Import every corpus of EmoBox's ``data_dir`` (or those named in ``corpora``).

    ``audio_root`` is the folder EmoBox's ``wav`` paths are relative to (default: the parent of
    ``data_dir``, i.e. EmoBox's checkout, which holds ``downloads/``).
    """
    reporter = reporter or Reporter()
    data_dir = Path(data_dir).expanduser().resolve()
    folders = find_corpora(data_dir)
    if corpora:
        names = {f.name: f for f in folders}
        unknown = [c for c in corpora if c not in names]
        if unknown:
            raise EmoboxUsageError(f"{data_dir} has no corpus {unknown[0]!r}; it has "
                                   f"{', '.join(sorted(names))}")
        folders = [names[c] for c in corpora]
    base = Path(audio_root).expanduser().resolve() if audio_root else (
        data_dir.parent if folders[0] != data_dir else data_dir.parent.parent)
    out = Path(out).expanduser() if out else default_out()
    results = []
    with reporter.task("import EmoBox corpora", len(folders), "corpora") as task:
        for folder in folders:
            results.append(import_corpus(folder, out / folder.name, base))
            task.advance()
    return results


def import_corpus(folder: Path, out: Path, base: Path) -> ImportResult:
    name = folder.name
    notes: list[str] = []
    records: dict[str, dict] = {}
    full = folder / f"{name}.jsonl"
    if full.is_file():
        for rec in _read_jsonl(full):
            records.setdefault(rec["key"], rec)
    else:
        notes.append(f"{full.name} is missing: the utterances are those of the fold lists")
    folds = _read_folds(folder, name)
    if not folds:
        raise DataError(f"{folder}: no fold lists (fold_<k>/{name}_test_fold_<k>.jsonl)",
                        path=str(folder))
    for lists in folds.values():
        for split_records in lists.values():
            for rec in split_records or ():
                records.setdefault(rec["key"], rec)
    label_map = _label_map(folder)
    speakers = _speakers(folder / "data.seg.wrd.stm")
    k_max = max(folds)
    roles: dict[str, dict[str, str]] = {key: {} for key in records}
    for k, lists in sorted(folds.items()):
        for split in SPLITS:
            for rec in lists.get(split) or ():
                previous = roles[rec["key"]].get(f"fold{k}")
                if previous and previous != split:
                    raise DataError(f"{folder}: {rec['key']!r} is in both the {previous} and "
                                    f"the {split} list of fold {k}", path=str(folder))
                roles[rec["key"]][f"fold{k}"] = split
    official_valid = any(lists.get("valid") for lists in folds.values())
    has_train_lists = all(lists.get("train") is not None for lists in folds.values())
    if not has_train_lists:
        notes.append("some folds have no train list: every utterance not tested in a fold "
                     "trains in it")

    prefix = f"downloads/{name}/"
    wavs = [_wav(rec) for rec in records.values()]
    strip = prefix if wavs and all(w.startswith(prefix) for w in wavs) else ""
    audio_root = base / strip if strip else base
    # EmoBox writes channel 1 for every file of a corpus unless it picks another (MELD's 3 =
    # the dialogue channel of 5.1 clips); its extraction read that one channel,
    # ``wav[channel - 1]``. Keep the field only where it chooses something other than the first:
    # the imported corpus reads the first channel of the rest in scheme emobox
    # (Corpus.manifest_for) and mixes them down in the other schemes.
    channels = {str(rec.get("channel", "")) for rec in records.values()} - {"", "None"}
    keep_channel = bool(channels - {"1"})
    unmapped: Counter = Counter()
    utts, extra = [], {}
    for key, rec in records.items():
        raw = rec["emo"]
        if label_map and raw not in label_map:
            unmapped[raw] += 1
        label = label_map.get(raw, raw) if label_map else raw
        start, end = rec.get("start_time"), rec.get("end_time")
        utts.append(Utterance(
            key=key, path=_wav(rec)[len(strip):], label=label,
            speaker=speakers.get(key) or None, raw_label=raw,
            channel=(int(rec["channel"]) if keep_channel and rec.get("channel") is not None
                     else None),
            start=float(start) if start is not None and end is not None else None,
            end=float(end) if start is not None and end is not None else None))
        row = {"test_fold": 0, "valid": 0}
        for k in range(1, k_max + 1):
            role = roles[key].get(f"fold{k}")
            if role is None and not has_train_lists:
                role = "train"
            row[f"fold{k}"] = role or "-"
            if role == "test":
                row["test_fold"] = k
            if role == "valid":
                row["valid"] = 1
        if not any(row[f"fold{k}"] != "-" for k in range(1, k_max + 1)):
            row["test_fold"] = -1
        extra[key] = row
    for raw, n in sorted(unmapped.items()):
        notes.append(f"label {raw!r} ({n} utterances) is not in the label map: kept as a class "
                     f"of its own")
    unassigned = sum(1 for r in extra.values() if r["test_fold"] == -1)
    if unassigned:
        notes.append(f"{unassigned} utterances are in no fold list (test_fold -1)")
    if not speakers:
        notes.append("no speakers (data.seg.wrd.stm is missing or has no spk= fields)")
    manifest = Manifest(name, audio_root, sorted(utts, key=lambda u: u.key))
    out.mkdir(parents=True, exist_ok=True)
    columns = ["test_fold", "valid", *[f"fold{k}" for k in range(1, k_max + 1)]]
    manifest.to_tsv(out / "manifest.tsv", extra=extra, extra_columns=columns)
    n_speakers = len(manifest.speakers())
    atomic_write_json(out / "corpus.json", {
        "kind": IMPORT_KIND, "schema_version": SCHEMA_VERSION, "corpus": name,
        "source": str(folder), "audio_root": str(audio_root),
        "labels": list(manifest.labels), "label_map": label_map,
        "official_valid": official_valid, "folds": k_max, "utterances": len(manifest),
        "speakers": n_speakers, "has_speaker_ids": n_speakers > 0, "notes": notes})
    return ImportResult(name, out, len(manifest), k_max, n_speakers, official_valid, audio_root,
                        notes)


def _read_folds(folder: Path, name: str) -> dict[int, dict[str, list[dict] | None]]:
    folds: dict[int, dict[str, list[dict] | None]] = {}
    for d in sorted(folder.iterdir()):
        m = _FOLD_DIR.match(d.name)
        if not d.is_dir() or not m:
            continue
        k = int(m.group(1))
        lists: dict[str, list[dict] | None] = {}
        for split in SPLITS:
            path = _first(d / f"{name}_{split}_fold_{k}.jsonl", d / f"{name}_{split}_fold{k}.jsonl")
            lists[split] = list(_read_jsonl(path)) if path else None
        if lists["test"] is None:
            raise DataError(f"{d}: no test list {name}_test_fold_{k}.jsonl", path=str(d))
        folds[k] = lists
    expected = list(range(1, len(folds) + 1))
    if folds and sorted(folds) != expected:
        raise DataError(f"{folder}: fold folders {sorted(folds)} are not numbered 1..{len(folds)}",
                        path=str(folder))
    return folds


def _first(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file; a line longer than :data:`MAX_LINE_BYTES` or
    not UTF-8 is a :class:`DataError` naming the file and the line (never read whole)."""
    with open(path, "rb") as fh:
        for i in itertools.count(1):
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{path}:{i}: line longer than {MAX_LINE_BYTES >> 20} MiB; not "
                                f"what EmoBox writes", path=str(path))
            try:
                yield i, raw.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{i}: not UTF-8 text (byte {raw[exc.start]:#04x} at "
                                f"column {exc.start + 1})", path=str(path))


def _read_jsonl(path: Path) -> Iterable[dict]:
    for i, line in _lines(path):
        if not line.strip():
            continue
        try:
            rec = parse_json(line, f"{path}:{i}")
        except DataError as exc:
            raise DataError(str(exc).replace("not valid JSON", "not a JSON line"),
                            path=str(path)) from None
        why = _record_problem(rec)
        if why:
            raise DataError(f"{path}:{i}: {why}", path=str(path))
        yield rec


def _record_problem(rec: object) -> str:
    """Why ``rec`` is not an EmoBox record ("" when it is): ``key``, ``wav`` and ``emo`` are
    strings of one line; ``channel`` a positive integer; ``start_time``/``end_time`` seconds."""
    if not isinstance(rec, dict):
        return f"expected a JSON object (an EmoBox record), got {_kind(rec)}"
    missing = [f for f in ("key", "wav", "emo") if f not in rec]
    if missing:
        return (f"an EmoBox record needs 'key', 'wav' and 'emo'; this one has no "
                f"{', '.join(repr(f) for f in missing)}")
    for name in ("key", "wav", "emo"):
        value = rec[name]
        if not isinstance(value, str):
            return f"field {name!r} is {_kind(value)}, expected a string"
        if not value.strip():
            return f"field {name!r} is empty"
        if _CONTROL.search(value):
            return f"field {name!r} holds a tab, line break or other control character"
    channel = rec.get("channel")
    if channel is not None:
        if isinstance(channel, str) and channel.strip().isdigit():
            channel = int(channel)
        if isinstance(channel, bool) or not isinstance(channel, int) or channel < 1:
            return f"field 'channel' is {_show(channel)}, expected a channel number from 1"
    for name in ("start_time", "end_time"):
        value = rec.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"field {name!r} is {_kind(value)}, expected seconds (a number)"
        if not math.isfinite(value) or value < 0:
            return (f"utterance {rec['key']!r}: {name} is {value!r}, not a time in the file "
                    f"(a finite number of seconds from 0)")
    start, end = rec.get("start_time"), rec.get("end_time")
    if start is not None and end is not None and not start < end:
        return (f"utterance {rec['key']!r}: start_time {start!r} is not before end_time "
                f"{end!r}: the segment is empty")
    return ""


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return f"{names.get(type(value), type(value).__name__)} ({_show(value)})"


def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool,
                                                     type(None))) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _wav(rec: dict) -> str:
    wav = str(rec["wav"]).replace("\\", "/")
    while wav.startswith("./"):
        wav = wav[2:]
    return wav


def _label_map(folder: Path) -> dict[str, str]:
    for name in ("label_map.json", "label_dict.json"):
        path = folder / name
        if path.is_file():
            if path.stat().st_size > MAX_LINE_BYTES:
                raise DataError(f"{path}: larger than a label map is ({MAX_LINE_BYTES >> 20} "
                                f"MiB)", path=str(path))
            data = parse_json(path.read_bytes(), str(path))
            if not isinstance(data, dict):
                raise DataError(f"{path}: expected a JSON object raw label -> class, got "
                                f"{_kind(data)}", path=str(path))
            for raw, target in data.items():
                if not isinstance(target, str) or not target.strip() or _CONTROL.search(target):
                    raise DataError(f"{path}: label {raw!r} maps to {_kind(target)}, expected "
                                    f"a class name (a string of one line)", path=str(path))
            return dict(data)
    return {}


def _speakers(stm: Path) -> dict[str, str]:
    if not stm.is_file():
        return {}
    out = {}
    for _, line in _lines(stm):
        key, _, rest = line.rstrip("\r\n").partition(" ")
        m = _SPK.search(rest)
        if key and m and m.group(1):
            out[key] = m.group(1)
    return out
