"""``emobox doctor``: the environment report (library twin: :mod:`emobox.envreport`)."""

from __future__ import annotations

import json
from typing import List

import typer
from rich.markup import escape
from rich.table import Table

from .base import app, console
from .bench_cmd import parse_root_map

STATE_STYLE = {"present": "green", "embedded": "green", "not needed": "green",
               "missing": "yellow", "absent": "dim", "reader": "dim", "unknown": "yellow",
               "unrecognised": "red", "error": "red"}


@app.command("doctor")
def doctor_cmd(
    root_map: List[str] = typer.Option([], "--root-map", help="corpus=DIR (repeatable): look "
                                       "for that corpus there instead of $EMOBOX_DATA/<corpus>."),
    scan: bool = typer.Option(False, "--scan", help="Also read the manifests of the corpora "
                              "found (counts utterances; slower)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report this machine: Python, torch and its devices, packages, EMOBOX_* folders, plugins,
    which checkpoints and corpora are here, feature stores and runs."""
    from emobox.environment import environment_report

    report = environment_report(roots=parse_root_map(root_map), scan=scan)
    if as_json:
        console.print_json(json.dumps(report.to_dict(), default=str))
        return
    for section in report.sections:
        if section.error:
            console.print(f"[bold]{section.name}[/bold]: [red]could not be gathered:[/red] "
                          f"{escape(section.error)}", highlight=False, soft_wrap=True)
            continue
        RENDER[section.name](section.data)


def _kv(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in rows:
        table.add_row(k, v)  # values are escaped by the section renderers
    console.print(table)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _system(d: dict) -> None:
    _kv("system", [("emobox", d["emobox"]), ("python", f"{d['python']} ({d['implementation']}, "
                                                       f"{escape(d['executable'])})"),
                   ("platform", d["platform"]), ("CPUs", str(d["cpus"]))])


def _torch(d: dict) -> None:
    rows = [("torch", d["version"]), ("CUDA build", d["cuda_build"] or "none (CPU build)"),
            ("CUDA available", _yes(d["cuda_available"])),
            ("MPS available", _yes(d["mps_available"])),
            ("CPU native bfloat16", _yes(d["cpu_native_bf16"])),
            ("threads", str(d["threads"]))]
    for dev in d["cuda_devices"]:
        rows.append((f"cuda:{dev['index']}", escape(f"{dev['name']}, {dev['memory_gib']} GiB, "
                                                    f"compute {dev['capability']}")))
    if d["cuda_available"]:
        rows.append(("CUDA bfloat16", _yes(d.get("cuda_bf16"))))
    _kv("torch", rows)


def _packages(d: dict) -> None:
    _kv("packages", [(escape(k), escape(v) if v else "[dim]not installed[/dim]")
                     for k, v in d.items()])


def _paths(rows: list[dict]) -> None:
    table = Table(title="folders", title_justify="left")
    for col in ("name", "path", "set by", "exists", "writable"):
        table.add_column(col, overflow="fold" if col == "path" else None,
                         no_wrap=col != "path")
    for r in rows:
        writable = _yes(r["writable"]) if r["writable"] else "[red]no[/red]"
        table.add_row(r["name"], escape(r["path"]), r["source"], _yes(r["exists"]), writable)
    console.print(table)


def _plugins(d: dict) -> None:
    table = Table(title="plugins", title_justify="left")
    for col in ("distribution", "version", "plugins", "upstreams", "corpora", "downstreams",
                "broken"):
        table.add_column(col, no_wrap=col != "plugins")
    for r in d["distributions"]:
        table.add_row(escape(r["distribution"]), escape(r["version"] or "-"),
                      str(len(r["plugins"])),
                      str(r["upstreams"]), str(r["corpora"]), str(r["downstreams"]),
                      f"[red]{r['broken']}[/red]" if r["broken"] else "0")
    console.print(table)
    for p in d["problems"]:
        console.print(f"[red]broken:[/red] {escape(p['line'])}", highlight=False, soft_wrap=True)
    if d["problems"]:
        console.print("`emobox plugins doctor` checks every plugin in depth", highlight=False)


def _state(state: str) -> str:
    style = STATE_STYLE.get(state, "")
    return f"[{style}]{state}[/{style}]" if style else state


def _checkpoints(rows: list[dict]) -> None:
    table = Table(title="upstream checkpoints on this machine", title_justify="left")
    for col in ("upstream", "weights", "where"):
        table.add_column(col, overflow="fold", no_wrap=col != "where")
    missing = [r["upstream"] for r in rows if r["state"] == "missing"]
    for r in rows:
        if r["state"] != "missing":
            table.add_row(escape(r["upstream"]), _state(r["state"]),
                          escape(r["path"] or r["message"]))
    console.print(table)
    needing = sum(r["state"] != "not needed" for r in rows)
    console.print(f"{needing - len(missing)} of {needing} upstreams needing weights have them "
                  f"here", highlight=False)
    if missing:
        console.print(f"[yellow]missing[/yellow] ({len(missing)}): {escape(', '.join(missing))}; "
                      f"`emobox upstreams info NAME` says where to put them", highlight=False,
                      soft_wrap=True)


def _corpora(rows: list[dict]) -> None:
    table = Table(title="corpora on this machine", title_justify="left")
    scanned = any("utterances" in r for r in rows)
    cols = ["corpus", "state", "root"] + (["utterances", "speakers"] if scanned else [])
    for col in cols + ["note"]:
        table.add_column(col, overflow="fold", no_wrap=col in ("corpus", "state"))
    absent = [r["corpus"] for r in rows if r["state"] == "absent"]
    for r in rows:
        if r["state"] == "absent":
            continue
        cells = [escape(r["corpus"]), _state(r["state"]), escape(r["root"] or "-")]
        if scanned:
            cells += [str(r.get("utterances", "")), str(r.get("speakers", ""))]
        table.add_row(*cells, escape(r["message"]))
    console.print(table)
    present = sum(r["state"] == "present" for r in rows)
    console.print(f"{present} corpora found under $EMOBOX_DATA or --root-map", highlight=False)
    if absent:
        console.print(f"[dim]absent[/dim] ({len(absent)}): {escape(', '.join(absent))}; put a "
                      f"copy at "
                      f"$EMOBOX_DATA/<corpus> or pass --root-map corpus=DIR", highlight=False,
                      soft_wrap=True)


def _storage(d: dict) -> None:
    stores = d["stores"]
    rows = [("feature stores", f"{stores.get('complete', 0)} complete, "
                               f"{stores.get('partial', 0)} partial, "
                               f"{stores.get('corrupt', 0)} damaged; "
                               f"{d['store_bytes'] / 2 ** 30:.2f} GiB in "
                               f"{escape(d['features_dir'])}"),
            ("run directories", f"{d['runs']} in {escape(d['runs_dir'])}"),
            ("bench directories", str(d["bench_dirs"]))]
    for damaged in d["damaged"]:
        rows.append(("[red]damaged store[/red]", escape(f"{damaged['path']}: "
                                                         f"{damaged['problem']}")))
    _kv("storage", rows)
    if d["damaged"]:
        console.print("`emobox features verify` checks stores; `emobox features rm PATH` "
                      "removes one", highlight=False)


RENDER = {"system": _system, "torch": _torch, "packages": _packages, "paths": _paths,
          "plugins": _plugins, "checkpoints": _checkpoints, "corpora": _corpora,
          "storage": _storage}
