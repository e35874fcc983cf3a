"""Audio loading: any channel count, sample rate and sample format, by segment, to float32 mono.

soundfile (libsndfile) reads WAV/FLAC/OGG/MP3 and friends at int16/int24/int32/float; container
formats libsndfile cannot open (MP4, M4A, WebM, AVI: MELD, MEAD, EMNS, eNTERFACE, MER2023) are
decoded with PyAV. Resampling uses soxr. Every failure raises :class:`AudioError` naming the
file and the reason.

:func:`stream_audio` gives the same samples as :func:`load_audio` block by block (decoded,
mixed down and resampled as they come: soxr's stream resampler returns exactly its one-shot
result), so that a long file is never held whole; :func:`audio_samples` says from the header how
many samples :func:`load_audio` would return, without decoding.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from emobox.errors import AudioError

CONTAINER_SUFFIXES = {".mp4", ".m4a", ".webm", ".avi", ".mkv", ".mov", ".aac", ".wma", ".opus"}


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(path: str | Path) -> AudioInfo:
    """Sample rate, channel count and length of an audio file, without decoding it all."""
    path = Path(path)
    _check_exists(path)
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        import soundfile as sf

        try:
            info = sf.info(str(path))
            return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames),
                             f"{info.format}/{info.subtype}")
        except Exception as exc:  # fall through to PyAV for formats libsndfile lacks
            sf_error = exc
    else:
        sf_error = None
    data, sr = _decode_av(path, sf_error)
    return AudioInfo(sr, data.shape[1], data.shape[0], "av")


def load_audio(path: str | Path, *, sample_rate: int | None = None, channel: int | None = None,
               start: float | None = None, end: float | None = None) -> np.ndarray:
    """Read ``path`` as float32 mono samples in [-1, 1].

    channel: 1-based channel to keep; None mixes all channels down (mean). A mono file serves
        any requested channel (there is nothing else to pick).
    start, end: seconds; the segment ``[start, end)`` is read (segmented corpora such as PAVOQUE).
    sample_rate: resample to this rate (soxr, high quality); None keeps the file's rate.
    """
    data, sr = _read(Path(path), start, end)
    data = _pick_channel(data, channel, Path(path))
    if data.size == 0:
        raise AudioError(f"{path}: no samples"
                         + (f" in segment {start}-{end} s" if start or end else ""), path=str(path))
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} samples are NaN or infinite", path=str(path))
    if sample_rate and sr != sample_rate:
        data = resample(data, sr, sample_rate)
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    import soxr

    if sr_in == sr_out:
        return x
    return soxr.resample(x.astype(np.float32, copy=False), sr_in, sr_out, quality="HQ")


def file_problem(path: Path) -> str:
    """Why ``path`` cannot be an audio file ("" when it can): missing, a folder, a fifo, a
    device or a socket (read without blocking: nothing is opened), or empty."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        kind = ("a fifo" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device")
        return f"is {kind}, not an audio file"
    if st.st_size == 0:
        return "file is empty (0 bytes)"
    return ""


def _check_exists(path: Path) -> None:
    problem = file_problem(path)
    if problem:
        raise AudioError(f"{path}: {problem}", path=str(path))


def _read(path: Path, start: float | None, end: float | None) -> tuple[np.ndarray, int]:
    """Samples ``[frames, channels]`` float32 of the segment, and the file's sample rate."""
    _check_exists(path)
    sf_error: Exception | None = None
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        import soundfile as sf

        try:
            with sf.SoundFile(str(path)) as fh:
                sr, total = int(fh.samplerate), int(fh.frames)
                first, last = _frame_range(path, sr, total, start, end)
                fh.seek(first)
                data = fh.read(last - first, dtype="float32", always_2d=True)
                if fh.format in ("WAV", "WAVEX", "RF64"):
                    check_wav_length(path, sr, total)
            if data.shape[0] < last - first:
                raise AudioError(f"{path}: file is truncated (header promises {total} frames, "
                                 f"{first + data.shape[0]} could be read)", path=str(path))
            return data, sr
        except AudioError:
            raise
        except Exception as exc:
            sf_error = exc
    data, sr = _decode_av(path, sf_error)
    first, last = _frame_range(path, sr, data.shape[0], start, end)
    return data[first:last], sr


# A WAV header that promises more audio than the file holds (an interrupted download or copy)
# is an error; this much is tolerated for writers that round the data size.
WAV_SHORTFALL_TOLERANCE_S = 0.02


