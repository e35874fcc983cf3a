"""``emobox report RUN_DIR...``: paper-ready tables and plots of finished runs.

One combined table per metric (UA, WA, F1; :mod:`emobox.reporting.tables`): heads as row
groups, each upstream (or variant) a row, corpora as columns grouped by language with per-group
averages and the average over every corpus. Each cell is the mean ± std over folds (percent) of
the configuration selected in each fold; the best of a column is bold where the column has two
or more rows. Written as Markdown (``table.md``), tab-separated text (``table_<metric>.tsv``,
the same cells) and LaTeX (``table.tex``: booktabs, a caption and a label per table), plus
numbers for machines (``table.csv``: one column per corpus and metric with its std beside it;
``cells.csv``: one line per cell with every flag) and PNG plots (``plots/``). Marks:

- ``†`` the run selected models by TEST (``--select test``, EmoBox's recipe): optimistic;
- ``§`` contaminated: the upstream was trained on this corpus;
- ``*`` partial: fewer folds finished than the corpus has (``*(k/n)`` in Markdown and TSV).

Where the published intra-corpus numbers are shipped, each upstream the paper evaluated gets a
``(paper)`` row beneath its own.
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
from emobox.plugin.registry import Registry
from emobox.reporting import paper
from emobox.reporting.layers import write as write_layers
from emobox.reporting.plots import bar_chart, cross_corpus_heatmap
from emobox.reporting.tables import (MARK_CONTAMINATED, MARK_PARTIAL, MARK_TEST, NAMES, Cell,
                                     Column, Row, Table, Value, build_table, columns_for,
                                     corpus_language)
from emobox.tracks.rundirs import METRICS, collect_runs

__all__ = ["Cell", "Column", "Report", "Row", "Table", "build_table", "cells_csv",
           "columns_for", "corpus_language", "plot_table", "to_csv", "to_latex", "to_markdown", "to_tsv",
           "write_report"]


@dataclass
class Report:
    table: Table
    notes: list[str]
    files: dict[str, Path] = field(default_factory=dict)


def _fmt(score: tuple[float, float]) -> tuple[str, str]:
    return f"{100 * score[0]:.2f}", f"{100 * score[1]:.2f}"


def legend(table: Table) -> list[str]:
    """One line per mark used in ``table``."""
    used = {m for cell in table.cells for m in cell.marks}
    out = []
    if MARK_TEST in used:
        out.append(f"{MARK_TEST} selected by TEST (`--select test`, or `--recipe paper`: EmoBox's "
                   f"code): optimistic, only for comparing with the published tables")
    if MARK_CONTAMINATED in used:
        out.append(f"{MARK_CONTAMINATED} contaminated: the upstream was trained on this corpus")
    if MARK_PARTIAL in used:
        out.append(f"{MARK_PARTIAL} partial: not every fold of the corpus finished (k/n shown)")
    return out


LAYOUT = ("Mean ± std over folds (%) of the configuration selected in each fold. Rows are "
          "grouped by head; columns are corpora grouped by language, a language with two or "
          "more corpora followed by its average, and Avg, the mean over every corpus (an "
          "average is the unweighted mean of the corpus means, shown where the row has every "
          "corpus it averages). The best value of a column with two or more rows is bold.")


def _text(v: Value | None) -> str:
    """A cell as plain text: ``61.50 ± 2.10 †*(1/3)``."""
    if v is None:
        return "–"
    text = f"{v.mean:.2f}" if v.std is None else f"{v.mean:.2f} ± {v.std:.2f}"
    marks = v.marks.replace(MARK_PARTIAL, f"{MARK_PARTIAL}({v.folds})") if v.folds else v.marks
    return text + (f" {marks}" if marks else "")


def _paper_row(table: Table, row: Row, metric: str) -> list[str] | None:
    """The published numbers under ``row`` (percent), or None where none is shipped."""
    out = []
    for col in table.columns:
        cell = None if col.average else row.cells.get(col.corpora[0])
        pub = (cell.paper or {}).get(metric) if cell is not None else None
        out.append(f"{100 * pub:.2f}" if pub is not None else "")
    return out if any(out) else None


def to_markdown(table: Table, notes: Sequence[str] = ()) -> str:
    md = escape.markdown  # names come from run directories: never Markdown or HTML
    lines = ["# emobox report", "", LAYOUT, ""]
    head = ["head", "upstream"] + [md(c.label) if c.average else f"{md(c.label)} ({md(c.language)})"
                                   for c in table.columns]
    for m in METRICS:
        lines += [f"## {NAMES[m]} (%)", "", "| " + " | ".join(head) + " |",
                  "|---|---" + "|---:" * len(table.columns) + "|"]
        shown = None
        for i, row in enumerate(table.rows):
            label = table.head_label(row)
            cells = [md(label) if label != shown else "", md(row.label)]
            shown = label
            for j, col in enumerate(table.columns):
                v = table.value(row, col, m)
                text = _text(v)  # numbers and marks only: nothing to escape
                if v is not None and (i, j) in table.best[m]:
                    mean, _, rest = text.partition(" ")
                    text = f"**{mean}**" + (f" {rest}" if rest else "")
                cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
            pub = _paper_row(table, row, m)
            if pub:
                lines.append("| | " + f"{md(row.upstream)} (paper) | "
                             + " | ".join(f"_{p}_" if p else "" for p in pub) + " |")
        lines.append("")
    marks = legend(table)
    if marks or notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in marks] + [f"- {md(n)}" for n in notes] + [""]
    return "\n".join(lines)


def to_tsv(table: Table, metric: str) -> str:
    """The Markdown table of ``metric`` as tab-separated text (no bold), to paste into a
    spreadsheet or a document."""
    one = escape.one_line
    lines = ["\t".join(["head", "upstream"] + [
        one(c.label) if c.average else f"{one(c.label)} ({one(c.language)})"
        for c in table.columns])]
    for row in table.rows:
        lines.append("\t".join([one(table.head_label(row)), one(row.label)] + [
            _text(table.value(row, col, metric)) for col in table.columns]))
        pub = _paper_row(table, row, metric)
        if pub:
            lines.append("\t".join([one(table.head_label(row)), f"{one(row.upstream)} (paper)"]
                                   + pub))
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Wide layout: one row per (downstream, scheme, upstream); per corpus and metric the mean
    and its std (percent); empty where there is no result."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["downstream", "scheme", "upstream"] + [
        f"{c} {NAMES[m]}{suffix}" for c in table.corpora for m in METRICS
        for suffix in ("", " std")])
    for row in table.rows:
        out = [row.head, row.scheme, row.label]
        for c in table.corpora:
            cell = row.cells.get(c)
            for m in METRICS:
                out += list(_fmt(cell.scores[m])) if cell else ["", ""]
        writer.writerow(out)
    return buf.getvalue()


def cells_csv(table: Table) -> str:
    """Long layout: one row per cell with its folds, flags and the paper's numbers."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["downstream", "scheme", "upstream", "corpus", "language", "folds", "n_folds"]
    for m in METRICS:
        head += [NAMES[m], f"{NAMES[m]} std", f"best {NAMES[m]}", f"paper {NAMES[m]}"]
    head += ["selected_by_test", "contaminated", "checkpoint_id", "run_dir"]
    writer.writerow(head)
    column = {col.corpora[0]: j for j, col in enumerate(table.columns) if not col.average}
    for lang, cs in table.groups:
        for c in cs:
            for i, row in enumerate(table.rows):
                cell = row.cells.get(c)
                if cell is None:
                    continue
                out = [row.head, row.scheme, row.label, c, lang, cell.folds, cell.n_folds]
                for m in METRICS:
                    pub = (cell.paper or {}).get(m)
                    out += [*_fmt(cell.scores[m]), int((i, column[c]) in table.best.get(m, ())),
                            f"{100 * pub:.2f}" if pub is not None else ""]
                out += [int(cell.run.select_test), int(cell.run.contaminated),
                        cell.run.config.get("checkpoint_id", ""), str(cell.run.path)]
                writer.writerow(out)
    return buf.getvalue()


