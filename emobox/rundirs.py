"""Reading finished work back: run directories (``emobox run``) and bench directories.

:func:`collect_runs` turns paths given on the command line into run directories: a run directory
itself (it has ``config.json`` of kind ``emobox.run``), or any folder holding run directories
(a bench directory, a folder of runs), searched recursively.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import DataError, EmoboxUsageError
from .io import read_jsonl
from .metrics import mean_std

METRICS = ("ua", "wa", "f1")


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
        return sorted((r for r in self.rows if r.get("selected")), key=lambda r: r["fold"])

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


def load_run(path: Path) -> RunDir:
    cfg_path = path / "config.json"
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{cfg_path}: not valid JSON ({exc.msg})", path=str(cfg_path))
    if config.get("kind") != "emobox.run":
        raise DataError(f"{cfg_path}: not an emobox run directory (kind "
                        f"{config.get('kind')!r})", path=str(cfg_path))
    return RunDir(path, config, read_jsonl(path / "results.jsonl"))


def collect_runs(paths: Iterable[str | Path]) -> list[RunDir]:
    """Run directories at or under ``paths`` (each given path must hold at least one)."""
    runs: list[RunDir] = []
    seen: set[Path] = set()
    for given in paths:
        base = Path(given)
        if not base.exists():
            raise EmoboxUsageError(f"{base} does not exist")
        found = [base] if (base / "config.json").exists() else sorted(
            p.parent for p in base.rglob("config.json"))
        found = [p for p in found if _is_run(p)]
        if not found:
            raise EmoboxUsageError(f"{base} holds no emobox run directory (a folder with "
                                   f"config.json and results.jsonl made by `emobox run` or "
                                   f"`emobox bench`)")
        for p in found:
            real = p.resolve()
            if real not in seen:
                seen.add(real)
                runs.append(load_run(p))
    return runs


def _is_run(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("kind") == "emobox.run"
    except (OSError, json.JSONDecodeError):
        return False