def check_wav_length(path: Path, sr: int, frames: int) -> None:
    """Raise when the WAV header's data size promises more frames than the file holds
    (libsndfile quietly reads what is there)."""
    declared = wav_declared_frames(path)
    if declared is not None and declared - frames > max(1, WAV_SHORTFALL_TOLERANCE_S * sr):
        raise AudioError(f"{path}: file is truncated (its header promises {declared} frames, "
                         f"{declared / sr:.3f} s; it holds {frames}, {frames / sr:.3f} s)",
                         path=str(path))


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames the ``data`` chunk of a RIFF/RF64 WAV header declares, or None when the header
    does not say (streamed files write 0 or 0xFFFFFFFF) or cannot be parsed."""
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
                return None
            rf64_data: int | None = None
            block_align = 0
            for _ in range(64):  # chunks before "data" are few (fmt, fact, LIST, ...)
                hdr = fh.read(8)
                if len(hdr) < 8:
                    return None
                cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"ds64":
                    body = fh.read(size)
                    if len(body) >= 16:
                        rf64_data = struct.unpack("<Q", body[8:16])[0]
                    fh.seek(size % 2, 1)
                    continue
                if cid == b"fmt ":
                    body = fh.read(size)
                    if len(body) >= 14:
                        block_align = struct.unpack("<H", body[12:14])[0]
                    fh.seek(size % 2, 1)
                    continue
                if cid == b"data":
                    if size == 0xFFFFFFFF and rf64_data is not None:
                        size = rf64_data
                    if size in (0, 0xFFFFFFFF) or block_align <= 0:
                        return None
                    return size // block_align
                fh.seek(size + size % 2, 1)
    except (OSError, struct.error):
        return None
    return None


def _frame_range(path: Path, sr: int, frames: int, start: float | None,
                 end: float | None) -> tuple[int, int]:
    # a time beyond any file (1e308 s) is capped before it becomes a frame count, so it is
    # refused below as a segment past the end instead of overflowing
    first = 0 if start is None else int(round(min(start * sr, 2.0 ** 62)))
    last = frames if end is None else int(round(min(end * sr, 2.0 ** 62)))
    if first < 0 or (end is not None and last <= first):
        raise AudioError(f"{path}: bad segment start={start} end={end}", path=str(path))
    if first >= frames:
        raise AudioError(f"{path}: segment starts at {start} s but the file lasts "
                         f"{frames / sr:.3f} s", path=str(path))
    if last > frames:
        # segment tables round end times; tolerate up to 50 ms beyond the end of the file
        if (last - frames) > 0.05 * sr:
            raise AudioError(f"{path}: segment ends at {end} s but the file lasts "
                             f"{frames / sr:.3f} s", path=str(path))
        last = frames
    return first, last


def _pick_channel(data: np.ndarray, channel: int | None, path: Path) -> np.ndarray:
    n = data.shape[1]
    if channel is None or n == 1:
        return data.mean(axis=1) if n > 1 else data[:, 0]
    if not 1 <= channel <= n:
        raise AudioError(f"{path}: channel {channel} requested but the file has {n} channels",
                         path=str(path))
    return data[:, channel - 1]


def _decode_av(path: Path, sf_error: Exception | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container with PyAV."""
    try:
        import av
    except ImportError:
        reason = f" (libsndfile: {sf_error})" if sf_error else ""
        raise AudioError(f"{path}: cannot read this format without PyAV{reason}; "
                         f"install it with `pip install av`", path=str(path))
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise AudioError(f"{path}: no audio stream in this file", path=str(path))
            stream = streams[0]
            sr = int(stream.codec_context.sample_rate or stream.rate)
            chunks = []
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if arr.ndim == 1:
                    arr = arr[None, :]
                if frame.format.is_planar:
                    arr = arr.T  # [samples, channels]
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels))
                chunks.append(_to_float(arr))
    except AudioError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if sf_error is not None:
            reason = f"{sf_error}; PyAV: {reason}"
        raise AudioError(f"{path}: cannot decode audio ({reason})", path=str(path))
    if not chunks:
        raise AudioError(f"{path}: audio stream holds no samples", path=str(path))
    return np.concatenate(chunks, axis=0), sr


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128.0) / 128.0
    scale = float(2 ** (8 * arr.dtype.itemsize - 1))
    return arr.astype(np.float32) / scale


# -- long files: header lengths and decoding block by block -------------------------------------
STREAM_BLOCK_SECONDS = 10.0


def audio_samples(path: str | Path, *, sample_rate: int | None = None,
                  start: float | None = None, end: float | None = None) -> int | None:
    """About how many samples :func:`load_audio` returns for this segment at ``sample_rate``,
    from the file's header (no decoding); None when the header does not say (some containers).
    Raises :class:`AudioError` for a missing file or a segment outside it."""
    path = Path(path)
    _check_exists(path)
    sr = frames = None
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        import soundfile as sf

        try:
            info = sf.info(str(path))
            sr, frames = int(info.samplerate), int(info.frames)
        except Exception:
            sr = frames = None
    if sr is None:
        sr, frames = _av_length(path)
        if sr is None or frames is None:
            return None
    if sr <= 0:
        return None
    first, last = _frame_range(path, sr, frames, start, end)
    n = last - first
    return n if not sample_rate or sample_rate == sr else int(math.ceil(n * sample_rate / sr))


