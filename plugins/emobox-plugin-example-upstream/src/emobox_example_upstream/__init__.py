"""emobox plugin: ``example_upstream``, a small seeded convolutional encoder (no weights needed).

This module is what the entry point names. emobox imports it to list plugins, so it imports
nothing heavy: torch and the model are imported inside :func:`build`.
"""

from __future__ import annotations

from typing import Any

import emobox

__version__ = "0.3.0"

NAME = "example_upstream"
OPTIONS = ("hidden", "layers", "channels", "kernel", "seed")


def build(ckpt: str | None = None, device: str = "cpu", **options: Any):
    """The encoder: seeded weights, or the checkpoint at ``ckpt`` (``--upstream-ckpt``)."""
    from .encoder import ConvEncoder

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise emobox.EmoboxUsageError(f"{NAME}: unknown option {unknown[0]!r}; options: "
                                      f"{', '.join(OPTIONS)}")
    if ckpt:
        model = ConvEncoder.load(emobox.find_checkpoint(NAME, ckpt), **options)
    else:
        model = ConvEncoder(**options)
    return model.to(device).eval()


@emobox.hookimpl
def emobox_upstreams() -> list[emobox.UpstreamSpec]:
    return [emobox.UpstreamSpec(
        name=NAME, build=build, family="example",
        description="example plugin: seeded 7-conv feature encoder + 4 residual conv blocks, "
                    "64-dim, 50 Hz (no weights needed)",
        sample_rate=16000, num_layers=4, hidden_size=64, frame_rate=50.0,
        parameters=139_712, license="MIT",
        paper="Baevski et al., wav2vec 2.0, NeurIPS 2020 (the feature encoder's shape)")]
