"""``emobox run``: one upstream x corpus x downstream triple, fold by fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import EmoboxUsageError
from .base import app, console, err_console
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
    fold: List[int] = typer.Option([], "--fold", "-f", help="Fold(s) to run (repeatable); "
                                   "default all."),
    scheme: str = typer.Option("emobox", "--scheme", help="Partition: emobox | "
                               "speaker-independent."),
    seed: int = typer.Option(0, "--seed", help="Seed of splits, initialisation and batches."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Upstream layer (default: last)."),
    no_layer_norm: bool = typer.Option(False, "--no-layer-norm", help="The same as "
                                       "--feature-norm none."),
    feature_norm: str = typer.Option("utterance", "--feature-norm", help="utterance (one mean "
                                     "and variance per utterance, EmoBox's) | frame (each frame "
                                     "over its dimensions) | none."),
    grad_clip: float = typer.Option(5.0, "--grad-clip", help="Clip each configuration's "
                                    "gradient to this L2 norm (SpeechBrain's default, which "
                                    "EmoBox ran); 0: no clipping."),
    recipe: str = typer.Option("emobox", "--recipe", help="emobox (EmoBox's protocol, its bugs "
                               "fixed) | paper (EmoBox's code, bugs included: selects by test, "
                               "its schedule, drops utterances over 30 s, random 20% "
                               "validation; outputs are marked)."),
    grid: List[str] = typer.Option([], "--grid", help="Sweep, e.g. 'lr=1e-3,1e-4 "
                                   "hidden=128,256', or a .json/.yaml file."),
    epochs: int = typer.Option(100, "--epochs", help="Training epochs."),
    warmup: int = typer.Option(10, "--warmup", help="Warm-up epochs to the peak learning rate."),
    batch_size: int = typer.Option(32, "--batch-size", help="Utterances per batch."),
    select: str = typer.Option("valid", "--select", help="valid (default) | test: EmoBox's "
                               "recipe, only to compare with its tables; outputs are marked."),
    class_weights: bool = typer.Option(False, "--class-weights", help="Weight the loss by "
                                       "inverse class frequency."),
    train_precision: str = typer.Option("fp32", "--train-precision", help="fp32 (exact) | "
                                        "bf16 (bfloat16 frame-level matmuls; labelled in the "
                                        "results)."),
    schedule: str = typer.Option("linear", "--schedule", help="Learning rate after the "
                                 "warm-up: linear (decay towards 0) | constant | paper (EmoBox's "
                                 "script: epoch 2 at 0)."),
    upstream_ckpt: Optional[str] = typer.Option(None, "--upstream-ckpt", help="Local "
                                                "checkpoint of the upstream."),
    upstream_option: List[str] = typer.Option([], "--upstream-option", "-U", help="Upstream "
                                              "option name=value (repeatable)."),
    corpus_option: List[str] = typer.Option([], "--corpus-option", "-C", help="Corpus option "
                                            "name=value (repeatable)."),
    on_bad_audio: str = typer.Option("fail", "--on-bad-audio", help="fail | skip (skipped "
                                     "files are listed in the run directory)."),
    precision: str = typer.Option("fp32", "--precision", help="Feature extraction: fp32 "
                                  "(exact) | bf16 | fp16 (fast modes, labelled in every output)."),
    batch_seconds: Optional[float] = typer.Option(None, "--batch-seconds", help="Extraction "
                                                  "batch budget in padded audio seconds."),
    features_dir: Optional[str] = typer.Option(None, "--features-dir", help="Feature stores "
                                               "folder (default $EMOBOX_HOME/features)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate UPSTREAM on CORPUS with the DOWNSTREAM head, fold by fold."""
    from ..progress import Reporter, RichReporter
    from emobox.tracks.runner import RunOptions, run

    layer_value: Any = None
    if layer is not None:
        layer_value = int(layer) if layer.lstrip("-").isdigit() else layer
    opts = RunOptions(
        upstream=upstream, corpus=corpus, downstream=downstream, root=root, out=out,
        folds=tuple(fold), scheme=scheme, seed=seed, device=device, layer=layer_value,
        layer_norm=not no_layer_norm, feature_norm=feature_norm, grad_clip=grad_clip,
        recipe=recipe, grid=parse_grid(grid), epochs=epochs,
        warmup_epochs=warmup, batch_size=batch_size, select=select,
        class_weights=class_weights, train_precision=train_precision, schedule=schedule,
        upstream_ckpt=upstream_ckpt,
        upstream_options=parse_options(upstream_option, "--upstream-option"),
        corpus_options=parse_options(corpus_option, "--corpus-option"), on_bad_audio=on_bad_audio,
        precision=precision, batch_seconds=batch_seconds, features_dir=features_dir)
    reporter = Reporter() if quiet else RichReporter(err_console)
    result = run(opts, reporter=reporter)
    console.print(results_table(result))
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)
    console.print(f"run directory: {result.out}", highlight=False, soft_wrap=True, markup=False)


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
                      escape(f.config_id), str(f.best_epoch + 1), f"{100 * f.valid_ua:.2f}")
    if result.folds:
        cells = [f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in
                 (result.mean("ua"), result.mean("wa"), result.mean("f1"))]
        table.add_row("mean", *cells, "", "", "", style="bold")
    return table
