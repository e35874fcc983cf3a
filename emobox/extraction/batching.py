"""Chunks and batches: which utterances are decoded, computed and written together.

A *chunk* is a run of consecutive utterances in manifest order; it is the unit written to the
store (and the unit a killed extraction resumes from). Its boundaries depend only on the audio
lengths from the chunk's start, so a resumed extraction cuts the same chunks. Within a chunk,
utterances are sorted by length and grouped into *batches* whose padded cost stays within an
audio-seconds budget; a ``padding_sensitive`` upstream only ever gets equal lengths in a batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Plan:
    """The settings that decide chunk and batch boundaries (recorded in the store's journal)."""

    sample_rate: int
    batch_seconds: float  # padded audio seconds per batch (at least one utterance per batch)
    chunk_seconds: float  # audio seconds per chunk (at least one utterance per chunk)
    chunk_items: int = 4096  # utterances per chunk at most
    max_padding: float = 0.05  # a batch's longest input is at most this much longer than its shortest
    padding_sensitive: bool = False
    max_seconds: float | None = None  # the upstream pads/windows every input to this length

    def to_dict(self) -> dict:
        return asdict(self)

    def cost(self, num_samples: int) -> float:
        """Audio seconds the upstream actually computes for one input of ``num_samples``."""
        seconds = num_samples / self.sample_rate
        if self.max_seconds:
            return max(1, math.ceil(seconds / self.max_seconds)) * self.max_seconds
        return seconds


def plan_batches(lengths: list[int], plan: Plan) -> list[list[int]]:
    """Positions (into ``lengths``) grouped into batches, shortest first.

    Sorting is stable (ties keep their order), so the batches are a pure function of the lengths.
    Padded cost of a batch = its size x the cost of its longest input; padding never exceeds
    ``max_padding`` of the batch's shortest input (computed frames are not wasted on zeros).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current:
            longest = lengths[i]  # sorted: the newcomer is the longest
            fits = (len(current) + 1) * plan.cost(longest) <= plan.batch_seconds + 1e-9
            shortest = lengths[current[0]]
            same = shortest == longest
            tight = plan.cost(longest) <= (1 + plan.max_padding) * plan.cost(shortest) + 1e-9
            if fits and (same or (tight and not plan.padding_sensitive)):
                current.append(i)
                continue
            batches.append(current)
        current = [i]
    if current:
        batches.append(current)
    return batches


def chunk_full(n_items: int, seconds: float, plan: Plan) -> bool:
    return n_items >= plan.chunk_items or seconds >= plan.chunk_seconds
