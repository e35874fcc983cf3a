"""``emobox report RUN_DIR...``: the EmoBox paper's Table 4 layout from finished runs.

Rows are upstreams, columns are corpora grouped by language; each cell is the mean ± std over
folds (UA, WA, F1 in percent) of the configuration selected in each fold; the best mean per
column is bold. Written as Markdown (``table.md``), CSV (``table.csv``, one column per corpus
and metric with its std beside it; ``cells.csv``, one line per cell with every flag) and LaTeX
(``table.tex``, booktabs), plus PNG plots (``plots/``). Marks:

- ``†`` the run selected models by TEST (``--select test``, EmoBox's recipe): optimistic;
- ``§`` contaminated: the upstream was trained on this corpus;
- ``*`` partial: fewer folds finished than the corpus has.

Where the paper's published numbers are shipped, each upstream the paper evaluated gets a
``(paper)`` row beneath its own. One table per (downstream, partition scheme).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from emobox import escape
from emobox.errors import EmoboxUsageError
from emobox.io import atomic_write_text
from emobox.plugin.registry import Registry, get_registry
from emobox.reporting import paper, variants
from emobox.reporting.layers import write as write_layers
from emobox.reporting.markdown import table
from emobox.tracks.rundirs import METRICS, RunDir, collect_runs
from emobox.reporting.plots import bar_chart, cross_corpus_heatmap

MARK_TEST, MARK_CONTAMINATED, MARK_PARTIAL = "†", "§", "*"
NAMES = {"ua": "UA", "wa": "WA", "f1": "F1"}


@dataclass
class Cell:
    upstream: str
    corpus: str
    run: RunDir
    scores: dict[str, tuple[float, float]]  # metric -> (mean, std), fractions
    folds: int
    n_folds: int
    best: set[str] = field(default_factory=set)
    paper: dict[str, float] | None = None

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


@dataclass
class Table:
    downstream: str
    scheme: str
    upstreams: list[str]
    groups: list[tuple[str, list[str]]]  # (language, corpora)
    cells: dict[tuple[str, str], Cell]

    @property
    def corpora(self) -> list[str]:
        return [c for _, cs in self.groups for c in cs]

    @property
    def title(self) -> str:
        return f"{self.downstream}, {self.scheme} folds"


@dataclass
class Report:
    tables: list[Table]
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)


def corpus_language(name: str, registry: Registry) -> str:
    try:
        langs = tuple(registry.corpus(name).languages)
    except Exception:
        langs = ()
    if len(langs) == 1:
        return langs[0]
    if len(langs) > 1:
        return "Mix"
    return paper.corpus_language(name) or "Other"


def build_tables(runs: Sequence[RunDir], registry: Registry | None = None) -> list[Table]:
    registry = registry or get_registry()
    groups: dict[tuple[str, str], dict[tuple[str, str], RunDir]] = {}
    by_upstream: dict[tuple[str, str, str], list[RunDir]] = {}
    for run in runs:
        u, c, d = run.triple
        by_upstream.setdefault((d, run.config.get("scheme", "emobox"), u), []).append(run)
    row_of: dict[int, str] = {}
    for (_, _, u), rs in by_upstream.items():
        for run, label in zip(rs, variants.labels(u, [r.config for r in rs])):
            row_of[id(run)] = label
    for run in runs:
        u, c, d = run.triple
        by_cell = groups.setdefault((d, run.config.get("scheme", "emobox")), {})
        row = row_of[id(run)]
        if (row, c) in by_cell:
            other = by_cell[(row, c)]
            diff = variants.differences(other.config, run.config)
            how = ("they differ only in " + "; ".join(diff)) if diff else \
                "their configurations do not differ"
            raise EmoboxUsageError(f"two runs of {u} x {c} x {d} ({run.config.get('scheme')} "
                                   f"folds): {other.path} and {run.path}; {how}; pass only "
                                   f"one of them")
        by_cell[(row, c)] = run
    tables = []
    for (d, scheme), by_cell in sorted(groups.items()):
        upstreams = list(dict.fromkeys(u for u, _ in by_cell))
        corpora = sorted({c for _, c in by_cell})
        langs: dict[str, list[str]] = {}
        for c in corpora:
            langs.setdefault(corpus_language(c, registry), []).append(c)
        ordered = sorted(langs.items(), key=lambda kv: (kv[0] in ("Mix", "Other"), kv[0]))
        cells = {}
        for (u, c), run in by_cell.items():
            scores = {m: run.mean_std(m) for m in METRICS}
            if scores["ua"] is None:
                continue
            cells[(u, c)] = Cell(u, c, run, scores, len(run.selected), run.n_folds,
                                 paper=paper.table4_cell(run.triple[0], c) if scheme == "emobox" else None)
        for c in corpora:
            for m in METRICS:
                values = {k: round(100 * cell.scores[m][0], 2) for k, cell in cells.items()
                          if k[1] == c}
                if values:
                    top = max(values.values())
                    for k, v in values.items():
                        if v == top:
                            cells[k].best.add(m)
        tables.append(Table(d, scheme, sorted(upstreams), ordered, cells))
    return tables


def _fmt(score: tuple[float, float]) -> tuple[str, str]:
    return f"{100 * score[0]:.2f}", f"{100 * score[1]:.2f}"


def _legend(tables: Sequence[Table]) -> list[str]:
    used = {m for t in tables for cell in t.cells.values() for m in cell.marks}
    out = []
    if MARK_TEST in used:
        out.append(f"{MARK_TEST} selected by TEST (`--select test`, or `--recipe paper`: EmoBox's "
                   f"code): optimistic, "
                   f"only for comparing with the published tables")
    if MARK_CONTAMINATED in used:
        out.append(f"{MARK_CONTAMINATED} contaminated: the upstream was trained on this corpus")
    if MARK_PARTIAL in used:
        out.append(f"{MARK_PARTIAL} partial: not every fold of the corpus finished (k/n shown)")
    return out


def to_markdown(tables: Sequence[Table], notes: Sequence[str] = ()) -> str:
    md = escape.markdown  # names come from run directories: never Markdown or HTML
    lines = ["# emobox report", "",
             "Mean ± std over folds (%) of the configuration selected in each fold; the best "
             "mean of each column is **bold**. Columns are grouped by language.", ""]
    for t in tables:
        for m in METRICS:
            lines += [f"## {NAMES[m]} — {md(t.title)}", ""]
            header = ["upstream"] + [f"{md(c)} ({md(lang)})" for lang, cs in t.groups for c in cs]
            rows = []
            for u in t.upstreams:
                row = [md(u)]
                paper_row = [f"{md(u)} (paper)"]
                for c in t.corpora:
                    cell = t.cells.get((u, c))
                    if cell is None:
                        row.append("–")
                    else:
                        mean, std = _fmt(cell.scores[m])
                        text = f"{mean} ± {std}"
                        if m in cell.best:
                            text = f"**{text}**"
                        marks = cell.marks
                        if MARK_PARTIAL in marks:
                            marks = marks.replace(MARK_PARTIAL, f"{MARK_PARTIAL}"
                                                  f"({cell.folds}/{cell.n_folds})")
                        row.append(text + (f" {marks}" if marks else ""))
                    pub = cell.paper.get(m) if cell is not None and cell.paper else None
                    paper_row.append(f"_{100 * pub:.2f}_" if pub is not None else "")
                rows.append(row)
                if any(paper_row[1:]):
                    rows.append(paper_row)
            lines += table(header, rows, "lr", escape=False)
            lines.append("")
    legend = _legend(tables)
    if legend or notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in legend] + [f"- {md(n)}" for n in notes] + [""]
    return "\n".join(lines)


def to_csv(tables: Sequence[Table]) -> str:
    """Wide layout: one row per (downstream, scheme, upstream); per corpus and metric the mean
    and its std (percent); empty where there is no result."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    corpora = list(dict.fromkeys(c for t in tables for c in t.corpora))
    writer.writerow(["downstream", "scheme", "upstream"] + [
        f"{c} {NAMES[m]}{suffix}" for c in corpora for m in METRICS for suffix in ("", " std")])
    for t in tables:
        for u in t.upstreams:
            row = [t.downstream, t.scheme, u]
            for c in corpora:
                cell = t.cells.get((u, c))
                for m in METRICS:
                    row += list(_fmt(cell.scores[m])) if cell else ["", ""]
            writer.writerow(row)
    return buf.getvalue()


