"""The EmoBox downstream head: Linear -> ReLU -> mean pooling over real frames -> Linear."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from emobox.training.downstream import Downstream, masked_mean, segment_mean
from emobox.training.fused import FusedFirstLayers


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

    The heads keep their own parameters (so each has its own optimiser settings); their first
    layers become row blocks of one fused weight (no per-step concatenation), the frames are read
    once, and each head's classifier reads its slice of the pooled hidden units. Float32 frames
    give float32 arithmetic throughout; bfloat16 frames run the frame-level matmuls in bfloat16.
    """

    def __init__(self, heads: Sequence[LinearProbe]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.first = FusedFirstLayers([h.proj for h in heads])
        self.sizes = self.first.sizes

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        with torch.autocast(frames.device.type, enabled=False):
            pooled = self.first.relu_mean(frames, lengths)
            parts = torch.split(pooled, self.sizes, dim=1)
            return torch.stack([h.out(p) for h, p in zip(self.heads, parts)])
