"""emobox plugin: ``example_head``, a BiLSTM with masked attention pooling, and its grid.

Imported whenever emobox lists plugins, so it stays light: the torch module is in ``head.py`` and
imported inside :func:`build`.
"""

from __future__ import annotations

import emobox

__version__ = "0.1.2"

GRID = {"lr": [1e-3, 3e-4], "hidden": [32, 64]}
# what --grid may set besides the trainer's lr and weight_decay: emobox checks every value
# against these before anything runs
HPARAMS = {"hidden": emobox.HParam(int, 1, 4096, description="LSTM units per direction"),
           "layers": emobox.HParam(int, 1, 8, description="stacked BiLSTM layers"),
           "dropout": emobox.HParam(float, 0.0, 0.9, description="dropout between layers")}


def build(in_dim: int, n_classes: int, hidden: int = 64, layers: int = 1, dropout: float = 0.1):
    from .head import LstmAttentionHead

    return LstmAttentionHead(in_dim, n_classes, hidden=hidden, layers=layers, dropout=dropout)


@emobox.hookimpl
def emobox_downstreams() -> list[emobox.DownstreamSpec]:
    return [emobox.DownstreamSpec(
        name="example_head", build=build, grid=GRID, hparams=HPARAMS,
        description="example plugin: BiLSTM -> masked attention pooling -> Linear",
        paper="Mirsamadi et al., Automatic speech emotion recognition using recurrent neural "
              "networks with local attention, ICASSP 2017")]