def cells_csv(tables: Sequence[Table]) -> str:
    """Long layout: one row per cell with its folds, flags and the paper's numbers."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["downstream", "scheme", "upstream", "corpus", "language", "folds", "n_folds"]
    for m in METRICS:
        head += [NAMES[m], f"{NAMES[m]} std", f"best {NAMES[m]}", f"paper {NAMES[m]}"]
    head += ["selected_by_test", "contaminated", "checkpoint_id", "run_dir"]
    writer.writerow(head)
    for t in tables:
        for lang, cs in t.groups:
            for c in cs:
                for u in t.upstreams:
                    cell = t.cells.get((u, c))
                    if cell is None:
                        continue
                    row = [t.downstream, t.scheme, u, c, lang, cell.folds, cell.n_folds]
                    for m in METRICS:
                        pub = (cell.paper or {}).get(m)
                        row += [*_fmt(cell.scores[m]), int(m in cell.best),
                                f"{100 * pub:.2f}" if pub is not None else ""]
                    row += [int(cell.run.select_test), int(cell.run.contaminated),
                            cell.run.config.get("checkpoint_id", ""), str(cell.run.path)]
                    writer.writerow(row)
    return buf.getvalue()


_tex = escape.latex


def to_latex(tables: Sequence[Table]) -> str:
    marks_tex = {MARK_TEST: r"$^\dagger$", MARK_CONTAMINATED: r"$^\S$", MARK_PARTIAL: r"$^*$"}
    out = ["% emobox report: mean $\\pm$ std over folds (%); best per column in bold.",
           "% requires \\usepackage{booktabs}", ""]
    for t in tables:
        for m in METRICS:
            n = len(t.corpora)
            out.append(r"\begin{table}[t]")
            out.append(r"\centering")
            out.append(rf"\caption{{{NAMES[m]} (\%), {_tex(t.title)}}}")
            out.append(r"\begin{tabular}{l" + "c" * n + "}")
            out.append(r"\toprule")
            out.append(" & " + " & ".join(rf"\multicolumn{{{len(cs)}}}{{c}}{{{_tex(lang)}}}"
                                          for lang, cs in t.groups) + r" \\")
            rules, col = [], 2
            for _, cs in t.groups:
                rules.append(rf"\cmidrule(lr){{{col}-{col + len(cs) - 1}}}")
                col += len(cs)
            out.append(" ".join(rules))
            out.append("Upstream & " + " & ".join(_tex(c) for c in t.corpora) + r" \\")
            out.append(r"\midrule")
            for u in t.upstreams:
                row, paper_row = [_tex(u)], [r"\quad \textit{paper}"]
                for c in t.corpora:
                    cell = t.cells.get((u, c))
                    if cell is None:
                        row.append("--")
                        paper_row.append("")
                        continue
                    mean, std = _fmt(cell.scores[m])
                    text = rf"{mean}$\pm${std}"
                    if m in cell.best:
                        text = rf"\textbf{{{mean}}}$\pm${std}"
                    row.append(text + "".join(marks_tex[k] for k in cell.marks))
                    pub = (cell.paper or {}).get(m)
                    paper_row.append(rf"\textit{{{100 * pub:.2f}}}" if pub is not None else "")
                out.append(" & ".join(row) + r" \\")
                if any(paper_row[1:]):
                    out.append(" & ".join(paper_row) + r" \\")
            out.append(r"\bottomrule")
            out.append(r"\end{tabular}")
            out.append(r"\end{table}")
            out.append("")
    return "\n".join(out)


def plot_tables(tables: Sequence[Table], out: Path) -> list[Path]:
    files = []
    for t in tables:
        stem = f"{t.downstream}_{t.scheme}".replace("-", "_")
        for m in METRICS:
            scores = {c: {u: tuple(100 * x for x in t.cells[(u, c)].scores[m])
                          for u in t.upstreams if (u, c) in t.cells} for c in t.corpora}
            marks = {k: cell.marks for k, cell in t.cells.items() if cell.marks}
            files.append(bar_chart(scores, out / "plots" / f"{m}_by_corpus_{stem}.png",
                                   NAMES[m], f"{NAMES[m]} per corpus — {t.title}", marks))
    published = sorted({u for t in tables for u in t.upstreams}
                       & set(paper.paper_models()))
    letters = [c.upper()[0] + c[1:] for c in paper.CROSS_CORPORA]
    for u in published:
        matrix = paper.cross_corpus_matrix(u)
        if matrix is None:
            continue
        avg = paper.cross_corpus_average(matrix)
        files.append(cross_corpus_heatmap(
            matrix, letters, letters, out / "plots" / f"paper_cross_corpus_{u}.png",
            f"{u}: EmoBox Table 5 (published), average {avg:.2f}%"))
    return files


def write_report(run_paths: Iterable[str | Path], out: str | Path,
                 registry: Registry | None = None, plots: bool = True) -> Report:
    """Build the tables from run or bench directories and write every format to ``out``."""
    runs = collect_runs(run_paths)
    tables = build_tables(runs, registry)
    if not any(t.cells for t in tables):
        raise EmoboxUsageError("no finished fold in the given runs: nothing to report")
    notes = []
    status = paper.table4_status()
    if status and any(t.scheme == "emobox" and paper.corpus_language(c) for t in tables
                      for c in t.corpora):
        notes.append(status)
    for run in runs:  # a diverged configuration is never selected; the table says it failed
        for cid, folds in run.failed.items():
            u, c, d = run.triple
            notes.append(f"{u} x {c} x {d}: configuration {cid} FAILED in fold"
                         f"{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))} "
                         f"(training diverged); it was never selected")
    out = Path(out)
    report = Report(tables, notes)
    for name, text in (("table.md", to_markdown(tables, notes)), ("table.csv", to_csv(tables)),
                       ("cells.csv", cells_csv(tables)), ("table.tex", to_latex(tables))):
        atomic_write_text(out / name, text)
        report.files[name] = out / name
    if plots:
        for path in plot_tables(tables, out):
            report.files[str(path.relative_to(out))] = path
    report.files.update(write_layers(runs, out, plots))
    return report
