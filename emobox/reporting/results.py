"""Result rows: one per fold x configuration, each saying how it was made.

:func:`check_row` is the one place a row read back from a run directory is checked (fields,
types, ranges), whatever command reads it (``run`` resuming, ``bench``, ``report``,
``submit pack``); rows are checked the same way before they are written.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# 2: ``best_epoch`` counts from 1, as every output does (rows of version 1 counted from 0 and
# are read as version 2: see :func:`epochs_from_one`)
SCHEMA_VERSION = 2
KIND = "emobox.result"


@dataclass
class ResultRow:
    run_id: str
    upstream: str
    checkpoint_id: str
    layer: Any  # int, or "all" for heads that read every layer
    layer_norm: bool  # feature_norm != "none"
    precision: str
    corpus: str
    scheme: str
    fold: int
    downstream: str
    config_id: str
    config: dict
    selected: bool
    selection: str  # "valid" or "test" (EmoBox recipe, flagged)
    best_epoch: int  # the epoch whose model is kept, counted from 1; -1 for a failed configuration
    epochs: int
    valid_ua: float | None  # None for a failed configuration (and the scores below)
    valid_loss: float | None
    ua: float | None
    wa: float | None
    f1: float | None
    confusion: list
    per_class_recall: list
    labels: list
    n_train: int
    n_valid: int
    n_test: int
    valid_rule: str
    seed: int
    emobox_version: str
    plugins: dict = field(default_factory=dict)  # distribution -> version
    contaminated: bool = False  # the upstream was trained on this corpus
    train_precision: str = "fp32"  # the head's training arithmetic: fp32 (exact) or bf16
    feature_norm: str = "utterance"  # utterance | frame | none (older rows: layer_norm only)
    grad_clip: float = 5.0  # max gradient norm per configuration (0: off; older rows: none)
    recipe: str = "emobox"  # emobox | paper (EmoBox's code, bugs included)
    schedule: str = "linear"  # learning rate after the warm-up: linear | constant | paper
    # hash of every run option and the corpus manifest (emobox.runner.options_fingerprint):
    # a fold is finished only when its rows carry the fingerprint of the options asked for now
    options_fingerprint: str = ""
    options: dict = field(default_factory=dict)  # the options it hashes
    # why the configuration failed (training gave non-finite numbers); it is never selected
    failed: str = ""
    layer_weights: list | None = None  # learned softmax layer weights (weighted_sum), else None
    # how the features were computed: the feature store's engine record for this layer
    # (precision, autocast, attention, batching, device, torch version, threads)
    engine: dict = field(default_factory=dict)
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["layer_weights"] is None:  # only heads that learn layer weights record them
            del out["layer_weights"]
        if not out["engine"]:  # features from a store that recorded none
            del out["engine"]
        return out


def epochs_from_one(row: dict) -> dict:
    """``row`` with ``best_epoch`` counted from 1: a row written before schema version 2
    counted from 0 and is returned as a version-2 row (a failed row's -1 stays)."""
    version = row.get("schema_version", 1)
    if isinstance(version, int) and version < 2:
        best = row.get("best_epoch")
        row = dict(row, schema_version=2)
        if isinstance(best, int) and not isinstance(best, bool) and best >= 0:
            row["best_epoch"] = best + 1
    return row


def row_key(row: dict) -> tuple:
    return (row["fold"], row["config_id"])


def feature_norm_of(record: dict) -> str:
    """The feature normalisation a row or config records; older ones only say ``layer_norm``
    (per-frame when true)."""
    if record.get("feature_norm"):
        return str(record["feature_norm"])
    return "frame" if record.get("layer_norm", True) else "none"


NORM_WORDS = {"utterance": "normalised per utterance", "frame": "normalised per frame",
              "none": "raw"}
class RowError(ValueError):
    """A result row that is not one emobox wrote (the message says which field and why)."""


_INT, _STR, _BOOL, _DICT, _LIST = "an integer", "a string", "true or false", "an object", "a list"
_SCORE = "a number from 0 to 1"

# field -> what it must be; every reader relies on these (rows of every emobox release have them)
REQUIRED = {
    "upstream": _STR, "corpus": _STR, "downstream": _STR, "scheme": _STR, "fold": _INT,
    "config_id": _STR, "config": _DICT, "selected": _BOOL, "best_epoch": _INT,
    "ua": _SCORE, "wa": _SCORE, "f1": _SCORE, "valid_ua": _SCORE, "valid_loss": "a number >= 0",
    "confusion": _LIST, "per_class_recall": _LIST, "labels": _LIST, "seed": _INT,
    "emobox_version": _STR,
}
OPTIONAL = {
    "run_id": _STR, "checkpoint_id": _STR, "layer_norm": _BOOL, "precision": _STR,
    "selection": _STR, "epochs": _INT, "n_train": _INT, "n_valid": _INT, "n_test": _INT,
    "valid_rule": _STR, "plugins": _DICT, "contaminated": _BOOL, "train_precision": _STR,
    "options_fingerprint": _STR, "options": _DICT, "failed": _STR, "kind": _STR,
    "schema_version": _INT, "feature_norm": _STR, "grad_clip": "a number >= 0", "recipe": _STR,
    "schedule": _STR, "layer_weights": "a list of numbers from 0 to 1", "engine": _DICT,
}
SCORES = ("ua", "wa", "f1", "valid_ua", "valid_loss")
MAX_CLASSES = 10_000
MAX_COUNT = 1 << 40  # utterances in one cell of a confusion matrix
SCORE_TOLERANCE = 1e-6  # a score written by emobox equals its confusion matrix's to rounding


def _check_scores(row: dict, confusion: list) -> None:
    """The row's test figures are those its confusion matrix gives: an edited score, or counts
    that are not the test set's, is a :class:`RowError`."""
    from emobox.training.metrics import scores_from_confusion

    total = sum(map(sum, confusion))
    n_test = row.get("n_test")
    if n_test is not None and total != n_test:
        raise RowError(f"field 'confusion' counts {total} test utterances, n_test says {n_test}")
    if not total or row.get("failed"):
        return
    for name, value in scores_from_confusion(confusion).items():
        if abs(row[name] - value) > SCORE_TOLERANCE:
            raise RowError(f"field {name!r} is {_show(row[name])}, but the row's confusion "
                           f"matrix gives {value:.6f}")
    recall = row["per_class_recall"]
    for i, line in enumerate(confusion):
        got, want = recall[i], (line[i] / sum(line) if sum(line) else None)
        if (got is None) != (want is None) or (got is not None
                                               and abs(got - want) > SCORE_TOLERANCE):
            raise RowError(f"field 'per_class_recall' of {row['labels'][i]!r} is {_show(got)}, "
                           f"but the row's confusion matrix gives {_show(want)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fits(value: Any, kind: str) -> bool:
    if kind == _INT:
        return _is_int(value)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _DICT:
        return isinstance(value, dict)
    if kind == _LIST:
        return isinstance(value, list)
    if kind == _SCORE:
        return _is_number(value) and 0.0 <= value <= 1.0
    if kind == OPTIONAL["layer_weights"]:
        return isinstance(value, list) and all(_is_number(v) and 0.0 <= v <= 1.0 for v in value)
    return _is_number(value) and 0.0 <= value < math.inf  # a loss


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_row(row: Any) -> dict:
    """``row`` if it is a result row emobox wrote, else :class:`RowError` saying what is wrong.

    A row of an earlier release holding NaN or infinite scores (training that diverged, before
    emobox marked such configurations) is returned marked ``failed`` and never selected."""
    if not isinstance(row, dict):
        raise RowError(f"not a result row (a JSON {type(row).__name__})")
    kind = row.get("kind", KIND)
    if kind != KIND:
        raise RowError(f"not a result row (kind {_show(kind)})")
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise RowError(f"not a result row (no {', '.join(missing[:4])}"
                       f"{', ...' if len(missing) > 4 else ''})")
    failed = row.get("failed") or ""
    diverged = [k for k in SCORES if isinstance(row[k], float) and not math.isfinite(row[k])]
    if diverged and not failed:  # written before emobox refused non-finite numbers
        row = dict(row, failed=f"non-finite {diverged[0]} (training diverged)", selected=False)
        failed = row["failed"]
    for name, kind in list(REQUIRED.items()) + list(OPTIONAL.items()):
        if name not in row:
            continue
        value = row[name]
        if failed and name in SCORES and (value is None or name in diverged):
            continue
        if not _fits(value, kind):
            raise RowError(f"field {name!r} is {_show(value)}, not {kind}")
    if row["fold"] < 1:
        raise RowError(f"field 'fold' is {row['fold']}, not a fold number (1, 2, ...)")
    if failed and row["selected"]:
        raise RowError("a failed configuration is marked selected")
    row = epochs_from_one(row)
    labels = row["labels"]
    n = len(labels)
    if n > MAX_CLASSES or not all(isinstance(x, str) for x in labels):
        raise RowError("field 'labels' is not a list of class names")
    confusion = row["confusion"]
    if not failed or confusion:
        if len(confusion) != n or not all(
                isinstance(line, list) and len(line) == n
                and all(_is_int(v) and 0 <= v <= MAX_COUNT for v in line) for line in confusion):
            raise RowError(f"field 'confusion' is not a {n} x {n} matrix of counts")
        _check_scores(row, confusion)
        recall = row["per_class_recall"]
        if len(recall) != n or not all(v is None or (_is_number(v) and 0 <= v <= 1)
                                       for v in recall):
            raise RowError(f"field 'per_class_recall' is not {n} recalls (numbers from 0 to 1 "
                           f"or null)")
    return row
