"""``emobox upstreams list|info|convert``: what each encoder is and where its weights are."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .base import app, console, err_console

upstreams_app = typer.Typer(help="Upstream encoders: list, inspect, convert checkpoints.",
                            no_args_is_help=True)
app.add_typer(upstreams_app, name="upstreams")


@upstreams_app.command("list")
def list_command(pattern: Optional[str] = typer.Argument(None, help="Glob or part of a name, e.g. 'whisper*' or 'tiny'."),
                 ) -> None:
    """Every upstream with its size and whether its weights are on this machine."""
    from emobox.extraction.upstream_catalog import (list_upstreams, parameter_count,
                                                  weights_status)

    table = Table(title="upstreams", title_justify="left")
    for col in ("name", "family", "layers", "hidden", "frames/s", "params", "checkpoint",
                "weights"):
        table.add_column(col, justify="right" if col in ("layers", "hidden", "frames/s",
                                                         "params") else "left")
    specs = list_upstreams(pattern)
    if not specs:
        console.print(f"no upstream matches {escape(repr(pattern))} "
                      "(run 'emobox upstreams list' for every name)")
        return
    for spec in specs:
        status = weights_status(spec)
        count = parameter_count(spec)
        params = f"{count / 1e6:.1f}M" if count else "-"
        table.add_row(escape(spec.name), escape(spec.family or "-"), str(spec.num_layers),
                      str(spec.hidden_size), f"{spec.frame_rate:g}", params,
                      escape(spec.checkpoint or "-"), escape(status.state))
    console.print(table)


@upstreams_app.command("info")
def info_command(
    name: str = typer.Argument(..., help="Upstream name."),
    upstream_ckpt: Optional[str] = typer.Option(None, "--upstream-ckpt",
                                                help="Check this checkpoint path instead."),
) -> None:
    """What NAME is (layers, hidden size, frame rate, parameters, paper) and where its weights
    are; loads nothing."""
    from emobox.extraction.upstream_catalog import upstream_info

    info = upstream_info(name, ckpt=upstream_ckpt)
    table = Table(show_header=False, title=escape(name), title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in info.fields.items():
        table.add_row(escape(key), escape(str(value)))
    console.print(table)
    if info.weights.state == "missing":
        err_console.print(f"[yellow]weights missing:[/yellow] {escape(info.weights.message)}",
                          highlight=False, soft_wrap=True)


@upstreams_app.command("convert")
def convert_command(
    name: str = typer.Argument(..., help="Upstream name, e.g. whisper_tiny_en."),
    source: Optional[str] = typer.Option(None, "--source", help="Checkpoint to convert "
                                         "(default: the one the upstream knows, if any)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder "
                                      "(default $EMOBOX_MODELS/<name>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
) -> None:
    """Convert a checkpoint into the folder NAME loads (e.g. CTranslate2 Whisper ->
    transformers)."""
    from emobox.extraction.upstream_catalog import convert_checkpoint

    path = convert_checkpoint(name, source=source, out=out, overwrite=overwrite)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True, markup=False)
