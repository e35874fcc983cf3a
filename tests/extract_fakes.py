"""Small upstreams and corpora for the extraction tests (imported by tests and subprocesses)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import emobox
from emobox.datasets.manifest import Manifest, Utterance
from emobox.extraction.upstream import Upstream, UpstreamOutput, pad_batch


class Interrupt(Exception):
    """Raised by a fake to simulate a crash in the middle of an extraction."""


class FrameUpstream(Upstream):
    """Cheap deterministic features: per 10-ms frame, energy and mean times fixed vectors.

    Layer L multiplies by (L + 1). Records the input lengths of every call; ``fail_after``
    raises :class:`Interrupt` on that call (counting from 1).
    """

    name = "toy_frames"
    frame_rate = 100.0
    checkpoint_id = "toy-frames-v1"

    def __init__(self, dim: int = 8, num_layers: int = 3, padding_sensitive: bool = False,
                 fail_after: int | None = None, max_seconds: float | None = None):
        super().__init__()
        self.hidden_size = dim
        self.num_layers = num_layers
        self.padding_sensitive = padding_sensitive
        self.max_seconds = max_seconds
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("a", torch.randn(dim, generator=gen))
        self.register_buffer("b", torch.randn(dim, generator=gen))
        self.calls: list[list[int]] = []
        self.layer_calls: list[list[int]] = []
        self.fail_after = fail_after

    def frames_for(self, num_samples: int) -> int:
        return max(1, num_samples // 160)

    def flops(self, num_samples: int) -> float:
        return 4.0 * self.frames_for(num_samples) * self.hidden_size

    def forward(self, wavs: Sequence[torch.Tensor], layers: Sequence[int]) -> UpstreamOutput:
        self.calls.append([int(w.shape[0]) for w in wavs])
        self.layer_calls.append(list(layers))
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise Interrupt(f"injected failure at call {len(self.calls)}")
        n = [self.frames_for(int(w.shape[0])) for w in wavs]
        out = torch.zeros(len(wavs), max(n), self.hidden_size)
        for i, w in enumerate(wavs):
            fr = w[: n[i] * 160].reshape(n[i], -1) if w.shape[0] >= 160 else w.reshape(1, -1)
            energy = fr.pow(2).mean(1, keepdim=True).sqrt()
            mean = fr.mean(1, keepdim=True)
            out[i, : n[i]] = energy * self.a + mean * self.b
        hidden = {L: out * (L + 1) for L in layers}
        return UpstreamOutput(hidden, torch.tensor(n))


class TinyHF(Upstream):
    """A tiny random wav2vec2-style transformers model (layer-norm or group-norm CNN)."""

    frame_rate = 50.0

    def __init__(self, norm: str = "layer", seed: int = 0, arch: str = "wav2vec2"):
        super().__init__()
        from transformers import (Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel)

        torch.manual_seed(seed)
        cls, cfg_cls = (WavLMModel, WavLMConfig) if arch == "wavlm" else (Wav2Vec2Model,
                                                                          Wav2Vec2Config)
        cfg = cfg_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
                      do_stable_layer_norm=norm == "layer", hidden_dropout=0.0,
                      attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
                      layerdrop=0.0, mask_time_prob=0.0)
        self.model = cls(cfg).eval()
        self.name = f"tiny_{arch}_{norm}"
        self.num_layers = 2
        self.hidden_size = 32
        self.padding_sensitive = norm == "group"
        self.checkpoint_id = f"random-seed{seed}"

    def forward(self, wavs: Sequence[torch.Tensor], layers: Sequence[int]) -> UpstreamOutput:
        x, lengths = pad_batch(wavs)
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).long()
        out = self.model(x, attention_mask=None if self.padding_sensitive else mask,
                         output_hidden_states=True)
        frames = self.model._get_feat_extract_output_lengths(lengths).long()
        return UpstreamOutput({L: out.hidden_states[L] for L in layers}, frames)


def tone_corpus(root: Path, seconds: Sequence[float], name: str = "toy",
                seed: int = 0) -> Manifest:
    """WAV files of noisy tones of the given lengths, and their manifest."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for i, sec in enumerate(seconds):
        n = int(round(sec * 16000))
        t = np.arange(n) / 16000
        x = 0.3 * np.sin(2 * np.pi * (150 + 20 * i) * t) + 0.05 * rng.standard_normal(n)
        path = root / f"utt{i:03d}.wav"
        sf.write(str(path), x.astype(np.float32), 16000)
        utts.append(Utterance(key=f"utt{i:03d}", path=path.name, label="a" if i % 2 else "b",
                              speaker=f"s{i % 3}"))
    return Manifest(name, root, utts)


def store_files(path: Path) -> dict[str, bytes]:
    """Every content file of a store (the session history excluded), by name."""
    return {p.name: p.read_bytes() for p in sorted(Path(path).iterdir())
            if p.is_file() and p.name not in ("sessions.jsonl", ".lock")}


class TinyLayersPlugin:
    """A fake three-layer upstream (layers 0..2) registered in-process."""

    @emobox.hookimpl
    def emobox_upstreams(self):
        return [emobox.UpstreamSpec(name="tiny_layers", build=build_tiny_layers, num_layers=2,
                                    hidden_size=6, frame_rate=50.0,
                                    description="test: frame statistics and two tanh layers")]


def build_tiny_layers(ckpt=None, device="cpu", **options):
    import torch

    from emobox.extraction.upstream import Upstream, UpstreamOutput

    class TinyLayers(Upstream):
        name, num_layers, hidden_size, frame_rate = "tiny_layers", 2, 6, 50.0
        checkpoint_id = "tiny-layers-v1"

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.mixes = [torch.randn(6, 6, generator=g) / 2 for _ in range(2)]

        def forward(self, wavs, layers):
            feats = []
            for w in wavs:
                fr = w[: len(w) // 320 * 320].reshape(-1, 320)
                d1, d2 = fr.diff(dim=1), fr.diff(n=2, dim=1)
                feats.append(torch.stack([
                    fr.pow(2).mean(1).add(1e-8).log(), d1.pow(2).mean(1).add(1e-8).log(),
                    d2.pow(2).mean(1).add(1e-8).log(), fr.abs().max(1).values,
                    (fr[:, 1:] * fr[:, :-1] < 0).float().mean(1), fr.mean(1)], dim=1))
            lengths = torch.tensor([len(f) for f in feats])
            hidden = {0: torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)}
            for layer in range(1, max(layers) + 1):
                hidden[layer] = torch.tanh(hidden[layer - 1] @ self.mixes[layer - 1])
            return UpstreamOutput({L: hidden[L] for L in layers}, lengths)

    return TinyLayers()
