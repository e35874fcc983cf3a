"""Specs of the wav2vec 2.0-style families: one private builder, one line of metadata a variant.

Each family module (``wav2vec2``, ``hubert``, ``wavlm``, ``data2vec``) lists its variants as
:class:`SSLVariant` lines and returns ``ssl_specs(...)`` from its hook. Cheap to import: torch and
transformers are imported only when an upstream is built.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from emobox import UpstreamSpec

from .common import locate_checkpoint


@dataclass(frozen=True)
class SSLVariant:
    name: str
    checkpoint: str  # Hugging Face hub id of the transformers port of the paper's checkpoint
    parameters: int  # counted on the transformers class with this architecture (no heads)
    num_layers: int
    hidden_size: int
    normalize: bool  # zero-mean unit-variance input, as fairseq's task.normalize for it
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


def ssl_specs(family: SSLFamily, variants: list[SSLVariant]) -> list[UpstreamSpec]:
    return [_spec(family, v) for v in variants]


def _spec(family: SSLFamily, v: SSLVariant) -> UpstreamSpec:
    base = UpstreamSpec(
        name=v.name, build=_unset, description=v.description, checkpoint=v.checkpoint,
        revision=v.revision, parameters=v.parameters, paper=family.paper,
        license=family.license, num_layers=v.num_layers, hidden_size=v.hidden_size,
        frame_rate=50.0, trained_on=v.trained_on, family=family.family)
    return replace(base, build=functools.partial(_build, family, v, base),
                   locate=functools.partial(locate_checkpoint, base))


def _unset(*args, **kwargs):  # replaced right away by the real builder
    raise NotImplementedError


def _build(family: SSLFamily, v: SSLVariant, spec: UpstreamSpec, ckpt=None, device="cpu",
           **options):
    from emobox import EmoboxUsageError

    if options:
        raise EmoboxUsageError(f"{v.name} takes no options (got {', '.join(sorted(options))})")
    from .ssl_model import load_ssl

    path = locate_checkpoint(spec, ckpt)
    return load_ssl(v.name, path, family.model_class, family.model_type,
                    num_layers=v.num_layers, hidden_size=v.hidden_size, normalize=v.normalize,
                    padding_sensitive=v.padding_sensitive, device=device)
