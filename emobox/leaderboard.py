"""A leaderboard file: scored submissions side by side (``emobox leaderboard add/show``).

The file (default ``$EMOBOX_HOME/leaderboard.json``) holds one entry per submission: its score
card (see :func:`emobox.submission.score`) under the submission's content hash, so adding the
same zip twice replaces its entry instead of listing it twice. ``show`` ranks upstreams by the
mean UA over the corpora every shown entry has (corpora not common to all are shown but not
averaged), marking entries selected by test (†) and contaminated cells (§).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from . import paths
from .errors import DataError
from .io import atomic_write_json
from .plugins import Registry
from .submission import score

KIND = "emobox.leaderboard"


def default_file() -> Path:
    return paths.home() / "leaderboard.json"


def load(path: str | Path | None = None) -> list[dict]:
    path = Path(path) if path else default_file()
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: leaderboard file is not valid JSON ({exc.msg})",
                        path=str(path))
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise DataError(f"{path}: not an emobox leaderboard file", path=str(path))
    return list(data.get("entries", []))


def add(submission: str | Path, path: str | Path | None = None,
        root_map: Mapping[str, str] | None = None, name: str | None = None,
        registry: Registry | None = None) -> tuple[dict, bool]:
    """Score ``submission`` and put it on the leaderboard; returns (entry, replaced)."""
    path = Path(path) if path else default_file()
    card = score(submission, root_map, registry)
    card["name"] = name or card["upstream"]["name"]
    entries = load(path)
    replaced = any(e["sha256"] == card["sha256"] for e in entries)
    entries = [e for e in entries if e["sha256"] != card["sha256"]] + [card]
    atomic_write_json(path, {"kind": KIND, "schema_version": 1, "entries": entries})
    return card, replaced


@dataclass
class Board:
    corpora: list[str]
    common: list[str]
    rows: list[dict]  # name, upstream, checkpoint, parameters, downstream, per-corpus, mean


def board(entries: Sequence[dict]) -> Board:
    corpora = sorted({c for e in entries for c in e["corpora"]})
    common = [c for c in corpora if all(c in e["corpora"] for e in entries)]
    rows = []
    for e in entries:
        cells = {}
        for c in corpora:
            entry = e["corpora"].get(c)
            if entry is None:
                continue
            mark = ("†" if entry.get("select") == "test" else "") + (
                "§" if entry.get("contaminated") else "")
            cells[c] = (entry["ua"], entry["ua_std"], mark)
        mean = (sum(cells[c][0] for c in common) / len(common)) if common else None
        downstreams = sorted({e["corpora"][c]["downstream"] for c in e["corpora"]})
        rows.append({"name": e.get("name", e["upstream"]["name"]),
                     "checkpoint": e["upstream"].get("checkpoint_id", ""),
                     "parameters": e["upstream"].get("parameters"),
                     "downstream": ",".join(downstreams), "cells": cells, "mean": mean,
                     "sha256": e["sha256"][:12]})
    rows.sort(key=lambda r: (r["mean"] is None, -(r["mean"] or 0.0), r["name"]))
    return Board(corpora, common, rows)


def _params(n) -> str:
    if not n:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e5 else str(n)


def to_markdown(b: Board) -> str:
    head = ["#", "submission", "checkpoint", "params", "downstream",
            f"mean UA ({len(b.common)} corpora)"] + b.corpora
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for i, r in enumerate(b.rows, start=1):
        cells = [f"{100 * r['cells'][c][0]:.2f} ± {100 * r['cells'][c][1]:.2f}{r['cells'][c][2]}"
                 if c in r["cells"] else "–" for c in b.corpora]
        mean = f"{100 * r['mean']:.2f}" if r["mean"] is not None else "–"
        lines.append("| " + " | ".join([str(i), r["name"], r["checkpoint"][:12],
                                        _params(r["parameters"]), r["downstream"], mean]
                                       + cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(b: Board) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "submission", "checkpoint_id", "parameters", "downstream", "mean_ua"]
               + [f"{c} UA" for c in b.corpora] + ["sha256"])
    for i, r in enumerate(b.rows, start=1):
        w.writerow([i, r["name"], r["checkpoint"], r["parameters"] or "", r["downstream"],
                    f"{100 * r['mean']:.2f}" if r["mean"] is not None else ""]
                   + [f"{100 * r['cells'][c][0]:.2f}" if c in r["cells"] else ""
                      for c in b.corpora] + [r["sha256"]])
    return buf.getvalue()
