"""Kaldi-compatible log-mel filterbank and MFCC features in plain torch.

Matches Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats`` with ``--dither=0``: 25 ms
Povey window, 10 ms shift, ``snip_edges=true``, DC offset removal, pre-emphasis 0.97, FFT size
rounded up to a power of two, triangular mel banks on Kaldi's mel scale (1127 ln(1 + f/700)) from
20 Hz to Nyquist, log floored at float32 epsilon. Samples are scaled to the int16 range first, as
Kaldi reads them. MFCC: 23 mel bins, 13 cepstra (orthonormal DCT-II), lifter 22, c0 replaced by
the raw log energy. Inputs shorter than one window are zero-padded to one window (one frame).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from emobox.extraction.upstream import Upstream, UpstreamOutput, Windows

EPS = float(torch.finfo(torch.float32).eps)


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor:
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


def mel_banks(num_bins: int, padded: int, sample_rate: int, low_freq: float = 20.0,
              high_freq: float = 0.0) -> torch.Tensor:
    """Kaldi's triangular mel filter weights ``[num_bins, padded // 2]``."""
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    fft_bins = padded // 2
    mel = mel_scale(torch.arange(fft_bins, dtype=torch.float64) * (sample_rate / padded))
    b = torch.arange(num_bins, dtype=torch.float64)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = torch.where(mel <= center, up, down)
    weights = torch.where((mel > left) & (mel < right), weights, torch.zeros_like(weights))
    return weights.float()


def dct_matrix(num_ceps: int, num_bins: int) -> torch.Tensor:
    """Kaldi's orthonormal DCT-II rows ``[num_ceps, num_bins]``."""
    k = torch.arange(num_ceps, dtype=torch.float64)[:, None]
    n = torch.arange(num_bins, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / num_bins * (n + 0.5) * k) * math.sqrt(2.0 / num_bins)
    m[0] = math.sqrt(1.0 / num_bins)
    return m.float()


class _KaldiFrontend(Upstream):
    padding_sensitive = False
    frame_rate = 100.0

    def __init__(self, sample_rate: int = 16000, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, preemph: float = 0.97):
        super().__init__()
        self.sample_rate = sample_rate
        self.win = int(round(sample_rate * frame_length_ms / 1000))
        self.shift = int(round(sample_rate * frame_shift_ms / 1000))
        self.padded = 1 << (self.win - 1).bit_length()
        self.preemph = preemph
        i = torch.arange(self.win, dtype=torch.float64)
        window = (0.5 - 0.5 * torch.cos(2 * math.pi * i / (self.win - 1))) ** 0.85
        self.register_buffer("window", window.float(), persistent=False)

    def frames_for(self, num_samples: int) -> int:
        return 1 + (max(num_samples, self.win) - self.win) // self.shift

    def windows(self) -> Windows:
        """Exact windows of 6000 frames (60 s at 16 kHz): each frame sees only its own 25 ms,
        so a window reads one frame's length minus one hop beyond the next window's start."""
        return Windows(step=6000 * self.shift, overlap=self.win - self.shift,
                       min_tail=self.win, exact=True)

    def flops(self, num_samples: int) -> float:
        """Per frame: windowing and pre-emphasis, a real FFT (~2.5 N log2 N), the power
        spectrum, the mel matmul and (MFCC) the DCT."""
        n, bins = self.padded, self.banks.shape[0]
        per_frame = 6 * self.win + 2.5 * n * math.log2(n) + 3 * (n // 2) + 2 * (n // 2) * bins
        dct = getattr(self, "dct", None)
        if dct is not None:
            per_frame += 2 * dct.shape[0] * dct.shape[1]
        return float(self.frames_for(num_samples) * per_frame)

    def _frames(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windowed frames ``[T, padded]`` and raw log energy ``[T]`` of one waveform."""
        x = wav.float() * 32768.0
        if x.numel() < self.win:
            x = torch.nn.functional.pad(x, (0, self.win - x.numel()))
        frames = x.unfold(0, self.win, self.shift)
        frames = frames - frames.mean(dim=1, keepdim=True)
        log_energy = torch.log(frames.pow(2).sum(1).clamp(min=EPS))
        shifted = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = (frames - self.preemph * shifted) * self.window
        frames = torch.nn.functional.pad(frames, (0, self.padded - self.win))
        return frames, log_energy

    def _power(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft(frames, dim=1).abs().pow(2)[:, : self.padded // 2]

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, wavs: Sequence[torch.Tensor], layers: Sequence[int] = (0,)) -> UpstreamOutput:
        feats = [self.features(w) for w in wavs]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = feats[0].new_zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return UpstreamOutput({0: out}, lengths)


class Fbank(_KaldiFrontend):
    name = "fbank"
    num_layers = 0

    def __init__(self, num_mel_bins: int = 80, low_freq: float = 20.0, high_freq: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = num_mel_bins
        self.register_buffer("banks", mel_banks(num_mel_bins, self.padded, self.sample_rate,
                                                low_freq, high_freq), persistent=False)
        self.checkpoint_id = f"kaldi-fbank-{num_mel_bins}-{low_freq}-{high_freq}"

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        frames, _ = self._frames(wav)
        return torch.log((self._power(frames) @ self.banks.T).clamp(min=EPS))


class Mfcc(_KaldiFrontend):
    name = "mfcc"
    num_layers = 0

    def __init__(self, num_ceps: int = 13, num_mel_bins: int = 23, cepstral_lifter: float = 22.0,
                 use_energy: bool = True, low_freq: float = 20.0, high_freq: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = num_ceps
        self.use_energy = use_energy
        self.register_buffer("banks", mel_banks(num_mel_bins, self.padded, self.sample_rate,
                                                low_freq, high_freq), persistent=False)
        self.register_buffer("dct", dct_matrix(num_ceps, num_mel_bins), persistent=False)
        q = cepstral_lifter
        i = torch.arange(num_ceps, dtype=torch.float64)
        lifter = 1.0 + 0.5 * q * torch.sin(math.pi * i / q) if q else torch.ones(num_ceps)
        self.register_buffer("lifter", lifter.float(), persistent=False)
        self.checkpoint_id = (f"kaldi-mfcc-{num_ceps}-{num_mel_bins}-{cepstral_lifter}-"
                              f"{int(use_energy)}-{low_freq}-{high_freq}")

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        frames, log_energy = self._frames(wav)
        logmel = torch.log((self._power(frames) @ self.banks.T).clamp(min=EPS))
        ceps = (logmel @ self.dct.T) * self.lifter
        if self.use_energy:
            ceps[:, 0] = log_energy
        return ceps
