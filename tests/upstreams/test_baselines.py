"""fbank / mfcc agree with Kaldi (kaldi-native-fbank) and keep the 10 ms frame grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emobox.plugin.registry import get_registry

knf = pytest.importorskip("kaldi_native_fbank")


def speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def kaldi_frames(online) -> np.ndarray:
    return np.stack([online.get_frame(i) for i in range(online.num_frames_ready)])


def test_fbank_matches_kaldi():
    x = speechlike()
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = 80
    online = knf.OnlineFbank(opts)
    online.accept_waveform(16000, (x * 32768).tolist())
    online.input_finished()
    ref = kaldi_frames(online)
    up = get_registry().upstream("fbank").build()
    out = up([torch.from_numpy(x)], [0])
    ours = out.hidden[0][0].numpy()
    assert ours.shape == ref.shape == (148, 80)
    assert int(out.lengths[0]) == 148
    assert np.abs(ours - ref).max() < 2e-3


def test_mfcc_matches_kaldi():
    x = speechlike(seed=1)
    opts = knf.MfccOptions()
    opts.frame_opts.dither = 0
    online = knf.OnlineMfcc(opts)
    online.accept_waveform(16000, (x * 32768).tolist())
    online.input_finished()
    ref = kaldi_frames(online)
    ours = get_registry().upstream("mfcc").build()([torch.from_numpy(x)], [0]).hidden[0][0].numpy()
    assert ours.shape == ref.shape == (148, 13)
    assert np.abs(ours - ref).max() < 2e-3


def test_batch_equals_one_at_a_time_and_short_input_gives_one_frame():
    up = get_registry().upstream("fbank").build()
    a, b = torch.from_numpy(speechlike(1.0)), torch.from_numpy(speechlike(0.013))
    batch = up([a, b], [0])
    assert batch.lengths.tolist() == [98, 1]
    alone = up([a], [0]).hidden[0][0]
    torch.testing.assert_close(batch.hidden[0][0, :98], alone)
    assert up.frames_for(16000) == 98 and up.frames_for(100) == 1
