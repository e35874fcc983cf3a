"""The options every track shares (``emobox run``, ``emobox bench``, ``emobox cross run``),
declared once, checked when they are built, and the one fingerprint function.

:class:`SharedOptions` holds what is extracted and how heads are trained; :class:`FoldOptions`
adds the partition (scheme and folds) of the tracks that run folds. ``RunOptions``,
``BenchOptions`` and ``CrossOptions`` inherit them, so a field added here reaches every track.
Building one checks every value that can be checked without the plugins (choices, numeric
ranges, fold numbers): a bad value is one :class:`EmoboxUsageError` line naming the option. What
needs the plugins (grid names against the head's hyper-parameters, ``-U``/``-C`` options against
what the upstream or corpus declares) is checked by the tracks' ``check_plugins(registry)``,
first thing when they plan, before any scan or extraction.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from emobox.errors import EmoboxUsageError
from emobox.extraction.precision import PRECISIONS as FEATURE_PRECISIONS
from emobox.extraction.runtime import RUNTIMES, check_runtime
from emobox.training.sweep import (DEFAULT_GRAD_CLIP, PRECISIONS, SCHEDULES, SELECT_MODES,
                                   check_grid, resolve_protocol)

ON_BAD_AUDIO = ("fail", "skip")
UPSTREAM_BUILD_ARGS = ("ckpt", "device")  # what emobox passes to UpstreamSpec.build itself
CORPUS_BUILD_ARGS = ("root",)  # and to CorpusSpec.build
DEFAULT_DEVICE = "auto"  # cuda when this machine has it, else cpu


@dataclass(frozen=True, kw_only=True)
class SharedOptions:
    """What every track extracts and trains with. ``upstream_options`` and ``corpus_options``
    are name -> value for one upstream or corpus (``emobox run``), or owner -> {name: value}
    for a track of several (``emobox bench``; ``emobox cross run``'s corpora)."""

    out: str | None = None
    seed: int = 0
    device: str = DEFAULT_DEVICE
    layer: int | str | None = None  # None = last layer
    layer_norm: bool = True  # False: the older spelling of feature_norm="none"
    grid: Mapping[str, Sequence[Any]] | None = None  # None = the head's own grid
    epochs: int = 100
    warmup_epochs: int = 10
    batch_size: int = 32
    select: str = "valid"
    class_weights: bool = False
    precision: str = "fp32"  # of the extracted features
    train_precision: str = "fp32"  # of the head's training: fp32 (exact) | bf16
    schedule: str = "linear"  # learning rate after warm-up: linear decay | constant
    upstream_ckpt: str | None = None
    upstream_options: Mapping[str, Any] = field(default_factory=dict)
    corpus_options: Mapping[str, Any] = field(default_factory=dict)
    on_bad_audio: str = "fail"
    features_dir: str | None = None
    batch_seconds: float | None = None  # extraction batch budget (None: the device's default)
    runtime: str = "torch"  # what computes the features on the CPU: torch | openvino
    feature_norm: str = "utterance"  # utterance (EmoBox's) | frame | none
    grad_clip: float = DEFAULT_GRAD_CLIP  # each configuration's gradient norm; 0: no clipping
    recipe: str = "emobox"  # emobox | paper (EmoBox's code, bugs included; selects by test)

    def __post_init__(self) -> None:
        resolve_protocol(self)
        self.check()

    def check(self) -> None:
        """Refuse option values that cannot run (one line naming the option)."""
        check_shared(self)


@dataclass(frozen=True, kw_only=True)
class FoldOptions(SharedOptions):
    """The shared options of a track that runs the folds of a partition."""

    folds: tuple[int, ...] = ()  # () = every fold
    scheme: str = "emobox"

    def check(self) -> None:
        super().check()
        check_folds(self.folds)


def check_shared(opts: Any) -> None:
    """Refuse shared option values that cannot run, before anything is done (one line naming
    the option)."""
    for value, flag, low in ((opts.epochs, "--epochs", 1), (opts.warmup_epochs, "--warmup", 0),
                             (opts.batch_size, "--batch-size", 1), (opts.seed, "--seed", None)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise EmoboxUsageError(f"{flag} must be a whole number, got {value!r}")
        if low is not None and value < low:
            raise EmoboxUsageError(f"{flag} must be at least {low}, got {value}")
    check_positive(opts.batch_seconds, "--batch-seconds")
    for value, flag, allowed in ((opts.runtime, "--runtime", RUNTIMES),
                                 (opts.select, "--select", SELECT_MODES),
                                 (opts.train_precision, "--train-precision", PRECISIONS),
                                 (opts.schedule, "--schedule", SCHEDULES),
                                 (opts.precision, "--precision", FEATURE_PRECISIONS),
                                 (opts.on_bad_audio, "--on-bad-audio", ON_BAD_AUDIO)):
        if value not in allowed:
            raise EmoboxUsageError(f"{flag} must be one of {', '.join(allowed)} "
                                   f"(got {value!r})")
    if opts.runtime != "torch":  # installed, and not asked to run on a GPU: before any work
        from emobox.extraction.extract import resolve_device

        check_runtime(opts.runtime,
                      resolve_device("auto") if opts.device == "auto" else opts.device)


def check_folds(folds: Sequence[Any]) -> None:
    for f in folds:
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise EmoboxUsageError(f"--fold must be a fold number (1, 2, ...), got {f!r}")


def check_options(opts: Any) -> None:
    """Check ``opts`` again (building it already did)."""
    opts.check()


def check_heads_grid(opts: SharedOptions, down_specs: Sequence[Any]) -> dict[str, list] | None:
    """``--grid`` checked against every head of ``down_specs`` (each must take it); the grid of
    the last one, or None when no grid was given."""
    grid = None
    if opts.grid is not None:
        for spec in down_specs:
            grid = check_grid(spec, opts.grid)
    return grid


def head_grid(opts: SharedOptions, down_spec: Any) -> dict[str, list]:
    """The grid one head trains: ``--grid`` checked against its hyper-parameters, or its own."""
    if opts.grid is not None:
        return check_grid(down_spec, opts.grid)
    return check_grid(down_spec, down_spec.grid,
                      f"the default grid of downstream {down_spec.name!r}")


def declared_options(spec: Any, skip: Sequence[str] = ()) -> dict[str, str] | None:
    """The build options a plugin declares, name -> what it does: its spec's ``options`` when
    it lists them, else the keywords its ``build`` accepts when that takes no ``**options``
    (less ``skip``, the arguments emobox itself passes). None: the plugin does not say, so
    its options can only be checked when it is built."""
    listed = getattr(spec, "options", None)
    if listed:
        return dict(listed)
    try:
        params = inspect.signature(spec.build).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name: "" for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip}


def check_plugin_options(spec: Any, options: Mapping[str, Any], kind: str, flag: str,
                         skip: Sequence[str] = ()) -> None:
    """Refuse an option ``spec`` (an upstream or corpus) does not declare, naming the ones it
    takes, before anything is scanned or extracted."""
    if not options:
        return
    known = declared_options(spec, skip)
    if known is None:
        return
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = (f"its options: {', '.join(sorted(known))}" if known
                 else "it takes no options")
        raise EmoboxUsageError(f"{flag} {unknown[0]}: {kind} {spec.name!r} has no option "
                               f"{unknown[0]!r}; {takes}")


def check_upstream_options(spec: Any, options: Mapping[str, Any]) -> None:
    check_plugin_options(spec, options, "upstream", "--upstream-option", UPSTREAM_BUILD_ARGS)


def check_corpus_options(spec: Any, options: Mapping[str, Any]) -> None:
    check_plugin_options(spec, options, "corpus", "--corpus-option", CORPUS_BUILD_ARGS)


def check_owners(options: Mapping[str, Any], owners: Sequence[str], flag: str,
                 what: str) -> None:
    """Refuse per-owner options (``OWNER:name=value``) for an owner the track does not have."""
    stray = sorted(set(options) - set(owners))
    if stray:
        raise EmoboxUsageError(f"{flag} for {', '.join(stray)}, which is not among the {what} "
                               f"({', '.join(owners)})")


def warmup_warning(epochs: int, warmup: int) -> str | None:
    """The note to print when ``--epochs`` is smaller than ``--warmup``: training ends while
    the learning rate is still warming up, below its peak."""
    if epochs < warmup:
        return (f"--epochs {epochs} is smaller than --warmup {warmup}: the {warmup} warm-up "
                f"epochs are used as given, so training ends at {epochs}/{warmup} of the peak "
                f"learning rate (pass a --warmup below --epochs to reach it)")
    return None


def check_positive(value: Any, flag: str) -> None:
    """``value`` is None or a finite number > 0, else one line naming ``flag``."""
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        raise EmoboxUsageError(f"{flag} must be positive (a finite number greater than 0), "
                               f"got {value!r}")


def plain(value: Any) -> Any:
    """Options as JSON values (mappings sorted, tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def fingerprint(values: Any, length: int = 16) -> str:
    """The fingerprint of ``values`` (options, a config): the first ``length`` hex digits of the
    SHA-256 of their JSON with sorted keys (what is not JSON written as its ``str``). Every
    fingerprint emobox writes (result rows, ``config.json``, default folder names) is this, so
    the same options give the same fingerprint in every track and every version."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# the fields of a run's config.json outside its fingerprint: where it ran, with which code, and
# what is recorded for the result rows (runner.run_config adds exactly these)
RUN_CONFIG_UNFINGERPRINTED = frozenset({
    "fingerprint", "versions", "device", "root", "features", "notes", "request", "options",
    "upstream_parameters", "engine", "grid_defaults"})


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """The fingerprint a run's ``config.json`` records: that of its fingerprinted fields (an
    edited field gives another one)."""
    return fingerprint({k: v for k, v in config.items() if k not in RUN_CONFIG_UNFINGERPRINTED},
                       12)


def hash_options(options: Mapping[str, Any]) -> str:
    """The options fingerprint every result row carries."""
    return fingerprint(options, 16)


__all__ = ["RUN_CONFIG_UNFINGERPRINTED", "config_fingerprint", "SharedOptions", "FoldOptions", "check_shared", "check_folds", "check_options",
           "check_plugin_options", "declared_options", "check_positive", "warmup_warning",
           "fingerprint", "hash_options", "plain", "UPSTREAM_BUILD_ARGS", "CORPUS_BUILD_ARGS",
           "ON_BAD_AUDIO", "DEFAULT_DEVICE"]
