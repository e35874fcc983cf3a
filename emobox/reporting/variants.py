"""Variants of one (upstream, corpus, downstream) triple: runs that differ in layer, precision,
recipe or other options become separate, labelled report rows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# config.json keys that make two runs of one triple different variants, with a short label each.
VARIANT_KEYS = ("layer", "precision", "train_precision", "recipe", "feature_norm", "schedule",
                "grad_clip", "upstream_options", "upstream_ckpt", "corpus_options", "select")


def _value(config: Mapping[str, Any], key: str) -> str:
    v = config.get(key)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return "" if v is None else str(v)


def _short(key: str, config: Mapping[str, Any]) -> str:
    v = config.get(key)
    if key == "layer":
        return f"layer {v}"
    if key in ("precision", "recipe", "feature_norm", "schedule"):
        return str(v) if key != "feature_norm" else f"norm {v}"
    if key == "train_precision":
        return f"train {v}"
    if key == "select":
        return f"select {v}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={x}" for k, x in sorted(v.items())) or f"no {key}"
    return f"{key} {v}"


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Every config key (fingerprints aside) whose value differs between two runs, as text."""
    skip = {"fingerprint", "created", "versions", "timings"}
    out = []
    for k in sorted(set(a) | set(b)):
        if k in skip:
            continue
        if _value(a, k) != _value(b, k):
            out.append(f"{k}: {_value(a, k) or '-'} vs {_value(b, k) or '-'}")
    return out


def labels(upstream: str, configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row label per config of one upstream: the upstream name, plus the values of the
    variant keys that differ between its runs, e.g. ``whisper_tiny_en (layer 3)``."""
    varying = [k for k in VARIANT_KEYS if len({_value(c, k) for c in configs}) > 1]
    if not varying:
        return [upstream] * len(configs)
    return [f"{upstream} ({', '.join(_short(k, c) for k in varying)})" for c in configs]
