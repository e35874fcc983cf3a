"""Helpers for tests, emobox's own and plugin authors': audio, fixture corpora, a tiny upstream,
contract assertions and a fast end-to-end run.

Audio and trees
    ``write_audio(path)`` writes a short tone in the format named by the path's suffix (WAV, FLAC,
    OGG, and through PyAV the containers M4A, MP4, AVI, WebM). ``populate_tree(root, paths)`` lays
    out a corpus-shaped tree of such files fast (one file per suffix is encoded, the rest are hard
    links); ``add_clutter`` makes such a tree look like a real download (``__MACOSX``, stray
    files, upper-case suffixes, links). ``write_folder_corpus(root)`` writes a small learnable
    corpus in the folder-per-label layout ``ROOT/<label>/<speaker>_<nn>.wav`` (each label its own
    pitch and loudness).
Plugins in-process
    ``TinyUpstream`` is a deterministic few-parameter upstream that needs no weights;
    ``tiny_upstream_spec()`` its spec; ``InProcessPlugin(upstreams=..., corpora=...,
    downstreams=...)`` registers specs without packaging them; ``registry_with(*plugins)`` is a
    registry of the installed plugins plus those.
Contracts (for a plugin's own pytest suite, as hear-validator is for HEAR)
    ``assert_upstream``, ``assert_downstream``, ``assert_corpus`` build the object and raise
    :class:`emobox.ContractError` listing every broken promise; ``registered_spec(kind, name)``
    checks that an installed package's entry point really provides ``name``.
End to end
    ``smoke_run(upstream, corpus, downstream, out=...)``: ``emobox run`` with one fold, a few
    epochs and the first configuration of the head's grid.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import ContractError, EmoboxError, EmoboxUsageError
from emobox.plugin.hookspecs import hookimpl
from emobox.plugin.specs import CorpusSpec, DownstreamSpec, UpstreamSpec

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


# -- fixture corpora ------------------------------------------------------------------------------
DEFAULT_LABELS = ("angry", "happy", "neutral", "sad")


def write_folder_corpus(root: str | os.PathLike, labels: Sequence[str] = DEFAULT_LABELS,
                        speakers: int | Sequence[str] = 6, per_speaker: int = 2,
                        seconds: float = 0.4, suffix: str = ".wav",
                        pattern: str = "{speaker}_{index:02d}", sample_rate: int = 16000,
                        seed: int = 0) -> list[str]:
    """Write ``ROOT/<label>/<speaker>_<nn><suffix>`` for every label, speaker and index.

    Each label has its own pitch and loudness (so a head can learn the classes), each speaker a
    small detuning, each file seeded noise. ``speakers`` is a count (names ``spk01``...) or the
    names. Returns the relative paths written, sorted.
    """
    import soundfile as sf

    root = Path(root)
    names = [f"spk{i + 1:02d}" for i in range(speakers)] if isinstance(speakers, int) else list(
        speakers)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    written = []
    for li, label in enumerate(labels):
        for si, speaker in enumerate(names):
            for index in range(1, per_speaker + 1):
                freq = 140.0 * 2 ** (li / 2) * (1 + 0.03 * ((si % 5) - 2))
                amp = 0.15 + 0.1 * li / max(1, len(labels) - 1)
                x = amp * np.sin(2 * np.pi * freq * t) + 0.5 * amp * np.sin(4 * np.pi * freq * t)
                x = (x + 0.01 * rng.standard_normal(n)).astype(np.float32)
                rel = f"{label}/{pattern.format(speaker=speaker, index=index, label=label)}{suffix}"
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if suffix.lower() in _AV_CODECS:
                    write_audio(path, seconds, sample_rate, freq=freq)
                else:
                    sf.write(str(path), x, sample_rate)
                written.append(rel)
    return sorted(written)


# -- a tiny upstream ------------------------------------------------------------------------------
def _tiny_upstream_class():
    import torch

    from emobox.extraction.upstream import Upstream, UpstreamOutput

    class TinyUpstream(Upstream):
        """Deterministic test upstream: 10 ms frames -> log spectrum -> seeded random projection
        (layer 0) -> ``num_layers`` tanh layers. Per-frame, so padding never changes it."""

        frame_rate = 100.0
        padding_sensitive = False
        max_seconds = None
        hop = 160

        def __init__(self, hidden_size: int = 8, num_layers: int = 2, seed: int = 0,
                     name: str = "tiny"):
            super().__init__()
            self.name, self.hidden_size, self.num_layers = name, int(hidden_size), int(num_layers)
            g = torch.Generator().manual_seed(seed)
            bins = self.hop // 2 + 1
            self.proj = torch.nn.Parameter(torch.randn(bins, hidden_size, generator=g) / bins ** .5,
                                           requires_grad=False)
            self.layers = torch.nn.ParameterList([
                torch.nn.Parameter(torch.randn(hidden_size, hidden_size, generator=g)
                                   / hidden_size ** .5, requires_grad=False)
                for _ in range(num_layers)])
            self.checkpoint_id = f"tiny-h{hidden_size}-l{num_layers}-seed{seed}"

        def frames_for(self, num_samples: int) -> int:
            return max(1, num_samples // self.hop)

        def flops(self, num_samples: int) -> float:
            frames = self.frames_for(num_samples)
            bins = self.hop // 2 + 1
            per_frame = 5 * self.hop * np.log2(self.hop) + 2 * bins * self.hidden_size
            return float(frames * (per_frame + self.num_layers * 2 * self.hidden_size ** 2))

        def forward(self, wavs, layers=None):
            wanted = self.resolve_layers(layers)
            feats = []
            for w in wavs:
                n = self.frames_for(int(w.shape[-1]))
                w = torch.nn.functional.pad(w.float(), (0, max(0, n * self.hop - w.shape[-1])))
                spec = torch.fft.rfft(w[: n * self.hop].reshape(n, self.hop), dim=1).abs()
                feats.append(torch.log1p(spec))
            lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
            x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True) @ self.proj
            hidden = {0: x} if 0 in wanted else {}
            for i, weight in enumerate(self.layers, start=1):
                if i > max(wanted):
                    break
                x = torch.tanh(x @ weight)
                if i in wanted:
                    hidden[i] = x
            return UpstreamOutput(hidden, lengths)

    return TinyUpstream


def _tiny_upstream() -> type:
    cls = globals().get("TinyUpstream")
    if cls is None:
        cls = globals()["TinyUpstream"] = _tiny_upstream_class()
    return cls


def __getattr__(name: str):
    if name == "TinyUpstream":  # made on first use: importing emobox.testing stays torch-free
        return _tiny_upstream()
    raise AttributeError(f"module 'emobox.testing' has no attribute {name!r}")


def tiny_upstream_spec(name: str = "tiny", hidden_size: int = 8, num_layers: int = 2,
                       seed: int = 0) -> UpstreamSpec:
    """The spec of a :class:`TinyUpstream` (register it with :class:`InProcessPlugin`)."""

    def build(ckpt=None, device="cpu", **options):
        if ckpt:
            raise EmoboxUsageError(f"{name} has no weights; drop --upstream-ckpt")
        opts = {"hidden_size": hidden_size, "num_layers": num_layers, "seed": seed, **options}
        return _tiny_upstream()(name=name, **opts).to(device)

    return UpstreamSpec(name=name, build=build, description="tiny deterministic test upstream",
                        num_layers=num_layers, hidden_size=hidden_size, frame_rate=100.0,
                        license="MIT")


# -- plugins in-process ---------------------------------------------------------------------------
class InProcessPlugin:
    """A plugin object holding specs, for tests: ``registry.register(InProcessPlugin(...))``."""

    def __init__(self, upstreams: Iterable[UpstreamSpec] = (),
                 corpora: Iterable[CorpusSpec] = (),
                 downstreams: Iterable[DownstreamSpec] = ()):
        self._specs = (list(upstreams), list(corpora), list(downstreams))

    @hookimpl
    def emobox_upstreams(self):
        return self._specs[0]

    @hookimpl
    def emobox_corpora(self):
        return self._specs[1]

    @hookimpl
    def emobox_downstreams(self):
        return self._specs[2]


def registry_with(*plugins: Any, autoload: bool = True):
    """A fresh registry: the installed plugins (``autoload``) plus ``plugins`` registered in-process
    (named ``test_plugin_1``...)."""
    from emobox.plugin.registry import Registry

    registry = Registry(autoload=autoload)
    for i, plugin in enumerate(plugins, start=1):
        registry.register(plugin, name=f"test_plugin_{i}")
    return registry


def registered_spec(kind: str, name: str, distribution: str | None = None,
                    registry: Any = None) -> Any:
    """The spec ``name`` of ``kind`` as the installed plugins provide it.

    Raises :class:`ContractError` (listing the registry's problems) when it is missing, clashes, or
    comes from another distribution than ``distribution``.
    """
    from emobox.plugin.registry import get_registry

    registry = registry or get_registry(refresh=True)
    try:
        spec = registry.get(kind, name)
    except EmoboxError as exc:
        problems = "; ".join(p.line() for p in registry.all_problems())
        raise ContractError(f"{exc}" + (f" (plugin problems: {problems})" if problems else ""))
    if distribution is not None and spec.distribution != distribution:
        raise ContractError(f"{kind} {name!r} comes from distribution "
                            f"{spec.distribution or '(none)'!r}, expected {distribution!r}")
    return spec


# -- contract assertions --------------------------------------------------------------------------
def _raise(what: str, problems: list[str]) -> None:
    if problems:
        raise ContractError(f"{what} breaks its contract:\n  - " + "\n  - ".join(problems))


def assert_upstream(upstream: Any, spec: UpstreamSpec | None = None, **build_options: Any):
    """Check an upstream (a spec, which is built with ``build_options``, or a built object).

    Returns the built upstream; raises :class:`ContractError` listing every problem.
    """
    from emobox.validate import contracts

    if isinstance(upstream, UpstreamSpec):
        spec = upstream
        _raise(f"upstream spec {spec.name!r}", contracts.check_upstream_spec(spec))
        upstream = spec.load(ckpt=None, device="cpu", **build_options)
    name = getattr(upstream, "name", type(upstream).__name__)
    _raise(f"upstream {name!r}", contracts.check_upstream(
        upstream, spec if not build_options else None))
    return upstream


def assert_downstream(spec: DownstreamSpec, in_dim: int = 8, n_classes: int = 3) -> None:
    """Build the head for its grid's configurations and check each; raises :class:`ContractError`."""
    from emobox.validate import contracts

    _raise(f"downstream {spec.name!r}", contracts.check_downstream(spec, in_dim, n_classes))


def assert_corpus(corpus: Any, root: str | os.PathLike | None = None, scheme: str = "emobox",
                  **options: Any):
    """Check a corpus (a spec, built on ``root`` with ``options``, or a built corpus).

    Scans it, reads its first file, builds its folds. Returns the corpus.
    """
    from emobox.validate import contracts

    spec = None
    if isinstance(corpus, CorpusSpec):
        spec = corpus
        _raise(f"corpus spec {spec.name!r}", contracts.check_corpus_spec(spec))
        corpus = spec.build(None if root is None else Path(root), **options)
    _raise(f"corpus {getattr(corpus, 'name', type(corpus).__name__)!r}",
           contracts.check_corpus(corpus, spec, scheme=scheme))
    return corpus


# -- end to end -----------------------------------------------------------------------------------
def smoke_run(upstream: str, corpus: str, downstream: str = "linear_probe", *,
              out: str | os.PathLike, root: str | os.PathLike | None = None,
              plugins: Sequence[Any] = (), epochs: int = 3, folds: Sequence[int] = (1,),
              grid: Mapping[str, Sequence[Any]] | None = None, scheme: str = "emobox",
              corpus_options: Mapping[str, Any] | None = None,
              upstream_options: Mapping[str, Any] | None = None, registry: Any = None):
    """Run a triple fast (one fold, few epochs, the first configuration of the head's grid).

    ``plugins`` are registered in-process next to the installed ones. Features go to
    ``<out>.features``. Returns the :class:`emobox.runner.RunResult`.
    """
    from emobox.tracks.runner import RunOptions, run

    registry = registry or registry_with(*plugins)
    if grid is None:
        grid = {k: [v[0]] for k, v in registry.downstream(downstream).grid.items()}
    out = Path(out)
    opts = RunOptions(upstream=upstream, corpus=corpus, downstream=downstream,
                      root=None if root is None else str(root), out=str(out),
                      folds=tuple(folds), scheme=scheme, epochs=epochs,
                      warmup_epochs=min(1, epochs), batch_size=16, grid=dict(grid),
                      corpus_options=dict(corpus_options or {}),
                      upstream_options=dict(upstream_options or {}),
                      features_dir=str(out.with_name(out.name + ".features")))
    return run(opts, registry=registry)
