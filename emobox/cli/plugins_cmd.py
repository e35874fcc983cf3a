"""``emobox plugins``: every registered plugin and spec; ``emobox plugins doctor``: check them."""

from __future__ import annotations

import json
from typing import List

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ExitCode, plural
from .base import app, console, err_console
from .params import KeyValue

plugins_app = typer.Typer(help="Registered plugins.", no_args_is_help=False)
app.add_typer(plugins_app, name="plugins")


@plugins_app.callback(invoke_without_command=True)
def plugins_list(ctx: typer.Context) -> None:
    """List every plugin (distribution, version, path) and every upstream, corpus and downstream."""
    if ctx.invoked_subcommand is not None:
        return
    from emobox.plugin.registry import get_registry

    registry = get_registry()
    for kind in ("upstream", "corpus", "downstream"):
        table = Table(title=plural(kind), title_justify="left")
        for col in ("name", "plugin", "distribution", "version"):
            table.add_column(col, no_wrap=True)
        table.add_column("description")
        for spec in registry.specs(kind):
            table.add_row(escape(spec.name), escape(spec.plugin),
                          escape(spec.distribution or "-"), escape(spec.version or "-"),
                          escape(spec.description))
        console.print(table)
    table = Table(title="plugins", title_justify="left")
    for col in ("plugin", "distribution", "version"):
        table.add_column(col, no_wrap=True)
    table.add_column("path", overflow="fold")
    for info in sorted(registry.plugins.values(),
                       key=lambda i: (i.distribution != "emobox", i.distribution, i.name)):
        table.add_row(escape(info.name), escape(info.distribution or "-"),
                      escape(info.version or "-"), escape(info.path) or "-")
    console.print(table)
    problems = registry.all_problems()
    for p in problems:
        err_console.print(f"[red]broken plugin:[/red] {escape(p.line())}", highlight=False,
                          soft_wrap=True)
        if p.detail:
            err_console.print(f"    {p.detail}", highlight=False, soft_wrap=True, markup=False)
    if problems:
        err_console.print("`emobox plugins doctor` checks every plugin in depth", highlight=False)


@plugins_app.command("doctor")
def plugins_doctor(
    build: str = typer.Option("cheap", "--build", help="none: check the specs only; cheap: also "
                              "build every head, every upstream needing no checkpoint and every "
                              "embedded corpus; all: also upstreams with local checkpoints."),
    root: List[str] = typer.Option([], "--root", metavar="NAME=DIR",
                                   parser=KeyValue("NAME=DIR", strip=True, flag="--root"),
                                   help="NAME=DIR: also scan corpus NAME at DIR (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Import every plugin, check its specs against the contracts and report; exit 5 on problems."""
    from emobox.validate.plugins_doctor import doctor
    from ..progress import Reporter, RichReporter

    roots = dict(root)
    reporter = Reporter() if quiet or as_json else RichReporter(err_console)
    report = doctor(build=build, roots=roots, reporter=reporter)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


def _print_report(report) -> None:
    table = Table(title=f"plugins (checks: {report.build})", title_justify="left")
    for col in ("plugin", "distribution", "version"):
        table.add_column(col, no_wrap=True)
    table.add_column("provides")
    for col in ("checked", "status"):
        table.add_column(col, no_wrap=True)
    for p in report.plugins:
        provides = "; ".join(f"{plural(k) if len(v) > 1 else k}: {', '.join(v)}"
                             for k, v in p.provides.items()) or "-"
        style = "" if p.status == "ok" else "red"
        table.add_row(escape(p.name), escape(p.distribution or "-"), escape(p.version or "-"),
                      escape(provides),
                      str(len(p.checked)), f"[{style}]{p.status}[/{style}]" if style else "ok")
    console.print(table)
    problems, notes = report.problems, report.notes
    if problems:
        console.print(f"[red]{len(problems)} problem{'s' if len(problems) > 1 else ''}:[/red]")
        for f in problems:
            console.print(f"  - {f.line()}", highlight=False, soft_wrap=True, markup=False)
            if f.detail:
                console.print(f"      {f.detail}", highlight=False, soft_wrap=True, markup=False)
    if notes:
        console.print(f"{len(notes)} note{'s' if len(notes) > 1 else ''}:")
        for f in notes:
            console.print(f"  - {f.line()}", highlight=False, soft_wrap=True, markup=False)
    broken = sum(1 for p in report.plugins if p.status != "ok")
    verdict = ("all plugins pass" if report.ok else
               f"{broken} of {len(report.plugins)} plugins have problems")
    console.print(f"{verdict} ({len(report.plugins)} plugins, "
                  f"{sum(len(p.checked) for p in report.plugins)} objects built and checked)",
                  highlight=False)
