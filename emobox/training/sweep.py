"""Training a downstream head's hyper-parameter grid on one fold, all configurations together.

Every configuration of the grid is built, fused into one module when the head supports it (so
each frame is read once per step for all configurations), and trained on the same batches with
its own Adam parameter group (its own learning rate and schedule). The fold's frames are held in
memory once; a batch is gathered by indexing into them, packed without padding. After every epoch
each configuration is scored on the validation set (all configurations in one pass, UA computed
with tensor operations); its best epoch (highest validation UA, ties to the lower validation loss)
is kept. The configuration whose best epoch is best is *selected*, and each configuration's
best-epoch model is scored on test once. ``select="test"`` instead picks epochs and the
configuration by test UA: EmoBox's own recipe, only for comparing with its published tables.

Learning-rate schedule (Adam, batch 32, after SpeechBrain's ``LinearWarmupScheduler``, stepped
once per epoch): linear warm-up to the peak over the first ``warmup_epochs`` epochs, then a
linear decay towards 0 at the end of training (``schedule="constant"`` keeps the peak instead;
``schedule="paper"`` is what EmoBox's script actually ran, the scheduler stepped after each
validation: the first epoch at the peak, the second at 0, then the warm-up). See :func:`lr_at`.

Gradient clipping (SpeechBrain's ``Brain`` default, which EmoBox ran): before every step each
configuration's gradient is scaled so that its total L2 norm over its own parameters is at most
``grad_clip`` (5.0; 0 turns it off), as ``torch.nn.utils.clip_grad_norm_`` does, also when the
configurations share one fused tensor: one configuration's gradient never scales another's.

Precision: ``"fp32"`` is exact float32 arithmetic; ``"bf16"`` holds the frames in bfloat16 and runs
the frame-level matmuls in bfloat16 (float32 weights, optimiser state, pooled vectors and loss).
On CPU, runs with the same seed and thread count give bit-identical results.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from emobox.training.downstream import fuse_heads, segment_ids
from emobox.errors import EmoboxError, EmoboxUsageError, PluginError
from emobox.training.metrics import scores
from emobox.progress import Reporter
from emobox.plugin.specs import HParam

TRAINER_HPARAMS = ("lr", "weight_decay")
# the trainer's own hyper-parameters, the same for every head (Adam's peak learning rate and
# weight decay); a grid without them trains with these
TRAINER_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.0}
TRAINER_HPARAM_SPECS = {
    "lr": HParam(float, 0.0, 10.0, low_open=True, description="peak learning rate of Adam"),
    "weight_decay": HParam(float, 0.0, 1.0, description="Adam's weight decay"),
}
MAX_GRID_CONFIGS = 4096
SELECT_MODES = ("valid", "test")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("linear", "constant", "paper")
RECIPES = ("emobox", "paper")
FEATURE_NORMS = ("utterance", "frame", "none")
DEFAULT_GRAD_CLIP = 5.0  # SpeechBrain's Brain: max_grad_norm


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    warmup_epochs: int = 10
    batch_size: int = 32
    select: str = "valid"
    seed: int = 0
    device: str = "cpu"
    class_weights: bool = False
    precision: str = "fp32"  # fp32 (exact) | bf16
    schedule: str = "linear"  # after warm-up: linear decay towards 0 | constant | paper
    eval_frames: int = 16384  # frames per evaluation chunk
    grad_clip: float = DEFAULT_GRAD_CLIP  # max L2 norm of each configuration's gradient; 0: off

    def __post_init__(self) -> None:
        if self.select not in SELECT_MODES:
            raise EmoboxUsageError(f"--select must be one of {', '.join(SELECT_MODES)}")
        if self.precision not in PRECISIONS:
            raise EmoboxUsageError(f"--train-precision must be one of {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            raise EmoboxUsageError(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.warmup_epochs < 0:
            raise EmoboxUsageError("epochs and batch size must be positive, warm-up >= 0")
        check_grad_clip(self.grad_clip)


def check_grad_clip(value: Any) -> float:
    try:
        clip = float(value)
    except (TypeError, ValueError):
        clip = float("nan")
    if not (clip >= 0 and np.isfinite(clip)):
        raise EmoboxUsageError(f"--grad-clip {value!r}: give a gradient norm >= 0 (0 turns "
                               f"clipping off)")
    return clip


def resolve_protocol(options: Any) -> None:
    """Check and settle the protocol fields of a frozen options dataclass (``RunOptions``,
    ``BenchOptions``, ``CrossOptions``), from its ``__post_init__``:

    - ``feature_norm`` is one of :data:`FEATURE_NORMS`; the older ``layer_norm=False`` (the
      ``--no-layer-norm`` flag) means ``"none"``, and ``layer_norm`` is then kept equal to
      ``feature_norm != "none"``;
    - ``grad_clip`` is a finite norm >= 0;
    - ``recipe="paper"`` (EmoBox's code, bugs included) selects by test and runs EmoBox's
      learning-rate schedule (``schedule="paper"``); a constant schedule contradicts it.
    """
    def put(name: str, value: Any) -> None:
        object.__setattr__(options, name, value)

    norm = options.feature_norm
    if norm not in FEATURE_NORMS:
        raise EmoboxUsageError(f"--feature-norm {norm!r}: use one of {', '.join(FEATURE_NORMS)}")
    if not options.layer_norm:
        if norm not in ("utterance", "none"):
            raise EmoboxUsageError(f"--no-layer-norm (feature_norm none) contradicts "
                                   f"--feature-norm {norm}; give one of them")
        norm = "none"
    put("feature_norm", norm)
    put("layer_norm", norm != "none")
    put("grad_clip", check_grad_clip(options.grad_clip))
    if options.recipe not in RECIPES:
        raise EmoboxUsageError(f"--recipe {options.recipe!r}: use one of {', '.join(RECIPES)}")
    if options.recipe == "paper":
        if options.schedule == "constant":
            raise EmoboxUsageError("--recipe paper runs EmoBox's own learning-rate schedule; "
                                   "drop --schedule constant")
        put("select", "test")
        put("schedule", "paper")


@dataclass
class Split:
    """Frames and labels of one role (train, valid or test) of a fold."""

    source: Any  # FrameSource-like: gather(idx) -> (frames [N, D], lengths [B]), len(), lengths
    labels: torch.Tensor  # [U] int64 class indices
    keys: list[str]


@dataclass
class ConfigResult:
    hp: dict
    config_id: str
    best_epoch: int  # the epoch whose model is kept, counted from 1 (-1: failed)
    valid_ua: float
    valid_loss: float
    test: dict  # scores() of the kept model on test
    test_pred: np.ndarray
    # per epoch: epoch (counted from 1), lr, train_loss, valid_ua...
    history: list[dict] = field(default_factory=list)
    # why training failed (non-finite loss or outputs): the configuration is never selected and
    # its scores are None
    failed: str = ""
    # a head that learns a weighting of the layers (``layer_weights``, e.g. weighted_sum): the
    # softmax of its kept model's weights, one per layer
    layer_weights: list[float] | None = None


@dataclass
class SweepResult:
    configs: list[ConfigResult]
    selected: int
    selection: str
    precision: str = "fp32"
    seconds: float = 0.0  # wall time of the training epochs (validation included)
    cpu_seconds: float = 0.0  # CPU time of this process (all threads) over the same epochs
    valid_seconds: float = 0.0  # wall time of the per-epoch validation passes


def learned_layer_weights(head: Any) -> list[float] | None:
    """The softmax of a head's ``layer_weights`` parameter (one weight per layer, summing to 1),
    or None for a head without one."""
    weights = getattr(head, "layer_weights", None)
    if not isinstance(weights, torch.Tensor) or weights.dim() != 1:
        return None
    with torch.no_grad():
        return [round(float(w), 6) for w in torch.softmax(weights.detach().float(), 0).cpu()]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict]:
    """Cartesian product of the grid, in key order: ``[{k: v, ...}, ...]``."""
    if not grid:
        return [{}]
    keys = list(grid)
    for k in keys:
        if not isinstance(grid[k], (list, tuple)) or not grid[k]:
            raise EmoboxUsageError(f"grid entry {k!r} must be a non-empty list of values")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _build_keywords(spec: Any) -> tuple[dict[str, Any], bool]:
    """The hyper-parameter keywords of ``spec.build`` (name -> default, ``inspect._empty`` when
    none) and whether it takes any keyword (``**kwargs``)."""
    try:
        params = inspect.signature(spec.build).parameters.values()
    except (TypeError, ValueError):
        return {}, True
    names: dict[str, Any] = {}
    anything = False
    for i, p in enumerate(params):
        if p.kind is p.VAR_KEYWORD:
            anything = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not (
                i < 2 and p.kind is p.POSITIONAL_OR_KEYWORD) and p.name != "n_layers":
            names[p.name] = p.default
    return names, anything


def used_hparams(spec: Any, hp: Mapping[str, Any]) -> dict:
    """Every hyper-parameter configuration ``hp`` trains with: the grid's values and, for those
    the grid leaves out, the trainer's defaults (:data:`TRAINER_DEFAULTS`) and the defaults of
    the head's ``build`` keywords. Result rows record it as ``config``."""
    keywords, _ = _build_keywords(spec)
    out: dict[str, Any] = dict(TRAINER_DEFAULTS)
    out.update({k: v for k, v in keywords.items() if v is not inspect.Parameter.empty})
    out.update(hp)
    return out


def hparam_specs(spec: Any) -> tuple[dict[str, HParam | None], bool]:
    """What each hyper-parameter of the head ``spec`` may be: the trainer's, then the head's
    declaration (``DownstreamSpec.hparams``) or, without one, the keywords of its ``build`` typed
    by their defaults (``None``: any finite number, string or boolean). The flag says whether
    names beyond these are accepted (an undeclared ``build(**kwargs)``)."""
    declared = dict(getattr(spec, "hparams", None) or {})
    out: dict[str, HParam | None] = dict(TRAINER_HPARAM_SPECS)
    if declared:
        out.update(declared)
        return out, False
    keywords, anything = _build_keywords(spec)
    for name, default in keywords.items():
        kind = type(default) if type(default) in (int, float, str, bool) else None
        out[name] = HParam(kind) if kind is not None else None
    return out, anything


def _describe(name: str, hp: HParam | None) -> str:
    return f"{name} ({hp.describe() if hp is not None else 'any value'})"


def check_grid(spec: Any, grid: Mapping[Any, Any], what: str = "--grid") -> dict[str, list]:
    """The grid, checked against the head's hyper-parameters (names, types, ranges) and with
    repeated values dropped (``1e-3`` and ``0.001`` are one value). A problem is one
    :class:`EmoboxUsageError` naming the entry and what it may be (a head's own default grid
    that fails is a :class:`PluginError`)."""
    error = EmoboxUsageError if what == "--grid" else PluginError
    specs, anything = hparam_specs(spec)
    valid = ", ".join(_describe(n, h) for n, h in sorted(specs.items()))
    if not isinstance(grid, Mapping):
        raise error(f"{what}: expected a mapping name -> list of values")
    out: dict[str, list] = {}
    total = 1
    for name, values in grid.items():
        if not isinstance(name, str) or not name:
            raise error(f"{what}: hyper-parameter names must be text, got {name!r:.40}")
        if name not in specs and not anything:
            raise error(f"{what} {name}: {spec.name} has no hyper-parameter {name!r}; its "
                        f"hyper-parameters: {valid}")
        if isinstance(values, (list, tuple)):
            values = list(values)
        else:
            values = [values]
        if not values:
            raise error(f"{what} {name}: no value given (expected {name}=value[,value...])")
        hp = specs.get(name)
        kept: list = []
        for value in values:
            try:
                checked = hp.check(value) if hp is not None else _sane(value)
            except ValueError as exc:
                raise error(f"{what} {name}={_show(value)}: {spec.name}'s {name} {exc}; its "
                            f"hyper-parameters: {valid}")
            if not any(checked == k and type(checked) is type(k) for k in kept):
                kept.append(checked)
        out[name] = kept
        total *= len(kept)
    if total > MAX_GRID_CONFIGS:
        raise error(f"{what}: {total} configurations; at most {MAX_GRID_CONFIGS} train "
                    f"together (split the grid over several runs)")
    return out


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _sane(value: Any) -> Any:
    """A value for an undeclared hyper-parameter: a finite number, a string or a boolean."""
    if isinstance(value, bool) or isinstance(value, str) and value:
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    raise ValueError("must be a number, a string or true/false")


FAILED_SCORES = {"ua": None, "wa": None, "f1": None, "confusion": [], "per_class_recall": []}


def _all_failed(description: str, configs: Sequence[Mapping[str, Any]],
                failed: Sequence[str]) -> str:
    shown = "; ".join(f"{config_id(hp)}: {why.removeprefix('training diverged: ')}"
                      for hp, why in list(zip(configs, failed))[:4])
    more = f"; and {len(configs) - 4} more" if len(configs) > 4 else ""
    return (f"{description}: training diverged in every configuration of the grid ({shown}"
            f"{more}); nothing was selected. Lower the learning rate (--grid lr=...) or check "
            f"the features")


def config_id(hp: Mapping[str, Any]) -> str:
    """The name of one configuration of a grid, e.g. ``hidden=128,lr=0.001`` (keys sorted;
    ``default`` for an empty one): how results, checkpoints and seeds refer to it."""
    return ",".join(f"{k}={hp[k]}" for k in sorted(hp)) or "default"


def lr_at(epoch: int, peak: float, warmup_epochs: int, epochs: int,
          schedule: str = "linear") -> float:
    """Learning rate of 0-based ``epoch`` out of ``epochs``.

    Warm-up: epoch e < W runs at ``peak * (e + 1) / W`` (the peak is reached at epoch W - 1; no
    epoch runs at 0). Afterwards ``"constant"`` stays at the peak and ``"linear"`` (the shape of
    SpeechBrain's ``LinearWarmupScheduler``) decays linearly, epoch e >= W running at
    ``peak * (E - e) / (E - W)``: the peak at epoch W, ``peak / (E - W)`` at the last epoch.
    With W = 10 and E = 100: epochs 0, 5, 10, 99 run at 0.1, 0.6, 1 and 1/90 of the peak.

    ``"paper"``: what EmoBox's ``train.py`` ran. Adam starts at the peak and SpeechBrain's
    ``LinearWarmupScheduler(peak, W, E)`` is stepped after each validation, its s-th value
    (s = 0, 1, ...: ``peak * s / W`` while s < W, then ``peak * (E - s) / (E - W)``) applying
    to the next epoch: epoch 0 runs at the peak, epoch 1 at 0, epoch e >= 1 at the value of
    s = e - 1 (epoch 11 reaches the peak again with W = 10, the last epoch runs at 2/90 of it).
    """
    if schedule == "paper":
        if epoch == 0:
            return peak
        step = epoch - 1
        if step < warmup_epochs:
            return peak * step / max(1, warmup_epochs)
        return peak * max(0.0, (epochs - step) / max(1, epochs - warmup_epochs))
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return peak * (epoch + 1) / warmup_epochs
    if schedule == "constant" or epochs <= warmup_epochs:
        return peak
    return peak * max(0.0, (epochs - epoch) / (epochs - warmup_epochs))


def clip_per_config(head_params: Sequence[Sequence[torch.Tensor]], max_norm: float
                    ) -> torch.Tensor:
    """Clip each configuration's gradient to total L2 norm ``max_norm`` over its own parameters
    (``torch.nn.utils.clip_grad_norm_``, as SpeechBrain's ``Brain`` does before each step: the
    gradient is scaled by ``max_norm / (norm + 1e-6)`` when that is below 1). Returns ``[K]``
    0/1: which configurations were clipped (on the gradients' device, no synchronisation)."""
    flags = []
    for params in head_params:
        grads = [p for p in params if p.grad is not None]
        if not grads:
            flags.append(torch.zeros((), dtype=torch.long))
            continue
        norm = torch.nn.utils.clip_grad_norm_(grads, max_norm)
        flags.append((norm > max_norm).long())
    device = flags[0].device if flags else torch.device("cpu")
    return torch.stack([f.to(device) for f in flags])


def seed_for(seed: int, *parts: Any) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (a hash, so it does not depend on the
    order things run in): the sweep seeds each configuration with
    ``seed_for(seed, description, config_id(hp))`` and its batch order with
    ``seed_for(seed, description, "batches")``."""
    blob = "\x1f".join(str(p) for p in (seed,) + parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


_seed_for = seed_for  # the former private name


def confusion_matrices(pred: torch.Tensor, gold: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Confusion matrices ``[K, C, C]`` (rows = gold) of predictions ``[K, U]``, vectorised."""
    k = pred.shape[0]
    flat = (torch.arange(k).unsqueeze(1) * n_classes + gold.unsqueeze(0)) * n_classes + pred
    counts = torch.bincount(flat.reshape(-1), minlength=k * n_classes * n_classes)
    return counts.reshape(k, n_classes, n_classes)


def ua_of(cm: torch.Tensor) -> torch.Tensor:
    """UA ``[K]`` of confusion matrices ``[K, C, C]``: mean recall over classes with support."""
    cm = cm.double()
    support = cm.sum(-1)
    present = support > 0
    recall = torch.where(present, cm.diagonal(dim1=-2, dim2=-1) / support.clamp(min=1), 0.0)
    return recall.sum(-1) / present.sum(-1).clamp(min=1)


def _ua(pred: torch.Tensor, gold: torch.Tensor, n_classes: int) -> float:
    """UA over the classes present in ``gold`` (same as balanced accuracy), vectorised."""
    return float(ua_of(confusion_matrices(pred.unsqueeze(0), gold, n_classes))[0])


class _Batches:
    """Gathers packed batches of one split, reusing one frame buffer when the source allows."""

    def __init__(self, split: Split, device: torch.device, dtype: torch.dtype):
        self.source = split.source
        self.device = device
        self.dtype = dtype
        self.takes_out = "out" in inspect.signature(self.source.gather).parameters
        self.buffer: torch.Tensor | None = None

    def gather_range(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Consecutive utterances: a view of the held frames where the source offers one."""
        if hasattr(self.source, "gather_range"):
            frames, lengths = self.source.gather_range(start, stop)
            return frames.to(self.device, self.dtype), lengths.to(self.device)
        return self.gather(torch.arange(start, stop))

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = None
        if self.takes_out and getattr(self.source, "dtype", None) == self.dtype:
            n_layers = len(self.source.layers) if getattr(self.source, "stacked", False) else 1
            need = int(self.source.lengths[idx].sum()) * self.source.dim * n_layers
            if self.buffer is None or self.buffer.numel() < need:
                self.buffer = torch.empty(int(need * 1.25) + 1, dtype=self.dtype,
                                          device=_source_device(self.source))
            out = self.buffer
        frames, lengths = (self.source.gather(idx, out=out) if out is not None
                           else self.source.gather(idx))
        frames = frames.to(self.device, self.dtype, non_blocking=True)
        return frames, lengths.to(self.device)


def _source_device(source: Any) -> torch.device:
    lengths = getattr(source, "lengths", None)
    return lengths.device if isinstance(lengths, torch.Tensor) else torch.device("cpu")


def _chunks(source: Any, n: int, eval_frames: int) -> list[torch.Tensor]:
    """Consecutive utterance index ranges of about ``eval_frames`` frames each."""
    lengths = getattr(source, "lengths", None)
    if lengths is None:
        return [torch.arange(s, min(s + 256, n)) for s in range(0, n, 256)]
    out, start = [], 0
    csum = torch.cumsum(lengths.cpu(), 0)
    while start < n:
        base = int(csum[start - 1]) if start else 0
        stop = int(torch.searchsorted(csum, base + eval_frames, right=True))
        stop = min(max(stop, start + 1), n)
        out.append(torch.arange(start, stop))
        start = stop
    return out


def _predict(model: torch.nn.Module, batches: _Batches, split: Split, cfg: TrainConfig,
             autocast: Any) -> torch.Tensor:
    """Logits ``[K, U, C]`` (float32, CPU) of every configuration on a whole split, in chunks."""
    outs = []
    for idx in _chunks(split.source, len(split.labels), cfg.eval_frames):
        frames, lengths = batches.gather_range(int(idx[0]), int(idx[-1]) + 1)
        with autocast():
            logits = model.forward_packed(frames, segment_ids(lengths), lengths)
        outs.append(logits.float().cpu())
    return torch.cat(outs, dim=1)


def _adam(groups: list[dict], device: torch.device) -> torch.optim.Optimizer:
    """Adam (PyTorch defaults, as in EmoBox's recipe), in its fused form where available."""
    try:
        return torch.optim.Adam(groups, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, foreach=device.type != "cpu" or None)


def _scores_of(logits: torch.Tensor, gold: torch.Tensor, n_classes: int
               ) -> tuple[list[float], list[float]]:
    """Per configuration: UA and mean cross-entropy of logits ``[K, U, C]``."""
    k, u, c = logits.shape
    ua = ua_of(confusion_matrices(logits.argmax(-1), gold, n_classes)).tolist()
    loss = F.cross_entropy(logits.reshape(k * u, c), gold.repeat(k), reduction="none")
    return ua, loss.reshape(k, u).mean(1).tolist()


def train_sweep(spec: Any, configs: Sequence[Mapping[str, Any]], in_dim: int, n_classes: int,
                train: Split, valid: Split, test: Split, cfg: TrainConfig,
                reporter: Reporter | None = None, description: str = "train",
                build_options: Mapping[str, Any] | None = None) -> SweepResult:
    """Train every configuration of ``configs`` together; see the module docstring.

    ``build_options`` are extra keywords for ``spec.build`` (e.g. ``n_layers`` for heads that
    read every layer).
    """
    reporter = reporter or Reporter()
    device = torch.device(cfg.device)
    if len(train.labels) == 0 or len(valid.labels) == 0 or len(test.labels) == 0:
        raise EmoboxUsageError(f"{description}: empty split (train {len(train.labels)}, valid "
                               f"{len(valid.labels)}, test {len(test.labels)})")
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    heads, groups = [], []
    for hp in configs:
        head_hp = {h: v for h, v in hp.items() if h not in TRAINER_HPARAMS}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for(cfg.seed, description, config_id(hp)))
            try:
                head = spec.build(in_dim, n_classes, **head_hp, **dict(build_options or {}))
            except EmoboxError:
                raise
            except (TypeError, ValueError, RuntimeError, MemoryError, OverflowError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                raise EmoboxUsageError(f"downstream {getattr(spec, 'name', '?')}: cannot build "
                                       f"configuration {config_id(hp)} "
                                       f"({type(exc).__name__}: {first})")
        heads.append(head.to(device))
        used = used_hparams(spec, hp)
        peak = float(used["lr"])
        groups.append({"params": list(head.parameters()), "lr": peak, "peak_lr": peak,
                       "weight_decay": float(used["weight_decay"])})
    model = fuse_heads(heads)  # after moving: fused heads may share storage
    head_params = [[p for p in head.parameters() if p.requires_grad] for head in heads]
    optimizer = _adam(groups, device)
    K = len(heads)
    weight = None
    if cfg.class_weights:
        counts = torch.bincount(train.labels, minlength=n_classes).double()
        weight = (counts.sum() / (n_classes * counts.clamp(min=1))).float().to(device)

    def autocast():
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    if device.type != "cpu":
        for split in (train, valid, test):
            if hasattr(split.source, "to"):
                split.source.to(device)  # hold the fold's frames on the accelerator
    batches = {role: _Batches(split, device, dtype) for role, split in
               (("train", train), ("valid", valid), ("test", test))}
    y_train = train.labels.to(device)
    gen = torch.Generator().manual_seed(seed_for(cfg.seed, description, "batches"))
    best = [(-1.0, float("inf"), -1)] * K  # (ua, loss, epoch) on the selection split
    best_state: list[list[torch.Tensor]] = [[] for _ in range(K)]
    best_valid = [(0.0, 0.0)] * K
    history: list[list[dict]] = [[] for _ in range(K)]
    failed = [""] * K  # why a configuration stopped: its numbers stopped being finite
    n_train = len(train.labels)
    started, started_cpu, valid_seconds = time.perf_counter(), time.process_time(), 0.0
    with reporter.task(description, cfg.epochs, "epoch") as task:
        for epoch in range(cfg.epochs):
            lrs = []
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch, group["peak_lr"], cfg.warmup_epochs, cfg.epochs,
                                    cfg.schedule)
                lrs.append(group["lr"])
            model.train()
            train_loss = torch.zeros(K, dtype=torch.float64)
            clipped = torch.zeros(K, dtype=torch.long, device=device)
            perm = torch.randperm(n_train, generator=gen)
            for b in range(0, n_train, cfg.batch_size):
                idx = perm[b:b + cfg.batch_size]
                frames, lengths = batches["train"].gather(idx)
                with autocast():
                    logits = model.forward_packed(frames, segment_ids(lengths), lengths)
                y = y_train[idx.to(device)]
                per_item = F.cross_entropy(logits.reshape(K * len(idx), -1).float(), y.repeat(K),
                                           weight=weight, reduction="none").reshape(K, len(idx))
                if weight is None:
                    per_config = per_item.mean(1)
                else:  # weighted mean, as cross_entropy(weight=...) defines it
                    per_config = per_item.sum(1) / weight[y].sum()
                optimizer.zero_grad(set_to_none=True)
                per_config.sum().backward()
                for k in range(K):
                    if failed[k]:  # a failed configuration is left as it is
                        for p in heads[k].parameters():
                            p.grad = None
                if cfg.grad_clip > 0:
                    clipped += clip_per_config(head_params, cfg.grad_clip)
                optimizer.step()
                train_loss += per_config.detach().double().cpu() * len(idx)
            model.eval()
            valid_started = time.perf_counter()
            with torch.no_grad():
                v_ua, v_loss = _scores_of(_predict(model, batches["valid"], valid, cfg, autocast),
                                          valid.labels, n_classes)
                if cfg.select == "test":
                    t_ua, t_loss = _scores_of(
                        _predict(model, batches["test"], test, cfg, autocast), test.labels,
                        n_classes)
            valid_seconds += time.perf_counter() - valid_started
            clipped_steps = clipped.tolist()
            for k in range(K):
                if failed[k]:
                    continue
                loss_k = float(train_loss[k]) / n_train
                if not (math.isfinite(loss_k) and math.isfinite(v_loss[k])
                        and (cfg.select != "test" or math.isfinite(t_loss[k]))):
                    failed[k] = (f"training diverged: non-finite "
                                 f"{'training' if not math.isfinite(loss_k) else 'validation'} "
                                 f"loss in epoch {epoch + 1}")
                    continue
                entry = {"epoch": epoch + 1, "lr": lrs[k], "train_loss": loss_k,
                         "valid_ua": v_ua[k], "valid_loss": v_loss[k],
                         "clipped_steps": clipped_steps[k]}
                if cfg.select == "test":
                    entry["test_ua"] = t_ua[k]
                    crit = (t_ua[k], t_loss[k])
                else:
                    crit = (v_ua[k], v_loss[k])
                history[k].append(entry)
                if crit[0] > best[k][0] or (crit[0] == best[k][0] and crit[1] < best[k][1]):
                    best[k] = (crit[0], crit[1], epoch + 1)  # counted from 1
                    best_valid[k] = (v_ua[k], v_loss[k])
                    best_state[k] = [p.detach().clone() for p in heads[k].parameters()]
            task.advance(1)
            task.note(f"best valid UA {max(b[0] for b in best):.3f}"
                      if cfg.select == "valid" else "selecting by TEST (EmoBox recipe)")
            if all(failed):
                break
        if all(failed):
            raise EmoboxUsageError(_all_failed(description, configs, failed))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - started_cpu
    with torch.no_grad():
        for k in range(K):
            for p, saved in zip(heads[k].parameters(), best_state[k]):
                p.copy_(saved)
        model.eval()
        t_logits = _predict(model, batches["test"], test, cfg, autocast)
    finite = torch.isfinite(t_logits).flatten(1).all(1).tolist()
    for k in range(K):
        if not failed[k] and not finite[k]:
            failed[k] = "training diverged: non-finite outputs on the test set"
    if all(failed):
        raise EmoboxUsageError(_all_failed(description, configs, failed))
    results = []
    y_test = test.labels.numpy()
    for k, hp in enumerate(configs):
        pred = t_logits[k].nan_to_num(0.0).argmax(-1).numpy()
        if failed[k]:
            results.append(ConfigResult(
                hp=used_hparams(spec, hp), config_id=config_id(hp), best_epoch=-1,
                valid_ua=None,
                valid_loss=None, test=dict(FAILED_SCORES), test_pred=pred, history=history[k],
                failed=failed[k]))
            continue
        results.append(ConfigResult(
            hp=used_hparams(spec, hp), config_id=config_id(hp), best_epoch=best[k][2],
            valid_ua=best_valid[k][0], valid_loss=best_valid[k][1],
            test=scores(y_test, pred, n_classes), test_pred=pred, history=history[k],
            layer_weights=learned_layer_weights(heads[k])))
    selected = max((k for k in range(K) if not failed[k]),
                   key=lambda k: (best[k][0], -best[k][1], -k))
    return SweepResult(results, selected, cfg.select, cfg.precision, seconds, cpu_seconds,
                       valid_seconds)
