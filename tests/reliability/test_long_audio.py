"""Long audio: a file longer than one of the upstream's windows is decoded, resampled and encoded
window by window, its frames written to the store as they come, so that memory does not depend
on its length. Exact upstreams (Kaldi filterbanks, Whisper's 30-s windows) give exactly their
whole-file frames; transformer encoders encode such files in 60-s windows, recorded in the store,
and shorter files exactly as before."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emobox.datasets.audio import load_audio, stream_audio
from emobox.errors import DataError
from emobox.extraction.extract import extract, extract_stats
from emobox.datasets.manifest import Manifest, Utterance
from emobox.plugin.registry import get_registry

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from extract_fakes import FrameUpstream, Interrupt, TinyHF, store_files  # noqa: E402


def noise_tone(seconds: float, sr: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.3 * np.sin(2 * np.pi * (180 + 40 * np.sin(t / 3)) * t) \
        + 0.05 * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x * (c + 1) / channels for c in range(channels)], 1)


def corpus(root: Path, files: list[tuple[str, float, int, int]],
           segments: dict[str, tuple[float, float, int]] | None = None) -> Manifest:
    """WAV files ``(name, seconds, sample rate, channels)`` and their manifest; ``segments``
    gives a name's (start, end, channel)."""
    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for i, (name, seconds, sr, channels) in enumerate(files):
        sf.write(root / f"{name}.wav", noise_tone(seconds, sr, channels, seed=i), sr,
                 subtype="PCM_16")
        start, end, channel = (segments or {}).get(name, (None, None, None))
        utts.append(Utterance(key=name, path=f"{name}.wav", label="a" if i % 2 else "b",
                              speaker="s", start=start, end=end, channel=channel))
    return Manifest("long", root, utts)


def frames(store, key: str, layer: int) -> np.ndarray:
    keys, offsets, lengths = store.index()
    i = keys.index(key)
    return np.asarray(store.layer(layer)[offsets[i]:offsets[i] + lengths[i]])


def whole(up, path: Path, layer: int, **segment) -> torch.Tensor:
    wav = torch.from_numpy(load_audio(path, sample_rate=16000, **segment))
    with torch.inference_mode():
        out = up([wav], [layer])
    return out.hidden[layer][0, : int(out.lengths[0])]


