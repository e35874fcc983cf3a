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
from typing import ClassVar

from emobox import Corpus, CorpusSpec, FoldTableRow

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

    def fold_table(self) -> dict[str, FoldTableRow]:
        rows = reference_rows(self.reference_name or self.name)
        return {r["key"]: FoldTableRow(int(r["test_fold"]), r["valid"] == "1") for r in rows}


def corpus_spec(cls: type[EmoboxCorpus]) -> CorpusSpec:
    """The plugin spec of an adapter class, from its class attributes."""
    return CorpusSpec(name=cls.name, build=cls, description=cls.description,
                      languages=tuple(cls.languages), license=cls.license,
                      homepage=cls.homepage, citation=cls.citation,
                      expected_top_level=cls.expected_top_level)
