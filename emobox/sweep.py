"""Training a downstream head's hyper-parameter grid on one fold, all configurations together.

Every configuration of the grid is built, fused into one module when the head supports it (so
each frame is read once per step for all configurations), and trained on the same batches with
its own Adam parameter group (its own learning rate and warm-up). After every epoch each
configuration is scored on the validation set; its best epoch (highest validation UA, ties to the
lower validation loss) is kept. The configuration whose best epoch is best is *selected*, and each
configuration's best-epoch model is scored on test once. ``select="test"`` instead picks epochs and
the configuration by test UA: EmoBox's own recipe, only for comparing with its published tables.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .downstream import fuse_heads, segment_ids
from .errors import EmoboxUsageError
from .metrics import scores
from .progress import Reporter

TRAINER_HPARAMS = ("lr", "weight_decay")
SELECT_MODES = ("valid", "test")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    warmup_epochs: int = 10
    batch_size: int = 32
    select: str = "valid"
    seed: int = 0
    device: str = "cpu"
    class_weights: bool = False
    eval_frames: int = 200_000  # frames per evaluation chunk

    def __post_init__(self) -> None:
        if self.select not in SELECT_MODES:
            raise EmoboxUsageError(f"--select must be one of {', '.join(SELECT_MODES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.warmup_epochs < 0:
            raise EmoboxUsageError("epochs and batch size must be positive, warm-up >= 0")


@dataclass
class Split:
    """Frames and labels of one role (train, valid or test) of a fold."""

    source: Any  # FrameSource-like: gather(idx) -> (frames [N, D], lengths [B]), len()
    labels: torch.Tensor  # [U] int64 class indices
    keys: list[str]


@dataclass
class ConfigResult:
    hp: dict
    config_id: str
    best_epoch: int  # 0-based epoch whose model is kept
    valid_ua: float
    valid_loss: float
    test: dict  # scores() of the kept model on test
    test_pred: np.ndarray
    history: list[dict] = field(default_factory=list)  # per epoch: valid_ua, valid_loss (+ test_ua)


@dataclass
class SweepResult:
    configs: list[ConfigResult]
    selected: int
    selection: str


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict]:
    """Cartesian product of the grid, in key order: ``[{k: v, ...}, ...]``."""
    if not grid:
        return [{}]
    keys = list(grid)
    for k in keys:
        if not isinstance(grid[k], (list, tuple)) or not grid[k]:
            raise EmoboxUsageError(f"grid entry {k!r} must be a non-empty list of values")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def config_id(hp: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={hp[k]}" for k in sorted(hp)) or "default"


def warmup_lr(epoch: int, peak: float, warmup_epochs: int) -> float:
    """Learning rate of 0-based ``epoch``: linear warm-up to ``peak`` over the first epochs.

    Epoch e < warmup runs at ``peak * (e + 1) / warmup``; from epoch ``warmup - 1`` on, at ``peak``.
    """
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return peak
    return peak * (epoch + 1) / warmup_epochs


def _seed_for(seed: int, *parts: Any) -> int:
    blob = "\x1f".join(str(p) for p in (seed,) + parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def _ua(pred: torch.Tensor, gold: torch.Tensor, n_classes: int) -> float:
    """UA over the classes present in ``gold`` (same as balanced accuracy), vectorised."""
    cm = torch.bincount(gold * n_classes + pred, minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes).double()
    support = cm.sum(1)
    present = support > 0
    return float((cm.diagonal()[present] / support[present]).mean())


def _predict(model: torch.nn.Module, split: Split, cfg: TrainConfig,
             device: torch.device) -> torch.Tensor:
    """Logits ``[K, U, C]`` of every configuration on a whole split, in chunks."""
    n = len(split.labels)
    outs = []
    lengths_all = split.source.lengths if hasattr(split.source, "lengths") else None
    start = 0
    while start < n:
        if lengths_all is not None:
            csum = torch.cumsum(lengths_all[start:], 0)
            stop = start + max(1, int((csum <= cfg.eval_frames).sum()))
        else:
            stop = start + 256
        idx = torch.arange(start, min(stop, n))
        frames, lengths = split.source.gather(idx)
        frames, lengths = frames.to(device), lengths.to(device)
        outs.append(model.forward_packed(frames, segment_ids(lengths), lengths).float().cpu())
        start = int(idx[-1]) + 1
    return torch.cat(outs, dim=1)


def train_sweep(spec: Any, configs: Sequence[Mapping[str, Any]], in_dim: int, n_classes: int,
                train: Split, valid: Split, test: Split, cfg: TrainConfig,
                reporter: Reporter | None = None, description: str = "train") -> SweepResult:
    """Train every configuration of ``configs`` together; see the module docstring."""
    reporter = reporter or Reporter()
    device = torch.device(cfg.device)
    if len(train.labels) == 0 or len(valid.labels) == 0 or len(test.labels) == 0:
        raise EmoboxUsageError(f"{description}: empty split (train {len(train.labels)}, valid "
                               f"{len(valid.labels)}, test {len(test.labels)})")
    heads, groups = [], []
    for k, hp in enumerate(configs):
        head_hp = {h: v for h, v in hp.items() if h not in TRAINER_HPARAMS}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed_for(cfg.seed, description, config_id(hp)))
            head = spec.build(in_dim, n_classes, **head_hp)
        head = head.to(device)
        heads.append(head)
        groups.append({"params": list(head.parameters()), "lr": float(hp.get("lr", 1e-3)),
                       "weight_decay": float(hp.get("weight_decay", 0.0)),
                       "peak_lr": float(hp.get("lr", 1e-3))})
    model = fuse_heads(heads).to(device)
    optimizer = torch.optim.Adam(groups)
    K = len(heads)
    y_train = train.labels.to(device)
    weight = None
    if cfg.class_weights:
        counts = torch.bincount(train.labels, minlength=n_classes).double()
        weight = (counts.sum() / (n_classes * counts.clamp(min=1))).float().to(device)
    gen = torch.Generator().manual_seed(_seed_for(cfg.seed, description, "batches"))
    best = [(-1.0, float("inf"), -1)] * K  # (ua, loss, epoch) on the selection split
    best_state: list[list[torch.Tensor]] = [[] for _ in range(K)]
    best_valid = [(0.0, 0.0)] * K
    history: list[list[dict]] = [[] for _ in range(K)]
    n_train = len(train.labels)
    with reporter.task(description, cfg.epochs, "epoch") as task:
        for epoch in range(cfg.epochs):
            for group in optimizer.param_groups:
                group["lr"] = warmup_lr(epoch, group["peak_lr"], cfg.warmup_epochs)
            model.train()
            perm = torch.randperm(n_train, generator=gen)
            for b in range(0, n_train, cfg.batch_size):
                idx = perm[b:b + cfg.batch_size]
                frames, lengths = train.source.gather(idx)
                frames, lengths = frames.to(device), lengths.to(device)
                logits = model.forward_packed(frames, segment_ids(lengths), lengths)
                y = y_train[idx.to(device)]
                loss = F.cross_entropy(logits.reshape(K * len(idx), -1).float(), y.repeat(K),
                                       weight=weight, reduction="sum") / len(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                v_logits = _predict(model, valid, cfg, device)
                v_loss = [float(F.cross_entropy(v_logits[k], valid.labels)) for k in range(K)]
                v_ua = [_ua(v_logits[k].argmax(-1), valid.labels, n_classes) for k in range(K)]
                if cfg.select == "test":
                    t_logits = _predict(model, test, cfg, device)
                    t_ua = [_ua(t_logits[k].argmax(-1), test.labels, n_classes) for k in range(K)]
            for k in range(K):
                entry = {"epoch": epoch, "valid_ua": v_ua[k], "valid_loss": v_loss[k]}
                if cfg.select == "test":
                    entry["test_ua"] = t_ua[k]
                    crit = (t_ua[k], float(F.cross_entropy(t_logits[k], test.labels)))
                else:
                    crit = (v_ua[k], v_loss[k])
                history[k].append(entry)
                if crit[0] > best[k][0] or (crit[0] == best[k][0] and crit[1] < best[k][1]):
                    best[k] = (crit[0], crit[1], epoch)
                    best_valid[k] = (v_ua[k], v_loss[k])
                    best_state[k] = [p.detach().clone() for p in heads[k].parameters()]
            task.advance(1)
            task.note(f"best valid UA {max(b[0] for b in best):.3f}"
                      if cfg.select == "valid" else "selecting by TEST (EmoBox recipe)")
    with torch.no_grad():
        for k in range(K):
            for p, saved in zip(heads[k].parameters(), best_state[k]):
                p.copy_(saved)
        model.eval()
        t_logits = _predict(model, test, cfg, device)
    results = []
    y_test = test.labels.numpy()
    for k, hp in enumerate(configs):
        pred = t_logits[k].argmax(-1).numpy()
        results.append(ConfigResult(
            hp=dict(hp), config_id=config_id(hp), best_epoch=best[k][2],
            valid_ua=best_valid[k][0], valid_loss=best_valid[k][1],
            test=scores(y_test, pred, n_classes), test_pred=pred, history=history[k]))
    selected = max(range(K), key=lambda k: (best[k][0], -best[k][1], -k))
    return SweepResult(results, selected, cfg.select)
