"""Catalogue, audio files: each case plants one bad or unusual file in a corpus in its native
layout and runs ``emobox run`` on it. Unusual but valid audio (any sample format, rate, channel
count, length) is read correctly; unreadable audio stops the run with one line naming the file
and the cause, or with ``--on-bad-audio skip`` is left out and listed in ``skipped.tsv``."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emobox.datasets.audio import load_audio
from emobox.io import read_jsonl

from reliability_support import (SR, assert_user_error, fbank_of, frames_of, key, rel,
                                 run_args, skipped_rows, store_of, tone)

BAD = ("s1", "angry", 0)  # a training utterance of fold 1


def bad_path(tree, ext="flac"):
    path = tree / rel(*BAD, ext=ext)
    for other in path.parent.glob(path.stem + ".*"):
        other.unlink()
    return path


def assert_same_where_loud(frames, reference, margin=4.0, atol=0.03):
    """Equal shapes, and equal log-mel energies in the bands within ``margin`` (natural log,
    ~35 dB) of the loudest: the signal, not the quantisation noise floor."""
    assert frames.shape == reference.shape
    loud = reference > reference.max() - margin
    assert loud.sum() >= 2 * len(reference)
    np.testing.assert_allclose(frames[loud], reference[loud], atol=atol)


def stored_frames(cli, tree, tmp_path):
    out = tmp_path / "run"
    res = cli(*run_args(tree, out))
    assert res.code == 0, res
    return frames_of(out, key(*BAD)), out


# -- unreadable files: stop naming the file, or leave out and list --------------------------

def test_zero_byte_file_stops_the_run_naming_it(cli, tree, tmp_path):
    path = bad_path(tree)
    path.write_bytes(b"")
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 3, str(path), "file is empty (0 bytes)", key(*BAD),
                      "--on-bad-audio skip")


def test_zero_byte_file_with_skip_is_listed_in_the_run_directory(cli, tree, tmp_path):
    path = bad_path(tree)
    path.write_bytes(b"")
    out = tmp_path / "run"
    res = cli(*run_args(tree, out, "--on-bad-audio", "skip"))
    assert res.code == 0, res
    assert skipped_rows(out) == [{"stage": "audio", "key": key(*BAD), "path": rel(*BAD),
                                  "reason": f"{path}: file is empty (0 bytes)"}]
    assert "1 utterances left out for unreadable audio" in res.err
    assert key(*BAD) not in store_of(out).index()[0]
    [row] = read_jsonl(out / "results.jsonl")
    assert row["n_train"] + row["n_valid"] == 3 * 8 - 1 and row["n_test"] == 8


def test_truncated_header_names_the_file_and_decoder_errors(cli, tree, tmp_path):
    path = bad_path(tree, "wav")
    sf.write(path, tone(), SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])  # the RIFF header cut inside the fmt chunk
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 3, str(path), "cannot decode audio")


def test_truncated_data_is_detected_not_read_short(cli, tree, tmp_path):
    path = bad_path(tree, "wav")
    sf.write(path, tone(), SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted copy: header intact, data halved
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 3, str(path), "file is truncated (its header promises 3200 frames")


def test_text_file_with_an_audio_extension(cli, tree, tmp_path):
    path = bad_path(tree, "wav")
    path.write_text("this is not audio\n")
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 3, str(path), "cannot decode audio")


def test_nan_samples_stop_the_run_or_are_skipped(cli, tree, tmp_path):
    path = bad_path(tree, "wav")
    x = tone()
    x[100:110] = np.nan
    sf.write(path, x, SR, subtype="FLOAT")
    res = cli(*run_args(tree, tmp_path / "a"))
    assert_user_error(res, 3, str(path), "10 samples are NaN or infinite")
    res = cli(*run_args(tree, tmp_path / "b", "--on-bad-audio", "skip"))
    assert res.code == 0, res
    [row] = skipped_rows(tmp_path / "b")
    assert (row["stage"], row["key"]) == ("audio", key(*BAD))
    assert "NaN or infinite" in row["reason"]


# -- unusual but valid files: read correctly -------------------------------------------------

def test_wrong_extension_is_read_by_content(cli, tree, tmp_path):
    """FLAC data in a file named .wav: the decoder goes by the content."""
    path = bad_path(tree, "wav")
    sf.write(path, tone(freq=330), SR, format="FLAC", subtype="PCM_16")
    assert path.read_bytes()[:4] == b"fLaC"
    named_right = tmp_path / "same.flac"
    named_right.write_bytes(path.read_bytes())
    frames, _ = stored_frames(cli, tree, tmp_path)
    np.testing.assert_allclose(frames, fbank_of(load_audio(named_right)), atol=0.01, rtol=1e-3)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "FLOAT"],
                         ids=["8-bit", "24-bit", "32-bit-float"])
def test_sample_formats_give_the_features_of_the_signal(cli, tree, tmp_path, subtype):
    """Read at the right scale and sign (unsigned 8-bit, packed 24-bit, float): where the tone
    is, the features are those of the float signal (elsewhere is the format's noise floor)."""
    path = bad_path(tree, "wav")
    x = tone(freq=330, amp=0.5)
    sf.write(path, x, SR, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype
    frames, _ = stored_frames(cli, tree, tmp_path)
    assert_same_where_loud(frames, fbank_of(x))


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_any_sample_rate_is_resampled_to_the_upstream_rate(cli, tree, tmp_path, sr):
    path = bad_path(tree, "wav")
    sf.write(path, tone(sr=sr, freq=440), sr, subtype="PCM_16")
    frames, _ = stored_frames(cli, tree, tmp_path)
    # 0.2 s at 16 kHz -> 3200 samples -> 1 + (3200 - 400) // 160 = 18 frames of 10 ms
    assert frames.shape == (18, 80)
    reference = fbank_of(tone(freq=440))
    peak = reference[5:-5].mean(0).argmax()  # the mel band of 440 Hz is the loudest in both
    assert frames[5:-5].mean(0).argmax() == peak


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_files_are_mixed_down(cli, tree, tmp_path, channels):
    path = bad_path(tree, "wav")
    x = tone(freq=330, channels=channels)  # channel c carries (c + 1) / channels of the tone
    sf.write(path, x, SR, subtype="FLOAT")
    frames, _ = stored_frames(cli, tree, tmp_path)
    assert_same_where_loud(frames, fbank_of(x.mean(1)))


def test_a_50_ms_utterance(cli, tree, tmp_path):
    path = bad_path(tree, "wav")
    sf.write(path, tone(seconds=0.05), SR, subtype="PCM_16")
    frames, _ = stored_frames(cli, tree, tmp_path)
    assert frames.shape == (3, 80) and np.isfinite(frames).all()


def test_a_120_s_utterance(cli, tree, tmp_path):
    path = bad_path(tree, "flac")
    sf.write(path, tone(seconds=120.0, freq=330), SR, subtype="PCM_16")
    frames, out = stored_frames(cli, tree, tmp_path)
    assert frames.shape == (1 + (120 * SR - 400) // 160, 80)
    assert np.isfinite(frames).all()
    np.testing.assert_allclose(frames[100], frames[11000], atol=0.02)  # a steady tone


def test_all_zero_samples_give_finite_features(cli, tree, tmp_path):
    """Digital silence is valid audio: its features are the log floor, never -inf or NaN, and
    the fold trains (a NaN would poison every configuration)."""
    path = bad_path(tree, "wav")
    sf.write(path, np.zeros(SR // 5, np.float32), SR, subtype="PCM_16")
    frames, out = stored_frames(cli, tree, tmp_path)
    assert frames.shape == (18, 80) and np.isfinite(frames).all()
    assert np.ptp(frames[:, 1:]) == 0  # every mel band at the same floor
    [row] = read_jsonl(out / "results.jsonl")
    assert np.isfinite(row["valid_loss"]) and 0 <= row["ua"] <= 1
