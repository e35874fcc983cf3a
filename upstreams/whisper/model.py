"""The Whisper encoder as an upstream: log-mel front end, 30-s windows, layer-exact forward.

Front end (:func:`log_mel`): Whisper's own recipe in torch: 400-point Hann-windowed STFT with a
160-sample hop (``center=True``, reflect padding), the last STFT frame dropped, power spectrum,
Slaney-normalised mel filters (librosa's formula, 80 bins, 128 for large-v3), ``log10`` floored at
1e-10, clamped to (max - 8) and mapped by ``(x + 4) / 4``.

Modes (``mode`` option, recorded in ``store_options``):

- ``faithful`` (default): every input is cut into 30-s windows and each window is zero-padded to
  30 s before the log-mel, exactly as Whisper (and EmoBox) ran the encoder; of each window's 1500
  frames the ones of real audio are kept and the windows are concatenated (inputs over 30 s are
  never skipped).
- ``trimmed``: no padding to 30 s: the log-mel and the encoder run on the real audio only (still
  in 30-s windows, the encoder's position table has 1500 rows). Much faster on short clips; the
  features are not the ones Whisper computes for the same audio.

Frames: 50 per second. An input of ``n`` samples keeps ``n // 320`` frames (at least one) in both
modes, as EmoBox's extraction kept them (``feat_len = n // 320``): the encoder's frames of the
real audio, without the half-filled last one the stride-2 convolution makes of an odd number of
mel frames (``ceil((n // 160) / 2)`` would count it). A 30-s window gives 1500; an input over 30 s
is cut into 30-s windows whose ``n_k // 320`` frames are concatenated (again ``n // 320`` in all,
as 480000 samples are 1500 x 320), and a last window of under 320 samples (20 ms), which would
add no frame, is not encoded.

Layers match transformers' ``WhisperEncoder`` ``hidden_states``: layer 0 is the input of the
first block (convolutions + sinusoidal positions), layer ``i < num_layers`` the raw output of
block ``i``, and layer ``num_layers`` the output of the last block *after* the encoder's final
layer norm, i.e. the encoder output the decoder reads (OpenAI's ``ln_post``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from emobox.extraction.upstream import LayersGraph, Upstream, UpstreamOutput, Windows

from ..common import stack_padded
from .frames import (FEATURE_VERSION, HOP, MODES, N_FFT, SAMPLE_RATE,  # noqa: F401  (public here)
                     SAMPLES_PER_FRAME, WINDOW_SAMPLES, WINDOW_SECONDS, encoder_flops,
                     whisper_frames, windows)



def mel_filters(n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Slaney-style mel filter bank ``[n_mels, n_fft // 2 + 1]`` (librosa's ``filters.mel`` with
    ``htk=False, norm='slaney'``, fmin 0, fmax Nyquist), computed in float64."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0

    def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
        lin = f / f_sp
        log = min_log_mel + torch.log(torch.clamp(f, min=min_log_hz) / min_log_hz) / logstep
        return torch.where(f >= min_log_hz, log, lin)

    def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
        lin = f_sp * m
        log = min_log_hz * torch.exp(logstep * (m - min_log_mel))
        return torch.where(m >= min_log_mel, log, lin)

    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.tensor([0.0, sample_rate / 2], dtype=torch.float64)
    mel_pts = torch.linspace(float(hz_to_mel(edges[:1])), float(hz_to_mel(edges[1:])),
                             n_mels + 2, dtype=torch.float64)
    hz = mel_to_hz(mel_pts)
    fdiff = hz[1:] - hz[:-1]
    ramps = hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return weights


def log_mel(audio: torch.Tensor, filters: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Whisper's log-mel of ``audio`` ``[S]`` or ``[B, S]``: ``[(B,) n_mels, S // 160]``.
    The (max - 8) floor is taken per item."""
    stft = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = filters @ power
    logspec = torch.clamp(mel, min=1e-10).log10()
    peak = logspec.amax(dim=(-2, -1), keepdim=True)
    logspec = torch.maximum(logspec, peak - 8.0)
    return (logspec + 4.0) / 4.0