_tex = escape.latex
MARKS_TEX = {MARK_TEST: r"$^\dagger$", MARK_CONTAMINATED: r"$^\S$", MARK_PARTIAL: r"$^*$"}
LEGEND_TEX = {MARK_TEST: r"$^\dagger$ selected by test (optimistic)",
              MARK_CONTAMINATED: r"$^\S$ contaminated (the upstream was trained on the corpus)",
              MARK_PARTIAL: r"$^*$ partial (not every fold finished)"}


def _tex_cell(v: Value | None, bold: bool) -> str:
    if v is None:
        return "--"
    mean = rf"\textbf{{{v.mean:.2f}}}" if bold else f"{v.mean:.2f}"
    text = mean if v.std is None else rf"{mean}$\pm${v.std:.2f}"
    return text + "".join(MARKS_TEX[k] for k in v.marks)


def to_latex(table: Table) -> str:
    out = ["% emobox report: mean $\\pm$ std over folds (%); requires \\usepackage{booktabs}",
           ""]
    schemes = table.schemes
    where = f", {_tex(schemes[0])} folds" if len(schemes) == 1 else ""
    used = [k for k in (MARK_TEST, MARK_CONTAMINATED, MARK_PARTIAL)
            if any(k in cell.marks for cell in table.cells)]
    for m in METRICS:
        n = len(table.columns)
        out += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{NAMES[m]} (\%) per corpus{where}: mean $\pm$ std over folds; "
                rf"corpora grouped by language"
                + (", with averages" if any(c.average for c in table.columns) else "")
                + ("; best per column in bold" if table.best[m] else "") + ".}",
                rf"\label{{tab:emobox-{m}}}",
                r"\begin{tabular}{ll" + "c" * n + "}", r"\toprule"]
        spans, col = [], 3
        top = ["", ""]
        for lang, cs in table.groups:
            width = len(cs) + (1 if len(cs) > 1 else 0)
            top.append(rf"\multicolumn{{{width}}}{{c}}{{{_tex(lang)}}}")
            spans.append(rf"\cmidrule(lr){{{col}-{col + width - 1}}}")
            col += width
        if any(c.average and not c.language for c in table.columns):
            top.append("")
        out.append(" & ".join(top) + r" \\")
        out.append(" ".join(spans))
        out.append("Head & Upstream & " + " & ".join(
            r"\textit{avg}" if c.average and c.language else _tex(c.label)
            for c in table.columns) + r" \\")
        out.append(r"\midrule")
        shown = None
        for i, row in enumerate(table.rows):
            label = table.head_label(row)
            if shown is not None and label != shown:
                out.append(r"\midrule")
            cells = [_tex(label) if label != shown else "", _tex(row.label)]
            shown = label
            cells += [_tex_cell(table.value(row, col, m), (i, j) in table.best[m])
                      for j, col in enumerate(table.columns)]
            out.append(" & ".join(cells) + r" \\")
            pub = _paper_row(table, row, m)
            if pub:
                out.append(" & ".join(["", r"\quad\textit{paper}"] + [
                    rf"\textit{{{p}}}" if p else "" for p in pub]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if used:
            out += [r"\par\smallskip{\footnotesize " + "; ".join(LEGEND_TEX[k] for k in used)
                    + ".}"]
        out += [r"\end{table}", ""]
    return "\n".join(out)


def plot_table(table: Table, out: Path) -> list[Path]:
    """Bars per corpus (one chart per head and metric) and, for upstreams of the paper, the
    published cross-corpus matrix."""
    files = []
    for head, scheme in table.heads:
        rows = [r for r in table.rows if (r.head, r.scheme) == (head, scheme)]
        stem = f"{head}_{scheme}".replace("-", "_")
        title = head if len(table.schemes) == 1 else f"{head}, {scheme} folds"
        for m in METRICS:
            scores = {c: {r.label: tuple(100 * x for x in r.cells[c].scores[m])
                          for r in rows if c in r.cells} for c in table.corpora}
            marks = {(r.label, c): cell.marks for r in rows for c, cell in r.cells.items()
                     if cell.marks}
            files.append(bar_chart(scores, out / "plots" / f"{m}_by_corpus_{stem}.png",
                                   NAMES[m], f"{NAMES[m]} per corpus — {title}", marks))
    published = sorted({r.upstream for r in table.rows} & set(paper.paper_models()))
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
    table = build_table(runs, registry)
    if not table.rows:
        raise EmoboxUsageError("no finished fold in the given runs: nothing to report")
    notes = []
    status = paper.table4_status()
    if status and "emobox" in table.schemes and any(
            paper.corpus_language(c) for c in table.corpora):
        notes.append(status)
    for run in runs:  # a diverged configuration is never selected; the table says it failed
        for cid, folds in run.failed.items():
            u, c, d = run.triple
            notes.append(f"{u} x {c} x {d}: configuration {cid} FAILED in fold"
                         f"{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))} "
                         f"(training diverged); it was never selected")
    out = Path(out)
    report = Report(table, notes)
    texts = [("table.md", to_markdown(table, notes)), ("table.tex", to_latex(table))]
    texts += [(f"table_{m}.tsv", to_tsv(table, m)) for m in METRICS]
    texts += [("table.csv", to_csv(table)), ("cells.csv", cells_csv(table))]
    for name, text in texts:
        atomic_write_text(out / name, text)
        report.files[name] = out / name
    if plots:
        for path in plot_table(table, out):
            report.files[str(path.relative_to(out))] = path
    report.files.update(write_layers(runs, out, plots))
    return report
