"""Run directories (``emobox run``) and bench directories: the one place their files are read.

:func:`collect_runs` turns paths given on the command line into run directories: a run directory
itself (it has ``config.json`` of kind ``emobox.run``), or any folder holding run directories
(a bench directory, a folder of runs), searched recursively (links are not followed).

Everything read here may have been edited, copied from another machine or planted by someone
else: a symbolic link, a fifo or a folder where emobox keeps a file is refused (never followed,
never written through), files are read up to a size cap, every ``results.jsonl`` row is checked
field by field (:func:`emobox.results.check_row`) and ``config.json`` holds the fields readers
rely on. A problem is one :class:`emobox.DataError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from emobox.errors import DataError, EmoboxUsageError
from emobox.io import (MAX_CONFIG_BYTES, append_jsonl, atomic_write_json, atomic_write_text,
                       file_lock, read_json_file, read_jsonl, read_text_capped,
                       remove_temporaries)
from emobox.training.metrics import mean_std
from emobox.reporting.results import RowError, check_row

METRICS = ("ua", "wa", "f1")

# what emobox keeps in a run directory, and in a bench directory besides its runs
RUN_FILES = ("config.json", "results.jsonl", "results.superseded.jsonl", "summary.md",
             "confusion.png", "skipped.tsv", ".lock")
RUN_FOLDERS = ("predictions",)
# a cross-corpus run directory (``emobox cross run``)
CROSS_FILES = ("config.json", "results.jsonl", "summary.md", "matrix.tsv", "matrix.json",
               "heatmap.png", "heatmap_paper.png", ".lock")
CROSS_FOLDERS = ("predictions", "test_sets")
CROSS_KIND = "emobox.cross"  # config.json's kind in a cross-corpus run directory
BENCH_FILES = ("bench.json", "tasks.jsonl", "summary.md", ".lock")
BENCH_FOLDERS = ("runs",)
MAX_PREDICTIONS_BYTES = 256 << 20
MAX_SEARCH_DEPTH = 8  # folders below a path given to report / submit pack

DAMAGED = "the file is corrupt (edited or damaged)"
RESUME_HINT = f"{DAMAGED}: choose another --out or delete that folder"


@dataclass
class RunDir:
    path: Path
    config: dict
    rows: list[dict]  # every result row

    @property
    def triple(self) -> tuple[str, str, str]:
        c = self.config
        return c["upstream"], c["corpus"], c["downstream"]

    @property
    def selected(self) -> list[dict]:
        """The selected configuration's row of every finished fold, by fold."""
        return sorted((r for r in self.rows if r.get("selected") and not r.get("failed")),
                      key=lambda r: r["fold"])

    @property
    def failed(self) -> dict[str, list[int]]:
        """Configurations whose training failed (non-finite numbers) -> the folds it failed in."""
        out: dict[str, list[int]] = {}
        for r in self.rows:
            if r.get("failed"):
                out.setdefault(r["config_id"], []).append(r["fold"])
        return {k: sorted(v) for k, v in out.items()}

    @property
    def n_folds(self) -> int:
        return int(self.config.get("n_folds") or len(self.config.get("folds", [])))

    def fold_scores(self, metric: str) -> list[float]:
        return [float(r[metric]) for r in self.selected]

    def mean_std(self, metric: str) -> tuple[float, float] | None:
        scores = self.fold_scores(metric)
        return mean_std(scores) if scores else None

    @property
    def select_test(self) -> bool:
        return self.config.get("select") == "test" or any(
            r.get("selection") == "test" for r in self.rows)

    @property
    def contaminated(self) -> bool:
        return any(r.get("contaminated") for r in self.rows)


# -- what may stand in a run or bench directory -------------------------------------------------

