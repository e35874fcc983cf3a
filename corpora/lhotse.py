"""Lhotse manifests as a corpus: ``-c lhotse --root cuts.jsonl.gz`` (or a folder holding
``*_recordings_*.jsonl.gz`` and ``*_supervisions_*.jsonl.gz``).

One utterance per supervision (key = the supervision id), read at its offsets in the recording.
``-C label_field=`` names the supervision field or ``custom`` key holding the emotion (default
``emotion``), ``-C speaker_field=`` the speaker (default ``speaker``), ``-C fold_field=`` the custom
key holding ``{"1": "train" | "valid" | "test" | "-", ...}`` (default ``folds``; without it, the
folds are speaker-independent). ``-C labels=a,b,...`` lists the classes: another label is an error.
The defaults read what ``emobox corpora manifest --format lhotse`` writes. Manifests are read
streaming, with a cap on their decompressed size (``-C max_mb=``, default 512). Lhotse names
audio by absolute paths, so a manifest may point anywhere on the machine: ``-C audio_root=DIR``
refuses every recording outside ``DIR``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from pathlib import Path
from typing import Iterator

from emobox import (Corpus, CorpusSpec, DataError, EmoboxUsageError, Fold, Manifest, hookimpl)
from emobox import Utterance
from emobox.datasets.splits import VALID_FRACTION, stratified_split
from emobox.io import loads_json
from emobox.plugin.registry import NAME_RE

ROLES = ("train", "valid", "test", "-")


def read_jsonl(path: Path, max_bytes: int) -> Iterator[tuple[int, dict]]:
    """The JSON objects of a (gzipped) JSON-lines file, refused past ``max_bytes`` decompressed
    or at a line over 1 MiB; read in blocks, so a file of empty lines costs no more than one of
    long ones."""
    opener = gzip.open if path.name.endswith(".gz") else open
    total = n = 0
    pending = b""

    def too_big() -> DataError:
        return DataError(f"{path}: larger than {max_bytes >> 20} MiB decompressed (or a line "
                         f"over 1 MiB); refused (-C max_mb= raises the cap)", path=str(path))

    try:
        with opener(path, "rb") as fh:
            while True:
                block = fh.read(1 << 20)
                total += len(block)
                if total > max_bytes:
                    raise too_big()
                lines = (pending + block).split(b"\n")
                pending = lines.pop() if block else b""
                if len(pending) > 1 << 20:
                    raise too_big()
                for line in lines:
                    n += 1
                    if not line.strip():
                        continue
                    try:
                        obj = loads_json(line.decode("utf-8"))
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise DataError(f"{path}:{n}: not valid JSON ({exc})", path=str(path))
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}:{n}: not a JSON object", path=str(path))
                    yield n, obj
                if not block:
                    return
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(f"{path}: cannot read ({exc})", path=str(path))


class LhotseCorpus(Corpus):
    """a corpus given as Lhotse manifests (a CutSet, or a RecordingSet and a SupervisionSet)"""

    name = "lhotse"
    expected_top_level = ("a Lhotse cuts .jsonl.gz, or a folder with *_recordings_*.jsonl.gz and "
                          "*_supervisions_*.jsonl.gz")

    def __init__(self, root: str | Path, label_field: str = "emotion",
                 speaker_field: str = "speaker", fold_field: str = "folds",
                 labels: str = "", max_mb: int | str = 512, audio_root: str = ""):
        root = Path(root).expanduser()
        self.audio_root = os.path.realpath(Path(audio_root).expanduser()) if audio_root else ""
        if self.audio_root and not os.path.isdir(self.audio_root):
            raise EmoboxUsageError(f"corpus 'lhotse': audio_root={audio_root}: no such folder")
        try:
            mb = int(max_mb)
        except (TypeError, ValueError):
            mb = 0
        if mb < 1 or isinstance(max_mb, bool):
            raise EmoboxUsageError(f"corpus 'lhotse': max_mb={max_mb!r:.40}: give a whole "
                                   f"number of MiB, at least 1")
        self.max_bytes = mb << 20
        self.label_field, self.speaker_field, self.fold_field = label_field, speaker_field, fold_field
        self.allowed = tuple(x for x in str(labels).split(",") if x) or None
        if root.is_file():
            self.cuts, self.recs, self.sups = root, None, None
            self.source = root
        elif root.is_dir():
            recs = sorted(root.glob("*_recordings_*.jsonl*"))
            sups = sorted(root.glob("*_supervisions_*.jsonl*"))
            cuts = sorted(root.glob("*_cuts_*.jsonl*"))
            if len(recs) == 1 and len(sups) == 1:
                self.cuts, self.recs, self.sups = None, recs[0], sups[0]
            elif len(cuts) == 1:
                self.cuts, self.recs, self.sups = cuts[0], None, None
            else:
                raise EmoboxUsageError(f"corpus 'lhotse': {root} should hold one recordings and "
                                       f"one supervisions manifest, or one cuts manifest")
            self.source = root
        else:
            raise EmoboxUsageError(f"corpus 'lhotse': {root} does not exist; give "
                                   f"{self.expected_top_level}")
        first = (self.cuts or self.recs).name
        self.name = first.split("_cuts_")[0].split("_recordings_")[0] if "_" in first else "lhotse"
        if not NAME_RE.match(self.name):
            raise DataError(f"{self.cuts or self.recs}: the corpus name {self.name[:80]!r} taken "
                            f"from the file name (the part before _cuts_ or _recordings_) is not "
                            f"a name (letters, digits, '_', '.', '-', starting with a letter or "
                            f"digit); rename the file", path=str(self.cuts or self.recs))
        self.root = Path("/")
        self.skipped = []
        self._manifest = None
        self._roles: dict[str, dict[str, str]] = {}
        self.has_speaker_ids = True

    # -- reading ---------------------------------------------------------------------------------
    def _audio(self, rec: dict, where: str, base: Path) -> tuple[str, int]:
        srcs = rec.get("sources")
        if not isinstance(srcs, list) or len(srcs) != 1 or not isinstance(srcs[0], dict) \
                or srcs[0].get("type") != "file" or not isinstance(srcs[0].get("source"), str):
            raise DataError(f"{where}: recording {rec.get('id')!r} is not one audio file "
                            f"(emobox reads file sources only)", path=where)
        path = Path(srcs[0]["source"]).expanduser()
        if not path.is_absolute():  # relative paths resolve against the manifest's folder
            path = base / path
        nch = len(rec.get("channel_ids") or srcs[0].get("channels") or [0])
        real = os.path.realpath(path)
        if self.audio_root and os.path.commonpath([real, self.audio_root]) != self.audio_root:
            raise DataError(f"{where}: recording {rec.get('id')!r:.80} is audio at {real}, "
                            f"outside audio_root {self.audio_root}", path=where)
        return real, nch

    def _field(self, sup: dict, field: str):
        custom = sup.get("custom") if isinstance(sup.get("custom"), dict) else {}
        return custom[field] if field in custom else sup.get(field)

    def _utt(self, sup: dict, rec: dict, offset: float, where: str, base: Path) -> Utterance:
        key = sup.get("id")
        if not isinstance(key, str) or not key:
            raise DataError(f"{where}: a supervision has no id", path=where)
        path, nch = self._audio(rec, where, base)
        label = self._field(sup, self.label_field)
        if not isinstance(label, str) or not label:
            raise DataError(f"{where}: cut {key!r} has no {self.label_field!r} (pass "
                            f"-C label_field=FIELD: a supervision field or custom key)", path=where)
        if self.allowed and label not in self.allowed:
            raise DataError(f"{where}: cut {key!r} has label {label!r}, not one of "
                            f"{', '.join(self.allowed)}", path=where)
        speaker = self._field(sup, self.speaker_field)
        if speaker is None or speaker == "":
            raise DataError(f"{where}: cut {key!r} has no {self.speaker_field!r} (pass "
                            f"-C speaker_field=FIELD)", path=where)
        if isinstance(speaker, bool) or not isinstance(speaker, (str, int)):
            raise DataError(f"{where}: cut {key!r}: {self.speaker_field!r} is "
                            f"{json.dumps(speaker, default=str)[:40]}, not a speaker name",
                            path=where)
        times = (offset, sup.get("start", 0.0), sup.get("duration"))
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
            raise DataError(f"{where}: cut {key!r} has no valid start/duration (numbers of "
                            f"seconds)", path=where)
        start = float(offset) + float(sup.get("start", 0.0))
        end = start + float(sup["duration"])
        ch = sup.get("channel")
        channel = ch + 1 if isinstance(ch, int) and nch > 1 else None
        custom = sup.get("custom") if isinstance(sup.get("custom"), dict) else {}
        raw = custom.get("emotion_raw") if self.label_field == "emotion" else None
        folds = custom.get(self.fold_field)
        if folds is not None:
            if not isinstance(folds, dict) or not all(
                    isinstance(v, str) and v in ROLES for v in folds.values()) or not all(
                    re.fullmatch(r"[0-9]{1,6}", k) for k in folds):
                raise DataError(f"{where}: cut {key!r}: {self.fold_field!r} should map fold "
                                f"numbers to {', '.join(ROLES)}", path=where)
            self._roles[key] = {str(k): v for k, v in folds.items()}
        full = rec.get("duration")
        seg = not (start == 0.0 and isinstance(full, (int, float)) and abs(end - full) < 1e-3)
        return Utterance(key=key, path=path.lstrip("/"), label=label, speaker=str(speaker),
                         raw_label=raw if isinstance(raw, str) else None, channel=channel,
                         start=start if seg else None, end=end if seg else None)

    def scan(self) -> Manifest:
        utts = []
        if self.cuts is not None:
            base = self.cuts.parent
            for n, cut in read_jsonl(self.cuts, self.max_bytes):
                where = f"{self.cuts}:{n}"
                rec = cut.get("recording")
                if not isinstance(rec, dict) or not isinstance(cut.get("supervisions"), list):
                    raise DataError(f"{where}: cut {cut.get('id')!r} has no recording or "
                                    f"supervisions", path=str(self.cuts))
                for sup in cut["supervisions"]:
                    if not isinstance(sup, dict):
                        raise DataError(f"{where}: cut {cut.get('id')!r:.80} has a supervision "
                                        f"that is not an object", path=str(self.cuts))
                    utts.append(self._utt(sup, rec, cut.get("start", 0.0), where, base))
        else:
            base = self.recs.parent
            recs: dict[str, dict] = {}
            for n, r in read_jsonl(self.recs, self.max_bytes):
                rid = r.get("id")
                if not isinstance(rid, str) or not rid:
                    raise DataError(f"{self.recs}:{n}: a recording without an id (text)",
                                    path=str(self.recs))
                if rid in recs:
                    raise DataError(f"{self.recs}:{n}: recording {rid!r:.80} is listed twice",
                                    path=str(self.recs))
                recs[rid] = r
            for n, sup in read_jsonl(self.sups, self.max_bytes):
                where = f"{self.sups}:{n}"
                rid = sup.get("recording_id")
                rec = recs.get(rid) if isinstance(rid, str) else None
                if rec is None:
                    raise DataError(f"{where}: cut {sup.get('id')!r}: recording "
                                    f"{sup.get('recording_id')!r} is not in {self.recs}",
                                    path=str(self.sups))
                utts.append(self._utt(sup, rec, 0.0, where, base))
        if not utts:
            raise DataError(f"{self.source}: no supervisions", path=str(self.source))
        labels = self.allowed or tuple(sorted({u.label for u in utts}))
        return Manifest(self.name, self.root, utts, labels)

    def folds(self, scheme: str = "emobox", seed: int = 0,
              manifest: Manifest | None = None) -> list[Fold]:
        scanned = self.manifest
        manifest = manifest or scanned
        if scheme != "emobox" or not self._roles:
            return super().folds(scheme, seed, manifest)
        missing = [u.key for u in manifest if u.key not in self._roles]
        if missing:
            raise DataError(f"{self.source}: cut {missing[0]!r} has no {self.fold_field!r} "
                            f"while others do", path=str(self.source))
        names = sorted({k for r in self._roles.values() for k in r}, key=int)
        labels = {u.key: u.label for u in manifest}
        folds = []
        for i, name in enumerate(names, start=1):
            by_role: dict[str, list[str]] = {r: [] for r in ROLES}
            for u in manifest:
                by_role[self._roles[u.key].get(name, "-")].append(u.key)
            if by_role["valid"]:
                train, valid, rule = by_role["train"], by_role["valid"], "official"
            else:
                train, valid = stratified_split(by_role["train"], labels, VALID_FRACTION, seed,
                                                f"{self.name}/valid/{i}")
                rule = "stratified-20%"
            folds.append(Fold(i, tuple(train), tuple(valid), tuple(by_role["test"]), "emobox",
                              rule))
        return folds


@hookimpl
def emobox_corpora():
    return [CorpusSpec(
        name="lhotse", build=LhotseCorpus, description=LhotseCorpus.__doc__, reader=True,
        license="that of the corpus the manifests describe",
        expected_top_level=LhotseCorpus.expected_top_level)]
