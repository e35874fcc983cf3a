"""The downstream contract: a small head from frame features to class logits.

A head is an ``nn.Module`` built by its spec as ``build(in_dim, n_classes, **hp)`` whose
``forward(features [B, T, D], lengths [B]) -> logits [B, C]`` ignores frames past each length.

The trainer feeds heads *packed* frames (no padding): ``forward_packed(frames [N, D],
segments [N], lengths [B]) -> logits [B, C]`` where ``segments[i]`` is the utterance of frame i.
The default implementation pads and calls ``forward``; heads that pool can do better. A head
class may also provide ``fuse(heads) -> nn.Module`` returning one module that runs several
configurations of the head on the same frames (``forward_packed`` of the fused module returns
``[K, B, C]``), so that a hyper-parameter sweep reads each frame once.

Heads whose spec declares ``layers="all"`` receive every layer stacked on a new leading axis:
``features [L, B, T, D]`` and packed ``frames [L, N, D]`` (segments and lengths unchanged).

Packed frames are always in utterance order (the frames of utterance 0, then of utterance 1, ...),
so segment reductions work on contiguous runs of rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


class Downstream(nn.Module):
    """Base class of downstream heads (subclassing it is optional: the contract is the methods)."""

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_packed(self, frames: torch.Tensor, segments: torch.Tensor,
                       lengths: torch.Tensor) -> torch.Tensor:
        padded = unpack(frames, segments, lengths, frame_dim=frames.dim() - 2)
        return self(padded, lengths)

    @classmethod
    def fuse(cls, heads: Sequence[nn.Module]) -> nn.Module | None:
        return None


def segment_ids(lengths: torch.Tensor) -> torch.Tensor:
    """``[0]*l0 + [1]*l1 + ...`` for utterance lengths ``[B]``."""
    if lengths.device.type == "cpu":  # numpy: no thread pool wake-up for a tiny job
        n = lengths.numpy()
        return torch.from_numpy(np.repeat(np.arange(len(n), dtype=np.int64), n))
    return torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)


def segment_sum(values: torch.Tensor, lengths: torch.Tensor,
                segments: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of ``values [N, ...]`` over each run of ``lengths[b]`` consecutive rows: ``[B, ...]``.

    Empty segments sum to zero. Differentiable. ``segments`` (``segment_ids(lengths)``) may be
    passed when the caller has it. Half-precision values are summed (and returned) in float32.
    """
    if values.dtype in (torch.bfloat16, torch.float16):
        values = values.float()
    if segments is None:
        segments = segment_ids(lengths)
    out = values.new_zeros((len(lengths),) + tuple(values.shape[1:]))
    return out.index_add(0, segments, values)


def segment_mean(values: torch.Tensor, segments: torch.Tensor,
                 lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [N, H]`` over the frames of each segment: ``[B, H]``.

    ``segments`` is the segment of each row (``segment_ids(lengths)``).
    """
    total = segment_sum(values, lengths, segments)
    return total / lengths.clamp(min=1).to(total.dtype).unsqueeze(-1)


def segment_softmax(scores: torch.Tensor, segments: torch.Tensor,
                    lengths: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores [N, ...]`` over the frames of each segment (numerically stable)."""
    peak = torch.segment_reduce(scores.detach(), "max", lengths=lengths, axis=0)
    peak = torch.nan_to_num(peak, neginf=0.0)  # empty segments
    e = torch.exp(scores - peak.index_select(0, segments))
    total = segment_sum(e, lengths, segments)
    return e / total.index_select(0, segments)


def masked_softmax(scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores [B, T, ...]`` over the first ``lengths[b]`` frames (0 beyond)."""
    t = torch.arange(scores.shape[1], device=scores.device)
    mask = t[None, :] < lengths[:, None]
    mask = mask.reshape(mask.shape + (1,) * (scores.dim() - 2))
    masked = scores.masked_fill(~mask, float("-inf"))
    return torch.nan_to_num(torch.softmax(masked, dim=1), nan=0.0)


def masked_mean(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the first ``lengths[b]`` frames of ``features [B, T, H]``: ``[B, H]``."""
    t = torch.arange(features.shape[1], device=features.device)
    mask = (t[None, :] < lengths[:, None]).to(features.dtype).unsqueeze(-1)
    return (features * mask).sum(1) / lengths.clamp(min=1).to(features.dtype).unsqueeze(-1)


def unpack(frames: torch.Tensor, segments: torch.Tensor, lengths: torch.Tensor,
           frame_dim: int = 0) -> torch.Tensor:
    """Packed frames to zero-padded ones: ``[N, ...]`` -> ``[B, T, ...]``.

    ``frame_dim`` is the axis of the frames: 1 for stacked layers ``[L, N, D]`` -> ``[L, B, T, D]``.
    """
    if frame_dim:
        moved = frames.movedim(frame_dim, 0)
        return unpack(moved, segments, lengths).movedim((0, 1), (frame_dim, frame_dim + 1))
    starts = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(len(segments), device=frames.device) - starts[segments]
    t_max = int(lengths.max()) if len(lengths) else 0
    out = frames.new_zeros((len(lengths), t_max) + tuple(frames.shape[1:]))
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
                    padded = unpack(frames, segments, lengths, frame_dim=frames.dim() - 2)
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
