"""SUPERB-style learned weighted sum of every upstream layer feeding the EmoBox head.

``softmax(w) . [x_0, ..., x_L]`` (one learned weight per layer, initialised equal) replaces the
single last layer, then Linear -> ReLU -> mean pooling over real frames -> Linear as in
``linear_probe``. The head's spec declares ``layers="all"``: it receives every layer stacked,
``features [L, B, T, D]`` or packed ``frames [L, N, D]``, each layer normalised on its own as
``--feature-norm`` says (by default once per utterance, as EmoBox normalised every layer).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from emobox.training.downstream import Downstream, masked_mean, segment_mean


class WeightedSumProbe(Downstream):
    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, n_layers: int = 1):
        super().__init__()
        if n_layers < 1:
            raise ValueError("weighted_sum needs at least one layer")
        self.layer_weights = nn.Parameter(torch.zeros(n_layers))
        self.proj = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def mix(self, stacked: torch.Tensor) -> torch.Tensor:
        """``[L, ...]`` -> ``[...]``: the softmax-weighted sum over the layer axis."""
        if stacked.shape[0] != self.layer_weights.shape[0]:
            raise ValueError(f"weighted_sum was built for {self.layer_weights.shape[0]} layers, "
                             f"got {stacked.shape[0]}")
        w = torch.softmax(self.layer_weights, 0).to(stacked.dtype)
        return torch.tensordot(w, stacked, dims=1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.out(masked_mean(torch.relu(self.proj(self.mix(features))), lengths))

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.proj(self.mix(frames)))
        return self.out(segment_mean(hidden, segments, lengths).to(self.out.weight.dtype))

    @classmethod
    def fuse(cls, heads: Sequence["WeightedSumProbe"]) -> "FusedWeightedSums":
        return FusedWeightedSums(heads)


class FusedWeightedSums(nn.Module):
    """Several weighted-sum heads on the same stacked frames: the layers are read once for all
    configurations (one ``[K, L] x [L, N*D]`` product gives every configuration's mix)."""

    def __init__(self, heads: Sequence[WeightedSumProbe]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        n_layers, n, d = frames.shape
        weights = torch.stack([torch.softmax(h.layer_weights, 0) for h in self.heads])
        mixed = (weights.to(frames.dtype) @ frames.reshape(n_layers, n * d)).reshape(-1, n, d)
        outs = []
        for head, x in zip(self.heads, mixed):
            hidden = torch.relu(head.proj(x))
            pooled = segment_mean(hidden, segments, lengths).to(head.out.weight.dtype)
            outs.append(head.out(pooled))
        return torch.stack(outs)
