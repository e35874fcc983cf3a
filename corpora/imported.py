"""imported: a corpus given as a manifest TSV with its folds (EmoBox imports, saved manifests).

``--root`` is either a folder written by ``emobox corpora import-emobox`` (``manifest.tsv`` and
``corpus.json``), or a manifest file written by ``emobox corpora manifest`` (``FILE.tsv`` with
its ``FILE.json`` beside it). The manifest's columns are ``key path speaker emotion emotion_raw
channel start end test_fold valid`` and, optionally, ``fold1 ... foldN`` (each ``train``,
``valid``, ``test`` or ``-``). Audio paths are relative to the ``audio_root`` of the JSON file,
which ``--corpus-option audio_root=DIR`` overrides (for audio that moved).

Scheme ``emobox`` is the file's own folds: the ``fold<k>`` columns where present (exactly the
lists EmoBox's scripts wrote), else ``test_fold``/``valid`` (validation: the ``valid`` rows where
the corpus has an official dev split, else a seeded stratified 20% of the training side). Scheme
``speaker-independent`` is built from the ``speaker`` column as for any corpus.

    emobox corpora import-emobox ~/EmoBox/data
    emobox run -u wavlm_base -c imported --root ~/.cache/emobox/imports/ravdess -d linear_probe
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from emobox import (Corpus, CorpusSpec, DataError, EmoboxUsageError, Fold, FoldTableRow,
                    Manifest, hookimpl)
from emobox.datasets.manifest import read_tsv_rows, utterance_from_row
from emobox.io import read_json_file
from emobox.plugin.registry import NAME_RE
from emobox.datasets.splits import VALID_FRACTION, stratified_split

KINDS = ("emobox.import", "emobox.manifest")
REQUIRED = ("key", "path", "emotion", "test_fold")
ROLES = ("train", "valid", "test", "-")
# what the description (``corpus.json``, ``FILE.json``) may say, as (key, type, in words)
INFO_FIELDS = (("corpus", str, "a corpus name"), ("audio_root", str, "a folder"),
               ("official_valid", bool, "true or false"), ("has_speaker_ids", bool, "true or false"),
               ("labels", list, "a list of class names"),
               ("valid_rules", list, "a list of validation rules (text)"))


class ImportedCorpus(Corpus):
    """a corpus given as a manifest TSV with folds (EmoBox imports, saved manifests)"""

    name = "imported"
    expected_top_level = ("manifest.tsv and corpus.json as `emobox corpora import-emobox` "
                          "writes them (or give the .tsv that `emobox corpora manifest` wrote)")

    def __init__(self, root: str | Path, audio_root: str | Path | None = None):
        root = Path(root).expanduser()
        if root.is_file():
            self.tsv, info_path = root, root.with_suffix(".json")
        else:
            if not root.is_dir():
                raise EmoboxUsageError(f"corpus 'imported': {root} does not exist; give a folder "
                                       f"holding {self.expected_top_level}")
            self.tsv, info_path = root / "manifest.tsv", root / "corpus.json"
            if not self.tsv.is_file():
                raise EmoboxUsageError(f"corpus 'imported': {root} has no manifest.tsv; it "
                                       f"should hold {self.expected_top_level}")
        self.info = self._read_info(info_path)
        self.name = self.info.get("corpus") or self.tsv.stem
        if not NAME_RE.match(self.name):
            raise DataError(f"{info_path if 'corpus' in self.info else self.tsv}: the corpus name "
                            f"{self.name[:80]!r} is not a name (letters, digits, '_', '.', '-', "
                            f"starting with a letter or digit); it names the feature store's "
                            f"folder", path=str(self.tsv))
        where = audio_root or self.info.get("audio_root")
        base = self.tsv.parent
        self.root = (base / Path(where).expanduser() if where else base).resolve()
        if not self.root.is_dir():
            raise EmoboxUsageError(f"{self.name}: the audio folder {self.root} does not exist; "
                                   f"pass --corpus-option audio_root=DIR")
        self.official_valid = self.info.get("official_valid", False)
        # an EmoBox import: scheme emobox reads the channel EmoBox read (Corpus.manifest_for)
        self.emobox_channels = self.info.get("kind") == "emobox.import"
        self.has_speaker_ids = self.info.get("has_speaker_ids", True)
        self.skipped = []
        self._manifest = None
        self._rows: dict[str, dict[str, str]] = {}
        self.fold_columns: list[str] = []

    @staticmethod
    def _read_info(path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        info = read_json_file(path, follow_links=True)
        if not isinstance(info, dict) or info.get("kind") not in KINDS:
            kind = info.get("kind") if isinstance(info, dict) else f"a JSON {type(info).__name__}"
            raise DataError(f"{path}: not an emobox manifest description (kind "
                            f"{str(kind)[:40]!r}, expected one of {', '.join(KINDS)})",
                            path=str(path))
        for key, kind, what in INFO_FIELDS:
            value = info.get(key)
            if value is None:
                continue
            ok = (isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
                  and (not isinstance(value, list)
                       or all(isinstance(v, str) and v for v in value)))
            if not ok:
                raise DataError(f"{path}: {key} is {json.dumps(value, default=str)[:40]}, not "
                                f"{what}", path=str(path))
        return info

    def scan(self) -> Manifest:
        rows = read_tsv_rows(self.tsv, REQUIRED)
        columns = list(rows[0][1]) if rows else []
        self.fold_columns = sorted((c for c in columns if re.fullmatch(r"fold[0-9]+", c)),
                                   key=lambda c: int(c[4:]))
        utts = []
        for line, r in rows:
            try:
                utts.append(utterance_from_row(r))
                int(r["test_fold"])
                for c in self.fold_columns:
                    if r[c] not in ROLES:
                        raise ValueError(f"{c} is {r[c]!r}, not one of {', '.join(ROLES)}")
            except (ValueError, TypeError) as exc:
                raise DataError(f"{self.tsv}:{line}: bad row: {exc}", path=str(self.tsv))
            self._rows[r["key"]] = r
        labels = tuple(self.info.get("labels") or sorted({u.label for u in utts}))
        return Manifest(self.name, self.root, utts, labels)

    def fold_table(self) -> dict[str, FoldTableRow]:
        self.manifest  # read the rows
        return {k: FoldTableRow(int(r["test_fold"]), r.get("valid") == "1", r["path"])
                for k, r in self._rows.items()}

    def folds(self, scheme: str = "emobox", seed: int = 0,
              manifest: Manifest | None = None) -> list[Fold]:
        scanned = self.manifest  # reads the fold columns
        manifest = manifest or scanned
        if scheme != "emobox" or not self.fold_columns:
            return super().folds(scheme, seed, manifest)
        labels = {u.key: u.label for u in manifest}
        rules = list(self.info.get("valid_rules") or [])
        folds = []
        for i, col in enumerate(self.fold_columns, start=1):
            by_role: dict[str, list[str]] = {r: [] for r in ROLES}
            for u in manifest:
                by_role[self._rows[u.key][col]].append(u.key)
            if by_role["valid"]:  # the validation set the file lists
                train, valid = by_role["train"], by_role["valid"]
                rule = rules[i - 1] if i <= len(rules) else "official"
            else:
                train, valid = stratified_split(by_role["train"], labels, VALID_FRACTION, seed,
                                                f"{self.name}/valid/{i}")
                rule = "stratified-20%"
            folds.append(Fold(i, tuple(train), tuple(valid), tuple(by_role["test"]), "emobox",
                              rule))
        if not any(f.test for f in folds):
            raise DataError(f"{self.tsv}: no utterance is a test item in any fold",
                            path=str(self.tsv))
        return folds


@hookimpl
def emobox_corpora():
    return [CorpusSpec(
        name="imported", build=ImportedCorpus, description=ImportedCorpus.__doc__, reader=True,
        license="that of the corpus imported",
        expected_top_level=ImportedCorpus.expected_top_level)]
