"""``emobox cross run|build|sets``: the cross-corpus track."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import EmoboxUsageError
import emobox.cli.options as opt
from .base import app, console, err_console
from .bench_cmd import parse_keyed_options, parse_root_map, split_names
from .layers import parse_layer_arg
from .options import DEFAULT
from .params import KeyValue
from .run_cmd import parse_grid, parse_options

cross_app = typer.Typer(no_args_is_help=True, help="The cross-corpus track: train on one "
                        "corpus, test on the others' balanced test sets.")
app.add_typer(cross_app, name="cross")

DEFAULT_CORPORA = "iemocap,meld,ravdess,savee"
DEFAULT_CLASSES = "angry,happy,neutral,sad"
_CORPUS_VALUE = KeyValue("corpus=VALUE", strip=True)


def _per_corpus(items: List[str], flag: str, corpora: tuple[str, ...]) -> dict[str, str]:
    """``corpus=VALUE`` items; a bare VALUE is allowed when there is one corpus."""
    out: dict[str, str] = {}
    for item in items:
        if "=" in item and not Path(item).exists():
            name, value = _CORPUS_VALUE.parse(item, flag)
            out[name] = value
        elif len(corpora) == 1:
            out[corpora[0]] = item
        else:
            raise EmoboxUsageError(f"{flag} {item!r}: expected corpus=VALUE (several corpora)")
    return out


def _quota(items: List[str]) -> Any:
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        if "=" in item:
            name, value = _CORPUS_VALUE.parse(item, "--quota")
            out[name] = value
        else:
            out["default"] = item.strip()
    return out


@cross_app.command("run")
def cross_run_command(
    upstream: str = typer.Option(..., "-u", "--upstream", help="Upstream encoder name."),
    downstream: str = typer.Option("linear_probe", "-d", "--downstream", help="Downstream head."),
    corpora: str = typer.Option(DEFAULT_CORPORA, "-c", "--corpus", help="The track's corpora, "
                                "comma-separated (rows and columns of the matrix, in order)."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR (repeatable); "
                                       "default $EMOBOX_DATA/<corpus>."),
    sets: Optional[str] = typer.Option(None, "--sets", help="Folder of <corpus>.tsv balanced "
                                       "sets (emobox cross build); corpora without one use "
                                       "their published set."),
    classes: str = typer.Option(DEFAULT_CLASSES, "--classes", help="Shared classes, "
                                "comma-separated (canonical names or aliases)."),
    valid: str = typer.Option("stratified", "--valid", help="stratified (seeded 20% of each "
                              "source's training side) | official (its dev split where it has "
                              "one)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Run directory (default "
                                      "$EMOBOX_HOME/cross/<upstream>__<downstream>__<fp>)."),
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
    """Train on each corpus, test on every corpus's balanced set: the n x n matrix."""
    from emobox.tracks.cross import CrossOptions, cross_run_layers
    from ..progress import Reporter, RichReporter

    layer_value = parse_layer_arg(layer)
    opts = CrossOptions(
        upstream=upstream, downstream=downstream, corpora=split_names(corpora, "-c"),
        root_map=parse_root_map(root_map), sets=sets,
        classes=split_names(classes, "--classes"), valid=valid, out=out, seed=seed,
        device=device, layer=layer_value, layer_norm=not no_layer_norm,
        feature_norm=feature_norm, grad_clip=grad_clip, recipe=recipe, grid=parse_grid(grid),
        epochs=epochs, warmup_epochs=warmup, batch_size=batch_size, select=select,
        class_weights=class_weights, train_precision=train_precision, schedule=schedule,
        upstream_ckpt=upstream_ckpt,
        upstream_options=opt.options_of(parse_options(upstream_option, "--upstream-option"),
                                        upstream, "--upstream-option", "upstream"),
        corpus_options=parse_keyed_options(corpus_option, split_names(corpora, "-c"),
                                           "--corpus-option", "CORPUS"),
        on_bad_audio=on_bad_audio, precision=precision, batch_seconds=batch_seconds,
        runtime=runtime, features_dir=features_dir)
    reporter = Reporter() if quiet else RichReporter(err_console)
    results = cross_run_layers(opts, reporter=reporter)
    from emobox.reporting.cross_report import paper_matrix

    sweep = len(results) > 1
    for result in results:
        console.print(matrix_table(result, by_layer=sweep))
    published = paper_matrix(upstream, results[0].corpora)
    if published is not None:
        console.print(paper_table(results[0], published))
    for note in dict.fromkeys(n for r in results for n in r.notes):
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)
    if sweep:
        console.print(layers_table(results))
    for result in results:
        where = f"layer {result.config['layer']}: " if sweep else ""
        console.print(f"{where}cross-corpus directory: {result.out}", highlight=False,
                      soft_wrap=True, markup=False)
    if sweep and out:
        console.print(f"by layer: {Path(out) / 'layers.md'}", highlight=False, soft_wrap=True,
                      markup=False)


