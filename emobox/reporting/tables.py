"""The combined report table: one per metric, built once from finished runs.

Rows are grouped by head (downstream, and partition scheme where runs use several); within a
group each upstream, or each variant of one (layer, precision, recipe, options), is a row.
Columns are the corpora, grouped by language; a language group of two or more corpora is
followed by its average, and the table ends with the average over every corpus. An average is
the unweighted mean of the row's corpus means, given only when the row has every corpus it
averages. A corpus's language comes from its plugin's ``languages`` (several: ``Mix``); groups
are ordered by how many of EmoBox's 32 corpora share the language (English 12, Mandarin 3,
French, German and Italian 2, then the rest alphabetically), mixed-language corpora last.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

from emobox.errors import EmoboxUsageError
from emobox.plugin.registry import Registry, get_registry
from emobox.reporting import paper, variants
from emobox.tracks.rundirs import METRICS, RunDir

MARK_TEST, MARK_CONTAMINATED, MARK_PARTIAL = "†", "§", "*"
NAMES = {"ua": "UA", "wa": "WA", "f1": "F1"}
MIXED = ("mix", "mixed", "multilingual", "several")


@dataclass
class Cell:
    upstream: str  # the row's label (upstream, with its variant when there are several)
    corpus: str
    run: RunDir
    scores: dict[str, tuple[float, float]]  # metric -> (mean, std over folds), fractions
    folds: int
    n_folds: int
    paper: dict[str, float] | None = None  # published scores (fractions), where shipped

    @property
    def marks(self) -> str:
        out = ""
        if self.run.select_test:
            out += MARK_TEST
        if self.run.contaminated:
            out += MARK_CONTAMINATED
        if self.folds < self.n_folds:
            out += MARK_PARTIAL
        return out


@dataclass(frozen=True)
class Column:
    label: str  # the corpus name, or "<language> avg" / "Avg" for an average
    language: str  # "" for the average over every corpus
    corpora: tuple[str, ...]
    average: bool = False


@dataclass
class Row:
    head: str  # the downstream
    scheme: str
    label: str
    upstream: str  # the registered name, without the variant
    cells: dict[str, Cell] = field(default_factory=dict)  # corpus -> cell


@dataclass
class Value:
    mean: float  # percent
    std: float | None  # fold std in percent (None for an average)
    marks: str
    folds: str = ""  # "k/n" when partial


@dataclass
class Table:
    rows: list[Row]
    groups: list[tuple[str, list[str]]]  # (language, corpora)
    columns: list[Column]
    # metric -> (row index, column index) of the best value of each column
    best: dict[str, set[tuple[int, int]]] = field(default_factory=dict)

    @property
    def corpora(self) -> list[str]:
        return [c for _, cs in self.groups for c in cs]

    @property
    def heads(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((r.head, r.scheme) for r in self.rows))

    @property
    def schemes(self) -> list[str]:
        return list(dict.fromkeys(r.scheme for r in self.rows))

    @property
    def upstreams(self) -> list[str]:
        return [r.label for r in self.rows]

    @property
    def cells(self) -> list[Cell]:
        return [cell for r in self.rows for cell in r.cells.values()]

    def head_label(self, row: Row) -> str:
        return row.head if len(self.schemes) == 1 else f"{row.head} ({row.scheme} folds)"

    def value(self, row: Row, column: Column, metric: str) -> Value | None:
        if not column.average:
            cell = row.cells.get(column.corpora[0])
            if cell is None:
                return None
            mean, std = cell.scores[metric]
            partial = cell.folds < cell.n_folds
            return Value(100 * mean, 100 * std, cell.marks,
                         f"{cell.folds}/{cell.n_folds}" if partial else "")
        cells = [row.cells.get(c) for c in column.corpora]
        if any(cell is None for cell in cells):
            return None
        marks = "".join(m for m in (MARK_TEST, MARK_CONTAMINATED, MARK_PARTIAL)
                        if any(m in cell.marks for cell in cells))
        return Value(statistics.fmean(100 * cell.scores[metric][0] for cell in cells), None,
                     marks)


def _language(name: str, registry: Registry) -> str:
    try:
        langs = tuple(registry.corpus(name).languages)
    except Exception:
        langs = ()
    if len(langs) == 1 and str(langs[0]).strip().lower() not in MIXED:
        return str(langs[0])
    if langs:
        return "Mix"
    return paper.corpus_language(name) or "Other"


def corpus_language(name: str, registry: Registry | None = None) -> str:
    """The language group of corpus ``name`` (its plugin's ``languages``; several: ``Mix``)."""
    return _language(name, registry or get_registry())


def _group_order(language: str) -> tuple:
    counts = paper.language_counts()
    return (language in ("Mix", "Other"), language == "Other", -counts.get(language, 1),
            language)


def columns_for(groups: Sequence[tuple[str, Sequence[str]]]) -> list[Column]:
    """Corpus columns by language group, each group of two or more corpora followed by its
    average, then the average over every corpus (when there are two or more)."""
    out = []
    for lang, cs in groups:
        out += [Column(c, lang, (c,)) for c in cs]
        if len(cs) > 1:
            out.append(Column(f"{lang} avg", lang, tuple(cs), average=True))
    every = tuple(c for _, cs in groups for c in cs)
    if len(every) > 1:
        out.append(Column("Avg", "", every, average=True))
    return out


def _mark_best(table: Table) -> None:
    """Bold candidates: per metric and column, the rows with the highest mean (as printed, two
    decimals); none in a column with fewer than two values."""
    for m in METRICS:
        best: set[tuple[int, int]] = set()
        for j, col in enumerate(table.columns):
            values = {}
            for i, row in enumerate(table.rows):
                v = table.value(row, col, m)
                if v is not None:
                    values[i] = round(v.mean, 2)
            if len(values) < 2:
                continue
            top = max(values.values())
            best |= {(i, j) for i, v in values.items() if v == top}
        table.best[m] = best


def build_table(runs: Sequence[RunDir], registry: Registry | None = None) -> Table:
    """The combined table of ``runs`` (all heads, schemes and corpora)."""
    registry = registry or get_registry()
    by_upstream: dict[tuple[str, str, str], list[RunDir]] = {}
    for run in runs:
        u, _, d = run.triple
        by_upstream.setdefault((d, run.config.get("scheme", "emobox"), u), []).append(run)
    label_of: dict[int, str] = {}
    for (_, _, u), rs in by_upstream.items():
        for run, label in zip(rs, variants.labels(u, [r.config for r in rs])):
            label_of[id(run)] = label
    rows: dict[tuple[str, str, str], Row] = {}
    owner: dict[tuple[str, str, str, str], RunDir] = {}
    for run in runs:
        u, c, d = run.triple
        scheme = run.config.get("scheme", "emobox")
        key = (d, scheme, label_of[id(run)])
        if key + (c,) in owner:
            other = owner[key + (c,)]
            diff = variants.differences(other.config, run.config)
            how = ("they differ only in " + "; ".join(diff)) if diff else \
                "their configurations do not differ"
            raise EmoboxUsageError(f"two runs of {u} x {c} x {d} ({scheme} folds): "
                                   f"{other.path} and {run.path}; {how}; pass only one of them")
        owner[key + (c,)] = run
        row = rows.setdefault(key, Row(d, scheme, key[2], u))
        scores = {m: run.mean_std(m) for m in METRICS}
        if scores["ua"] is None:
            continue
        row.cells[c] = Cell(key[2], c, run, scores, len(run.selected), run.n_folds,
                            paper=paper.table4_cell(u, c) if scheme == "emobox" else None)
    kept = [rows[k] for k in sorted(rows) if rows[k].cells]
    corpora = sorted({c for r in kept for c in r.cells})
    langs: dict[str, list[str]] = {}
    for c in corpora:
        langs.setdefault(_language(c, registry), []).append(c)
    groups = sorted(langs.items(), key=lambda kv: _group_order(kv[0]))
    table = Table(kept, groups, columns_for(groups))
    _mark_best(table)
    return table
