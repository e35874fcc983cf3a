"""Figures a user opens: PNG files drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


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

    from .io import atomic_write_bytes

    cm = np.asarray(confusion, dtype=np.int64)
    support = cm.sum(1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape, dtype=float), where=support > 0)
    n = len(labels)
    size = max(4.0, 0.9 * n + 2.0)
    fig = Figure(figsize=(size, size * 0.9))
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{100 * share[i, j]:.0f}%\n{cm[i, j]}", ha="center", va="center",
                    fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the gold class")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
