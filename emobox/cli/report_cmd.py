"""``emobox report``: the paper-style tables and plots of finished runs."""

from __future__ import annotations

from typing import List

import typer

from .base import app, console


@app.command("report")
def report_command(
    runs: List[str] = typer.Argument(..., help="Run or bench directories."),
    out: str = typer.Option("emobox-report", "--out", "-o", help="Folder for the tables and "
                            "plots."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Tables only."),
) -> None:
    """Paper-style tables (Markdown, CSV, LaTeX) and plots of finished runs."""
    from emobox.reporting.report import write_report

    report = write_report(runs, out, plots=not no_plots)
    console.print(report.files["table.md"].read_text(), highlight=False, soft_wrap=True,
                  markup=False)
    console.print("written: " + ", ".join(str(p) for p in report.files.values()),
                  highlight=False, soft_wrap=True, markup=False)
