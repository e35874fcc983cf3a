"""Shared machinery of the EmoBox corpus adapters: the published reference tables.

``reference/<corpus>.tsv.gz`` (package data built by ``scripts/build_reference_data.py``) holds
every utterance EmoBox listed: key, path relative to the corpus root, channel, segment, speaker,
raw and mapped label, the fold in which it is a test item (0 = train only, single-fold corpora:
1 = test) and the official-valid flag. :class:`EmoboxCorpus` turns it into the ``emobox``
scheme's fold table; adapters only implement ``scan()``.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
from importlib import resources
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

from emobox import Corpus, CorpusSpec, FoldTableRow, Utterance

REFERENCE = resources.files("emobox.corpora") / "reference"


@functools.lru_cache(maxsize=None)
def reference_rows(name: str) -> tuple[dict, ...]:
    """EmoBox's published rows for corpus ``name`` (dicts keyed by the table's columns)."""
    data = gzip.decompress((REFERENCE / f"{name}.tsv.gz").read_bytes()).decode("utf-8")
    return tuple(csv.DictReader(io.StringIO(data), delimiter="\t"))


@functools.lru_cache(maxsize=None)
def reference_info(name: str | None = None) -> dict:
    """``corpora.json``: per-corpus counts, label map, folds, problems (all corpora if None)."""
    info = json.loads((REFERENCE / "corpora.json").read_text(encoding="utf-8"))
    return info if name is None else info[name]


class EmoboxCorpus(Corpus):
    """A corpus of the EmoBox benchmark: scheme ``emobox`` follows the published tables."""

    homepage: ClassVar[str] = ""
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference_name: ClassVar[str] = ""  # table name, when it differs from ``name``
    # EmoBox's table keeps a few labels its own label map failed to map (EmoDB's "neutral"):
    # reference ``emotion`` -> the class this adapter yields instead (documented in its card)
    reference_label_fixes: ClassVar[Mapping[str, str]] = {}

    def fold_table(self) -> dict[str, FoldTableRow]:
        rows = reference_rows(self.reference_name or self.name)
        return {r["key"]: self.reference_fold_row(r) for r in rows}

    @classmethod
    def reference_fold_row(cls, row: Mapping[str, str]) -> FoldTableRow:
        """The ``emobox`` scheme's membership of a reference row: its ``test_fold`` and
        ``valid`` columns, unless the adapter knows better (MER2023's test2/test3 rows, which the
        table marks 0 like train rows, are in no split: ``test_fold`` -1)."""
        return FoldTableRow(int(row["test_fold"]), row["valid"] == "1")

    @classmethod
    def make_fixture(cls, root: Path, rows: Sequence[Mapping[str, str]],
                     clutter: bool = False) -> Mapping[str, FoldTableRow]:
        """Write a tiny copy of the corpus in its native layout under ``root`` (for tests).

        ``rows`` are reference rows (dicts of the table's columns); every one becomes an
        utterance with a short audio file and an entry in the corpus's own metadata files.
        ``clutter`` adds what real downloads look like (an extra top folder, ``__MACOSX``,
        ``.DS_Store``, stray files, upper-case extensions, a read-only folder). Returns the fold
        rows of utterances the fixture adds beyond ``rows`` (e.g. MSP-Podcast's Train part,
        which the reference lacks); ``{}`` for most corpora.
        """
        raise NotImplementedError(f"{cls.__name__} has no test fixture")


def emobox_speaker(utt: Utterance) -> str | None:
    """The speaker EmoBox recorded for ``utt`` (differs from ``utt.speaker`` where EmoBox's was
    wrong, e.g. IEMOCAP's dialog prefix; kept in ``custom["emobox_speaker"]``)."""
    return utt.custom.get("emobox_speaker", utt.speaker)


def corpus_spec(cls: type[EmoboxCorpus]) -> CorpusSpec:
    """The plugin spec of an adapter class, from its class attributes."""
    return CorpusSpec(name=cls.name, build=cls, description=cls.description,
                      languages=tuple(cls.languages), license=cls.license,
                      homepage=cls.homepage, citation=cls.citation,
                      expected_top_level=cls.expected_top_level)
