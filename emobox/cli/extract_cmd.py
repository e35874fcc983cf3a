"""``emobox extract`` and ``emobox features info / verify / rm``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import EmoboxUsageError, ExitCode
import emobox.cli.options as opt
from .base import app, console, err_console
from .options import DEFAULT
from .layers import layer_tokens
from .run_cmd import parse_options


def parse_layers(items: List[str]) -> Any:
    """``["1,2", "12"]`` -> ``[1, 2, 12]``; ranges (``0-4``) expanded; ``all`` / ``last`` alone
    pass through; none -> None (last)."""
    tokens = [t for item in items for t in layer_tokens(item, "--layers")]
    if not tokens:
        return None
    if len(tokens) == 1 and isinstance(tokens[0], str):
        return tokens[0]
    if "all" in tokens:
        raise EmoboxUsageError("--layers 'all' stands alone; with other layers give numbers "
                               "(e.g. 0-3,8)")
    return tokens


@app.command("extract")
def extract_command(
    upstream: str = typer.Option(..., "-u", "--upstream", help="Upstream encoder name."),
    corpus: str = typer.Option(..., "-c", "--corpus", help="Corpus name."),
    layers: List[str] = typer.Option([], "--layers", "--layer", "-l", help="Layers to store: "
                                     "numbers (6,12), ranges (0-4), 'last' (default) or 'all'."),
    root: Optional[str] = typer.Option(None, "--root", help="Corpus root folder "
                                       "(default $EMOBOX_DATA/<corpus>)."),
    scheme: str = typer.Option("emobox", "--scheme", help="Partition scheme of the runs these "
                               "features are for: emobox (EmoBox's channel of multi-channel "
                               "files) | speaker-independent (channels mixed down)."),
    device: opt.Device = DEFAULT.device,
    precision: str = typer.Option("fp32", "--precision", help="fp32 (exact) | bf16 | fp16 "
                                  "(fast modes, labelled in the store and every report)."),
    batch_seconds: Optional[float] = typer.Option(None, "--batch-seconds", help="Padded audio "
                                                  "seconds per batch (default 16 on CPU, 400 "
                                                  "on GPU)."),
    runtime: opt.Runtime = DEFAULT.runtime,
    on_bad_audio: str = typer.Option("fail", "--on-bad-audio", help="fail | skip (skipped "
                                     "utterances are listed in the store)."),
    features_dir: Optional[str] = typer.Option(None, "--features-dir", help="Feature stores "
                                               "folder (default $EMOBOX_HOME/features)."),
    upstream_ckpt: Optional[str] = typer.Option(None, "--upstream-ckpt", help="Local "
                                                "checkpoint of the upstream."),
    upstream_option: List[str] = typer.Option([], "--upstream-option", "-U", help="Upstream "
                                              "option name=value (repeatable)."),
    corpus_option: List[str] = typer.Option([], "--corpus-option", "-C", help="Corpus option "
                                            "name=value (repeatable)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Audio decoding threads."),
    memory_gb: float = typer.Option(2.0, "--memory-gb", help="Memory for features and audio "
                                    "held at once (GB)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Extract UPSTREAM's features of CORPUS into the feature store (once; resumable)."""
    from emobox.extraction.extract import ExtractOptions, extract_corpus
    from ..progress import Reporter, RichReporter

    from emobox.plugin.registry import get_registry
    from emobox.tracks.runner import (CORPUS_BUILD_ARGS, UPSTREAM_BUILD_ARGS,
                                      check_plugin_options, check_positive)

    check_positive(memory_gb, "--memory-gb")
    check_positive(batch_seconds, "--batch-seconds")
    if workers is not None and workers < 1:
        raise EmoboxUsageError(f"--workers must be at least 1, got {workers}")
    opts = ExtractOptions(
        upstream=upstream, corpus=corpus, layers=parse_layers(layers), root=root, scheme=scheme,
        device=device,
        precision=precision, batch_seconds=batch_seconds, runtime=runtime,
        on_bad_audio=on_bad_audio,
        features_dir=features_dir, upstream_ckpt=upstream_ckpt,
        upstream_options=parse_options(upstream_option, "--upstream-option"),
        corpus_options=parse_options(corpus_option, "--corpus-option"), workers=workers,
        memory_budget=int(memory_gb * (1 << 30)))
    registry = get_registry()
    check_plugin_options(registry.upstream(upstream), opts.upstream_options, "upstream",
                         "--upstream-option", UPSTREAM_BUILD_ARGS)
    check_plugin_options(registry.corpus(corpus), opts.corpus_options, "corpus",
                         "--corpus-option", CORPUS_BUILD_ARGS)
    reporter = Reporter() if quiet else RichReporter(err_console)
    stats = extract_corpus(opts, reporter=reporter)
    if quiet:
        for note in stats.notes:
            err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    console.print(escape(stats.summary()), highlight=False, soft_wrap=True)


