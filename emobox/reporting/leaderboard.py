"""A leaderboard file: scored submissions side by side (``emobox leaderboard add/show``).

The file (default ``$EMOBOX_HOME/leaderboard.json``) holds one entry per submission: its score
card (see :func:`emobox.submission.score`) under the submission's content hash, so adding the
same zip twice, or the same predictions packed again, replaces its entry instead of listing it
twice. ``show`` ranks upstreams by the mean UA over the corpora every shown entry has (corpora
not common to all are shown but not averaged), marking entries selected by test (†) and
contaminated cells (§).

The file may have been edited or damaged, so it is read like any untrusted file: its size is
capped, every entry is checked against the score card's schema and its figures recomputed from
what it stores (each fold's confusion matrix gives its UA, WA and macro-F1 and sums to its
``n_test``; the folds are those of ``n_folds``; the means and standard deviations are those of
the folds), and an entry that fails, or that is the same submission as an earlier entry, is
left out of ``show`` with a warning naming it (and kept as it is by ``add``). ``add`` holds a lock
beside the file (``.<name>.lock``) from reading the entries to replacing the file, so
concurrent adds never lose one another's entries. A symbolic link is refused: the file is
replaced when written, which would cut the link.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from emobox import paths
from emobox.errors import DataError, EmoboxUsageError
from emobox.io import atomic_write_json
from emobox.reporting.markdown import table
from emobox.plugin.registry import Registry
from emobox.extraction.store import store_lock
from emobox.reporting.submission import score
from emobox.training.metrics import mean_std, scores_from_confusion
from emobox.reporting.results import SCORE_TOLERANCE
from emobox.reporting.submission_io import Name, ScoreCard, shorten, StrictModel, parse_json, schema_problems

KIND = "emobox.leaderboard"
SCHEMA_VERSION = 1
MAX_BOARD_BYTES = 64 << 20


def default_file() -> Path:
    return paths.home() / "leaderboard.json"


def board_path(path: str | Path | None = None) -> Path:
    """The leaderboard file (``path`` or the default), refused if it is a link or not a file."""
    path = Path(path) if path else default_file()
    if path.is_symlink():
        raise EmoboxUsageError(
            f"{path}: the leaderboard file is a symbolic link (to {os.readlink(path)}); emobox "
            f"replaces the file when it writes, which would cut the link: pass the file itself "
            f"with --file {path.resolve()}")
    if path.exists() and not path.is_file():
        raise EmoboxUsageError(f"{path}: the leaderboard file is not a regular file; give "
                               f"--file a .json file")
    return path


@dataclass
class BoardFile:
    path: Path
    raw: list[Any]  # every entry as stored, in file order
    entries: list[dict | None]  # each entry's known fields, None where it fails the schema
    problems: list[str]
    rejected: frozenset[int] = frozenset()  # positions of entries whose figures do not hold

    @property
    def valid(self) -> list[dict]:
        return [e for i, e in enumerate(self.entries) if e is not None and i not in self.rejected]


def read_board(path: str | Path | None = None) -> BoardFile:
    """The entries of a leaderboard file; a damaged file is a :class:`DataError` naming it, a
    damaged entry is a problem (the entry's number and what is wrong)."""
    path = board_path(path)
    if not path.exists():
        return BoardFile(path, [], [], [])
    size = path.stat().st_size
    if size > MAX_BOARD_BYTES:
        raise DataError(f"{path}: leaderboard file is {size / (1 << 20):.0f} MiB, more than "
                        f"emobox reads ({MAX_BOARD_BYTES >> 20} MiB)", path=str(path))
    data = parse_json(path.read_bytes(), f"{path}")
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise DataError(f"{path}: not an emobox leaderboard file", path=str(path))
    version = data.get("schema_version", 1)
    if version != SCHEMA_VERSION:
        raise DataError(f"{path}: leaderboard format version {shorten(version)} is not the one "
                        f"this emobox reads ({SCHEMA_VERSION})", path=str(path))
    raw = data.get("entries", [])
    if not isinstance(raw, list):
        raise DataError(f"{path}: field 'entries' is not a list", path=str(path))
    entries, problems, rejected, kept = [], [], set(), []
    for i, entry in enumerate(raw, start=1):
        where = f"entry {i}{_label(entry)}"
        known, why = schema_problems(ScoreCard, entry, where, limit=1)
        entries.append(known)
        problems += [p.split("\n")[0] for p in why[:1]]
        if known is None:
            continue
        problem = figures_problem(known)
        if not problem:
            same = next((j for j, other in kept if _same(other, known)), None)
            if same is not None:
                problem = f"the same submission as entry {same} (listed twice)"
        if problem:
            problems.append(f"{where}: {problem}")
            rejected.add(i - 1)
        else:
            kept.append((i, known))
    return BoardFile(path, raw, entries, problems, frozenset(rejected))


def figures_problem(entry: Mapping[str, Any]) -> str:
    """What in a score card (one that passed the schema) disagrees with itself: its folds with
    ``n_folds``, a fold's confusion matrix with its classes, its ``n_test`` or its scores, the
    means and standard deviations with the folds; "" when nothing does."""
    for corpus, c in sorted(entry["corpora"].items()):
        where = f"corpus {shorten(corpus, 40)!r}"
        numbers = sorted(f["fold"] for f in c["folds"])
        if numbers != list(range(1, c["n_folds"] + 1)):
            return (f"{where} lists fold{'s' if len(numbers) > 1 else ''} "
                    f"{shorten(', '.join(map(str, numbers)))} of n_folds {c['n_folds']}; a "
                    f"score has every fold once")
        k = len(c["labels"])
        per_fold: dict[str, list[float]] = {"ua": [], "wa": [], "f1": []}
        for f in sorted(c["folds"], key=lambda f: f["fold"]):
            at = f"{where}, fold {f['fold']}"
            cm = f["confusion"]
            if len(cm) != k or any(len(row) != k for row in cm):
                return f"{at}: the confusion matrix is not {k} x {k} (one per class of labels)"
            total = sum(map(sum, cm))
            if total != f["n_test"]:
                return (f"{at}: the confusion matrix counts {total} items, but n_test is "
                        f"{f['n_test']}")
            if not total:
                return f"{at}: no test item"
            figures = scores_from_confusion(cm)
            for m, value in figures.items():
                if abs(f[m] - value) > SCORE_TOLERANCE:
                    return (f"{at}: {m} is {f[m]:.4f}, but its confusion matrix gives "
                            f"{value:.4f}")
                per_fold[m].append(value)
        for m, values in per_fold.items():
            mean, std = mean_std(values)
            for name, stored, value in ((m, c[m], mean), (f"{m}_std", c[f"{m}_std"], std)):
                if abs(stored - value) > SCORE_TOLERANCE:
                    what = "mean" if name == m else "standard deviation"
                    return (f"{where}: {name} is {stored:.4f}, but the {what} of its folds is "
                            f"{value:.4f}")
    return ""


def _label(entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f" ({shorten(name, 40)!r})" if isinstance(name, str) else ""


def load(path: str | Path | None = None) -> list[dict]:
    """The entries that pass the schema; each one that does not is a warning naming it."""
    board_file = read_board(path)
    for problem in board_file.problems:
        warnings.warn(f"{board_file.path}: {problem}; the entry is left out")
    return board_file.valid


def add(submission: str | Path, path: str | Path | None = None,
        root_map: Mapping[str, str] | None = None, name: str | None = None,
        registry: Registry | None = None) -> tuple[dict, bool]:
    """Score ``submission`` and put it on the leaderboard; returns (entry, replaced)."""
    path = board_path(path)
    if name is not None:
        _, problems = schema_problems(_NameModel, {"name": name}, "--name")
        if problems:
            raise EmoboxUsageError(problems[0].replace("field 'name': ", ""))
    card = score(submission, root_map, registry)
    card["name"] = name or card["upstream"]["name"]
    _, problems = schema_problems(ScoreCard, card, "its score card")
    if problems:  # never write an entry that a later `show` would leave out
        raise DataError(f"{submission}: cannot go on the leaderboard: {problems[0]}",
                        path=str(submission))
    with store_lock(path.parent, name=f".{path.name}.lock"):
        board_file = read_board(path)
        for problem in board_file.problems:
            warnings.warn(f"{board_file.path}: {problem}; the entry is kept as it is")
        kept, replaced = [], False
        for raw, entry in zip(board_file.raw, board_file.entries):
            if entry is not None and _same(entry, card):
                replaced = True
                continue
            kept.append(raw)
        atomic_write_json(path, {"kind": KIND, "schema_version": SCHEMA_VERSION,
                                 "entries": kept + [card]})
    return card, replaced


class _NameModel(StrictModel):
    name: Name


def _same(entry: Mapping[str, Any], card: Mapping[str, Any]) -> bool:
    """The same zip, or the same metadata and predictions packed again."""
    return entry["sha256"] == card["sha256"] or bool(
        entry.get("content_sha256") and entry["content_sha256"] == card["content_sha256"])


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
            f"mean UA ({len(b.common)} corpora)", *b.corpora]
    rows = []
    for i, r in enumerate(b.rows, start=1):
        cells = [f"{100 * r['cells'][c][0]:.2f} ± {100 * r['cells'][c][1]:.2f}{r['cells'][c][2]}"
                 if c in r["cells"] else "–" for c in b.corpora]
        mean = f"{100 * r['mean']:.2f}" if r["mean"] is not None else "–"
        rows.append([i, r["name"], r["checkpoint"][:12], _params(r["parameters"]),
                     r["downstream"], mean, *cells])
    return "\n".join(table(head, rows)) + "\n"


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


def to_json(b: Board) -> str:
    return json.dumps(b.rows, indent=2, ensure_ascii=False)
