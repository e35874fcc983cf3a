"""``emobox plugins``: every registered upstream, corpus and downstream, and broken plugins."""

from __future__ import annotations

import typer
from rich.table import Table

from ..errors import plural
from . import app, console, err_console

plugins_app = typer.Typer(help="Registered plugins.", no_args_is_help=False)
app.add_typer(plugins_app, name="plugins")


@plugins_app.callback(invoke_without_command=True)
def plugins_list(ctx: typer.Context) -> None:
    """List every upstream, corpus and downstream with the plugin and distribution providing it."""
    if ctx.invoked_subcommand is not None:
        return
    from ..plugins import get_registry

    registry = get_registry()
    for kind in ("upstream", "corpus", "downstream"):
        table = Table(title=plural(kind), title_justify="left")
        for col in ("name", "plugin", "distribution", "version", "description"):
            table.add_column(col)
        for spec in registry.specs(kind):
            table.add_row(spec.name, spec.plugin, spec.distribution or "-", spec.version or "-",
                          spec.description)
        console.print(table)
    problems = registry.all_problems()
    for p in problems:
        err_console.print(f"[red]broken plugin:[/red] {p.line()}", highlight=False,
                          soft_wrap=True)
        if p.detail:
            err_console.print(f"    {p.detail}", highlight=False, soft_wrap=True)