features_app = typer.Typer(help="Feature stores: info, verify, rm.", no_args_is_help=True)
app.add_typer(features_app, name="features")

_PATH = typer.Argument(None, help="A store folder (default: every store matching the filters).")
_UP = typer.Option(None, "-u", "--upstream", help="Only stores of this upstream.")
_CORPUS = typer.Option(None, "-c", "--corpus", help="Only stores of this corpus.")
_PREC = typer.Option(None, "--precision", help="Only stores of this precision.")
_DIR = typer.Option(None, "--features-dir", help="Feature stores folder "
                    "(default $EMOBOX_HOME/features).")


def _find(path, upstream, corpus, precision, features_dir):
    from emobox.extraction.store_admin import find_stores

    return find_stores(path, upstream, corpus, precision, features_dir)


@features_app.command("info")
def features_info(path: Optional[str] = _PATH, upstream: Optional[str] = _UP,
                  corpus: Optional[str] = _CORPUS, precision: Optional[str] = _PREC,
                  features_dir: Optional[str] = _DIR) -> None:
    """List feature stores; with one match, show it in detail."""
    from emobox.extraction.store_admin import human_bytes, store_info

    entries = _find(path, upstream, corpus, precision, features_dir)
    if not entries:
        console.print("no feature stores found")
        return
    infos = [store_info(e) for e in entries]
    table = Table(title="feature stores", title_justify="left")
    for col in ("upstream", "corpus", "precision", "layers", "utterances", "frames", "size",
                "status", "path"):
        table.add_column(col, overflow="fold")
    for info in infos:
        e, meta = info.entry, info.entry.meta or {}
        table.add_row(escape(e.upstream), escape(e.corpus), escape(meta.get("precision", "?")),
                      ",".join(map(str, sorted(info.layers))) or "-",
                      str(info.n_utterances if info.n_utterances is not None else "-"),
                      str(info.n_frames if info.n_frames is not None else "-"),
                      human_bytes(info.size_bytes), e.status + (" +unfinished"
                                                                if info.partial_progress and
                                                                e.status == "complete" else ""),
                      escape(str(e.path)))
    console.print(table)
    if len(infos) == 1:
        info = infos[0]
        meta = info.entry.meta or {}
        for key in ("checkpoint_id", "options", "manifest_hash", "emobox_version", "frame_rate",
                    "sample_rate", "padding_sensitive", "max_seconds", "long_audio"):
            if key in meta:
                console.print(escape(f"{key}: {meta[key]}"), highlight=False)
        if "audio" in meta:
            console.print(escape(f"audio: {meta['audio']['files']} files read from "
                                 f"{meta['audio'].get('root') or '?'} (sha256 "
                                 f"{meta['audio']['sha256'][:16]}...)"), highlight=False)
        for layer, dim in sorted(info.layers.items()):
            sat = meta["layers"][str(layer)].get("fp16_saturated", 0)
            console.print(f"layer {layer}: dim {dim}" + (f", {sat} values clipped to the fp16 "
                                                         f"range" if sat else ""), highlight=False)
        if info.skipped:
            console.print(f"skipped utterances: {info.skipped}", markup=False)
        if info.partial_progress:
            console.print(escape(info.partial_progress), highlight=False)
        if info.entry.problem:
            err_console.print(f"[red]problem:[/red] {escape(info.entry.problem)}", highlight=False)
        for s in info.sessions:
            rate = s.get("audio_s", 0) / max(s.get("seconds", 0), 1e-9)
            console.print(f"session {s.get('time', '?')}: layers {s.get('layers')}, "
                          f"{s.get('utterances')} utterances in {s.get('seconds')} s "
                          f"({rate:.1f} audio-s/s) on {s.get('device')}", highlight=False,
                          markup=False)


