"""The :class:`emobox.Upstream` around :class:`Data2Vec2Encoder`, and checkpoint file choice."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from emobox.errors import CheckpointNotFoundError, EmoboxUsageError
from emobox.extraction.upstream import (LayersGraph, Upstream, UpstreamOutput, pad_batch,
                                        padding_mask)

from .ckpt import is_converted
from .variants import VARIANTS
from .net import D2v2Config, Data2Vec2Encoder, conv_output_length, receptive_field


def preset(name: str) -> D2v2Config:
    """The architecture assumed where a checkpoint does not say (its shapes always win)."""
    return dataclasses.replace(D2v2Config(), **VARIANTS[name][1])


def checkpoint_file(found: Path, name: str, file_names: Sequence[str]) -> Path:
    """The checkpoint to read in ``found``: the file itself, a converted folder, or the one
    released ``.pt`` file a folder holds."""
    found = Path(found)
    if found.is_file() or is_converted(found):
        return found
    candidates = sorted(p for p in found.iterdir() if p.is_file() and p.suffix in (".pt", ".pth"))
    for known in file_names:
        if found / known in candidates:
            return found / known
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CheckpointNotFoundError(
            f"{found}: holds no {name} checkpoint (expected {' or '.join(file_names)}, any .pt "
            f"file, or config.json + model.safetensors written by the converter)")
    raise EmoboxUsageError(f"{found}: several checkpoints ({', '.join(p.name for p in candidates)})"
                           f"; pass the one to use with --upstream-ckpt")


class Data2Vec2Upstream(Upstream):
    """data2vec 2.0 / emotion2vec features: 50 frames/s, layer 0 = input of the first block.

    Inputs shorter than the CNN's receptive field (400 samples, 25 ms) are zero-padded to it
    after normalisation and give one frame.
    """

    def __init__(self, name: str, encoder: Data2Vec2Encoder, checkpoint_id: str):
        super().__init__()
        cfg = encoder.cfg
        self.name = name
        self.encoder = encoder
        self.num_layers = cfg.num_layers
        self.hidden_size = cfg.embed_dim
        self.frame_rate = self.sample_rate / cfg.downsample
        self.padding_sensitive = cfg.padding_sensitive
        self.checkpoint_id = checkpoint_id
        self.min_samples = receptive_field(cfg.conv_layers)

    def _prepare(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.to(self.device, torch.float32).reshape(-1)
        if self.encoder.cfg.normalize and wav.numel() > 0:
            wav = F.layer_norm(wav, wav.shape)
        if wav.numel() < self.min_samples:
            wav = F.pad(wav, (0, self.min_samples - wav.numel()))
        return wav

    def forward(self, wavs: Sequence[torch.Tensor], layers) -> UpstreamOutput:
        layers = self.resolve_layers(layers)
        if len(wavs) == 0:
            raise EmoboxUsageError(f"{self.name}: no waveforms to encode")
        batch, lengths = pad_batch([self._prepare(w) for w in wavs])
        if self.runtime is not None:  # --runtime openvino
            frames = self.encoder.frame_lengths(lengths)
            mask = padding_mask(lengths, batch.shape[1])
            hidden = self.runtime(self, sorted(layers), batch, mask)
        else:
            hidden, frames = self.encoder(batch, lengths, layers)
        return UpstreamOutput({layer: hidden[layer] for layer in layers}, frames.long().cpu())

    def graph(self, layers: Sequence[int], masked: bool) -> torch.nn.Module | None:
        """The encoder on a normalised, zero-padded batch ``[B, S]`` (and, when ``masked``,
        its int64 mask of real samples) for another runtime; the waveform normalisation
        stays with torch."""
        encoder = self.encoder
        return LayersGraph(encoder, layers, lambda wav, mask, wanted: encoder.hidden_states(
            wav, None if mask is None else encoder.frame_lengths(mask.sum(dim=1)), wanted,
            traced=True))

    def frames_for(self, num_samples: int) -> int:
        return conv_output_length(max(int(num_samples), self.min_samples),
                                  self.encoder.cfg.conv_layers)

    def flops(self, num_samples: int) -> float:
        return self.encoder.flops(max(int(num_samples), self.min_samples))
