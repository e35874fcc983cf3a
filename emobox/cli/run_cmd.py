"""``emobox run``: one upstream x corpus x downstream triple, fold by fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import EmoboxUsageError
import emobox.cli.options as opt
from .base import app, console, err_console
from .options import DEFAULT
from .layers import parse_layer_arg
from .params import OPTION, KeyValue, literal


def parse_grid(items: List[str]) -> dict[str, list[Any]] | None:
    """``["lr=1e-3,1e-4 hidden=128,256"]`` or a JSON/YAML file path -> ``{"lr": [...], ...}``."""
    if not items:
        return None
    grid: dict[str, list[Any]] = {}
    for item in items:
        path = Path(item)
        if "=" not in item and path.suffix.lower() in (".json", ".yaml", ".yml"):
            grid.update(_grid_file(path))
            continue
        for part in item.split():
            name, values = _GRID_ITEM.parse(part, "--grid")
            parsed = [literal(v) for v in values.split(",") if v != ""]
            if not parsed:
                raise EmoboxUsageError(f"--grid {part!r}: expected name=value[,value...]")
            grid[name] = parsed
    return grid


def parse_options(items: List[str], flag: str) -> dict[str, Any]:
    """``["mode=trimmed", "n=3"]`` -> ``{"mode": "trimmed", "n": 3}`` (values parsed as literals)."""
    return dict(OPTION.parse(item, flag) for item in items)


_GRID_ITEM = KeyValue("name=value[,value...] or a .json/.yaml file")


def _grid_file(path: Path) -> dict[str, list[Any]]:
    from ..io import read_mapping

    data = read_mapping(path, f"--grid file {path}", "name -> list of values")
    return {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in data.items()}


@app.command("run")
def run_command(
    upstream: str = typer.Option(..., "-u", "--upstream", help="Upstream encoder name."),
    corpus: str = typer.Option(..., "-c", "--corpus", help="Corpus name."),
    downstream: str = typer.Option("linear_probe", "-d", "--downstream", help="Downstream head."),
    root: Optional[str] = typer.Option(None, "--root", help="Corpus root folder "
                                       "(default $EMOBOX_DATA/<corpus>)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Run directory "
                                      "(default $EMOBOX_HOME/runs/<triple>__<fingerprint>)."),
    fold: opt.Fold = [],
    scheme: opt.Scheme = DEFAULT.scheme,
    seed: opt.Seed = DEFAULT.seed,
    device: opt.Device = DEFAULT.device,
    layer: opt.Layer = DEFAULT.layer,
    no_layer_norm: opt.NoLayerNorm = not DEFAULT.layer_norm,
    feature_norm: opt.FeatureNorm = DEFAULT.feature_norm,
    grad_clip: opt.GradClip = DEFAULT.grad_clip,
    recipe: opt.Recipe = DEFAULT.recipe,
    grid: opt.Grid = [],
    epochs: opt.Epochs = DEFAULT.epochs,
    warmup: opt.Warmup = DEFAULT.warmup_epochs,
    batch_size: opt.BatchSize = DEFAULT.batch_size,
    select: opt.Select = DEFAULT.select,
    class_weights: opt.ClassWeights = DEFAULT.class_weights,
    train_precision: opt.TrainPrecision = DEFAULT.train_precision,
    schedule: opt.Schedule = DEFAULT.schedule,
    upstream_ckpt: opt.UpstreamCkpt = DEFAULT.upstream_ckpt,
    upstream_option: opt.UpstreamOption = [],
    corpus_option: opt.CorpusOption = [],
    on_bad_audio: opt.OnBadAudio = DEFAULT.on_bad_audio,
    precision: opt.Precision = DEFAULT.precision,
    batch_seconds: opt.BatchSeconds = DEFAULT.batch_seconds,
    runtime: opt.Runtime = DEFAULT.runtime,
    features_dir: opt.FeaturesDir = DEFAULT.features_dir,
    quiet: opt.Quiet = False,
) -> None:
    """Evaluate UPSTREAM on CORPUS with the DOWNSTREAM head, fold by fold."""
    from ..progress import Reporter, RichReporter
    from emobox.tracks.runner import RunOptions, run_layers

    layer_value = parse_layer_arg(layer)
    opts = RunOptions(
        upstream=upstream, corpus=corpus, downstream=downstream, root=root, out=out,
        folds=tuple(fold), scheme=scheme, seed=seed, device=device, layer=layer_value,
        layer_norm=not no_layer_norm, feature_norm=feature_norm, grad_clip=grad_clip,
        recipe=recipe, grid=parse_grid(grid), epochs=epochs,
        warmup_epochs=warmup, batch_size=batch_size, select=select,
        class_weights=class_weights, train_precision=train_precision, schedule=schedule,
        upstream_ckpt=upstream_ckpt,
        upstream_options=opt.options_of(parse_options(upstream_option, "--upstream-option"),
                                        upstream, "--upstream-option", "upstream"),
        corpus_options=opt.options_of(parse_options(corpus_option, "--corpus-option"), corpus,
                                      "--corpus-option", "corpus"), on_bad_audio=on_bad_audio,
        precision=precision, batch_seconds=batch_seconds, runtime=runtime,
        features_dir=features_dir)
    reporter = Reporter() if quiet else RichReporter(err_console)
    results = run_layers(opts, reporter=reporter)
    if len(results) == 1:
        result = results[0]
        console.print(results_table(result))
        print_notes(result.notes)
        if result.already_complete:
            console.print(f"already complete: every fold was finished before, nothing was "
                          f"trained; results reprinted from {result.out}", highlight=False,
                          soft_wrap=True, markup=False)
        console.print(f"run directory: {result.out}", highlight=False, soft_wrap=True,
                      markup=False)
        return
    console.print(layers_table(results))
    print_notes(list(dict.fromkeys(n for r in results for n in r.notes)))
    complete = [str(r.config["layer"]) for r in results if r.already_complete]
    if complete:
        console.print(f"already complete (results reprinted, nothing trained): layer"
                      f"{'s' if len(complete) > 1 else ''} {', '.join(complete)}",
                      highlight=False, soft_wrap=True, markup=False)
    for r in results:
        console.print(f"layer {r.config['layer']}: run directory {r.out}", highlight=False,
                      soft_wrap=True, markup=False)
    if out and (Path(out) / "layers.md").is_file():  # written where the runs make a sweep
        console.print(f"by layer: {Path(out) / 'layers.md'}", highlight=False, soft_wrap=True,
                      markup=False)


def print_notes(notes: List[str]) -> None:
    for note in notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)


def layers_table(results) -> Table:
    """One row per layer of a layer sweep: UA, WA and F1 (mean ± std over folds)."""
    c = results[0].config
    title = escape(f"{c['upstream']} x {c['corpus']} x {c['downstream']} by layer "
                   f"({c['scheme']} folds)")
    if c["select"] == "test":
        title += "  [SELECTED BY TEST]"
    table = Table(title=title)
    for col in ("layer", "UA %", "WA %", "F1 %", "folds"):
        table.add_column(col, justify="right")
    best = max((r.mean("ua")[0] for r in results if r.folds), default=None)
    for r in results:
        cells = [f"{100 * m:.2f} ± {100 * sd:.2f}" for m, sd in
                 (r.mean("ua"), r.mean("wa"), r.mean("f1"))] if r.folds else ["-"] * 3
        style = "bold" if r.folds and r.mean("ua")[0] == best else None
        table.add_row(str(r.config["layer"]), *cells, f"{len(r.folds)}/{r.config['n_folds']}",
                      style=style)
    return table


def results_table(result) -> Table:
    c = result.config
    title = escape(f"{c['upstream']} x {c['corpus']} x {c['downstream']} ({c['scheme']} folds)")
    if c.get("precision", "fp32") != "fp32":
        title += f"  ({c['precision']} features)"
    if c.get("train_precision", "fp32") != "fp32":
        title += f"  (trained in {c['train_precision']})"
    if c.get("recipe") == "paper":
        title += "  [EMOBOX'S CODE, --recipe paper: SELECTED BY TEST]"
    elif c["select"] == "test":
        title += "  [SELECTED BY TEST: EmoBox recipe]"
    table = Table(title=title)
    for col in ("fold", "UA %", "WA %", "F1 %", "selected config", "epoch", "valid UA %"):
        table.add_column(col, justify="right" if col != "selected config" else "left")
    for f in result.folds:
        table.add_row(str(f.fold), f"{100 * f.ua:.2f}", f"{100 * f.wa:.2f}", f"{100 * f.f1:.2f}",
                      escape(f.config_id), str(f.best_epoch), f"{100 * f.valid_ua:.2f}")
    if result.folds:
        cells = [f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in
                 (result.mean("ua"), result.mean("wa"), result.mean("f1"))]
        table.add_row("mean", *cells, "", "", "", style="bold")
    return table
