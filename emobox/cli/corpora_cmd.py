"""``emobox corpora``: list, info, manifest, check, stats, import-emobox."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ExitCode
from .base import app, console, err_console
from .params import KeyValue

corpora_app = typer.Typer(help="Corpora: list them, write manifests, check local copies.",
                          no_args_is_help=True)
app.add_typer(corpora_app, name="corpora")

CORPUS_OPTION = KeyValue(literal=True, flag="--corpus-option")
SCHEME_HELP = "Partition: emobox (EmoBox's published folds) | speaker-independent."


def _n(value) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


@corpora_app.command("list")
def list_command() -> None:
    """Every registered corpus: languages, the counts of its published reference, license."""
    from emobox.datasets.corpus_tools import list_corpora

    table = Table(title="corpora", title_justify="left")
    for col in ("name", "languages", "utterances", "speakers", "labels", "folds", "license"):
        table.add_column(col, justify="right" if col in ("utterances", "speakers", "labels",
                                                          "folds") else "left")
    for c in list_corpora():
        table.add_row(escape(c.name), escape(", ".join(c.languages) or "-"), _n(c.utterances), _n(c.speakers),
                      _n(c.labels), _n(c.folds), escape(c.license or "-"))
    console.print(table)
    console.print("counts are those of the published reference (EmoBox's tables); "
                  "`emobox corpora info NAME` says where to get a corpus and its layout, "
                  "`emobox corpora check -c NAME --root DIR` counts a local copy", style="dim")


@corpora_app.command("info")
def info_command(
    name: str = typer.Argument(..., help="Corpus name (`emobox corpora list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Where to get a corpus, its licence, the layout emobox expects, where emobox looks for it
    and the counts of its published reference (nothing is scanned)."""
    import json

    from emobox.datasets.corpus_tools import corpus_info

    info = corpus_info(name)
    if as_json:
        console.print_json(json.dumps(info.to_dict()))
        return
    for line in info_lines(info):
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def info_lines(info) -> list[str]:
    """The card of :func:`emobox.datasets.corpus_tools.corpus_info` as plain text lines."""
    lines = [f"{info.name}: {info.description}" if info.description else info.name]
    lines.append(f"languages: {', '.join(info.languages) or '-'}")
    lines.append(f"homepage (download): {info.homepage or '- (not stated by the plugin)'}")
    lines.append(f"license: {info.license or '- (not stated by the plugin)'}")
    if info.citation:
        lines.append(f"citation: {info.citation}")
    if info.embedded:
        lines.append("data: ships with the plugin (no --root needed)")
    else:
        where = "present" if info.root_exists else "not there"
        lines.append(f"root: {info.root} ($EMOBOX_DATA/{info.name}; {where}), or --root DIR")
    if info.layout:
        lines.append("expected layout:")
        lines += ["    " + line for line in info.layout.splitlines()]
    ref = info.reference
    if ref:
        labels = ref.get("labels") or {}
        counts = [f"{_n(ref.get('utterances'))} utterances", f"{_n(ref.get('speakers'))} speakers",
                  f"{len(labels)} labels"]
        if ref.get("folds") is not None:
            counts.append(f"{_n(ref['folds'])} folds")
        if ref.get("hours") is not None:
            counts.append(f"{float(ref['hours']):.2f} h")
        lines.append("reference: " + ", ".join(counts))
        if labels:
            lines.append("  labels: " + ", ".join(f"{k} {_n(v)}" for k, v in labels.items()))
        if ref.get("source"):
            lines.append(f"  source: {ref['source']}")
    else:
        lines.append("reference: none published (`emobox corpora check` counts a local copy)")
    for option, what in info.options.items():
        lines.append(f"option -C {option}=...: {what}")
    if not info.embedded:
        lines.append(f"check a local copy: emobox corpora check -c {info.name} --root DIR")
    return lines


