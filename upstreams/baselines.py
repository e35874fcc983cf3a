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


@hookimpl
def emobox_upstreams():
    return [
        UpstreamSpec(
            name="fbank", build=_build_fbank, family="baseline",
            description="80-dim Kaldi-compatible log-mel filterbank, 25 ms window, 10 ms hop",
            paper="Povey et al., The Kaldi speech recognition toolkit, ASRU 2011",
            num_layers=0, hidden_size=80, frame_rate=100.0, license="MIT"),
        UpstreamSpec(
            name="mfcc", build=_build_mfcc, family="baseline",
            description="13 Kaldi-compatible MFCCs (23 mel bins, c0 = log energy), 10 ms hop",
            paper="Povey et al., The Kaldi speech recognition toolkit, ASRU 2011",
            num_layers=0, hidden_size=13, frame_rate=100.0, license="MIT"),
    ]
