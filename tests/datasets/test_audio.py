"""Audio loading across formats, sample rates, channels and segments; errors name the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emobox import AudioError
from emobox.datasets.audio import audio_info, load_audio


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize("subtype,tol", [("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6),
                                         ("FLOAT", 0.0), ("PCM_U8", 1e-2)])
def test_sample_formats_read_as_float(tmp_path, subtype, tol):
    x = tone(440, 16000, 0.5)
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, x, 16000, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= tol + 1e-7


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_resampled_to_upstream_rate(tmp_path, sr):
    path = tmp_path / "x.wav"
    sf.write(path, tone(1000, sr, 1.0), sr, subtype="PCM_16")
    y = load_audio(path, sample_rate=16000)
    assert abs(len(y) - 16000) <= 1
    assert abs(dominant_freq(y, 16000) - 1000) < 2
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_flac_and_uppercase_extension(tmp_path):
    x = tone(300, 16000, 0.3)
    path = tmp_path / "LOUD.FLAC"
    sf.write(path, x, 16000, format="FLAC", subtype="PCM_16")
    assert np.abs(load_audio(path) - x).max() < 1e-4


def test_stereo_mixdown_and_channel_pick(tmp_path):
    left, right = tone(200, 16000, 0.5, 0.2), tone(200, 16000, 0.5, 0.6)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)
    np.testing.assert_allclose(load_audio(path, channel=2), right, atol=1e-7)
    np.testing.assert_allclose(load_audio(path, channel=1), left, atol=1e-7)


def test_six_channels_pick_centre(tmp_path):
    chans = np.stack([tone(100 * (c + 1), 16000, 0.25, 0.1) for c in range(6)], 1)
    path = tmp_path / "surround.wav"
    sf.write(path, chans, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, channel=3), chans[:, 2], atol=1e-7)
    assert audio_info(path).channels == 6
    with pytest.raises(AudioError, match="channel 7 requested but the file has 6 channels"):
        load_audio(path, channel=7)


def test_mono_file_serves_any_channel(tmp_path):
    x = tone(200, 16000, 0.2)
    path = tmp_path / "mono.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, channel=3), x)


def test_segment_by_start_and_end(tmp_path):
    sr = 44100
    x = np.arange(sr * 3, dtype=np.float32) / (sr * 3)
    path = tmp_path / "long.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    seg = load_audio(path, start=1.0, end=1.5)
    assert len(seg) == sr // 2
    assert seg[0] == pytest.approx(x[sr])
    tail = load_audio(path, start=2.5)
    assert len(tail) == sr // 2
    resampled = load_audio(path, start=0.5, end=1.5, sample_rate=16000)
    assert abs(len(resampled) - 16000) <= 1


def test_mp4_container_through_pyav(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    sr = 48000
    x = tone(440, sr, 1.0, 0.3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = "stereo"
        frame_len = 1024
        stereo = np.stack([x, x]).astype(np.float32)
        for i in range(0, len(x), frame_len):
            chunk = stereo[:, i:i + frame_len]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                               layout="stereo")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    y = load_audio(path, sample_rate=16000)
    assert abs(len(y) / 16000 - 1.0) < 0.1
    assert abs(dominant_freq(y, 16000) - 440) < 3


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match=r"nowhere\.wav: file not found"):
        load_audio(path)


def test_empty_file_names_it(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty \(0 bytes\)"):
        load_audio(path)


def test_garbage_file_names_it_and_the_reason(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 3)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "cannot decode" in str(info.value)


def test_segment_beyond_end_is_an_error(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, tone(200, 16000, 1.0), 16000)
    with pytest.raises(AudioError, match="segment starts at 2.0 s but the file lasts 1.000 s"):
        load_audio(path, start=2.0, end=3.0)


def test_nan_samples_are_an_error(tmp_path):
    x = tone(200, 16000, 0.1)
    x[10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="1 samples are NaN or infinite"):
        load_audio(path)