@corpora_app.command("manifest")
def manifest_command(
    corpus: str = typer.Option(..., "-c", "--corpus", help="Corpus name."),
    root: Optional[str] = typer.Option(None, "--root", help="Corpus root folder "
                                       "(default $EMOBOX_DATA/<corpus>)."),
    out: str = typer.Option(..., "-o", "--out", help="Manifest file to write (.tsv), or the "
                            "folder of the Lhotse manifests (--format lhotse)."),
    scheme: str = typer.Option("emobox", "--scheme", help=SCHEME_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation split and of the "
                             "speaker-independent folds."),
    corpus_option: List[str] = typer.Option([], "--corpus-option", "-C", metavar="NAME=VALUE",
                                            parser=CORPUS_OPTION,
                                            help="Corpus option name=value (repeatable)."),
    fmt: str = typer.Option("tsv", "--format", help="tsv (emobox's manifest) | lhotse "
                            "(RecordingSet, SupervisionSet and CutSet as jsonl.gz)."),
) -> None:
    """Scan a local copy and write one TSV row per utterance with its folds."""
    from emobox.datasets.corpus_tools import write_manifest

    # -- Lhotse manifests (--format lhotse) --
    if fmt == "lhotse":
        from ..datasets.lhotse_io import export_lhotse

        lx = export_lhotse(corpus, root, out, scheme=scheme, seed=seed,
                           options=dict(corpus_option))
        console.print(f"{lx.utterances} utterances, {lx.folds} folds ({scheme}) -> {lx.recordings}, "
                      f"{lx.supervisions}, {lx.cuts}", highlight=False, soft_wrap=True, markup=False)
        return
    if fmt != "tsv":
        err_console.print(f"error: --format {fmt!r}: use tsv or lhotse", highlight=False,
                          markup=False)
        raise typer.Exit(int(ExitCode.USAGE))
    # -- end Lhotse --

    res = write_manifest(corpus, root, out, scheme=scheme, seed=seed,
                         options=dict(corpus_option))
    console.print(f"{res.utterances} utterances, {res.folds} folds ({res.scheme}) -> {res.path}",
                  highlight=False, soft_wrap=True, markup=False)
    for note in res.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)


