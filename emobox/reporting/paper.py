"""The EmoBox paper's published numbers (``emobox/data/paper_tables.json``), for reports that put
them beside a user's own.

Table 4 (intra-corpus UA/WA/F1) is used where the shipped file holds its values
(``table4.results[model][corpus][metric]``, percentages); the shipped file says whether it
does. Table 5 (cross-corpus accuracy) is ``acc_train_test[train][test]`` per model.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

CROSS_CORPORA = ("iemocap", "meld", "ravdess", "savee")


@functools.lru_cache(maxsize=None)
def paper_tables() -> dict:
    return json.loads((resources.files("emobox") / "data" / "paper_tables.json")
                      .read_text(encoding="utf-8"))


def table4_status() -> str:
    """'' when Table 4's numbers are available, else why they are not."""
    t4 = paper_tables().get("table4") or {}
    if isinstance(t4.get("results"), dict) and t4["results"]:
        return ""
    return ("the EmoBox paper's published intra-corpus numbers (its Table 4) are not shipped "
            "with emobox, so no (paper) row is shown")


def table4_cell(model: str, corpus: str) -> dict[str, float] | None:
    """Published intra-corpus ``{"ua", "wa", "f1"}`` (fractions) of ``model`` on ``corpus``."""
    results = (paper_tables().get("table4") or {}).get("results")
    if not isinstance(results, dict):
        return None
    cell = (results.get(model) or {}).get(corpus)
    if not isinstance(cell, dict):
        return None
    out = {}
    for metric in ("ua", "wa", "f1"):
        value = cell.get(metric.upper(), cell.get(metric))
        if isinstance(value, (int, float)):
            out[metric] = float(value) / 100
    return out or None


def paper_models() -> dict[str, str]:
    """Paper model id -> name as printed."""
    return dict((paper_tables().get("ids") or {}).get("models") or {})


def cross_corpus_matrix(model: str) -> list[list[float | None]] | None:
    """Published Table 5 accuracies (percent) of ``model``: rows = training corpus, columns =
    test corpus, in :data:`CROSS_CORPORA` order, None on the diagonal."""
    models = (paper_tables().get("table5") or {}).get("models") or {}
    entry = models.get(model)
    if not entry:
        return None
    acc = entry["acc_train_test"]
    return [[None if tr == te else acc.get(tr, {}).get(te) for te in CROSS_CORPORA]
            for tr in CROSS_CORPORA]


def corpus_language(corpus: str) -> str | None:
    """Language of an EmoBox corpus as Table 1 prints it ('Mix' for several)."""
    for row in paper_tables().get("table1") or []:
        if row.get("corpus_id") == corpus:
            return row.get("lang")
    return None


def language_counts() -> dict[str, int]:
    """Language -> how many of EmoBox's corpora are in it (Table 1), e.g. English 12."""
    out: dict[str, int] = {}
    for row in paper_tables().get("table1") or []:
        lang = row.get("lang")
        if isinstance(lang, str):
            out[lang] = out.get(lang, 0) + 1
    return out


def cross_corpus_average(matrix: Any) -> float | None:
    """``1/(n^2-n) * sum_{i != j} Acc_ij`` (EmoBox Eq. 1) over the defined off-diagonal cells."""
    values = [v for i, row in enumerate(matrix) for j, v in enumerate(row)
              if i != j and v is not None]
    return sum(values) / len(values) if values else None
