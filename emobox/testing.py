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
    made: set[str] = set()
    n = 0
    for rel in rel_paths:
        dest = os.path.join(root, rel)
        suffix = os.path.splitext(dest)[1].lower()
        if suffix not in templates:
            templates[suffix] = write_audio(tmpl_dir / f"template{suffix}", seconds, sample_rate)
        parent = os.path.dirname(dest)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        try:
            os.link(templates[suffix], dest)
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(templates[suffix], dest)
        n += 1
    shutil.rmtree(tmpl_dir, ignore_errors=True)
    return n


CLUTTER_TOP = "downloaded copy"  # the extra top folder fixtures put a cluttered corpus in


def add_clutter(root: str | os.PathLike, corpus_dir: str | os.PathLike,
                audio: Iterable[str] | None = None, every: int = 5) -> list[str]:
    """Make a fixture tree look like a real download; returns the renamed audio paths.

    ``corpus_dir`` holds the corpus inside ``root`` (usually one extra top folder, as when a zip
    unpacks into a folder of its own); ``audio`` are its audio files relative to ``corpus_dir``
    (default: every audio file there). Added: ``__MACOSX/`` AppleDouble copies (and ``._*``
    files beside a few audio files), ``.DS_Store``/``Thumbs.db``/``desktop.ini`` files, stray
    non-audio files, an empty folder; every ``every``-th audio file gets an upper-case
    extension; a folder symlink and file symlinks lead outside the corpus root (to
    ``root/.elsewhere``, which holds audio named like the corpus's own); one folder holding
    audio is made read-only. Nothing added is audio of the corpus: a scan of ``root`` must give
    exactly the manifest of the clean tree.
    """
    root, corpus_dir = Path(root).absolute(), Path(corpus_dir).absolute()
    if audio is None:
        audio = sorted(p.relative_to(corpus_dir).as_posix() for p in corpus_dir.rglob("*")
                       if p.is_file() and not p.is_symlink()
                       and p.suffix.lower() in _AUDIO_SUFFIXES)
    audio = list(audio)
    folders = sorted({(corpus_dir / rel).parent for rel in audio})

    def junk(path: Path, data: bytes = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    for rel in audio[:: max(1, len(audio) // 25)]:  # __MACOSX mirror of a few files
        path = (corpus_dir / rel).relative_to(root)
        junk(root / "__MACOSX" / path.parent / f"._{path.name}")
    for rel in audio[:3]:  # AppleDouble files inside the tree
        junk((corpus_dir / rel).parent / f"._{Path(rel).name}")
    for folder in [root, corpus_dir, *folders[:5]]:
        junk(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    junk(corpus_dir / "Thumbs.db", b"\xd0\xcf\x11\xe0")
    junk(corpus_dir / "desktop.ini", b"[.ShellClassInfo]\n")
    junk(root / "README.txt", b"downloaded copy\n")
    junk(corpus_dir / "LICENSE.pdf", b"%PDF-1.4\n")
    junk(corpus_dir / "notes" / "recording notes.docx", b"PK\x03\x04")
    if folders:
        junk(folders[-1] / "notes.txt", b"stray file\n")
    (corpus_dir / "empty folder").mkdir(exist_ok=True)

    renamed = []
    for i, rel in enumerate(audio):  # upper-case extensions, as some archives have them
        if i % every == every - 1:
            path = corpus_dir / rel
            upper = path.with_name(path.stem + path.suffix.upper())
            os.replace(path, upper)
            renamed.append(Path(rel).with_name(upper.name).as_posix())

    if audio:
        src = corpus_dir / audio[0]  # never renamed (every >= 2)
        elsewhere = root / ".elsewhere"  # a dot folder: not a candidate corpus root
        elsewhere.mkdir(exist_ok=True)
        twin = elsewhere / src.name
        shutil.copyfile(src, twin)
        links = [(folders[-1] / "linked folder", elsewhere),
                 (folders[-1] / f"linked {src.name}", twin)]
        other = [d for d in folders if d != src.parent and not (d / src.name).exists()]
        if other:  # the name of a corpus file, in another folder: a duplicate if followed
            links.append((other[0] / src.name, twin))
        for link, target in links:
            try:
                link.symlink_to(target, target_is_directory=target.is_dir())
            except OSError:  # no symlinks on this file system
                pass
        folders[len(folders) // 2].chmod(0o555)  # a read-only folder
    return renamed


_AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".mp4", ".webm", ".avi", ".aiff",
                   ".aif")