def layers_table(results) -> Table:
    """The off-diagonal averages of every layer of a sweep, side by side."""
    from emobox.reporting.cross_report import best_layer_accuracy, layer_averages

    c = results[0].config
    title = escape(f"cross-corpus average % by layer: {c['upstream']} x {c['downstream']}")
    if any(r.config["selected_by_test"] for r in results):
        title += "  [SELECTED BY TEST]"
    table = Table(title=title, caption="means of the off-diagonal cells")
    for name in ("layer", "accuracy", "UA", "macro-F1"):
        table.add_column(name, justify="right")
    rows = layer_averages(results)
    best = best_layer_accuracy(rows)
    for r in rows:
        text = ["–" if v is None else f"{100 * v:.2f}" for v in (r.accuracy, r.ua, r.f1)]
        if r.accuracy is not None and r.accuracy == best:
            text[0] = f"[bold]{text[0]}[/bold]"
        table.add_row(str(r.layer), *text)
    return table


def _matrix_rows(names, matrix, contaminated=None):
    from emobox.tracks.cross import column_averages, cross_average, row_averages

    rows = []
    averages = row_averages(matrix)
    for i, s in enumerate(names):
        cells = []
        for j, v in enumerate(matrix[i]):
            text = "–" if v is None else f"{100 * v:.2f}"
            if v is not None and i == j:
                text = f"({text})"
            if contaminated and contaminated[i][j]:
                text += " §"
            cells.append(text)
        avg = averages[i]
        rows.append([escape(s), *cells, "–" if avg is None else f"{100 * avg:.2f}"])
    total = cross_average(matrix)
    cols = ["–" if v is None else f"{100 * v:.2f}" for v in column_averages(matrix)]
    rows.append(["avg", *cols, "–" if total is None else f"{100 * total:.2f}"])
    return rows


def matrix_table(result, by_layer: bool = False) -> Table:
    c = result.config
    layer = f", layer {c['layer']}" if by_layer else ""
    title = escape(f"cross-corpus accuracy %: {c['upstream']} x {c['downstream']}{layer} (rows "
                   f"train, columns test)")
    if c["precision"] != "fp32":
        title += f"  ({c['precision']} features)"
    if c["selected_by_test"]:
        title += "  [SELECTED BY TEST]"
    table = Table(title=title, caption="(diagonal) within-corpus, not averaged; § contaminated")
    table.add_column("train \\ test")
    for name in result.corpora:
        table.add_column(escape(name), justify="right")
    table.add_column("avg", justify="right")
    contaminated = [[bool(result.cells.get((s, t), {}).get("contaminated"))
                     for t in result.corpora] for s in result.corpora]
    rows = _matrix_rows(result.corpora, result.matrix("accuracy"), contaminated)
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_row(*rows[-1], style="bold")
    return table


def paper_table(result, published) -> Table:
    table = Table(title=escape(f"EmoBox paper, Table 5: {result.config['upstream']} (accuracy %)"))
    table.add_column("train \\ test")
    for name in result.corpora:
        table.add_column(escape(name), justify="right")
    table.add_column("avg", justify="right")
    rows = _matrix_rows(result.corpora, [[None if v is None else v / 100 for v in row]
                                         for row in published])
    for row in rows[:-1]:
        table.add_row(*row)
    table.add_row(*rows[-1], style="bold")
    return table