@corpora_app.command("check")
def check_command(
    corpus: str = typer.Option(..., "-c", "--corpus", help="Corpus name."),
    root: Optional[str] = typer.Option(None, "--root", help="Corpus root folder "
                                       "(default $EMOBOX_DATA/<corpus>)."),
    scheme: str = typer.Option("emobox", "--scheme", help=SCHEME_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds checked."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not read audio headers."),
    show: int = typer.Option(10, "--show", help="How many missing/unlisted/unreadable/skipped "
                             "files to list (0: all)."),
    corpus_option: List[str] = typer.Option([], "--corpus-option", "-C", metavar="NAME=VALUE",
                                            parser=CORPUS_OPTION,
                                            help="Corpus option name=value (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Check a local copy: counts per label, speaker and fold; missing, unlisted, unreadable and
    skipped files; speaker leakage. Exits 5 when something must be fixed."""
    from emobox.datasets.corpus_tools import check_corpus
    from ..progress import Reporter, RichReporter

    rep = check_corpus(corpus, root, scheme=scheme, seed=seed, audio=not no_audio,
                       options=dict(corpus_option),
                       reporter=Reporter() if quiet else RichReporter(err_console))
    print_check(rep, show)
    if not rep.ok:
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


def print_check(rep, show: int) -> None:
    exp = rep.expected
    console.print(f"[bold]{escape(rep.corpus)}[/bold] at {escape(str(rep.root))}: "
                  f"{rep.utterances} utterances, "
                  f"{len(rep.speakers)} speakers, {len(rep.labels)} labels"
                  + (f" (reference: {exp['utterances']}, {exp['speakers']}, {len(exp['labels'])})"
                     if exp else ""), highlight=False, soft_wrap=True)
    table = Table(title="labels", title_justify="left")
    table.add_column("label")
    table.add_column("utterances", justify="right")
    table.add_column("reference", justify="right")
    for label, n in sorted(rep.labels.items()):
        table.add_row(escape(label), str(n),
                      _n(exp.get("labels", {}).get(label)) if exp else "-")
    console.print(table)
    speakers = sorted(rep.speakers.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = speakers if show == 0 else speakers[:max(show, 20)]
    console.print("speakers" + ("" if rep.has_speaker_ids else " (not real speaker ids)") + ": "
                  + ", ".join(f"{s} {n}" for s, n in shown)
                  + (f", ... ({len(speakers) - len(shown)} more)" if len(shown) < len(speakers)
                     else ""), highlight=False, soft_wrap=True, markup=False)
    if rep.folds:
        table = Table(title=f"folds ({rep.scheme})", title_justify="left")
        for col in ("fold", "train", "valid", "test", "validation", "speakers in train and test"):
            table.add_column(col, justify="right" if col in ("fold", "train", "valid", "test")
                             else "left")
        for f in rep.folds:
            leaked = escape("-" if not rep.has_speaker_ids else
                            "none" if not f.leaked else f"{len(f.leaked)}: "
                            + ", ".join(f.leaked[:8]) + (" ..." if len(f.leaked) > 8 else ""))
            table.add_row(str(f.index), str(f.train), str(f.valid), str(f.test),
                          escape(f.valid_rule),
                          leaked)
        console.print(table)
    for title, items in (("missing (listed by the reference, not found)", rep.missing),
                         ("not in the reference", rep.unlisted),
                         ("unreadable audio", rep.unreadable),
                         ("skipped while scanning", rep.skipped)):
        if not items:
            continue
        console.print(f"{title}: {len(items)}", style="bold", highlight=False)
        for a, b in (items if show == 0 else items[:show]):
            console.print(f"  {a}  {b}", highlight=False, soft_wrap=True, markup=False)
        if show and len(items) > show:
            console.print(f"  ... {len(items) - show} more (--show 0 lists all)")
    for w in rep.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False,
                          soft_wrap=True)
    for e in rep.errors:
        err_console.print(f"[red]problem:[/red] {escape(e)}", highlight=False, soft_wrap=True)
    console.print("check: " + ("OK" if rep.ok else f"{len(rep.errors)} problem(s) to fix"),
                  style="bold green" if rep.ok else "bold red")


@corpora_app.command("stats")
def stats_command() -> None:
    """Table 1 of the EmoBox paper beside what the shipped reference tables hold."""
    from emobox.datasets.corpus_tools import corpus_stats

    rows, note = corpus_stats()
    table = Table(title="EmoBox Table 1 (paper) | shipped reference tables", title_justify="left")
    for col in ("corpus", "lang", "utts", "spk", "emo", "hours", "| utts", "spk ", "emo ",
                "hours ", "folds"):
        table.add_column(col, justify="left" if col in ("corpus", "lang") else "right")
    totals = {"paper": [0, 0, 0.0], "shipped": [0, 0, 0.0]}
    for r in rows:
        p, s = r.paper, r.shipped or {}

        def cell(field: str, value) -> str:
            text = f"{value:.2f}" if field == "hours" and value is not None else _n(value)
            return f"[red]{text}*[/red]" if field in r.differences else text

        table.add_row(r.dataset, str(p.get("lang", "")), _n(p.get("utterances")),
                      _n(p.get("speakers")), _n(p.get("emotions")), _n(p.get("hours")),
                      cell("utterances", s.get("utterances")), cell("speakers", s.get("speakers")),
                      cell("emotions", s.get("emotions")), cell("hours", s.get("hours")),
                      _n(s.get("folds")))
        for key, src in (("paper", p), ("shipped", s)):
            for i, f in enumerate(("utterances", "speakers", "hours")):
                if isinstance(src.get(f), (int, float)):
                    totals[key][i] += src[f]
    table.add_row("Total", "", _n(totals["paper"][0]), _n(totals["paper"][1]), "",
                  f"{totals['paper'][2]:.1f}", _n(totals["shipped"][0]),
                  _n(totals["shipped"][1]), "", f"{totals['shipped'][2]:.1f}", "",
                  style="bold")
    console.print(table)
    missing = [r.corpus for r in rows if r.shipped is None]
    if missing:
        console.print(f"not installed (no adapter registered): {', '.join(missing)}",
                      style="yellow", highlight=False, markup=False)
    console.print("differences (* above), one line each:", style="bold")
    for r in rows:
        for line in r.explanations:
            console.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)
    if note:
        console.print(f"({note})", style="dim", highlight=False, soft_wrap=True, markup=False)


@corpora_app.command("import-emobox")
def import_command(
    data_dir: Path = typer.Argument(..., help="EmoBox's data/ folder (or one corpus folder)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the imports "
                                       "(default $EMOBOX_HOME/imports)."),
    audio_root: Optional[Path] = typer.Option(None, "--audio-root", help="The folder EmoBox's "
                                              "wav paths are relative to (default: the parent "
                                              "of DATA_DIR, which holds downloads/)."),
    corpus: List[str] = typer.Option([], "-c", "--corpus", help="Import only these corpora "
                                     "(repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Read an EmoBox data/ folder (its jsonl lists) as manifests and folds."""
    from emobox.datasets.emobox_import import import_emobox
    from ..progress import Reporter, RichReporter

    results = import_emobox(data_dir, out, audio_root, corpus,
                            reporter=Reporter() if quiet else RichReporter(err_console))
    table = Table(title="imported", title_justify="left")
    for col in ("corpus", "utterances", "speakers", "folds", "validation", "written to"):
        table.add_column(col)
    for r in results:
        table.add_row(escape(r.corpus), str(r.utterances), str(r.speakers), str(r.folds),
                      "official" if r.official_valid else "20% of train", escape(str(r.out)))
    console.print(table)
    for r in results:
        for note in r.notes:
            err_console.print(f"[yellow]note:[/yellow] {escape(r.corpus)}: {escape(note)}",
                              highlight=False, soft_wrap=True)
    if results:
        console.print(f"run one with: emobox run -u fbank -c imported --root {results[0].out} "
                      f"-d linear_probe", highlight=False, soft_wrap=True, markup=False)
