"""EmoBox's published reference tables, shipped as package data under ``reference/``."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
from importlib import resources

REFERENCE = resources.files("emobox.corpora") / "reference"


@functools.lru_cache(maxsize=None)
def reference_rows(name: str) -> tuple[dict, ...]:
    """EmoBox's published rows for corpus ``name`` (dicts keyed by the table's columns)."""
    data = gzip.decompress((REFERENCE / f"{name}.tsv.gz").read_bytes()).decode("utf-8")
    return tuple(csv.DictReader(io.StringIO(data), delimiter="\t"))


def has_reference(name: str) -> bool:
    return (REFERENCE / f"{name}.tsv.gz").is_file()


@functools.lru_cache(maxsize=None)
def reference_info(name: str | None = None) -> dict:
    """``corpora.json``: per-corpus counts, label map, folds, problems (all corpora if None)."""
    info = json.loads((REFERENCE / "corpora.json").read_text(encoding="utf-8"))
    return info if name is None else info[name]