def _av_length(path: Path) -> tuple[int | None, int | None]:
    try:
        import av

        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                return None, None
            stream = streams[0]
            sr = int(stream.codec_context.sample_rate or stream.rate or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                return sr, None
            return sr, int(round(seconds * sr))
    except Exception:
        return None, None


def stream_audio(path: str | Path, *, sample_rate: int | None = None, channel: int | None = None,
                 start: float | None = None, end: float | None = None,
                 block_seconds: float = STREAM_BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """The samples :func:`load_audio` returns, as consecutive float32 blocks of about
    ``block_seconds`` (decoded, mixed down and resampled block by block: memory does not grow
    with the file's length). Raises :class:`AudioError` as :func:`load_audio` does, possibly
    after some blocks were given."""
    path = Path(path)
    _check_exists(path)
    resampler = None
    total = 0

    def out(block: np.ndarray, sr: int, last: bool = False) -> np.ndarray:
        nonlocal resampler
        if block.size and not np.isfinite(block).all():
            bad = int((~np.isfinite(block)).sum())
            raise AudioError(f"{path}: {bad} samples are NaN or infinite", path=str(path))
        if not sample_rate or sample_rate == sr:
            return np.ascontiguousarray(block, dtype=np.float32)
        if resampler is None:
            import soxr

            resampler = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ")
        return resampler.resample_chunk(np.ascontiguousarray(block, dtype=np.float32),
                                        last=last)

    source = None
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        import soundfile as sf

        try:
            fh = sf.SoundFile(str(path))
        except Exception as exc:
            source = ("av", exc)
        else:
            source = ("sf", fh)
    else:
        source = ("av", None)
    if source[0] == "sf":
        fh = source[1]
        with fh:
            sr, frames = int(fh.samplerate), int(fh.frames)
            first, last = _frame_range(path, sr, frames, start, end)
            if fh.format in ("WAV", "WAVEX", "RF64"):
                check_wav_length(path, sr, frames)
            fh.seek(first)
            block = max(1, int(block_seconds * sr))
            pos = first
            while pos < last:
                want = min(block, last - pos)
                try:
                    data = fh.read(want, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioError(f"{path}: cannot decode audio ({exc})", path=str(path))
                if data.shape[0] < want:
                    raise AudioError(f"{path}: file is truncated (header promises {frames} "
                                     f"frames, {pos + data.shape[0]} could be read)",
                                     path=str(path))
                pos += want
                mono = _pick_channel(data, channel, path)
                total += mono.size
                y = out(mono, sr, last=pos >= last)
                if y.size:
                    yield y
    else:
        sr = None
        for mono, sr in _av_blocks(path, source[1], channel, start, end, block_seconds):
            total += mono.size
            y = out(mono, sr)
            if y.size:
                yield y
        if sr is not None and resampler is not None:
            y = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if y.size:
                yield y
    if total == 0:
        raise AudioError(f"{path}: no samples"
                         + (f" in segment {start}-{end} s" if start or end else ""),
                         path=str(path))


def _av_blocks(path: Path, sf_error: Exception | None, channel: int | None, start: float | None,
               end: float | None, block_seconds: float) -> Iterator[tuple[np.ndarray, int]]:
    """Mono blocks of the segment of a file decoded with PyAV, and its sample rate."""
    try:
        import av
    except ImportError:
        reason = f" (libsndfile: {sf_error})" if sf_error else ""
        raise AudioError(f"{path}: cannot read this format without PyAV{reason}; "
                         f"install it with `pip install av`", path=str(path))
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise AudioError(f"{path}: no audio stream in this file", path=str(path))
            stream = streams[0]
            sr = int(stream.codec_context.sample_rate or stream.rate)
            first = 0 if start is None else int(round(start * sr))
            stop = None if end is None else int(round(end * sr))
            if first < 0 or (stop is not None and stop <= first):
                raise AudioError(f"{path}: bad segment start={start} end={end}", path=str(path))
            pos, pending, held = 0, [], 0
            block = max(1, int(block_seconds * sr))
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if arr.ndim == 1:
                    arr = arr[None, :]
                arr = arr.T if frame.format.is_planar else arr.reshape(
                    -1, len(frame.layout.channels))
                arr = _to_float(arr)
                lo, hi = max(first - pos, 0), arr.shape[0] if stop is None else \
                    min(arr.shape[0], stop - pos)
                pos += arr.shape[0]
                if hi > lo:
                    pending.append(_pick_channel(arr[lo:hi], channel, path))
                    held += hi - lo
                if held >= block:
                    yield np.concatenate(pending), sr
                    pending, held = [], 0
                if stop is not None and pos >= stop:
                    break
            if pending:
                yield np.concatenate(pending), sr
    except AudioError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if sf_error is not None:
            reason = f"{sf_error}; PyAV: {reason}"
        raise AudioError(f"{path}: cannot decode audio ({reason})", path=str(path))