@features_app.command("verify")
def features_verify(path: Optional[str] = _PATH, upstream: Optional[str] = _UP,
                    corpus: Optional[str] = _CORPUS, precision: Optional[str] = _PREC,
                    features_dir: Optional[str] = _DIR,
                    root: Optional[str] = typer.Option(None, "--root", help="Corpus root to "
                                                       "check the audio against (default: the "
                                                       "one recorded at extraction).")) -> None:
    """Check every file of the matching stores against its checksum, and the audio against
    what was extracted."""
    from emobox.extraction.store_admin import verify_store_audio

    entries = _find(path, upstream, corpus, precision, features_dir)
    if not entries:
        console.print("no feature stores found")
        return
    bad = 0
    for e in entries:
        found = verify_store_audio(e, root=root)
        if found.problem:
            bad += 1
            err_console.print(f"[red]FAILED[/red] {escape(str(e.path))}: "
                              f"{escape(found.problem)}", highlight=False, soft_wrap=True)
        else:
            note = f" ({escape(found.audio_note)})" if found.audio_note else ""
            console.print(f"ok {escape(str(e.path))}{note}", highlight=False, soft_wrap=True)
    if bad:
        err_console.print(f"{bad} of {len(entries)} stores failed; delete them with `emobox "
                          f"features rm PATH` and extract again", highlight=False)
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


@features_app.command("rm")
def features_rm(path: Optional[str] = _PATH, upstream: Optional[str] = _UP,
                corpus: Optional[str] = _CORPUS, precision: Optional[str] = _PREC,
                features_dir: Optional[str] = _DIR,
                all_: bool = typer.Option(False, "--all", help="Remove every matching store "
                                          "(every store without filters); confirms removing "
                                          "several."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before removing "
                                         "several stores.")) -> None:
    """Delete feature stores (a folder, or those matching the filters). Only folders that are
    provably emobox stores are deleted; removing several asks first (or needs --all/--yes)."""
    import sys

    from emobox.extraction.store_admin import human_bytes, remove_stores
    from emobox.extraction.store import store_problem

    if path is None and not (upstream or corpus or precision or all_):
        raise EmoboxUsageError("name a store folder, or filters (-u/-c/--precision) with --all")
    if path is not None:
        problem = store_problem(Path(path).expanduser())
        if problem:
            raise EmoboxUsageError(f"{path} {problem}; not removed (`emobox features info` "
                                   f"lists the stores)")
    entries = _find(path, upstream, corpus, precision, features_dir)
    found = len(entries)
    for e in list(entries):
        problem = store_problem(e.path)
        if problem:
            err_console.print(f"[yellow]warning:[/yellow] not removed: {escape(str(e.path))} "
                              f"{escape(problem)}", highlight=False, soft_wrap=True)
            entries.remove(e)
    if not entries:
        raise EmoboxUsageError("no feature store matches; `emobox features info` lists them"
                               if not found else "nothing removed (see the warnings)")
    if len(entries) > 1 and not (all_ or yes):
        listing = ", ".join(str(e.path) for e in entries[:5])
        more = ", ..." if len(entries) > 5 else ""
        if not sys.stdin.isatty():
            raise EmoboxUsageError(f"{len(entries)} stores match ({listing}{more}); add --all "
                                   f"(or --yes) to remove them all, or name one folder")
        for e in entries:
            console.print(escape(str(e.path)), highlight=False, soft_wrap=True)
        if not typer.confirm(f"remove these {len(entries)} feature stores?", default=False):
            err_console.print("nothing removed")
            raise typer.Exit(int(ExitCode.USAGE))
    freed = remove_stores(entries, features_dir)
    console.print(f"removed {len(entries)} store{'s' if len(entries) > 1 else ''} "
                  f"({human_bytes(freed)})", highlight=False)
