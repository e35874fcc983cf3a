"""Figures a user opens: PNG files drawn with matplotlib's Agg backend (no display needed).

The report figures take plain numbers, so any track can use them: the cross-corpus track
passes its own train x test matrix to :func:`cross_corpus_heatmap` (reports also draw the
paper's published Table 5 matrices with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def _text(text: object) -> str:
    """A name drawn as written: a ``$`` never starts matplotlib's math mode."""
    return str(text).replace("$", r"\$")


def confusion_png(path: Path, confusion: Sequence[Sequence[int]], labels: Sequence[str],
                  title: str = "") -> Path:
    """Draw a confusion matrix (rows = gold, columns = predicted) as a PNG.

    Each cell is shaded by its row-normalised share (the recall on the diagonal) and shows the
    percentage and the count.
    """
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from emobox.io import atomic_write_bytes

    cm = np.asarray(confusion, dtype=np.int64)
    support = cm.sum(1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape, dtype=float), where=support > 0)
    n = len(labels)
    size = max(4.0, 0.9 * n + 2.0)
    fig = Figure(figsize=(size, size * 0.9))
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=[_text(lab) for lab in labels], rotation=45, ha="right")
    ax.set_yticks(range(n), labels=[_text(lab) for lab in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{100 * share[i, j]:.0f}%\n{cm[i, j]}", ha="center", va="center",
                    fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    if title:
        ax.set_title(_text(title), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the gold class")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    import io

    from emobox.io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")  # no label cut at the edges
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


LEGIBLE_BARS = 16  # at most this many bars get their value printed on them


def bar_figure(scores: Mapping[str, Mapping[str, tuple[float, float] | None]],
               metric: str = "UA", title: str = "",
               marks: Mapping[tuple[str, str], str] | None = None):
    """The figure of :func:`bar_chart`, not yet saved: ``(figure, axes)``.

    The y-axis spans every bar's mean ± std (and 0); the legend sits outside the axes, right
    of the bars; with few bars (:data:`LEGIBLE_BARS`) each shows its mean above its error bar.
    """
    from matplotlib import colormaps

    corpora = list(scores)
    upstreams = list(dict.fromkeys(u for c in corpora for u in scores[c]))
    n_up = max(1, len(upstreams))
    width = 0.8 / n_up
    bars = sum(1 for c in corpora for u in scores[c] if scores[c][u] is not None)
    fig = _figure(min(max(6.0, 0.5 + len(corpora) * (0.3 + 0.22 * n_up)), 60.0), 4.2)
    ax = fig.add_subplot()
    cmap = colormaps["tab10" if n_up <= 10 else "tab20"]
    low, high = 0.0, 0.0
    labelled = bars <= LEGIBLE_BARS
    for i, up in enumerate(upstreams):
        present = [(j, c) for j, c in enumerate(corpora) if scores[c].get(up) is not None]
        xs = [j - 0.4 + width * (i + 0.5) for j, _ in present]
        ys = [float(scores[c][up][0]) for _, c in present]
        errs = [float(scores[c][up][1] or 0.0) for _, c in present]
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=_text(up), color=cmap(i % cmap.N))
        for x, y, e, (_, c) in zip(xs, ys, errs, present):
            low, high = min(low, y - e), max(high, y + e)
            mark = (marks or {}).get((up, c), "")
            text = f"{y:.1f}{mark}" if labelled else mark
            if text:
                ax.text(x, y + e, text, ha="center", va="bottom", fontsize=7,
                        rotation=90 if labelled and n_up > 2 else 0)
    rotate = len(corpora) > 6
    ax.set_xticks(range(len(corpora)), labels=[_text(c) for c in corpora],
                  rotation=45 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_ylabel(f"{metric} (%)")
    span = max(high - low, 1.0)
    # room above the tallest error bar for its value (or mark)
    ax.set_ylim(low - (0.03 * span if low < 0 else 0.0), high + (0.12 if labelled else 0.06) * span)
    ax.set_title(_text(title or f"{metric} per corpus (mean ± std over folds)"), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def bar_chart(scores: Mapping[str, Mapping[str, tuple[float, float] | None]], path: Path,
              metric: str = "UA", title: str = "",
              marks: Mapping[tuple[str, str], str] | None = None) -> Path:
    """Grouped bars: one group per corpus, one bar per upstream (percent, fold std as error).

    ``scores[corpus][upstream] = (mean, std)`` in percent (absent or None: no result);
    ``marks[(upstream, corpus)]`` puts a symbol above a bar (e.g. † for selection by test).
    """
    fig, _ = bar_figure(scores, metric, title, marks)
    return _save(fig, path)


def cross_corpus_heatmap(matrix: Sequence[Sequence[float | None]], train_labels: Sequence[str],
                         test_labels: Sequence[str], path: Path, title: str = "",
                         value_label: str = "accuracy (%)") -> Path:
    """Heatmap of a train x test matrix (rows = training corpus, columns = test corpus), in
    percent; cells without a value (the diagonal) stay blank; each cell shows its number."""
    import numpy as np

    data = np.array([[np.nan if v is None else float(v) for v in row] for row in matrix])
    fig = _figure(1.6 + 1.0 * len(test_labels), 1.2 + 0.9 * len(train_labels))
    ax = fig.add_subplot()
    top = max(100.0, float(np.nanmax(data))) if np.isfinite(data).any() else 100.0
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0, vmax=top)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.1f}", ha="center", va="center", fontsize=9,
                        color="white" if data[i, j] < 0.6 * top else "black")
    ax.set_xticks(range(len(test_labels)), labels=[_text(lab) for lab in test_labels])
    ax.set_yticks(range(len(train_labels)), labels=[_text(lab) for lab in train_labels])
    ax.set_xlabel("test corpus")
    ax.set_ylabel("training corpus")
    if title:
        ax.set_title(_text(title), fontsize=9)
    fig.colorbar(im, ax=ax, label=value_label, fraction=0.046, pad=0.04)
    return _save(fig, path)
