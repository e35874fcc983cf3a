"""The downstream contract: a small head from frame features to class logits.

A head is an ``nn.Module`` built by its spec as ``build(in_dim, n_classes, **hp)`` whose
``forward(features [B, T, D], lengths [B]) -> logits [B, C]`` ignores frames past each length.

The trainer feeds heads *packed* frames (no padding): ``forward_packed(frames [N, D],
segments [N], lengths [B]) -> logits [B, C]`` where ``segments[i]`` is the utterance of frame i.
The default implementation pads and calls ``forward``; heads that pool can do better. A head
class may also provide ``fuse(heads) -> nn.Module`` returning one module that runs several
configurations of the head on the same frames (``forward_packed`` of the fused module returns
``[K, B, C]``), so that a hyper-parameter sweep reads each frame once.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Downstream(nn.Module):
    """Base class of downstream heads (subclassing it is optional: the contract is the methods)."""

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        padded = unpack(frames, segments, lengths)
        return self(padded, lengths)

    @classmethod
    def fuse(cls, heads: Sequence[nn.Module]) -> nn.Module | None:
        return None


def segment_ids(lengths: torch.Tensor) -> torch.Tensor:
    """``[0]*l0 + [1]*l1 + ...`` for utterance lengths ``[B]``."""
    return torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)


def segment_mean(values: torch.Tensor, segments: torch.Tensor,
                 lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [N, H]`` over the frames of each segment: ``[B, H]``."""
    out = values.new_zeros((len(lengths),) + tuple(values.shape[1:]))
    out.index_add_(0, segments, values)
    return out / lengths.clamp(min=1).to(values.dtype).unsqueeze(-1)


def masked_mean(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the first ``lengths[b]`` frames of ``features [B, T, H]``: ``[B, H]``."""
    t = torch.arange(features.shape[1], device=features.device)
    mask = (t[None, :] < lengths[:, None]).to(features.dtype).unsqueeze(-1)
    return (features * mask).sum(1) / lengths.clamp(min=1).to(features.dtype).unsqueeze(-1)


def unpack(frames: torch.Tensor, segments: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Packed frames ``[N, ...]`` to zero-padded ``[B, T, ...]``."""
    starts = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(len(segments), device=frames.device) - starts[segments]
    out = frames.new_zeros((len(lengths), int(lengths.max())) + tuple(frames.shape[1:]))
    out[segments, pos] = frames
    return out


class GridOfHeads(nn.Module):
    """Several heads run on the same packed frames; ``forward_packed`` returns ``[K, B, C]``."""

    def __init__(self, heads: Sequence[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        outs = []
        padded = None
        for head in self.heads:
            if hasattr(head, "forward_packed"):
                outs.append(head.forward_packed(frames, segments, lengths))
            else:
                if padded is None:
                    padded = unpack(frames, segments, lengths)
                outs.append(head(padded, lengths))
        return torch.stack(outs)


def fuse_heads(heads: Sequence[nn.Module]) -> nn.Module:
    """The fastest module running every head: the head class's own ``fuse`` or a plain grid."""
    cls = type(heads[0])
    if all(type(h) is cls for h in heads) and hasattr(cls, "fuse"):
        fused = cls.fuse(heads)
        if fused is not None:
            return fused
    return GridOfHeads(heads)
