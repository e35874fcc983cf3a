"""The EmoBox downstream head: Linear -> ReLU -> mean pooling over real frames -> Linear."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from emobox.downstream import Downstream, masked_mean, segment_mean


class LinearProbe(Downstream):
    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.proj = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.out(masked_mean(torch.relu(self.proj(features)), lengths))

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        return self.out(segment_mean(torch.relu(self.proj(frames)), segments, lengths))

    @classmethod
    def fuse(cls, heads: Sequence["LinearProbe"]) -> "FusedLinearProbes":
        return FusedLinearProbes(heads)


class FusedLinearProbes(nn.Module):
    """Several linear probes on the same frames: one matmul to all hidden units at once.

    The heads keep their own parameters (so each has its own optimiser settings); the first
    layers are concatenated on the fly, the frames are read once, and each head's classifier
    reads its slice of the pooled hidden units.
    """

    def __init__(self, heads: Sequence[LinearProbe]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.sizes = [h.proj.out_features for h in heads]

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([h.proj.weight for h in self.heads])
        bias = torch.cat([h.proj.bias for h in self.heads])
        hidden = torch.relu(nn.functional.linear(frames, weight, bias))
        pooled = segment_mean(hidden, segments, lengths)
        parts = torch.split(pooled, self.sizes, dim=1)
        return torch.stack([h.out(p) for h, p in zip(self.heads, parts)])
