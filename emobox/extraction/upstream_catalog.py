"""Listing, inspecting and converting upstreams: the library twin of ``emobox upstreams``.

- :func:`list_upstreams` -> the specs (optionally filtered by a glob pattern);
- :func:`upstream_info` -> what an upstream is (layers, width, frame rate, parameters, paper,
  checkpoint, build options) and whether its weights are on this machine, without loading them;
- :func:`convert_checkpoint` -> run the upstream's converter (e.g. a CTranslate2 Whisper model to
  a transformers folder) and return the folder written.

Everything goes through the specs' ``locate``/``convert`` callables: the core names no plugin.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emobox.errors import CheckpointNotFoundError, EmoboxUsageError
from emobox.plugin.registry import Registry, get_registry
from emobox.plugin.specs import UpstreamSpec


@dataclass
class WeightsStatus:
    state: str  # "present" | "missing" | "not needed" | "unknown"
    path: str = ""
    message: str = ""


@dataclass
class UpstreamInfo:
    spec: UpstreamSpec
    weights: WeightsStatus
    fields: dict[str, Any] = field(default_factory=dict)


def parameter_count(spec: Any, upstream: Any = None) -> int | None:
    """The parameter count of an upstream, the one number every output shows (``upstreams
    list``/``info``, a run's ``config.json``, submissions and so the leaderboard): the count the
    spec declares (``UpstreamSpec.parameters``, e.g. Whisper's learnable encoder parameters,
    its fixed position table left out); else, given the built ``upstream``, the number of
    elements of its parameters; else None."""
    declared = getattr(spec, "parameters", None)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    if upstream is not None and hasattr(upstream, "parameters"):
        counted = sum(int(p.numel()) for p in upstream.parameters())
        return counted or None
    return None


def list_upstreams(pattern: str | None = None, registry: Registry | None = None
                   ) -> list[UpstreamSpec]:
    specs = (registry or get_registry()).specs("upstream")
    if pattern:
        # a glob ('whisper*') or a part of the name ('tiny'): both match
        specs = [s for s in specs if fnmatch.fnmatchcase(s.name, pattern)
                 or fnmatch.fnmatchcase(s.name, f"*{pattern}*")]
    return specs


def weights_status(spec: UpstreamSpec, ckpt: str | None = None) -> WeightsStatus:
    """Whether ``spec``'s weights are on this machine (never loads them, never downloads)."""
    if spec.locate is None:
        if not spec.checkpoint:
            return WeightsStatus("not needed")
        return WeightsStatus("unknown", message="the plugin cannot tell before building")
    try:
        path = spec.locate(ckpt=ckpt)
    except CheckpointNotFoundError as exc:
        return WeightsStatus("missing", message=str(exc))
    return WeightsStatus("present", path=str(path))


def upstream_info(name: str, ckpt: str | None = None, registry: Registry | None = None
                  ) -> UpstreamInfo:
    spec = (registry or get_registry()).upstream(name)
    status = weights_status(spec, ckpt)
    fields: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "description": spec.description,
        "layers": (f"0..{spec.num_layers} (default {spec.num_layers}, the encoder output; "
                   f"numbering: README 'Upstreams')" if spec.num_layers else "0 (the only one)"),
        "hidden size": spec.hidden_size, "frame rate": f"{spec.frame_rate:g} Hz",
        "sample rate": f"{spec.sample_rate} Hz",
        "parameters": f"{parameter_count(spec):,}" if parameter_count(spec) else "-",
        "paper": spec.paper or "-", "license": spec.license or "-",
        "checkpoint": (spec.checkpoint + (f"@{spec.revision}" if spec.revision else "")
                       ) or "none needed",
        "weights": {"present": f"present: {status.path}", "missing": "missing",
                    "not needed": "not needed", "unknown": "unknown"}[status.state],
        "trained on": ", ".join(spec.trained_on) or "-",
        "options": "; ".join(f"{k}: {v}" for k, v in spec.options.items()) or "-",
        "converter": "yes (`emobox upstreams convert`)" if spec.convert else "-",
        "plugin": f"{spec.plugin} ({spec.distribution or '-'} {spec.version or ''})".strip(),
    }
    if spec.describe is not None:
        fields.update({str(k): str(v) for k, v in dict(spec.describe(ckpt=ckpt)).items()})
    return UpstreamInfo(spec, status, fields)


def convert_checkpoint(name: str, source: str | None = None, out: str | None = None,
                       overwrite: bool = False, registry: Registry | None = None) -> Path:
    spec = (registry or get_registry()).upstream(name)
    if spec.convert is None:
        convertible = [s.name for s in list_upstreams(registry=registry) if s.convert]
        raise EmoboxUsageError(f"{name} has no checkpoint converter; upstreams with one: "
                               f"{', '.join(convertible) or 'none'}")
    return Path(spec.convert(source=source, out=out, overwrite=overwrite))
