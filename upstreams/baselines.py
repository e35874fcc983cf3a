"""Plugin: spectral baselines that need no weights, ``fbank`` and ``mfcc`` (Kaldi-compatible)."""

from __future__ import annotations

from emobox import UpstreamSpec, hookimpl


def _build_fbank(ckpt=None, device="cpu", **options):
    from .kaldi import Fbank

    _no_checkpoint("fbank", ckpt)
    return Fbank(**options).to(device)


def _build_mfcc(ckpt=None, device="cpu", **options):
    from .kaldi import Mfcc

    _no_checkpoint("mfcc", ckpt)
    return Mfcc(**options).to(device)


def _no_checkpoint(name: str, ckpt) -> None:
    if ckpt:
        from emobox import EmoboxUsageError

        raise EmoboxUsageError(f"{name} has no weights; drop --upstream-ckpt")


_FRAMING = {
    "frame_length_ms": "analysis window in ms (default 25)",
    "frame_shift_ms": "hop in ms (default 10)",
    "preemph": "pre-emphasis coefficient (default 0.97)",
    "low_freq": "lowest mel-bank frequency in Hz (default 20)",
    "high_freq": "highest mel-bank frequency in Hz; 0 or less counts from Nyquist (default 0)",
}
FBANK_OPTIONS = {"num_mel_bins": "mel bins, the feature size (default 80)", **_FRAMING}
MFCC_OPTIONS = {"num_ceps": "cepstra kept, the feature size (default 13)",
                "num_mel_bins": "mel bins (default 23)",
                "cepstral_lifter": "liftering coefficient (default 22)",
                "use_energy": "c0 replaced by the log energy (default true)", **_FRAMING}


@hookimpl
def emobox_upstreams():
    return [
        UpstreamSpec(
            name="fbank", build=_build_fbank, family="baseline",
            description="80-dim Kaldi-compatible log-mel filterbank, 25 ms window, 10 ms hop",
            paper="Povey et al., The Kaldi speech recognition toolkit, ASRU 2011",
            num_layers=0, hidden_size=80, frame_rate=100.0, license="MIT",
            options=FBANK_OPTIONS),
        UpstreamSpec(
            name="mfcc", build=_build_mfcc, family="baseline",
            description="13 Kaldi-compatible MFCCs (23 mel bins, c0 = log energy), 10 ms hop",
            paper="Povey et al., The Kaldi speech recognition toolkit, ASRU 2011",
            num_layers=0, hidden_size=13, frame_rate=100.0, license="MIT",
            options=MFCC_OPTIONS),
    ]
