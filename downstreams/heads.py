"""Plugin: the built-in downstream heads."""

from __future__ import annotations

from emobox import DownstreamSpec, hookimpl

EMOBOX_GRID = {"lr": [1e-3, 1e-4], "hidden": [128, 256]}


def _build_linear_probe(in_dim: int, n_classes: int, hidden: int = 256):
    from .linear_probe import LinearProbe

    return LinearProbe(in_dim, n_classes, hidden=hidden)


@hookimpl
def emobox_downstreams():
    return [
        DownstreamSpec(
            name="linear_probe", build=_build_linear_probe, grid=EMOBOX_GRID,
            description="EmoBox head: Linear -> ReLU -> masked mean pooling -> Linear",
            paper="Ma et al., EmoBox, Interspeech 2024 (section 3.1)"),
    ]
