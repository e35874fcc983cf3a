"""Plugin specs: what a plugin declares, cheap to list, building the heavy object only on demand.

A plugin's hook returns a list of these. The registry fills in ``plugin``, ``distribution`` and
``version`` (where the spec came from); plugin authors leave them empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from emobox.errors import CheckpointNotFoundError


#: what an upstream spec declares about the model and :meth:`UpstreamSpec.load` gives the object
SPEC_SIZES = ("name", "sample_rate", "num_layers", "hidden_size", "frame_rate")


def _sets(obj: Any, attr: str) -> bool:
    """Whether ``obj`` sets ``attr`` itself: in its instance or a class below
    ``emobox.Upstream`` (whose defaults do not count); any attribute of another object."""
    if attr in getattr(obj, "__dict__", {}):
        return True
    for klass in type(obj).__mro__:
        if klass.__module__ == "emobox.extraction.upstream" and klass.__name__ == "Upstream":
            return False
        if attr in vars(klass):
            return True
    return hasattr(obj, attr)


@dataclass(frozen=True)
class UpstreamSpec:
    """An upstream encoder.

    ``build(ckpt=None, device="cpu", **options)`` returns an :class:`emobox.Upstream`. ``ckpt`` is a
    local path given by the user (``--upstream-ckpt``); when it is None the plugin looks in
    ``$EMOBOX_MODELS/<name>`` and the Hugging Face cache (offline), and raises
    :class:`emobox.CheckpointNotFoundError` saying where it looked. emobox builds through
    :meth:`load`, which gives the object the sizes declared here (``SPEC_SIZES``) unless it sets
    them itself.
    """

    name: str
    build: Callable[..., Any]
    description: str = ""
    checkpoint: str = ""  # the checkpoint the EmoBox paper used (hub id or file name); "" = none needed
    revision: str = ""  # pinned hub revision, where there is one
    parameters: int | None = None  # parameter count of the encoder
    paper: str = ""  # citation of the model's paper
    license: str = ""
    sample_rate: int = 16000
    num_layers: int = 0  # hidden layers selectable beyond layer 0 (0 = only one output)
    hidden_size: int = 0  # 0: decided by the build options (e.g. which HEAR module); then
    frame_rate: float = 50.0  # output frames per second of audio (0 with hidden_size 0)
    trained_on: tuple[str, ...] = ()  # corpora seen in (pre-)training: results on them are contaminated
    family: str = ""
    requires: str = ""  # pip requirement hint shown when an optional dependency is missing
    # flops(num_samples[, **options]) -> forward FLOPs for one utterance, analytic, without
    # building the model (plans and dry runs), counting any padding the model adds (Whisper's
    # 30-s windows); given the run's upstream options when it takes keywords. None: emobox
    # estimates from num_layers, hidden_size and frame_rate
    flops: Callable[..., float] | None = None
    options: Mapping[str, str] = field(default_factory=dict)  # build option -> what it does
    # locate(ckpt=None) -> Path of the weights on this machine, without loading them; raises
    # CheckpointNotFoundError (None: the upstream needs no weights, or cannot say cheaply)
    locate: Callable[..., Any] | None = None
    # convert(source=None, out=None) -> Path: turn weights in another format (e.g. CTranslate2)
    # into a checkpoint that ``build`` reads (None: nothing to convert)
    convert: Callable[..., Any] | None = None
    # describe(ckpt=None) -> {field: text} that ``emobox upstreams info`` adds (e.g. the waveform
    # normalisation and where its setting comes from); cheap, loads no weights (None: nothing)
    describe: Callable[..., Mapping[str, str]] | None = None
    plugin: str = ""
    distribution: str = ""
    version: str = ""

    def load(self, ckpt: Any = None, device: str = "cpu", **options: Any) -> Any:
        """``build(ckpt=ckpt, device=device, **options)``, with the sizes declared once, here.

        What the model is (``name``, ``sample_rate``, ``num_layers``, ``hidden_size``,
        ``frame_rate``) is declared on the spec; an object that does not set one of them itself
        (in its class or instance, beyond :class:`emobox.Upstream`'s defaults) gets the spec's
        value, so the two cannot disagree. An object that sets one (because it depends on the
        build options or the checkpoint, e.g. ``hidden_size`` of a HEAR module) keeps its own,
        and the contract checks compare it with the spec. A size the spec leaves at 0 (decided
        by the build options) is never copied.
        """
        obj = self.build(ckpt=ckpt, device=device, **options)
        for attr in SPEC_SIZES:
            value = getattr(self, attr)
            if attr in ("hidden_size", "frame_rate") and not value:
                continue
            if not _sets(obj, attr):
                setattr(obj, attr, value)
        return obj

    def missing_checkpoint(self, ckpt: Any = None) -> CheckpointNotFoundError | None:
        """The :class:`emobox.CheckpointNotFoundError` saying where ``locate`` looked, when
        the weights are not on this machine; None when they are, when the upstream needs none
        or when the spec cannot tell without loading them (no ``locate``)."""
        if self.locate is None:
            return None
        try:
            self.locate(ckpt=ckpt)
        except CheckpointNotFoundError as exc:
            return exc
        return None


@dataclass(frozen=True)
class CorpusSpec:
    """A corpus adapter. ``build(root, **options)`` returns an :class:`emobox.Corpus` over a
    local copy (``root`` None for an embedded corpus); options come from ``--corpus-option``."""

    name: str
    build: Callable[..., Any]
    description: str = ""
    languages: tuple[str, ...] = ()
    license: str = ""
    homepage: str = ""
    citation: str = ""
    embedded: bool = False  # ships its own data: no --root needed
    reader: bool = False  # reads data described by files the user names (--root), e.g. EmoBox
    # imports: not a corpus of its own, so "every corpus" (bench -c all) leaves it out
    expected_top_level: str = ""  # what the root folder should contain, shown when it is missing
    # the native layout the adapter reads, in full (several lines; the corpus card's "Layout"
    # section), shown by ``emobox corpora info``; "" = only ``expected_top_level``
    layout: str = ""
    # the published reference the default partition follows, when there is one: a callable
    # returning {"utterances", "speakers", "labels": {class: count}, "folds", "hours",
    # "official_valid", "source"}; called only by commands that show it (cheap to list)
    reference: Callable[[], Mapping[str, Any]] | None = None
    # reference_table() -> emobox.ReferenceTable: the published keys, classes, folds and
    # durations, without the corpus on disk (submission checks, bench plans); None: only a scan
    # can tell
    reference_table: Callable[[], Any] | None = None
    # balanced_test_set() -> emobox.balanced.BalancedSet: the corpus's published balanced test
    # set of the cross-corpus track (by this adapter's keys), where there is one
    balanced_test_set: Callable[[], Any] | None = None
    # build option -> what it does (``--corpus-option``); empty: the keywords ``build`` accepts
    # are the options when it takes no ``**options``, else options are checked only by ``build``
    options: Mapping[str, str] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""
    version: str = ""


@dataclass(frozen=True)
class HParam:
    """What values a hyper-parameter of a downstream head may take: its ``type`` (``int``,
    ``float``, ``str`` or ``bool``), a range (``low``/``high``, inclusive; ``low_open`` makes the
    lower bound exclusive, e.g. a learning rate > 0) or a closed set of ``choices``. Grid
    values are checked against it before anything runs; numbers are always finite."""

    type: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple = ()
    description: str = ""

    def describe(self) -> str:
        """In words, e.g. ``an integer from 1 to 65536``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {int: "an integer", float: "a number", str: "a string",
                bool: "true or false"}.get(self.type, self.type.__name__)
        if self.low is not None and self.high is not None:
            if self.low_open:
                return f"{what} > {self.low:g} and at most {self.high:g}"
            return f"{what} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} at most {self.high:g}"
        return what

    def check(self, value: Any) -> Any:
        """``value`` in this hyper-parameter's type (an integer-valued number for ``float`` is
        made a float), or :class:`ValueError` saying what it must be."""
        want = self.describe()
        if self.choices:
            if any(value == c and type(value) is type(c) for c in self.choices):
                return value
            raise ValueError(f"must be {want}")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            raise ValueError(f"must be {want}")
        if self.type is str:
            if isinstance(value, str) and value:
                return value
            raise ValueError(f"must be {want}")
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"must be {want}")
            if not math.isfinite(value):
                raise ValueError(f"must be {want} (a finite number)")
            if self.type is int:
                if isinstance(value, float):
                    raise ValueError(f"must be {want} (not a fraction)")
            else:
                value = float(value)
            if self.low is not None and (value <= self.low if self.low_open
                                         else value < self.low):
                raise ValueError(f"must be {want}")
            if self.high is not None and value > self.high:
                raise ValueError(f"must be {want}")
            return value
        raise ValueError(f"must be {want}")


