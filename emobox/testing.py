"""Helpers for tests, emobox's own and plugin authors': tiny audio files and fixture trees.

``write_audio(path)`` writes a short tone in the format named by the path's suffix (WAV, FLAC,
OGG, and through PyAV the containers M4A, MP4, AVI, WebM). ``populate_tree(root, paths)`` lays out
a corpus-shaped tree of such files fast: one file per suffix is encoded, the rest are hard links
(copies where links are impossible).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

_AV_CODECS = {".m4a": ("ipod", "aac"), ".mp4": ("mp4", "aac"), ".avi": ("avi", "pcm_s16le"),
              ".webm": ("webm", "libopus"), ".mkv": ("matroska", "aac")}


def tone(seconds: float = 0.2, sample_rate: int = 16000, freq: float = 220.0,
         channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def write_audio(path: str | os.PathLike, seconds: float = 0.2, sample_rate: int = 16000,
                channels: int = 1, freq: float = 220.0, subtype: str | None = None) -> Path:
    """Write a tone to ``path`` in the format its suffix names; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in _AV_CODECS:
        _write_av(path, seconds, sample_rate, channels, freq)
        return path
    x = tone(seconds, sample_rate, freq, channels)
    import soundfile as sf

    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}.get(
        suffix, "WAV")
    sf.write(str(path), x, sample_rate, format=fmt, subtype=subtype)
    return path


def _write_av(path: Path, seconds: float, sample_rate: int, channels: int, freq: float) -> None:
    import av

    container_format, codec = _AV_CODECS[path.suffix.lower()]
    if codec == "libopus":
        sample_rate = 48000  # the only rate Opus encodes
    x = tone(seconds, sample_rate, freq, channels)
    layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}.0"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = layout
        planar = np.atleast_2d(x.T if x.ndim == 2 else x[None, :]).astype(np.float32)
        fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        frame_len = stream.codec_context.frame_size or 1024
        for i in range(0, planar.shape[1], frame_len):
            chunk = np.ascontiguousarray(planar[:, i:i + frame_len])
            frame = av.AudioFrame.from_ndarray(_as_format(chunk, fmt), format=fmt, layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _as_format(chunk: np.ndarray, fmt: str) -> np.ndarray:
    planar = fmt.endswith("p")
    base = fmt.rstrip("p")
    if base == "s16":
        data = (np.clip(chunk, -1, 1) * 32767).astype(np.int16)
    elif base == "s32":
        data = (np.clip(chunk, -1, 1) * 2147483647).astype(np.int32)
    else:
        data = chunk.astype(np.float32)
    return data if planar else np.ascontiguousarray(data.T.reshape(1, -1))


def populate_tree(root: str | os.PathLike, rel_paths: Iterable[str], seconds: float = 0.1,
                  sample_rate: int = 16000) -> int:
    """Create every relative path under ``root`` as a tiny audio file; returns the count."""
    root = Path(root)
    templates: dict[str, Path] = {}
    tmpl_dir = root / ".emobox-templates"
    n = 0
    for rel in rel_paths:
        dest = root / rel
        suffix = dest.suffix.lower()
        if suffix not in templates:
            templates[suffix] = write_audio(tmpl_dir / f"template{suffix}", seconds, sample_rate)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(templates[suffix], dest)
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(templates[suffix], dest)
        n += 1
    shutil.rmtree(tmpl_dir, ignore_errors=True)
    return n
