"""``emobox submit pack|validate|score`` and ``emobox leaderboard add|show|html``."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.markup import escape

from ..errors import ExitCode
from .base import app, console, err_console
from .bench_cmd import parse_root_map

submit_app = typer.Typer(no_args_is_help=True, help="SUPERB-style submissions: pack, "
                         "validate, score.")
board_app = typer.Typer(no_args_is_help=True, help="A leaderboard of scored submissions.")
app.add_typer(submit_app, name="submit")
app.add_typer(board_app, name="leaderboard")

MAX_PROBLEMS_SHOWN = 50  # problem lines `submit validate` prints; the rest are counted


@submit_app.command("pack")
def pack_command(
    runs: List[str] = typer.Argument(..., help="Run or bench directories (one upstream)."),
    out: str = typer.Option(..., "--out", "-o", help="The submission zip to write."),
    upstream: Optional[str] = typer.Option(None, "--upstream", "-u", help="Pack only this "
                                           "upstream's runs."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR for corpora whose "
                                       "folds come from a scan (default: the root each run "
                                       "used)."),
) -> None:
    """Zip the test predictions of finished runs with their metadata, checked first as
    `submit validate` checks a submission."""
    from emobox.reporting.submission import pack

    result = pack(runs, out, upstream, root_map=parse_root_map(root_map))
    corpora = ", ".join(f"{c} ({len(e['folds'])} folds)"
                        for c, e in result.metadata["corpora"].items())
    console.print(f"wrote {result.path}: {result.metadata['upstream']['name']} on {corpora}",
                  highlight=False, soft_wrap=True, markup=False)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)
    for corpus, e in result.metadata["corpora"].items():
        left = [f for f in range(1, e["n_folds"] + 1) if f not in e["folds"]]
        if left:
            several = len(left) > 1
            err_console.print(f"[yellow]note:[/yellow] {escape(corpus)}: fold"
                              f"{'s' if several else ''} {', '.join(map(str, left))} of "
                              f"{e['n_folds']} {'are' if several else 'is'} not in the run; "
                              f"`emobox submit validate` refuses a submission without every "
                              f"fold", highlight=False, soft_wrap=True)


@submit_app.command("validate")
def validate_command(
    submission: str = typer.Argument(..., help="The submission zip."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR for corpora whose "
                                       "folds come from a scan."),
) -> None:
    """Check a submission against the corpora's folds and class sets."""
    from emobox.reporting.submission import validate

    result = validate(submission, parse_root_map(root_map))
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                          soft_wrap=True)
    if result.ok:
        n = sum(len(f) for f in result.predictions.values())
        console.print(f"{result.path}: valid ({len(result.predictions)} corpora, {n} folds)",
                      highlight=False, soft_wrap=True, markup=False)
        return
    for problem in result.problems[:MAX_PROBLEMS_SHOWN]:
        err_console.print(f"[red]problem:[/red] {escape(problem)}", highlight=False,
                          soft_wrap=True)
    hidden = len(result.problems) - MAX_PROBLEMS_SHOWN
    more = f" ({hidden} more not shown)" if hidden > 0 else ""
    err_console.print(f"{result.path}: {len(result.problems)} problems{more}", highlight=False,
                      soft_wrap=True, markup=False)
    raise typer.Exit(int(ExitCode.CHECK_FAILED))


@submit_app.command("score")
def score_command(
    submission: str = typer.Argument(..., help="The submission zip."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR: gold labels from a "
                                       "scan where no published table ships."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Also write the score card "
                                           "here."),
) -> None:
    """Recompute UA, WA and macro-F1 of a submission from gold labels."""
    from ..io import atomic_write_json
    from emobox.reporting.submission import score

    card = score(submission, parse_root_map(root_map))
    for corpus, e in card["corpora"].items():
        marks = (" [SELECTED BY TEST]" if e.get("select") == "test" else "") + (
            " [contaminated]" if e.get("contaminated") else "")
        console.print(f"{corpus}: UA {100 * e['ua']:.2f} ± {100 * e['ua_std']:.2f}  WA "
                      f"{100 * e['wa']:.2f} ± {100 * e['wa_std']:.2f}  F1 {100 * e['f1']:.2f} ± "
                      f"{100 * e['f1_std']:.2f}  ({len(e['folds'])} folds, gold: {e['gold']})"
                      f"{marks}", highlight=False, soft_wrap=True, markup=False)
    if json_out:
        from pathlib import Path

        atomic_write_json(Path(json_out), card)


@board_app.command("add")
def board_add(
    submission: str = typer.Argument(..., help="The submission zip."),
    file: Optional[str] = typer.Option(None, "--file", help="Leaderboard file (default "
                                       "$EMOBOX_HOME/leaderboard.json)."),
    name: Optional[str] = typer.Option(None, "--name", help="Entry name (default: upstream)."),
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR (see submit score)."),
) -> None:
    """Score a submission and add it to the leaderboard."""
    from emobox.reporting.leaderboard import add, default_file

    card, replaced = add(submission, file, parse_root_map(root_map), name)
    console.print(f"{'replaced' if replaced else 'added'} {card['name']} "
                  f"({len(card['corpora'])} corpora) in {file or default_file()}",
                  highlight=False, soft_wrap=True, markup=False)


@board_app.command("show")
def board_show(
    file: Optional[str] = typer.Option(None, "--file", help="Leaderboard file."),
    fmt: str = typer.Option("md", "--format", help="md | csv | json."),
) -> None:
    """Print the leaderboard, best mean UA first."""
    from ..errors import EmoboxUsageError
    from emobox.reporting.leaderboard import board, load, to_csv, to_json, to_markdown

    writers = {"md": to_markdown, "csv": to_csv, "json": to_json}
    if fmt not in writers:
        raise EmoboxUsageError(f"--format must be md, csv or json, not {fmt!r}")
    entries = load(file)
    if not entries:
        console.print("the leaderboard is empty (add submissions with `emobox leaderboard add`)")
        return
    console.print(writers[fmt](board(entries)), highlight=False, soft_wrap=True, markup=False,
                  emoji=False)


@board_app.command("html")
def board_html(
    out: str = typer.Argument(..., metavar="OUT_DIR", help="Folder for the site (new, empty, "
                              "or one this command wrote)."),
    file: Optional[str] = typer.Option(None, "--file", help="Leaderboard file (default "
                                       "$EMOBOX_HOME/leaderboard.json, unless only --report "
                                       "folders are given)."),
    report: List[str] = typer.Option([], "--report", help="An `emobox report` folder "
                                     "(cells.csv) or an `emobox cross` folder (matrix.json); "
                                     "repeat for several."),
) -> None:
    """Write the leaderboard as a static web site (open OUT/index.html in a browser)."""
    from emobox.reporting.leaderboard_html import write_site

    site = write_site(out, file, report, use_board=bool(file) or not report)
    n, m = len(site.entries), len(site.crosses)
    console.print(f"wrote {site.out / 'index.html'}: {n} {'entry' if n == 1 else 'entries'}, "
                  f"{m} cross-corpus {'matrix' if m == 1 else 'matrices'}, "
                  f"{len(site.files)} files",
                  highlight=False, soft_wrap=True, markup=False)
