"""Per-layer view of a report: when runs of one upstream x corpus x head differ only in layer,
UA by layer (mean ± std over folds) as ``layers.md`` and ``plots/layers.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from emobox.reporting import variants
from emobox.io import atomic_write_text
from emobox.reporting.markdown import table
from emobox.tracks.rundirs import RunDir


def layer_sweeps(runs: Sequence[RunDir]) -> dict[tuple[str, str, str], list[tuple[int, float, float]]]:
    """(upstream, corpus, downstream) -> [(layer, UA mean %, UA std %)] sorted by layer, for
    every triple with runs at two or more layers that differ in nothing else."""
    by: dict[tuple[str, str, str, str], list[RunDir]] = {}
    for run in runs:
        u, c, d = run.triple
        by.setdefault((u, c, d, str(run.config.get("scheme"))), []).append(run)
    out = {}
    for (u, c, d, _), rs in sorted(by.items()):
        configs = [r.config for r in rs]
        varying = [k for k in variants.VARIANT_KEYS
                   if len({variants._value(cfg, k) for cfg in configs}) > 1]
        layers = [cfg.get("layer") for cfg in configs]
        if varying != ["layer"] or not all(isinstance(x, int) for x in layers) \
                or len(set(layers)) != len(layers):
            continue
        points = []
        for layer, run in sorted(zip(layers, rs), key=lambda p: p[0]):
            ua = run.mean_std("ua")
            if ua is not None:
                points.append((layer, 100 * ua[0], 100 * ua[1]))
        if len(points) >= 2:
            out[(u, c, d)] = points
    return out


def to_markdown(sweeps) -> str:
    lines = ["# UA by layer", "", ("Mean ± std over folds (%) of the configuration selected in "
                                   "each fold; layers counted as the upstream counts them."), ""]
    for (u, c, d), points in sweeps.items():
        lines += [f"## {u} x {c} ({d})", ""]
        lines += table(["layer", "UA"], [(layer, f"{m:.2f} ± {s:.2f}") for layer, m, s in points],
                       "r") + [""]
    return "\n".join(lines)


def plot(sweeps, path: Path) -> Path:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for (u, c, d), points in sweeps.items():
        xs = [p[0] for p in points]
        ms = [p[1] for p in points]
        ss = [p[2] for p in points]
        line, = ax.plot(xs, ms, marker="o", label=f"{u} x {c} ({d})")
        ax.fill_between(xs, [m - s for m, s in zip(ms, ss)], [m + s for m, s in zip(ms, ss)],
                        alpha=0.2, color=line.get_color())
    ax.set_xlabel("layer")
    ax.set_ylabel("UA (%)")
    ax.set_title("UA by layer (fold std shaded)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def write(runs: Sequence[RunDir], out: Path, plots: bool) -> dict[str, Path]:
    sweeps = layer_sweeps(runs)
    if not sweeps:
        return {}
    atomic_write_text(out / "layers.md", to_markdown(sweeps))
    files = {"layers.md": out / "layers.md"}
    if plots:
        files["plots/layers.png"] = plot(sweeps, out / "plots" / "layers.png")
    return files
