"""Attentive statistics pooling head (Okabe, Koshinaka and Shinoda, Interspeech 2018).

Linear -> ReLU gives frame vectors h_t; a small attention network scores every frame,
``e_t = v . tanh(A h_t + a)``; the scores are normalised over the utterance's real frames,
``alpha = softmax(e)``, and pooled into the attention-weighted mean and standard deviation,
``mu = sum_t alpha_t h_t`` and ``sigma = sqrt(sum_t alpha_t h_t^2 - mu^2)``, which a Linear maps
to the classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from emobox.training.downstream import Downstream, masked_softmax, segment_softmax, segment_sum
from emobox.training.fused import FusedFirstLayers

VARIANCE_FLOOR = 1e-5


class AttentiveStatsProbe(Downstream):
    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, attention: int = 128):
        super().__init__()
        self.proj = nn.Linear(in_dim, hidden)
        self.attend = nn.Sequential(nn.Linear(hidden, attention), nn.Tanh(),
                                    nn.Linear(attention, 1))
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.proj(features))  # [B, T, H]
        alpha = masked_softmax(self.attend(hidden), lengths)  # [B, T, 1]
        mean = (alpha * hidden).sum(1)
        power = (alpha * hidden * hidden).sum(1)
        return self.out(_stats(mean, power))

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        return self.pool_packed(torch.relu(self.proj(frames)), segments, lengths)

    def pool_packed(self, hidden: torch.Tensor, segments: torch.Tensor,
                    lengths: torch.Tensor) -> torch.Tensor:
        """Logits from frame vectors ``hidden [N, H]`` (after the first layer and ReLU)."""
        alpha = segment_softmax(self.attend(hidden).float(), segments, lengths)  # [N, 1]
        weighted = alpha * hidden.float()
        mean = segment_sum(weighted, lengths, segments)
        power = segment_sum(weighted * hidden.float(), lengths, segments)
        return self.out(_stats(mean, power))

    @classmethod
    def fuse(cls, heads: Sequence["AttentiveStatsProbe"]) -> "FusedAttentiveStats":
        return FusedAttentiveStats(heads)


def _stats(mean: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    std = torch.sqrt((power - mean * mean).clamp(min=VARIANCE_FLOOR))
    return torch.cat([mean, std], dim=-1)


class FusedAttentiveStats(nn.Module):
    """Several attentive heads: one fused first layer (each frame read once), then each
    configuration's attention and statistics on its slice of the hidden units."""

    def __init__(self, heads: Sequence[AttentiveStatsProbe]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.first = FusedFirstLayers([h.proj for h in heads])

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.first.linear(frames))
        parts = torch.split(hidden, self.first.sizes, dim=1)
        return torch.stack([h.pool_packed(p, segments, lengths)
                            for h, p in zip(self.heads, parts)])
