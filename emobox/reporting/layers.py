"""Per-layer view of a report: when runs of one upstream x corpus x head differ only in layer
(a layer sweep, ``emobox run --layer 0-12``), UA, WA and F1 by layer (mean ± std over folds) as
``layers.md`` and UA by layer as ``plots/layers.png`` (one line per upstream x corpus, the fold
std a band); for heads that learn a weighting of the layers (``weighted_sum``), their learned
softmax weights in ``layers.md`` and ``plots/layer_weights.png``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emobox import escape
from emobox.io import atomic_write_text
from emobox.reporting import variants
from emobox.tracks.rundirs import RunDir
from emobox.training.metrics import mean_std

Key = tuple[str, str, str]  # upstream, corpus, downstream


def sweep_runs(runs: Sequence[RunDir]) -> dict[Key, list[tuple[int, RunDir]]]:
    """(upstream, corpus, downstream) -> [(layer, run)] sorted by layer, for every triple with
    finished runs at two or more layers that differ in nothing else."""
    by: dict[tuple[str, str, str, str], list[RunDir]] = {}
    for run in runs:
        u, c, d = run.triple
        by.setdefault((u, c, d, str(run.config.get("scheme"))), []).append(run)
    out = {}
    for (u, c, d, _), rs in sorted(by.items()):
        rs = [r for r in rs if r.mean_std("ua") is not None]
        configs = [r.config for r in rs]
        varying = [k for k in variants.VARIANT_KEYS
                   if len({variants._value(cfg, k) for cfg in configs}) > 1]
        layers = [cfg.get("layer") for cfg in configs]
        if varying != ["layer"] or not all(isinstance(x, int) and not isinstance(x, bool)
                                           for x in layers) or len(set(layers)) != len(layers):
            continue
        out[(u, c, d)] = sorted(zip(layers, rs), key=lambda p: p[0])
    return out


def layer_sweeps(runs: Sequence[RunDir]) -> dict[Key, list[tuple[int, float, float]]]:
    """(upstream, corpus, downstream) -> [(layer, UA mean %, UA std %)] sorted by layer (see
    :func:`sweep_runs`)."""
    return {key: [(layer, 100 * run.mean_std("ua")[0], 100 * run.mean_std("ua")[1])
                  for layer, run in points]
            for key, points in sweep_runs(runs).items()}


def layer_weights(runs: Sequence[RunDir]) -> dict[Key, list[tuple[int, float, float]]]:
    """(upstream, corpus, downstream) -> [(layer, mean, std over folds)] of the learned softmax
    layer weights of the selected configurations, for runs whose head learns them."""
    out = {}
    for run in runs:
        layers = run.config.get("layers")
        if not isinstance(layers, list) or not layers:
            continue
        found = [r["layer_weights"] for r in run.selected
                 if isinstance(r.get("layer_weights"), list)
                 and len(r["layer_weights"]) == len(layers)]
        if found:
            out[run.triple] = [(layer, *mean_std([w[i] for w in found]))
                               for i, layer in enumerate(layers)]
    return out


def _cell(run: RunDir, metric: str) -> str:
    ms = run.mean_std(metric)
    return "-" if ms is None else f"{100 * ms[0]:.2f} ± {100 * ms[1]:.2f}"


def to_markdown(sweeps: Mapping[Key, list[tuple[int, RunDir]]],
                weights: Mapping[Key, list[tuple[int, float, float]]] | None = None) -> str:
    md = escape.markdown  # names come from run folders: never Markdown or HTML
    lines = []
    if sweeps:
        lines += ["# Scores by layer", "", "Mean ± std over folds (%) of the configuration "
                  "selected in each fold; layers numbered as the upstream numbers them (0: the "
                  "input of the first block, the last: the encoder output).", ""]
    for (u, c, d), points in sweeps.items():
        by_test = any(run.select_test for _, run in points)
        lines += [f"## {md(u)} x {md(c)} ({md(d)})" + (" [SELECTED BY TEST]" if by_test else ""),
                  "", "| layer | UA | WA | F1 | folds |", "|---:|---:|---:|---:|---:|"]
        best = max(run.mean_std("ua")[0] for _, run in points)
        for layer, run in points:
            ua = _cell(run, "ua")
            if run.mean_std("ua")[0] == best and len(points) > 1:
                ua = f"**{ua}**"
            lines.append(f"| {layer} | {ua} | {_cell(run, 'wa')} | {_cell(run, 'f1')} | "
                         f"{len(run.selected)}/{run.n_folds} |")
        lines.append("")
    if weights:
        lines += ["# Learned layer weights", "", "Softmax of the layer weights a head learned, "
                  "mean ± std over the selected configurations of the folds.", ""]
        for (u, c, d), points in weights.items():
            lines += [f"## {md(u)} x {md(c)} ({md(d)})", "", "| layer | weight |",
                      "|---:|---:|"]
            lines += [f"| {layer} | {m:.4f} ± {s:.4f} |" for layer, m, s in points] + [""]
    return "\n".join(lines)


def _save(fig: Any, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def plot(sweeps: Mapping[Key, list[tuple[int, float, float]]], path: Path) -> Path:
    """UA by layer, one line per upstream x corpus (x head when several), fold std a band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    heads = {d for _, _, d in sweeps}
    for (u, c, d), points in sweeps.items():
        xs = [p[0] for p in points]
        ms = [p[1] for p in points]
        ss = [p[2] for p in points]
        label = f"{u} x {c}" + (f" ({d})" if len(heads) > 1 else "")
        line, = ax.plot(xs, ms, marker="o", label=label)
        ax.fill_between(xs, [max(m - s, 0.0) for m, s in zip(ms, ss)],  # a score is 0..100
                        [min(m + s, 100.0) for m, s in zip(ms, ss)], alpha=0.2,
                        color=line.get_color())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("UA (%)")
    title = "UA by layer, mean over folds (band: ± std)"
    if len(heads) == 1:
        title += f", {next(iter(heads))}"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return _save(fig, path)


def weights_png(path: Path, weights: Mapping[Any, list[tuple[int, float, float]]],
                title: str = "learned layer weights (softmax), mean over folds ± std") -> Path:
    """Bars of learned layer weights by layer (error bars: std over folds), one group of bars
    per key (e.g. upstream x corpus)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    n = max(len(weights), 1)
    width = 0.8 / n
    for i, (key, points) in enumerate(weights.items()):
        xs = [p[0] + (i - (n - 1) / 2) * width for p in points]
        label = " x ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        ax.bar(xs, [p[1] for p in points], width=width, yerr=[p[2] for p in points],
               capsize=3, label=label)
    layers = sorted({p[0] for points in weights.values() for p in points})
    ax.set_xticks(layers)
    uniform = 1 / len(layers) if layers else 0
    ax.axhline(uniform, color="grey", linestyle="--", linewidth=1, label="uniform")
    ax.set_xlabel("layer")
    ax.set_ylabel("weight")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return _save(fig, path)


def write(runs: Sequence[RunDir], out: Path, plots: bool) -> dict[str, Path]:
    sweeps = sweep_runs(runs)
    weights = layer_weights(runs)
    if not sweeps and not weights:
        return {}
    atomic_write_text(out / "layers.md", to_markdown(sweeps, weights))
    files = {"layers.md": out / "layers.md"}
    if plots and sweeps:
        files["plots/layers.png"] = plot(layer_sweeps(runs), out / "plots" / "layers.png")
    if plots and weights:
        files["plots/layer_weights.png"] = weights_png(
            out / "plots" / "layer_weights.png",
            {(u, c, d): points for (u, c, d), points in weights.items()})
    return files
