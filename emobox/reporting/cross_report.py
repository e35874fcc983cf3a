"""The files of a cross-corpus run: the matrices, their averages, the paper beside them, plots.

``matrix.tsv`` has one line per (source, target) cell: accuracy, UA, WA and macro-F1 in percent,
the test set's size, whether the cell counts in the average (off-diagonal), whether it is
contaminated (the upstream was trained on either corpus) and the paper's Table 5 accuracy where
it exists. ``matrix.json`` holds the same as matrices with the averages. ``summary.md`` lays it
out for reading; ``heatmap.png`` draws the accuracy matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from emobox import escape
from emobox.reporting import paper
from emobox.io import atomic_write_json, atomic_write_text
from emobox.reporting.results import NORM_WORDS, feature_norm_of
from emobox.reporting.markdown import Markdown, table
from emobox.reporting.plots import cross_corpus_heatmap


@dataclass
class CrossResult:
    out: Path
    corpora: list[str]
    classes: tuple[str, ...]
    cells: dict[tuple[str, str], dict]  # (source, target) -> selected row
    config: dict
    notes: list[str]

    def matrix(self, metric: str = "accuracy") -> list[list[float | None]]:
        """Rows = training corpus, columns = test corpus; fractions (None: not run)."""
        key = "wa" if metric == "accuracy" else metric
        return [[(self.cells[(s, t)][key] if (s, t) in self.cells else None)
                 for t in self.corpora] for s in self.corpora]


def cross_average(matrix: Sequence[Sequence[float | None]]) -> float | None:
    """``1/(n^2-n) * sum_{i != j} M_ij``: the mean off-diagonal entry of a square matrix (EmoBox
    Eq. 1, the average cross-corpus accuracy). None when an off-diagonal entry is missing."""
    n = len(matrix)
    if n < 2 or any(len(row) != n for row in matrix):
        raise ValueError(f"a square matrix of at least 2 x 2 is needed, got {n} rows")
    off = [matrix[i][j] for i in range(n) for j in range(n) if i != j]
    if any(v is None for v in off):
        return None
    return sum(off) / (n * n - n)


def row_averages(matrix: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Per source (row): the mean of its off-diagonal entries (None if one is missing)."""
    out = []
    for i, row in enumerate(matrix):
        vals = [v for j, v in enumerate(row) if j != i]
        out.append(None if any(v is None for v in vals) or not vals else sum(vals) / len(vals))
    return out


