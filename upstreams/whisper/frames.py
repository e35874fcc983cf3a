"""Whisper's sizes without torch: 30-s windows, frames kept per input, and the analytic
forward FLOPs of the encoder (what ``bench --dry-run`` estimates without loading weights)."""

from __future__ import annotations

from ..common import ceil_div, conv1d_flops, transformer_flops

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480000
MODES = ("faithful", "trimmed")

SAMPLES_PER_FRAME = 2 * HOP  # 320: the encoder's stride in samples
# what ``feature_version`` says: 2 = ``n // 320`` frames kept per input (EmoBox's count), not
# ``ceil((n // 160) / 2)``
FEATURE_VERSION = "2"


def whisper_frames(num_samples: int) -> int:
    """Frames kept of an input of ``num_samples`` samples: ``n // 320``, at least one."""
    return max(1, int(num_samples) // SAMPLES_PER_FRAME)


def windows(num_samples: int) -> list[tuple[int, int]]:
    """``(start, frames)`` of each 30-s window encoded for an input of ``num_samples`` samples;
    a last window too short for a frame (under 320 samples) is left out, unless it is the only
    one (which then keeps one frame)."""
    n = max(int(num_samples), 0)
    out = [(0, whisper_frames(min(n, WINDOW_SAMPLES)))]
    for start in range(WINDOW_SAMPLES, n, WINDOW_SAMPLES):
        frames = min(n - start, WINDOW_SAMPLES) // SAMPLES_PER_FRAME
        if frames:
            out.append((start, frames))
    return out


def encoder_flops(num_samples: int, n_mels: int, dim: int, ffn_dim: int, blocks: int,
                  mode: str = "faithful") -> float:
    """Forward FLOPs of the encoder on one input of ``num_samples`` samples: per 30-s window the
    mel filter bank, the two convolutions and ``blocks`` transformer blocks. ``faithful`` pads
    every window to 30 s (3000 mel frames, 1500 positions), whatever the audio's length;
    ``trimmed`` encodes the real audio only."""
    total, size = 0.0, max(int(num_samples), 1)
    for start, _ in windows(size):
        n = min(size - start, WINDOW_SAMPLES)
        mel = WINDOW_SAMPLES // HOP if mode == "faithful" else max(n, N_FFT) // HOP
        t = ceil_div(mel, 2)
        total += 2.0 * n_mels * (N_FFT // 2 + 1) * mel  # mel filter bank
        total += conv1d_flops(n_mels, dim, 3, mel) + conv1d_flops(dim, dim, 3, t)
        total += transformer_flops(t, dim, ffn_dim, blocks)
    return total
