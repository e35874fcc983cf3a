"""Result rows: one per fold x configuration, each saying how it was made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
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
    best_epoch: int
    epochs: int
    valid_ua: float
    valid_loss: float
    ua: float
    wa: float
    f1: float
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
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


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