def column_averages(matrix: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Per target (column): the mean of its off-diagonal entries."""
    return row_averages([list(col) for col in zip(*matrix)])


METRICS = (("accuracy", "wa", "Accuracy"), ("ua", "ua", "UA"), ("f1", "f1", "Macro-F1"))


def paper_matrix(upstream: str, corpora: Sequence[str]) -> list[list[float | None]] | None:
    """The paper's Table 5 accuracies (percent) of ``upstream`` laid out on ``corpora`` (None
    where the paper has no cell: the diagonal, corpora outside its four); None when the paper
    has no row for the upstream."""
    published = paper.cross_corpus_matrix(upstream)
    if published is None:
        return None
    pos = {c: i for i, c in enumerate(paper.CROSS_CORPORA)}
    return [[(published[pos[s]][pos[t]] if s in pos and t in pos else None) for t in corpora]
            for s in corpora]


def finish_cross(out: Path, plan: Any, done: Mapping[str, list[dict]], config: dict,
                 notes: list[str]) -> Any:
    cells = {(r["source"], r["target"]): r for rows in done.values() for r in rows
             if r["selected"]}
    result = CrossResult(out, [tc.name for tc in plan.corpora], plan.classes, cells, config,
                         notes)
    published = paper_matrix(plan.opts.upstream, result.corpora)
    atomic_write_text(out / "matrix.tsv", matrix_tsv(result, published))
    atomic_write_json(out / "matrix.json", matrix_json(result, published))
    atomic_write_text(out / "summary.md", summary_markdown(result, plan, published))
    _heatmaps(out, result, published)
    return result


def _pct(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{100 * v:.{digits}f}"


def matrix_tsv(result: Any, published: list[list[float | None]] | None) -> str:
    lines = ["source\ttarget\taccuracy\tua\twa\tf1\tn_test\tin_average\tcontaminated\t"
             "paper_accuracy"]
    for i, s in enumerate(result.corpora):
        for j, t in enumerate(result.corpora):
            cell = result.cells.get((s, t))
            if cell is None:
                continue
            pub = published[i][j] if published else None
            lines.append("\t".join([escape.one_line(s), escape.one_line(t), _pct(cell["wa"]),
                                    _pct(cell["ua"]), _pct(cell["wa"]),
                                    _pct(cell["f1"]), str(cell["n_test"]),
                                    str(s != t).lower(), str(cell["contaminated"]).lower(),
                                    "" if pub is None else f"{pub:.2f}"]))
    return "\n".join(lines) + "\n"


def matrix_json(result: Any, published: list[list[float | None]] | None) -> dict:
    out: dict[str, Any] = {
        "kind": "emobox.cross_matrix", "schema_version": 1,
        "upstream": result.config["upstream"], "downstream": result.config["downstream"],
        "corpora": result.corpora, "classes": list(result.classes),
        "orientation": "matrix[i][j] = trained on corpora[i], tested on corpora[j]; fractions",
        "selected_by_test": result.config["selected_by_test"],
        "contaminated": [[bool(result.cells.get((s, t), {}).get("contaminated"))
                          for t in result.corpora] for s in result.corpora],
        "metrics": {}}
    for name, _, _ in METRICS:
        m = result.matrix(name)
        out["metrics"][name] = {"matrix": m, "average": cross_average(m),
                                "per_source": dict(zip(result.corpora, row_averages(m))),
                                "per_target": dict(zip(result.corpora, column_averages(m)))}
    if published is not None:
        known = [[v for v in row] for row in published]
        defined = all(v is not None for i, row in enumerate(known) for j, v in enumerate(row)
                      if i != j)
        out["paper"] = {"table": "EmoBox Table 5 (accuracy, percent)", "matrix": known,
                        "average": cross_average(known) if defined else None,
                        "per_source": dict(zip(result.corpora, row_averages(known)))}
    return out


def _grid(result: Any, matrix: list[list[float | None]], scale: float, marks: bool) -> list[str]:
    names = result.corpora
    md = escape.markdown
    header = [Markdown("train \\ test"), *names, "avg (off-diagonal)"]
    body = []
    rows = row_averages(matrix)
    for i, s in enumerate(names):
        cells = []
        for j, t in enumerate(names):
            v = matrix[i][j]
            text = "–" if v is None else f"{scale * v:.2f}"
            if v is not None and i == j:
                text = f"({text})"
            if marks and result.cells.get((s, t), {}).get("contaminated"):
                text += " §"
            cells.append(text)
        avg = rows[i]
        cells.append("–" if avg is None else f"{scale * avg:.2f}")
        body.append([Markdown(f"**{md(s)}**"), *cells])
    cols = column_averages(matrix)
    total = cross_average(matrix)
    body.append(["avg (off-diagonal)", *("–" if v is None else f"{scale * v:.2f}" for v in cols),
                 Markdown("**" + ("–" if total is None else f"{scale * total:.2f}") + "**")])
    return table(header, body)


def summary_markdown(result: Any, plan: Any, published: list[list[float | None]] | None) -> str:
    from emobox.tracks.runner import SCHEDULE_WORDS

    c = result.config
    md = escape.markdown  # names and labels come from files: never Markdown or HTML
    by_test = c["selected_by_test"]
    lines = [f"# Cross-corpus track: {md(c['upstream'])} x {md(c['downstream'])}", ""]
    if c.get("recipe") == "paper":
        lines += ["**EMOBOX'S CODE, BUGS INCLUDED (`--recipe paper`): each source's epochs and "
                  "configuration were picked on the union of the targets' test sets, with "
                  "EmoBox's learning-rate schedule (epoch 2 at 0), utterances over 30 s dropped "
                  "and random instead of stratified 20% validation; these numbers are optimistic "
                  "and only for comparing with the published tables.**", ""]
    elif by_test:
        lines += ["**SELECTED BY TEST (`--select test`): each source's epochs and configuration "
                  "were picked on the union of the targets' test sets; these numbers are "
                  "optimistic and only for comparing with the published tables.**", ""]
    acc = result.matrix("accuracy")
    total = cross_average(acc)
    n = len(result.corpora)
    lines += [f"Average cross-corpus accuracy, 1/(n²−n) Σ_(i≠j) Acc_ij over n = {n} corpora: "
              f"**{'–' if total is None else f'{100 * total:.2f}%'}**", ""]
    share = ("a random (not stratified) 20%, as EmoBox's script drew it" if
             c.get("recipe") == "paper" else "a seeded stratified 20%")
    valid_text = (f"{share} of that training side" if c["valid"] == "stratified"
                  else f"the official dev split where the corpus has one, else {share}")
    lines += [f"- corpora (rows: training corpus, columns: test corpus): "
              f"{md(', '.join(result.corpora))}; classes: {md(', '.join(result.classes))}",
              f"- each source trains on every utterance of these classes except its own balanced "
              f"test set; validation: {valid_text} (seed {c['seed']}); selection: "
              f"{'TEST (optimistic)' if by_test else 'validation UA (test never selects)'}",
              f"- layer {md(c['layer'])} ({NORM_WORDS[feature_norm_of(c)]}), "
              f"features {md(c['precision'])}, checkpoint {md(c['checkpoint_id'])}; grid "
              f"{md(c['grid'])}, Adam, batch {c['batch_size']}, {c['epochs']} epochs "
              f"({c['warmup_epochs']} warm-up, then "
              f"{SCHEDULE_WORDS.get(c['schedule'], c['schedule'])}), gradient norm "
              f"{'clipped at %g' % c['grad_clip'] if c.get('grad_clip') else 'not clipped'}, "
              f"class weights "
              f"{'on' if c['class_weights'] else 'off'}, training precision "
              f"{c['train_precision']}",
              "- the diagonal (in parentheses) is within-corpus: the source's own balanced set, "
              "whose speakers also train; it is not part of any average. § = contaminated (the "
              "upstream was trained on the source or the target corpus)", ""]
    lines += ["## Accuracy (%)", ""] + _grid(result, acc, 100, True) + [""]
    if published is not None:
        lines += [f"## The EmoBox paper's Table 5 for {md(c['upstream'])} (accuracy, %)", ""]
        lines += _grid(result, [[None if v is None else v / 100 for v in row]
                                for row in published], 100, False)
        lines += ["", "The paper's numbers come from EmoBox's own recipe (its scripts selected "
                  "models on test data); compare them with a run made with `--select test`.", ""]
    else:
        lines += [f"The EmoBox paper's Table 5 has no row for {md(c['upstream'])} (its models: "
                  f"{', '.join(sorted(paper.paper_models())) or 'none recorded'}).", ""]
    for name, _, title in METRICS[1:]:
        lines += [f"## {title} (%)", ""] + _grid(result, result.matrix(name), 100, True) + [""]
    lines += ["On a balanced test set every class has the same support, so UA equals accuracy "
              "there.", ""]
    shapes = [tc.test_set.quota() for tc in plan.corpora]
    lines += ["## Test sets", ""] + table(
        ["corpus", "utterances", "structure", "origin"],
        [(tc.name, len(tc.test_set), f"{q[0]} speakers x {q[1]} per class" if q else "not balanced",
          tc.test_set.origin) for tc, q in zip(plan.corpora, shapes)])
    lines += ["", "## Training sides", ""] + table(
        ["corpus", "train", "valid", "validation rule"],
        [(tc.name, c["splits"][tc.name]["train"], c["splits"][tc.name]["valid"], tc.valid_rule)
         for tc in plan.corpora])
    lines += ["", "## Label harmonisation (corpus labels -> canonical class)", ""] + table(
        ["class", *result.corpora],
        [(cls, *(", ".join(tc.harmonised.get(cls, [])) or "–" for tc in plan.corpora))
         for cls in result.classes])
    selected = []
    for s in result.corpora:
        cell = result.cells.get((s, s)) or next(
            (v for (src, _), v in result.cells.items() if src == s), None)
        if cell:
            selected.append((s, cell["config_id"], cell["best_epoch"],
                             f"{100 * cell['valid_ua']:.2f}", cell["n_train"], cell["n_valid"]))
    lines += ["", "## Selected configuration per source", ""] + table(
        ["source", "config", "epoch", "valid UA %", "train", "valid"], selected)
    lines += ["", "Files: `matrix.tsv`, `matrix.json`, `results.jsonl` (every configuration), "
              "`predictions/<source>__<target>.tsv`, `test_sets/<corpus>.tsv`, `heatmap.png`."]
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {md(note)}" for note in result.notes]
    return "\n".join(lines) + "\n"


def _heatmaps(out: Path, result: Any, published: list[list[float | None]] | None) -> None:
    acc = result.matrix("accuracy")
    total = cross_average(acc)
    c = result.config
    title = (f"{c['upstream']} x {c['downstream']}: accuracy, average off-diagonal "
             f"{'–' if total is None else f'{100 * total:.1f}%'}\n(diagonal: within-corpus)")
    if c["selected_by_test"]:
        title += " SELECTED BY TEST"
    cross_corpus_heatmap([[None if v is None else 100 * v for v in row] for row in acc],
                         result.corpora, result.corpora, out / "heatmap.png", title)
    if published is not None:
        cross_corpus_heatmap(published, result.corpora, result.corpora,
                             out / "heatmap_paper.png",
                             f"EmoBox paper, Table 5: {c['upstream']} (accuracy)")


@dataclass
class LayerAverages:
    """One layer of a cross-corpus layer sweep: the means of its off-diagonal cells
    (fractions; None where a cell is missing) and each source's mean accuracy on the other
    corpora."""

    layer: int
    out: Path
    accuracy: float | None
    ua: float | None
    f1: float | None
    per_source: list[float | None]


def layer_averages(results: Sequence[Any]) -> list[LayerAverages]:
    return [LayerAverages(int(r.config["layer"]), Path(str(r.out)),
                          cross_average(r.matrix("accuracy")), cross_average(r.matrix("ua")),
                          cross_average(r.matrix("f1")), row_averages(r.matrix("accuracy")))
            for r in results]


def best_layer_accuracy(rows: Sequence[LayerAverages]) -> float | None:
    """The highest average accuracy of a sweep (what its tables set in bold)."""
    return max((r.accuracy for r in rows if r.accuracy is not None), default=None)


def layers_tsv(results: Sequence[Any]) -> str:
    """One line per layer of a cross-corpus layer sweep: the averages of the off-diagonal cells
    (accuracy, UA, macro-F1, in percent), then each source's mean accuracy on the other
    corpora; empty where a cell of that layer is missing."""
    lines = ["layer\taccuracy\tua\tf1\t" + "\t".join(f"accuracy_from_{escape.one_line(s)}"
                                                   for s in results[0].corpora) + "\tfolder"]
    for r in layer_averages(results):
        lines.append("\t".join([str(r.layer), _pct(r.accuracy), _pct(r.ua), _pct(r.f1),
                                *(_pct(v) for v in r.per_source), escape.one_line(str(r.out))]))
    return "\n".join(lines) + "\n"


def _text(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def layers_markdown(results: Sequence[Any]) -> str:
    md = escape.markdown
    c = results[0].config
    by_test = any(r.config.get("selected_by_test") for r in results)
    rows = layer_averages(results)
    best = best_layer_accuracy(rows)
    header = [Markdown("layer"), "accuracy", "UA", "macro-F1",
              *(f"from {s}" for s in results[0].corpora), "folder"]
    body = []
    for r in rows:
        acc = _text(r.accuracy)
        if r.accuracy is not None and r.accuracy == best and len(rows) > 1:
            acc = Markdown(f"**{acc}**")
        name = md(r.out.name)  # layerN, beside layers.md
        body.append([str(r.layer), acc, _text(r.ua), _text(r.f1),
                     *(_text(v) for v in r.per_source),
                     Markdown(f"[{name}]({name}/summary.md)")])
    lines = [f"# Cross-corpus scores by layer: {md(c['upstream'])} x {md(c['downstream'])}"
             + (" [SELECTED BY TEST]" if by_test else ""), "",
             "Each layer is its own cross-corpus track (its folder holds the matrices). "
             "Accuracy, UA and macro-F1 are the means of the off-diagonal cells (train on one "
             "corpus, test on another), in percent; \"from\" a corpus is the mean accuracy of "
             "the model trained on it over the other corpora. Layers are numbered as the "
             "upstream numbers them (0: the input of the first block).", ""]
    lines += table(header, body, align="r" * (len(header) - 1) + "l")
    return "\n".join(lines) + "\n"


def layers_png(results: Sequence[Any], path: Path) -> Path:
    """Average cross-corpus accuracy and UA by layer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from emobox.reporting.layers import _save

    fig = Figure(figsize=(6, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rows = layer_averages(results)
    for metric, label in (("accuracy", "accuracy"), ("ua", "UA")):
        ys = [getattr(r, metric) for r in rows]
        ax.plot([r.layer for r in rows], [float("nan") if v is None else 100 * v for v in ys],
                marker="o", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("off-diagonal average (%)")
    c = results[0].config
    ax.set_title(f"cross-corpus average by layer: {c['upstream']} x {c['downstream']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def finish_layers(out: Path, results: Sequence[Any]) -> dict[str, Path]:
    """``layers.tsv``, ``layers.md`` and ``layers.png`` in the folder of a layer sweep."""
    atomic_write_text(out / "layers.tsv", layers_tsv(results))
    atomic_write_text(out / "layers.md", layers_markdown(results))
    return {"layers.tsv": out / "layers.tsv", "layers.md": out / "layers.md",
            "layers.png": layers_png(results, out / "layers.png")}
