"""emobox plugin: ``example_head``, a BiLSTM with masked attention pooling, and its grid.

Imported whenever emobox lists plugins, so it stays light: the torch module is in ``head.py`` and
imported inside :func:`build`.
"""

from __future__ import annotations

import emobox

__version__ = "0.1.2"

GRID = {"lr": [1e-3, 3e-4], "hidden": [32, 64]}


def build(in_dim: int, n_classes: int, hidden: int = 64, layers: int = 1, dropout: float = 0.1):
    from .head import LstmAttentionHead

    return LstmAttentionHead(in_dim, n_classes, hidden=hidden, layers=layers, dropout=dropout)


@emobox.hookimpl
def emobox_downstreams() -> list[emobox.DownstreamSpec]:
    return [emobox.DownstreamSpec(
        name="example_head", build=build, grid=GRID,
        description="example plugin: BiLSTM -> masked attention pooling -> Linear",
        paper="Mirsamadi et al., Automatic speech emotion recognition using recurrent neural "
              "networks with local attention, ICASSP 2017")]
