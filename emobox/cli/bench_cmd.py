"""``emobox bench``: the grid of upstreams x corpora x downstreams, planned, resumable, local or
on Ray."""

from __future__ import annotations

from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import EmoboxUsageError
import emobox.cli.options as opt
from .base import app, console, err_console
from .layers import parse_layer_arg
from .options import DEFAULT
from .params import ROOT_MAP, KeyValue
from .run_cmd import parse_grid


def split_names(value: str, flag: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    if not names:
        raise EmoboxUsageError(f"{flag}: expected a comma-separated list of names")
    return names


def parse_root_map(items: List[str]) -> dict[str, str]:
    mapped: dict[str, str] = {}
    for item in items:
        corpus, root = ROOT_MAP.parse(item, "--root-map")
        if corpus in mapped and mapped[corpus] != root:
            raise EmoboxUsageError(f"--root-map {corpus}: given twice ({mapped[corpus]} and "
                                   f"{root}); give one folder per corpus")
        mapped[corpus] = root
    return mapped


def parse_upstream_options(items: List[str], upstreams: tuple[str, ...] = ()
                           ) -> dict[str, dict[str, Any]]:
    """``["whisper_large_v3:mode=trimmed"]`` -> ``{"whisper_large_v3": {"mode": "trimmed"}}``;
    a plain ``name=value`` (the syntax of ``emobox run``) is an option of every upstream in
    ``upstreams``."""
    return parse_keyed_options(items, upstreams, "--upstream-option", "UPSTREAM")


def parse_keyed_options(items: List[str], owners: tuple[str, ...], flag: str, owner: str
                        ) -> dict[str, dict[str, Any]]:
    """``OWNER:name=value`` -> ``{OWNER: {name: value}}``; a plain ``name=value`` goes to every
    one of ``owners``."""
    out: dict[str, dict[str, Any]] = {}
    parser = KeyValue(f"name=value or {owner}:name=value", literal=True)
    for item in items:
        name, colon, option = item.partition(":")
        if "=" in name or not colon:  # name=value, for every owner
            key, value = parser.parse(item, flag)
            for each in owners:
                out.setdefault(each, {})[key] = value
            continue
        if not name.strip():
            raise EmoboxUsageError(f"{flag} {item!r}: expected name=value or "
                                   f"{owner}:name=value")
        key, value = parser.parse(option, flag)
        out.setdefault(name.strip(), {})[key] = value
    return out


def corpus_names_given(corpora: str) -> tuple[str, ...]:
    """The corpora named by ``-c`` (``all`` is resolved by the registry)."""
    names = split_names(corpora, "-c")
    if names == ("all",):
        from emobox.plugin.registry import get_registry
        from emobox.tracks.bench import corpus_names

        return tuple(corpus_names(names, get_registry()))
    return names


def _flops(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} FLOP"


@app.command("bench")
def bench_command(
    upstreams: str = typer.Option(..., "-u", "--upstream", help="Upstreams, comma-separated."),
    corpora: str = typer.Option("all", "-c", "--corpus", help="Corpora, comma-separated, or "
                                "'all' (every registered corpus but the embedded demo)."),
    downstreams: str = typer.Option("linear_probe", "-d", "--downstream", help="Downstream "
                                    "head(s), comma-separated."),
    executor: str = typer.Option("local", "--executor", help="local (this process) | ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address "
                                          "(default: a running instance or a new local one)."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR (repeatable); "
                                       "default $EMOBOX_DATA/<corpus>."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Bench directory (default "
                                      "$EMOBOX_HOME/bench/<downstreams>-<options hash>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (audio hours, "
                                 "estimated encoder FLOPs, what is finished) and stop."),
    fold: opt.Fold = [],
    scheme: opt.Scheme = DEFAULT.scheme,
    seed: opt.Seed = DEFAULT.seed,
    device: opt.Device = DEFAULT.device,
    layer: opt.Layer = DEFAULT.layer,
    grid: opt.Grid = [],
    epochs: opt.Epochs = DEFAULT.epochs,
    warmup: opt.Warmup = DEFAULT.warmup_epochs,
    batch_size: opt.BatchSize = DEFAULT.batch_size,
    select: opt.Select = DEFAULT.select,
    class_weights: opt.ClassWeights = DEFAULT.class_weights,
    upstream_ckpt: opt.UpstreamCkpt = DEFAULT.upstream_ckpt,
    corpus_option: opt.CorpusOption = [],
    upstream_option: opt.UpstreamOption = [],
    precision: opt.Precision = DEFAULT.precision,
    batch_seconds: opt.BatchSeconds = DEFAULT.batch_seconds,
    runtime: opt.Runtime = DEFAULT.runtime,
    train_precision: opt.TrainPrecision = DEFAULT.train_precision,
    schedule: opt.Schedule = DEFAULT.schedule,
    features_dir: opt.FeaturesDir = DEFAULT.features_dir,
    extract_gpus: float = typer.Option(1.0, "--extract-gpus", help="GPUs per extraction task "
                                       "(Ray, where GPUs exist)."),
    train_cpus: float = typer.Option(1.0, "--train-cpus", help="CPUs per training task (Ray)."),
    train_gpus: float = typer.Option(0.25, "--train-gpus", help="GPUs per training task (Ray, "
                                     "where GPUs exist)."),
    on_bad_audio: opt.OnBadAudio = DEFAULT.on_bad_audio,
    no_layer_norm: opt.NoLayerNorm = not DEFAULT.layer_norm,
    feature_norm: opt.FeatureNorm = DEFAULT.feature_norm,
    grad_clip: opt.GradClip = DEFAULT.grad_clip,
    recipe: opt.Recipe = DEFAULT.recipe,
    quiet: opt.Quiet = False,
) -> None:
    """Run UPSTREAMS x CORPORA x DOWNSTREAMS, fold by fold, skipping finished tasks."""
    from emobox.tracks.bench import BenchOptions, bench
    from ..progress import Reporter, RichReporter

    layer_value = parse_layer_arg(layer)
    opts = BenchOptions(
        upstreams=split_names(upstreams, "-u"), corpora=split_names(corpora, "-c"),
        downstreams=split_names(downstreams, "-d"), out=out, root_map=parse_root_map(root_map),
        executor=executor, address=address, dry_run=dry_run, folds=tuple(fold), scheme=scheme,
        seed=seed, device=device, layer=layer_value, grid=parse_grid(grid), epochs=epochs,
        warmup_epochs=warmup, batch_size=batch_size, select=select, class_weights=class_weights,
        upstream_options=parse_upstream_options(upstream_option, split_names(upstreams, "-u")),
        upstream_ckpt=upstream_ckpt,
        corpus_options=parse_keyed_options(corpus_option, corpus_names_given(corpora),
                                           "--corpus-option", "CORPUS"),
        layer_norm=not no_layer_norm, precision=precision,
        batch_seconds=batch_seconds, runtime=runtime, train_precision=train_precision,
        schedule=schedule, features_dir=features_dir,
        extract_gpus=extract_gpus, train_cpus=train_cpus, train_gpus=train_gpus,
        on_bad_audio=on_bad_audio, feature_norm=feature_norm, grad_clip=grad_clip,
        recipe=recipe)
    reporter = Reporter() if quiet or dry_run else RichReporter(err_console)
    result = bench(opts, reporter=reporter)
    if dry_run:
        console.print(plan_table(result.plan))
    else:
        console.print((result.out / "summary.md").read_text(), highlight=False, soft_wrap=True,
                      markup=False)
    for m in result.missing:
        size = (f" (published: {m.utterances} utterances, {m.audio_hours:.1f} h)"
                if m.utterances and m.audio_hours else "")
        err_console.print(f"[yellow]not on this machine:[/yellow] {escape(m.corpus)}{size}: "
                          f"{escape(m.reason)}",
                          highlight=False, soft_wrap=True)
    for c in result.plan.missing_checkpoints:
        err_console.print(f"[yellow]not on this machine:[/yellow] {escape(c.upstream)} (its "
                          f"tasks are left out): {escape(c.reason)}",
                          highlight=False, soft_wrap=True)
    if dry_run:
        console.print(f"dry run: {len(result.plan.todo)} tasks to run, "
                      f"{len(result.plan.finished)} finished; bench directory: {result.out}",
                      highlight=False, soft_wrap=True, markup=False)
        return
    for task_id, msg in result.failed.items():
        err_console.print(f"[red]failed:[/red] {escape(task_id)}: {escape(msg)}", highlight=False,
                          soft_wrap=True)
    console.print(f"ran {len(result.ran)} tasks, {len(result.skipped)} were finished already, "
                  f"{len(result.failed)} failed; bench directory: {result.out}", highlight=False,
                  soft_wrap=True, markup=False)
    if result.failed:
        raise typer.Exit(3)


def plan_table(plan) -> Table:
    table = Table(title=f"bench plan ({plan.options.executor} executor)")
    for col in ("task", "upstream", "corpus", "utts", "audio h", "encoder FLOPs", "folds",
                "status"):
        table.add_column(col, justify="right" if col in ("utts", "audio h", "encoder FLOPs",
                                                        "folds") else "left")
    for ext in plan.extractions:
        trainings = [t for t in plan.trainings
                     if (t.upstream, t.corpus) == (ext.upstream, ext.corpus)]
        done = sum(t.status == "done" for t in trainings)
        hours = f"{ext.audio_hours:.2f}" if ext.audio_hours is not None else "?"
        flops = _flops(ext.flops) + ("~" if ext.flops_source == "estimate from spec" else "")
        status = "finished" if ext.status == "done" else (
            f"extract + train {len(trainings) - done}" if trainings else "extract")
        table.add_row(escape(ext.id), escape(ext.upstream), escape(ext.corpus),
                      str(ext.utterances), hours, flops,
                      f"{done}/{len(trainings)}", status)
    return table
