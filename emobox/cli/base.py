"""The Typer application and the consoles every ``emobox`` command prints to."""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console

from .._version import __version__

app = typer.Typer(
    name="emobox", add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Speech emotion recognition benchmarking: compose upstream x corpus x downstream.")
# emoji codes (":cat:") in names and paths are shown as written, never as emoji
console = Console(emoji=False) if sys.stdout.isatty() else Console(width=120, emoji=False)
err_console = Console(stderr=True, emoji=False)


def _version(value: bool) -> None:
    if value:
        console.print(f"emobox {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit.")
        ) -> None:
    """emobox: any upstream encoder x corpus x downstream head, EmoBox protocol."""