def check_entry(path: Path, folder: bool = False) -> None:
    """Refuse a symbolic link at ``path``, or anything but a regular file (a folder when
    ``folder``); a missing entry is fine."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return
    if stat.S_ISLNK(mode):
        raise DataError(f"{path}: is a symbolic link; emobox does not follow links in run and "
                        f"bench directories: remove it, or choose another --out", path=str(path))
    if folder and not stat.S_ISDIR(mode):
        raise DataError(f"{path}: is not a folder; remove it, or choose another --out",
                        path=str(path))
    if not folder and not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a fifo" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "not a regular file")
        raise DataError(f"{path}: is {kind}, not a regular file; remove it, or choose another "
                        f"--out", path=str(path))


def check_run_dir(out: Path) -> None:
    """Every file and folder emobox keeps in run directory ``out`` is what it should be."""
    for name in RUN_FILES:
        check_entry(out / name)
    for name in RUN_FOLDERS:
        check_entry(out / name, folder=True)
    predictions = out / "predictions"
    if predictions.is_dir():
        for child in _listdir(predictions):
            if child.startswith("fold") or child.endswith(".tmp"):
                check_entry(predictions / child)


def check_cross_dir(out: Path) -> None:
    """Every file and folder emobox keeps in cross-corpus run directory ``out`` is what it
    should be."""
    for name in CROSS_FILES:
        check_entry(out / name)
    for name in CROSS_FOLDERS:
        check_entry(out / name, folder=True)
        if (out / name).is_dir():
            for child in _listdir(out / name):
                if child.endswith((".tsv", ".tmp")):
                    check_entry(out / name / child)


def check_bench_dir(out: Path) -> None:
    for name in BENCH_FILES:
        check_entry(out / name)
    for name in BENCH_FOLDERS:
        check_entry(out / name, folder=True)
    runs = out / "runs"
    if runs.is_dir():
        for child in _listdir(runs):
            check_entry(runs / child, folder=True)


def _listdir(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def run_lock(out: Path, on_wait: Callable[[str], None] | None = None):
    """The lock of a run directory: one process writes it at a time (a second one waits)."""
    return file_lock(out, on_wait, what=f"run directory {out}")


# -- config.json --------------------------------------------------------------------------------

_STR, _INT, _DICT, _LIST = "a string", "an integer", "an object", "a list"
CONFIG_FIELDS = {"upstream": _STR, "corpus": _STR, "downstream": _STR, "scheme": _STR,
                 "folds": _LIST, "n_folds": _INT, "grid": _DICT, "labels": _LIST,
                 "select": _STR, "seed": _INT}


def _read_config_json(out: Path, hint: str) -> tuple[Path, object]:
    """``out/config.json`` parsed within its size bound; a damaged file names ``hint``."""
    path = out / "config.json"
    try:
        return path, read_json_file(path, MAX_CONFIG_BYTES, "in run directories")
    except DataError as exc:
        raise DataError(f"{exc}; {hint}", path=str(path))


def read_run_config(out: Path, hint: str = DAMAGED) -> dict:
    """``config.json`` of run directory ``out``, checked (kind and the fields readers use)."""
    path, config = _read_config_json(out, hint)
    problem = config_problem(config)
    if problem:
        raise DataError(f"{path}: {problem}; {hint}", path=str(path))
    return config


def read_cross_config(out: Path, hint: str = DAMAGED) -> dict:
    """``config.json`` of cross-corpus run directory ``out``, checked (kind, fingerprint)."""
    path, config = _read_config_json(out, hint)
    problem = ""
    if not isinstance(config, dict):
        problem = "not a JSON object"
    elif config.get("kind") != CROSS_KIND:
        problem = f"kind {config.get('kind')!r:.40}"
    elif not isinstance(config.get("fingerprint"), str):
        problem = "no fingerprint"
    if problem:
        raise DataError(f"{path}: not an emobox cross-corpus configuration ({problem}); {hint}",
                        path=str(path))
    return config


def config_diff(old: dict, new: dict, limit: int = 4) -> str:
    """What differs between two run configs, in words (the options that change results)."""
    skip = {"fingerprint", "versions", "notes", "features", "request", "device", "root",
            "roots", "upstream_parameters", "options", "grid_defaults"}
    keys = [k for k in sorted(set(old) | set(new))
            if k not in skip and old.get(k) != new.get(k)]
    if not keys:
        return f"fingerprint {old.get('fingerprint')} vs {new.get('fingerprint')}"
    parts = [f"{k}: {json.dumps(old.get(k), default=str)[:40]} there, "
             f"{json.dumps(new.get(k), default=str)[:40]} now" for k in keys[:limit]]
    more = f", and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more


def check_resumable(out: Path, config: dict, read_config: Callable[[Path, str], dict] = None,
                    what: str = "run") -> dict | None:
    """Whether run directory ``out`` (its lock held) may be created or resumed for ``config``:
    a ``config.json`` already there is read with ``read_config`` (a damaged one is a
    :class:`DataError` naming the file, never overwritten) and must carry the same fingerprint
    (else a usage error naming what differs). Returns that ``config.json`` (None when there is
    none)."""
    read_config = read_config or read_run_config
    if (out / "config.json").exists():
        old = read_config(out, RESUME_HINT)
        if old.get("fingerprint") != config["fingerprint"]:
            raise EmoboxUsageError(
                f"{out} holds a {what} made with other options ({config_diff(old, config)}); "
                f"choose another --out or delete that folder")
        return old
    return None


def start_run_dir(out: Path, config: dict) -> None:
    """Write ``config.json`` of a run directory checked by :func:`check_resumable`."""
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "predictions"):  # writes a crash cut short
        remove_temporaries(folder)
    atomic_write_json(out / "config.json", config)


def write_results(out: Path, predictions: dict[str, str], rows: list[dict],
                  check_dir: Callable[[Path], None] = None) -> None:
    """Record finished results in a run directory: predictions first (``predictions/<name>``),
    then their rows, so that rows never point at predictions not written."""
    (check_dir or check_run_dir)(out)
    for name, text in predictions.items():
        atomic_write_text(out / "predictions" / name, text)
    append_jsonl(out / "results.jsonl", rows)


def config_problem(config: Any) -> str:
    if not isinstance(config, dict):
        return "not an emobox run configuration (not a JSON object)"
    if config.get("kind") != "emobox.run":
        kind = config.get("kind")
        return f"not an emobox run directory (kind {kind!r:.40})"
    for name, kind in CONFIG_FIELDS.items():
        value = config.get(name)
        ok = {_STR: isinstance(value, str), _DICT: isinstance(value, dict),
              _LIST: isinstance(value, list),
              _INT: isinstance(value, int) and not isinstance(value, bool)}[kind]
        if not ok:
            return f"field {name!r} is {value!r:.40}, not {kind}"
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1
               for f in config["folds"]):
        return "field 'folds' is not a list of fold numbers"
    if not all(isinstance(x, str) for x in config["labels"]):
        return "field 'labels' is not a list of class names"
    return ""


# -- results.jsonl ------------------------------------------------------------------------------

def read_rows(out: Path, repair: bool = False, hint: str = DAMAGED) -> list[dict]:
    """The result rows of run directory ``out``, each checked (:func:`check_row`). A last line
    cut by a crash is skipped with a warning (and removed when ``repair``)."""
    return read_jsonl(out / "results.jsonl", repair=repair, what="in run directories",
                      check=check_row, hint=hint)


def check_folds(path: Path, rows: list[dict], hint: str = DAMAGED,
                n_folds: int | None = None) -> None:
    """Rows of one run agree with each other: every (fold, configuration) once, at most one
    selected configuration per fold, one set of classes, and (given the corpus's ``n_folds``)
    no fold the corpus does not have."""
    seen: set[tuple[int, str]] = set()
    selected: set[int] = set()
    file = path / "results.jsonl"
    for r in rows:
        if n_folds and r["fold"] > n_folds:
            raise DataError(f"{file}: a row of fold {str(r['fold'])[:20]}, but the corpus "
                            f"has {n_folds} folds (config.json); {hint}", path=str(file))
        key = (r["fold"], r["config_id"])
        if key in seen:
            raise DataError(f"{file}: fold {key[0]} holds configuration {key[1]} twice; {hint} "
                            f"(rerunning the same command redoes that fold)", path=str(file))
        seen.add(key)
        if r["selected"] and not r.get("failed"):
            if r["fold"] in selected:
                raise DataError(f"{file}: fold {r['fold']} has two selected configurations; "
                                f"{hint}", path=str(file))
            selected.add(r["fold"])


def load_run(path: Path) -> RunDir:
    check_run_dir(path)
    config = read_run_config(path)
    rows = read_rows(path)
    run = RunDir(path, config, rows)
    check_folds(path, rows, n_folds=run.n_folds)
    return run


def read_predictions(run: RunDir, fold: int) -> list[tuple[str, str, str]]:
    """``(key, gold, predicted)`` of ``predictions/fold<k>.tsv``; FileNotFoundError when the
    fold has none."""
    path = run.path / "predictions" / f"fold{fold}.tsv"
    text = read_text_capped(path, MAX_PREDICTIONS_BYTES, "in run directories")
    lines = text.split("\n")
    if not lines or lines[0].split("\t")[:3] != ["key", "gold", "predicted"]:
        raise DataError(f"{path}: not a predictions file (its header is not key, gold, "
                        f"predicted); {DAMAGED}", path=str(path))
    out = []
    for i, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        cells = line.split("\t")
        if len(cells) != 3 or not all(cells):
            raise DataError(f"{path}:{i}: expected key, gold and predicted separated by tabs; "
                            f"{DAMAGED}", path=str(path))
        out.append((cells[0], cells[1], cells[2]))
    return out


# -- finding run directories ----------------------------------------------------------------------

def collect_runs(paths: Iterable[str | Path]) -> list[RunDir]:
    """Run directories at or under ``paths`` (each given path must hold at least one)."""
    runs: list[RunDir] = []
    seen: set[Path] = set()
    for given in paths:
        base = Path(given)
        if not base.exists():
            raise EmoboxUsageError(f"{base} does not exist")
        if (base / "config.json").exists() or (base / "config.json").is_symlink():
            if _config_kind(base) == CROSS_KIND:
                raise EmoboxUsageError(
                    f"{base} is a cross-corpus run directory (`emobox cross run`); `emobox "
                    f"report` reads the run directories of `emobox run` and `emobox bench`: "
                    f"its matrices are in {base / 'summary.md'}, matrix.tsv and matrix.json")
            found = [base]  # named on purpose: a damaged one is an error, not skipped
        else:
            found = sorted(p for p in _search(base) if _is_run(p))
        if not found:
            cross = [p for p in _search(base) if _config_kind(p) == CROSS_KIND]
            also = ""
            if cross:
                also = (f"; it holds {len(cross)} cross-corpus run "
                        f"director{'y' if len(cross) == 1 else 'ies'} (`emobox cross run`), "
                        f"whose matrices are in their summary.md")
                if (base / "layers.md").is_file():
                    also += f", and their averages by layer in {base / 'layers.md'}"
            raise EmoboxUsageError(f"{base} holds no emobox run directory (a folder with "
                                   f"config.json and results.jsonl made by `emobox run` or "
                                   f"`emobox bench`){also}")
        for p in found:
            real = p.resolve()
            if real not in seen:
                seen.add(real)
                runs.append(load_run(p))
    return runs


def _search(base: Path) -> Iterator[Path]:
    """Folders under ``base`` holding a ``config.json`` (links are not followed)."""
    for root, dirs, files in os.walk(base, followlinks=False):
        depth = len(Path(root).relative_to(base).parts)
        if depth >= MAX_SEARCH_DEPTH:
            dirs[:] = []
        dirs.sort()
        if "config.json" in files:
            yield Path(root)


def _config_kind(path: Path) -> Any:
    """The ``kind`` of ``path/config.json`` (None where it cannot be read or has none)."""
    try:
        config = read_json_file(path / "config.json", MAX_CONFIG_BYTES, "in run directories")
    except (DataError, OSError):
        return None
    return config.get("kind") if isinstance(config, dict) else None


def _is_run(path: Path) -> bool:
    """Whether ``path`` (found holding a ``config.json``) is a run directory. Another tool's
    folder is passed over; a run directory whose ``config.json`` is damaged (it has
    ``results.jsonl`` beside it) is an error, not silently left out of a report."""
    try:
        config = read_json_file(path / "config.json", MAX_CONFIG_BYTES, "in run directories")
    except (DataError, OSError) as exc:
        if (path / "results.jsonl").exists() or (path / "results.jsonl").is_symlink():
            if isinstance(exc, DataError):
                raise DataError(f"{exc}; {DAMAGED}", path=exc.path)
            raise
        return False
    return isinstance(config, dict) and config.get("kind") == "emobox.run"


__all__ = ["RunDir", "collect_runs", "load_run", "read_rows", "read_run_config",
           "check_run_dir", "check_bench_dir", "run_lock", "RowError"]