@dataclass(frozen=True)
class DownstreamSpec:
    """A downstream head.

    ``build(in_dim, n_classes, **hp)`` returns an :class:`emobox.Downstream` (an ``nn.Module``
    mapping ``(features [B, T, D], lengths [B])`` to logits ``[B, C]``). ``grid`` maps each
    hyper-parameter to the values swept by default; ``layers`` says which upstream layers the head
    reads: ``"last"`` (one layer, the default or ``--layer``) or ``"all"`` (every layer, stacked on a
    new leading axis: features ``[L, B, T, D]``); a head reading every layer is built with the
    extra keyword ``n_layers=L``. ``hparams`` declares the head's own hyper-parameters (the
    keywords of ``build``) as :class:`HParam` (type and range): grid values are checked against
    it before anything runs. Without a declaration, the names ``build`` accepts and the types
    of its defaults are checked. ``lr`` and ``weight_decay`` belong to the trainer and are
    declared by emobox.
    """

    name: str
    build: Callable[..., Any]
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    description: str = ""
    layers: str = "last"
    hparams: Mapping[str, HParam] = field(default_factory=dict)
    paper: str = ""
    plugin: str = ""
    distribution: str = ""
    version: str = ""


SPEC_KINDS = {"upstream": UpstreamSpec, "corpus": CorpusSpec, "downstream": DownstreamSpec}
