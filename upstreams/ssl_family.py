"""Specs of the wav2vec 2.0-style families: one private builder, one line of metadata a variant.

Each family module (``wav2vec2``, ``hubert``, ``wavlm``, ``data2vec``) lists its variants as
:class:`SSLVariant` lines and returns ``ssl_specs(...)`` from its hook. Cheap to import: torch and
transformers are imported only when an upstream is built.

Waveform normalisation (:func:`waveform_norm`), as EmoBox's extraction set it:

- wav2vec2, WavLM, data2vec-audio: EmoBox loaded these through ``AutoFeatureExtractor``, so
  ``do_normalize`` comes from the checkpoint folder's ``preprocessor_config.json`` (a missing key
  means True, ``Wav2Vec2FeatureExtractor``'s default), and the formula is that extractor's,
  ``(x - mean) / sqrt(var + 1e-7)``. A folder without the file gets the model authors' setting
  (:attr:`SSLVariant.normalize`, the pre-training task's ``normalize``) with the same formula.
- HuBERT: EmoBox loaded fairseq's checkpoints, whose ``task.normalize`` (the authors' setting)
  switches ``F.layer_norm(wav, wav.shape)`` (epsilon 1e-5); the transformers port's
  ``preprocessor_config.json`` is not what EmoBox ran and is not read.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path

from emobox import UpstreamSpec

from .common import (NORM_FEATURE_EXTRACTOR, NORM_LAYER_NORM, NORM_METHODS, NORM_NONE,
                     locate_checkpoint)

PREPROCESSOR_CONFIG = "preprocessor_config.json"
MAX_PREPROCESSOR_BYTES = 1 << 20


@dataclass(frozen=True)
class SSLVariant:
    name: str
    checkpoint: str  # Hugging Face hub id of the transformers port of the paper's checkpoint
    parameters: int  # counted on the transformers class with this architecture (no heads)
    num_layers: int
    hidden_size: int
    normalize: bool  # the model authors' setting: the pre-training task's ``normalize``
    padding_sensitive: bool
    description: str
    revision: str = ""
    trained_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class SSLFamily:
    family: str
    model_class: str  # transformers class, e.g. "HubertModel"
    model_type: str  # config.model_type, e.g. "hubert"
    paper: str
    license: str
    # where EmoBox's waveform normalisation came from: "preprocessor_config" (it loaded the
    # transformers checkpoint with AutoFeatureExtractor) or "fairseq" (it loaded fairseq's
    # checkpoint and its task.normalize)
    norm_from: str = "preprocessor_config"


def ssl_specs(family: SSLFamily, variants: list[SSLVariant]) -> list[UpstreamSpec]:
    return [_spec(family, v) for v in variants]


def _spec(family: SSLFamily, v: SSLVariant) -> UpstreamSpec:
    base = UpstreamSpec(
        name=v.name, build=_unset, description=v.description, checkpoint=v.checkpoint,
        revision=v.revision, parameters=v.parameters, paper=family.paper,
        license=family.license, num_layers=v.num_layers, hidden_size=v.hidden_size,
        frame_rate=50.0, trained_on=v.trained_on, family=family.family)
    return replace(base, build=functools.partial(_build, family, v, base),
                   locate=functools.partial(locate_checkpoint, base),
                   describe=functools.partial(_describe, family, v, base))


def _unset(*args, **kwargs):  # replaced right away by the real builder
    raise NotImplementedError


def _build(family: SSLFamily, v: SSLVariant, spec: UpstreamSpec, ckpt=None, device="cpu",
           **options):
    from emobox import EmoboxUsageError

    if options:
        raise EmoboxUsageError(f"{v.name} takes no options (got {', '.join(sorted(options))})")
    from .ssl_model import load_ssl

    from .ssl_model import WaveformNorm

    path = locate_checkpoint(spec, ckpt)
    method, source = waveform_norm(family, v, path)
    return load_ssl(v.name, path, family.model_class, family.model_type,
                    num_layers=v.num_layers, hidden_size=v.hidden_size,
                    normalize=WaveformNorm(method, source),
                    padding_sensitive=v.padding_sensitive, device=device)


def waveform_norm(family: SSLFamily, v: SSLVariant, path: Path | None) -> tuple[str, str]:
    """``(method, source)`` of the waveform normalisation for checkpoint folder ``path`` (None:
    not on this machine); see the module docstring. A bad ``preprocessor_config.json`` is a
    :class:`emobox.DataError` naming it."""
    authors = "on" if v.normalize else "off"
    if family.norm_from == "fairseq":
        return ((NORM_LAYER_NORM if v.normalize else NORM_NONE),
                f"the model authors' setting ({authors}: task.normalize of fairseq's "
                f"checkpoint, which EmoBox loaded; a {PREPROCESSOR_CONFIG} is not read)")
    config = Path(path) / PREPROCESSOR_CONFIG if path is not None else None
    if config is not None and config.is_file():
        do = read_do_normalize(config)
        return (NORM_FEATURE_EXTRACTOR if do else NORM_NONE,
                f"{config} (do_normalize: {str(do).lower()})")
    where = (f"no {PREPROCESSOR_CONFIG} in {path}" if path is not None else
             f"weights not found; a checkpoint folder's {PREPROCESSOR_CONFIG} sets it")
    return (NORM_FEATURE_EXTRACTOR if v.normalize else NORM_NONE,
            f"the model authors' setting ({authors}; {where})")


def read_do_normalize(path: Path) -> bool:
    """``do_normalize`` of a transformers ``preprocessor_config.json`` (untrusted JSON: types
    checked; a missing key is True, ``Wav2Vec2FeatureExtractor``'s default)."""
    from emobox import DataError

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PREPROCESSOR_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})", path=str(path))
    if len(raw) > MAX_PREPROCESSOR_BYTES:
        raise DataError(f"{path}: larger than {MAX_PREPROCESSOR_BYTES >> 20} MiB, not a "
                        f"preprocessor configuration", path=str(path))
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 JSON text"
        raise DataError(f"{path}: not valid JSON ({why})", path=str(path))
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(config).__name__}",
                        path=str(path))
    kind = config.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
    if kind != "Wav2Vec2FeatureExtractor":
        raise DataError(f"{path}: feature_extractor_type is {kind!r}; this encoder reads "
                        f"waveforms through 'Wav2Vec2FeatureExtractor'", path=str(path))
    rate = config.get("sampling_rate", 16000)
    if type(rate) is not int or rate != 16000:
        raise DataError(f"{path}: sampling_rate is {rate!r}; the encoder takes 16000 Hz audio",
                        path=str(path))
    size = config.get("feature_size", 1)
    if type(size) is not int or size != 1:
        raise DataError(f"{path}: feature_size is {size!r}; a waveform has 1", path=str(path))
    do = config.get("do_normalize", True)
    if not isinstance(do, bool):
        raise DataError(f"{path}: do_normalize must be true or false, not {do!r}",
                        path=str(path))
    return do


def _describe(family: SSLFamily, v: SSLVariant, spec: UpstreamSpec, ckpt=None
              ) -> dict[str, str]:
    """What ``emobox upstreams info`` adds: the waveform normalisation and where its setting
    comes from (reads ``preprocessor_config.json`` if the weights are here; loads nothing)."""
    from emobox import CheckpointNotFoundError

    try:
        path = locate_checkpoint(spec, ckpt)
    except CheckpointNotFoundError:
        path = None
    method, source = waveform_norm(family, v, path)
    return {"waveform normalisation": f"{NORM_METHODS[method]}; setting: {source}"}