@cross_app.command("build")
def cross_build_command(
    corpora: str = typer.Option("", "-c", "--corpus", help="Corpora, comma-separated "
                                "(or 'corpora' in --recipe)."),
    out: str = typer.Option(..., "--out", "-o", help="Folder for <corpus>.tsv and recipe.json."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Recipe file (.json/.yaml: "
                                         "classes, quota, seed, speaker_field, speakers, "
                                         "corpora, pseudo_labels); flags override it."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Classes, comma-separated "
                                          "(default angry,happy,neutral,sad)."),
    quota: List[str] = typer.Option([], "--quota", help="[corpus=]SPEAKERSxPER_CLASS, e.g. "
                                    "10x6 or savee=allx15 (repeatable); default: EmoBox's "
                                    "Table 3 for its four corpora."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the draw (default 0)."),
    speaker_field: Optional[str] = typer.Option(None, "--speaker-field", help="speaker (the "
                                                "real speaker, default) | emobox (the speaker "
                                                "EmoBox recorded)."),
    pseudo_labels: List[str] = typer.Option([], "--pseudo-labels", help="[corpus=]FILE of "
                                            "key -> label (TSV/CSV/JSON): keep utterances whose "
                                            "pseudo-label agrees with the gold label."),
    labeler_run: List[str] = typer.Option([], "--labeler-run", help="[corpus=]RUN_DIR: use "
                                          "an emobox run's out-of-fold predictions as "
                                          "pseudo-labels."),
    labeler: Optional[str] = typer.Option(None, "--labeler", help="UPSTREAM:DOWNSTREAM: run "
                                          "it on each corpus first and use its out-of-fold "
                                          "predictions as pseudo-labels."),
    labeler_epochs: int = typer.Option(100, "--labeler-epochs", help="Epochs of --labeler's "
                                       "runs."),
    labeler_grid: List[str] = typer.Option([], "--labeler-grid", help="Grid of --labeler's "
                                           "runs."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Draw balanced test sets (speakers x utterances per class) from corpora on this machine."""
    from emobox.tracks.cross_build import BuildOptions, cross_build
    from ..progress import Reporter, RichReporter

    names = split_names(corpora, "-c") if corpora.strip() else ()
    labeler_options: dict[str, Any] = {"epochs": labeler_epochs}
    if labeler_grid:
        labeler_options["grid"] = parse_grid(labeler_grid)
    opts = BuildOptions(
        corpora=names, out=out, classes=split_names(classes, "--classes") if classes else None,
        quota=_quota(quota), seed=seed, speaker_field=speaker_field,
        root_map=parse_root_map(root_map),
        pseudo_labels=_per_corpus(pseudo_labels, "--pseudo-labels", names),
        labeler_runs=_per_corpus(labeler_run, "--labeler-run", names), labeler=labeler,
        labeler_options=labeler_options, recipe=recipe)
    reporter = Reporter() if quiet else RichReporter(err_console)
    result = cross_build(opts, reporter=reporter)
    table = Table(title=escape(f"balanced sets: {', '.join(result.recipe.classes)}, seed "
                               f"{result.recipe.seed}"))
    for col in ("corpus", "utterances", "speakers x per class", "pseudo-labels"):
        table.add_column(col)
    for name, bset in result.sets.items():
        q = bset.quota()
        table.add_row(escape(name), str(len(bset)), f"{q[0]} x {q[1]}" if q else "?",
                      escape(result.labelers.get(name, "–")))
    console.print(table)
    for name, bset in result.sets.items():
        for note in bset.notes:
            err_console.print(f"[yellow]note:[/yellow] {escape(name)}: {escape(note)}",
                              highlight=False, soft_wrap=True)
    console.print(f"sets written to {result.out} (use them with `emobox cross run --sets "
                  f"{result.out}`)", highlight=False, soft_wrap=True, markup=False)


@cross_app.command("sets")
def cross_sets_command(
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write each published set as "
                                      "<corpus>.tsv into this folder."),
) -> None:
    """The balanced test sets the corpus plugins publish (EmoBox's four)."""
    from emobox.plugin.registry import get_registry

    registry = get_registry()
    table = Table(title="published balanced test sets")
    for col in ("corpus", "utterances", "classes", "speakers x per class", "origin"):
        table.add_column(col)
    found = 0
    for spec in registry.specs("corpus"):
        if spec.balanced_test_set is None:
            continue
        bset = spec.balanced_test_set()
        q = bset.quota()
        table.add_row(escape(spec.name), str(len(bset)), escape(", ".join(bset.classes)),
                      f"{q[0]} x {q[1]}" if q else "not balanced", escape(bset.origin))
        if out:
            bset.to_tsv(Path(out) / f"{spec.name}.tsv")
        found += 1
    console.print(table)
    if out and found:
        console.print(f"{found} sets written to {out}", highlight=False, soft_wrap=True,
                      markup=False)