class WhisperUpstream(Upstream):
    """An :class:`emobox.Upstream` over a transformers ``WhisperEncoder``."""

    frame_rate = 50.0
    max_seconds = float(WINDOW_SECONDS)
    padding_sensitive = False
    feature_version = FEATURE_VERSION

    def __init__(self, name: str, encoder: torch.nn.Module, *, mode: str = "faithful",
                 checkpoint_id: str = "", source: str = ""):
        super().__init__()
        if mode not in MODES:
            from emobox.errors import EmoboxUsageError

            raise EmoboxUsageError(f"{name}: mode must be one of {', '.join(MODES)}, "
                                   f"not {mode!r}")
        cfg = encoder.config
        self.name = name
        self.encoder = encoder.eval()
        self.mode = mode
        self.num_layers = int(cfg.encoder_layers)
        self.hidden_size = int(cfg.d_model)
        self.n_mels = int(cfg.num_mel_bins)
        self.checkpoint_id = checkpoint_id
        self.source = source  # the checkpoint format it came from (transformers, openai, ...)
        self.store_options = {"mode": mode}
        self.register_buffer("filters", mel_filters(self.n_mels).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    # -- sizes -----------------------------------------------------------------------------
    def frames_for(self, num_samples: int) -> int:
        return whisper_frames(num_samples)

    def windows(self) -> Windows:
        """Whisper's own 30-s windows: each is encoded on its own in both modes, so a long
        input fed window by window gives exactly its whole-input frames."""
        return Windows(step=WINDOW_SAMPLES, exact=True)

    def flops(self, num_samples: int, layer: int | None = None) -> float:
        return encoder_flops(num_samples, self.n_mels, self.hidden_size,
                             int(self.encoder.config.encoder_ffn_dim),
                             self.num_layers if layer is None else int(layer), self.mode)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, wavs: Sequence[torch.Tensor], layers: Sequence[int] | None = None
                ) -> UpstreamOutput:
        wanted = self.resolve_layers(layers)
        chunks, owner, frames = [], [], []
        for i, w in enumerate(wavs):
            w = w.reshape(-1).to(self.device, torch.float32)
            for start, n_frames in windows(w.numel()):
                chunks.append(w[start:start + WINDOW_SAMPLES])
                owner.append(i)
                frames.append(n_frames)
        if self.mode == "faithful":
            mel = log_mel(stack_padded(chunks, WINDOW_SAMPLES)[0][:, :WINDOW_SAMPLES],
                          self.filters, self.window)
            hidden = self.encode_mel(mel, None, wanted)
        else:
            mels = [log_mel(torch.nn.functional.pad(c, (0, max(0, N_FFT - c.numel()))),
                            self.filters, self.window) for c in chunks]
            width = max(m.shape[-1] for m in mels)
            mel = mels[0].new_zeros(len(mels), self.n_mels, width)
            for k, m in enumerate(mels):
                mel[k, :, : m.shape[-1]] = m
            mel_lengths = torch.tensor([m.shape[-1] for m in mels], device=mel.device)
            hidden = self.encode_mel(mel, mel_lengths, wanted)
        return self._assemble(hidden, frames, owner, len(wavs), wanted)

    def graph(self, layers: Sequence[int], masked: bool) -> torch.nn.Module | None:
        """:meth:`encode_mel` for another runtime: ``forward(mel [B, n_mels, M][, mask])``, the
        log-mel computed by torch. Faithful mode: 30-s windows, no mask. Trimmed mode: every
        batch carries its int64 mask ``[B, M]`` of real mel frames."""
        if masked != (self.mode == "trimmed"):
            return None
        # trimmed mode: the mask is applied even where it keeps every frame, so that the trace
        # holds for padded batches too
        return LayersGraph(self, layers, lambda mel, mask, wanted: self.hidden_states(
            mel, None if mask is None else mask.to(torch.bool), wanted))

    def _assemble(self, hidden, frames, owner, batch, wanted) -> UpstreamOutput:
        lengths = torch.zeros(batch, dtype=torch.long)
        for k, i in enumerate(owner):
            lengths[i] += frames[k]
        if len(owner) == batch:  # one window each: no concatenation needed
            return UpstreamOutput({L: hidden[L][:, : int(lengths.max())] for L in wanted},
                                  lengths)
        out = {}
        for L in wanted:
            h = hidden[L]
            out[L] = h.new_zeros(batch, int(lengths.max()), h.shape[-1])
            pos = [0] * batch
            for k, i in enumerate(owner):
                out[L][i, pos[i]: pos[i] + frames[k]] = h[k, : frames[k]]
                pos[i] += frames[k]
        return UpstreamOutput(out, lengths)

    def encode_mel(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None,
                   layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """Hidden states of log-mel input ``[B, n_mels, M]``. ``mel_lengths`` (trimmed mode)
        marks the real mel frames of each item: the padding is zeroed between the two
        convolutions and hidden from attention, so every item gets what it gets alone."""
        keep = None
        if mel_lengths is not None:
            keep = torch.arange(mel.shape[-1], device=mel.device)[None, :] < mel_lengths[:, None]
        if self.runtime is not None:
            mask = None if keep is None else keep.to(torch.int64)
            return self.runtime(self, sorted(layers), mel, mask)
        if keep is not None and bool(keep.all()):
            keep = None  # nothing padded: no mask
        return self.hidden_states(mel, keep, layers)

    def hidden_states(self, mel: torch.Tensor, keep: torch.Tensor | None,
                      layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """The encoder's ``layers`` for ``mel``; ``keep`` (bool ``[B, M]``, or None when nothing
        is padded) marks the real mel frames. No branch depends on the values, so that a trace
        holds for every batch."""
        enc = self.encoder
        top = max(layers)
        x = torch.nn.functional.gelu(enc.conv1(mel))
        mask = None
        if keep is not None:
            x = x * keep[:, None, :].to(x.dtype)
            # conv2 has stride 2 and padding 1: its frame t is real when mel frame 2t is
            t_keep = keep[:, ::2]
            mask = torch.zeros(t_keep.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~t_keep, torch.finfo(x.dtype).min)[:, None, None, :]
        x = torch.nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]].to(x.dtype)
        out = {0: x} if 0 in layers else {}
        for i in range(top):
            x = enc.layers[i](x, mask)
            if isinstance(x, tuple):
                x = x[0]
            if i + 1 in layers and i + 1 < self.num_layers:
                out[i + 1] = x
        if top == self.num_layers:
            out[top] = enc.layer_norm(x)
        return out
