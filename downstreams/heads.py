"""Plugin: the built-in downstream heads."""

from __future__ import annotations

from emobox import DownstreamSpec, HParam, hookimpl

# The EmoBox paper's sweep (section 3.1): learning rate x hidden size.
EMOBOX_GRID = {"lr": [1e-3, 1e-4], "hidden": [128, 256]}

# what the grid may set (lr and weight_decay are the trainer's, declared by emobox)
HIDDEN = HParam(int, 1, 16384, description="width of the frame-level hidden layer")
HPARAMS = {"hidden": HIDDEN}
ATTENTIVE_HPARAMS = {"hidden": HIDDEN,
                     "attention": HParam(int, 1, 16384,
                                         description="width of the attention network")}


def _build_linear_probe(in_dim: int, n_classes: int, hidden: int = 256):
    from .linear_probe import LinearProbe

    return LinearProbe(in_dim, n_classes, hidden=hidden)


def _build_weighted_sum(in_dim: int, n_classes: int, hidden: int = 256, n_layers: int = 1):
    from .weighted_sum import WeightedSumProbe

    return WeightedSumProbe(in_dim, n_classes, hidden=hidden, n_layers=n_layers)


def _build_attentive(in_dim: int, n_classes: int, hidden: int = 256, attention: int = 128):
    from .attentive import AttentiveStatsProbe

    return AttentiveStatsProbe(in_dim, n_classes, hidden=hidden, attention=attention)


@hookimpl
def emobox_downstreams():
    return [
        DownstreamSpec(
            name="linear_probe", build=_build_linear_probe, grid=EMOBOX_GRID,
            hparams=HPARAMS,
            description="EmoBox head: Linear -> ReLU -> masked mean pooling -> Linear",
            paper="Ma et al., EmoBox, Interspeech 2024 (section 3.1)"),
        DownstreamSpec(
            name="weighted_sum", build=_build_weighted_sum, grid=EMOBOX_GRID, layers="all",
            hparams=HPARAMS,
            description="learned softmax weights over every layer (SUPERB), then the EmoBox "
                        "head",
            paper="Yang et al., SUPERB, Interspeech 2021"),
        DownstreamSpec(
            name="attentive", build=_build_attentive, grid=EMOBOX_GRID,
            hparams=ATTENTIVE_HPARAMS,
            description="Linear -> ReLU -> attentive statistics pooling (mean and std) -> "
                        "Linear",
            paper="Okabe et al., Attentive statistics pooling for deep speaker embedding, "
                  "Interspeech 2018"),
    ]