def test_streamed_blocks_are_exactly_the_whole_file(tmp_path):
    """Decoding, mixing down and resampling block by block give load_audio's samples."""
    path = tmp_path / "a.wav"
    sf.write(path, noise_tone(23.3, 44100, 2), 44100, subtype="PCM_24")
    for kw in ({}, {"channel": 2}, {"start": 1.25, "end": 20.5}):
        ref = load_audio(path, sample_rate=16000, **kw)
        got = np.concatenate(list(stream_audio(path, sample_rate=16000, block_seconds=3.7, **kw)))
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", ["fbank", "mfcc"])
def test_kaldi_features_of_a_long_file_equal_its_whole_file_features(tmp_path, name):
    """130 s at 16 kHz, 44.1-kHz stereo (mixed down and resampled) and a segment of one channel:
    frame for frame what the upstream gives for the whole file."""
    m = corpus(tmp_path / "audio", [("mono", 130.0, 16000, 1), ("stereo", 125.3, 44100, 2),
                                    ("segment", 150.0, 16000, 2), ("short", 3.0, 16000, 1)],
               segments={"segment": (7.5, 141.0, 2)})
    up = get_registry().upstream(name).build()
    store = extract(up, m, [0], store_dir=tmp_path / "f")
    assert store.meta["long_audio"] == {"window_s": 60.015, "step_s": 60.0, "exact": True}
    assert "long_window_s" not in store.meta["options"]
    for utt in m:
        ref = whole(up, m.root / utt.path, 0, channel=utt.channel, start=utt.start, end=utt.end)
        got = frames(store, utt.key, 0)
        assert got.shape[0] == ref.shape[0] == up.frames_for(
            len(load_audio(m.root / utt.path, sample_rate=16000, start=utt.start, end=utt.end)))
        np.testing.assert_array_equal(got, ref.numpy().astype(np.float16))
        i = store.index()[0].index(utt.key)
        np.testing.assert_allclose(store.pooled(0)[i], ref.mean(0).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_whisper_features_of_a_long_file_equal_its_whole_file_features(tmp_path):
    from test_upstreams_whisper import tiny_whisper

    m = corpus(tmp_path / "audio", [("long", 75.0, 16000, 1)])
    up = tiny_whisper()
    store = extract(up, m, [1, 3], store_dir=tmp_path / "f")
    for layer in (1, 3):
        ref = whole(up, m.root / "long.wav", layer)
        got = frames(store, "long", layer)
        assert got.shape == (1500 + 1500 + 750, 32) == tuple(ref.shape)
        np.testing.assert_allclose(got.astype(np.float32), ref.numpy(), atol=2e-3, rtol=2e-3)


def test_transformer_encoders_encode_files_over_60_s_in_60_s_windows(tmp_path):
    m = corpus(tmp_path / "audio", [("long", 130.0, 16000, 1), ("shorter", 59.0, 16000, 1)])
    up = TinyHF("layer")
    store = extract(up, m, [2], store_dir=tmp_path / "f")
    assert store.meta["options"]["long_window_s"] == 60.0
    assert store.meta["long_audio"] == {"window_s": 60.0, "step_s": 60.0, "exact": False}
    wav = torch.from_numpy(load_audio(m.root / "long.wav", sample_rate=16000))
    windows = [wav[:960000], wav[960000:1920000], wav[1920000:]]
    with torch.inference_mode():
        ref = torch.cat([up([w], [2]).hidden[2][0] for w in windows])
    got = frames(store, "long", 2)
    assert got.shape[0] == ref.shape[0] == 2999 + 2999 + 499
    np.testing.assert_allclose(got.astype(np.float32), ref.numpy(), atol=2e-3, rtol=2e-3)
    # a file within one window is encoded whole, as before
    ref = whole(up, m.root / "shorter.wav", 2)
    np.testing.assert_allclose(frames(store, "shorter", 2).astype(np.float32), ref.numpy(),
                               atol=2e-3, rtol=2e-3)


class FailingWindows(FrameUpstream):
    """Raises on inputs of exactly 60 s after ``ok`` of them (a model failing on a window)."""

    def __init__(self, ok: int, error=RuntimeError):
        super().__init__()
        self.ok, self.error, self.seen = ok, error, 0

    def forward(self, wavs, layers):
        if any(w.shape[0] == 960000 for w in wavs):
            self.seen += 1
            if self.seen > self.ok:
                raise self.error("out of memory in window")
        return super().forward(wavs, layers)


def test_a_long_file_the_upstream_fails_on_is_named_or_skipped(tmp_path):
    m = corpus(tmp_path / "audio", [("a", 2.0, 16000, 1), ("long", 150.0, 16000, 1),
                                    ("b", 1.5, 16000, 1)])
    with pytest.raises(DataError, match=r"long: upstream toy_frames failed on a window.*"
                                        r"out of memory in window.*--on-bad-audio skip"):
        extract(FailingWindows(ok=1), m, [0], store_dir=tmp_path / "f")
    store = extract(FailingWindows(ok=1), m, [0], store_dir=tmp_path / "g", on_bad_audio="skip")
    assert list(store.skipped()) == ["long"] and store.index()[0] == ["a", "b"]
    store.check_for_training([0])  # the frames written before the failure were taken back
    assert store.n_frames == 200 + 150


def test_a_kill_inside_a_long_file_resumes_to_the_same_store(tmp_path):
    m = corpus(tmp_path / "audio", [("a", 2.0, 16000, 1), ("long", 150.0, 16000, 1),
                                    ("b", 1.5, 16000, 1)])
    reference = extract(FrameUpstream(), m, [0, 1], store_dir=tmp_path / "ref")
    with pytest.raises(Interrupt):
        extract(FailingWindows(ok=1, error=Interrupt), m, [0, 1], store_dir=tmp_path / "out")
    stats = extract_stats(FrameUpstream(), m, [0, 1], store_dir=tmp_path / "out")
    assert stats.resumed_at == 1  # after the chunk before the long file
    assert store_files(stats.store.path) == store_files(reference.path)


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from emobox.extraction.extract import extract
    from emobox.datasets.manifest import Manifest, Utterance
    from emobox.plugin.registry import get_registry
    root = Path(sys.argv[1])
    m = Manifest("long", root, [Utterance(key="x", path="x.wav", label="a")])
    store = extract(get_registry().upstream("fbank").build(), m, [0],
                    store_dir=root / "features", memory_budget=int(0.2 * (1 << 30)))
    print(json.dumps({"frames": store.n_frames,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def test_peak_memory_does_not_grow_with_the_files_length(tmp_path):
    """fbank over a 2-minute and a 12-minute file, each in a fresh process: the peak resident
    memory of the longer one is within 40 MB of the shorter's (whole-file processing needs
    about 80 MB more per minute of audio)."""
    peaks = {}
    for minutes in (2, 12):
        root = tmp_path / f"m{minutes}"
        root.mkdir()
        with sf.SoundFile(root / "x.wav", "w", 16000, 1, subtype="PCM_16") as fh:
            for i in range(minutes):
                fh.write(noise_tone(60.0, seed=i))
        out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(root)], capture_output=True,
                             text=True, timeout=600, env={**__import__("os").environ,
                                                          "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["frames"] == 1 + (minutes * 960000 - 400) // 160
        peaks[minutes] = got["peak_rss_mb"]
    assert peaks[12] - peaks[2] < 40, peaks
