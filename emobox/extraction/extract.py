"""Feature extraction: run an upstream once over a corpus into a feature store.

``extract(upstream, manifest, layers)`` is what ``emobox run`` calls; ``extract_corpus(
ExtractOptions(...))`` is the library twin of ``emobox extract``. A complete matching store is
reused; layers it lacks are extracted and added; an interrupted extraction resumes (see
:mod:`emobox.store`). Exact mode (fp32) batches only where padding leaves the features unchanged;
``bf16``/``fp16`` are faster and labelled in the store and in every result.

:class:`FrameSource` reads a store back for training: packed frames gathered by utterance index.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from emobox import __version__, paths
from emobox.extraction.allocator import pad_for
from emobox.extraction.batching import Plan
from emobox.extraction.runtime import RuntimeDisagreement, check_runtime
from emobox.extraction.engine import Engine, upstream_windows
from emobox.errors import DataError, EmoboxUsageError
from emobox.datasets.manifest import Manifest
from emobox.extraction.precision import check_precision
from emobox.progress import Reporter
from emobox.datasets.splits import SCHEMES
from emobox.extraction.store import (JOURNAL, PARTIAL, FeatureStore, StoreRequest, StoreWriter, append_session,
                    check_audio, refresh_audio_records, stale_audio_message,
                    store_lock)
from emobox.extraction.store import _read_journal
from emobox.extraction.upstream import Upstream
from emobox.plugin.registry import get_registry

ON_BAD_AUDIO = ("fail", "skip")
DEFAULT_MEMORY = 2 << 30  # bytes of features and audio held at once (chunks, prefetch)
# padded audio seconds per batch: on CPU a clip of several seconds already runs the big matmuls
# near peak, so batches stay small; GPUs need large batches to fill.
DEFAULT_BATCH_SECONDS = {"cpu": 16.0, "cuda": 400.0}
# padding allowed in a batch, relative to its shortest input. On CPU a short clip alone runs
# matmuls of a few dozen rows far below peak: 8 clips of 1 s cost 2.5x less CPU time batched
# (bf16: 3.5x), 4 clips of 4 s 1.3x (1.5x), which pays for up to 25% padding; longer clips
# are batched rarely (16 s of padded audio per batch) and gain little either way.
DEFAULT_MAX_PADDING = {"cpu": 0.25, "cuda": 0.25}


def store_request(upstream: Upstream, manifest: Manifest, precision: str = "fp32",
                  options: Mapping[str, Any] | None = None) -> StoreRequest:
    opts = dict(getattr(upstream, "store_options", {}) or {})
    opts.update(options or {})
    windows = upstream_windows(upstream)
    if not windows.exact:  # the window policy changes the features of long files
        opts["long_window_s"] = windows.step / upstream.sample_rate
    return StoreRequest(upstream=upstream.name, checkpoint_id=upstream.checkpoint_id,
                        corpus=manifest.corpus, manifest_hash=manifest.content_hash(),
                        precision=precision, options=opts,
                        feature_version=str(getattr(upstream, "feature_version", "") or ""))


def make_plan(upstream: Upstream, layers: Sequence[int], batch_seconds: float | None = None,
              memory_budget: int = DEFAULT_MEMORY, max_padding: float | None = None) -> Plan:
    """Chunk and batch sizes from the upstream's declared shape and the memory budget."""
    device = upstream.device.type
    if batch_seconds is None:
        batch_seconds = DEFAULT_BATCH_SECONDS.get(device, DEFAULT_BATCH_SECONDS["cuda"])
    if batch_seconds <= 0:
        raise EmoboxUsageError(f"--batch-seconds must be positive, got {batch_seconds}")
    if memory_budget <= 0:
        raise EmoboxUsageError(f"the memory budget must be positive, got {memory_budget}")
    dim = upstream.hidden_size or 1024
    per_second = upstream.frame_rate * dim * len(layers) * 2 + 4 * upstream.sample_rate
    # one chunk computing, one being written, audio decoded ahead: a third of the budget each
    chunk_seconds = float(min(1800, max(1, int(memory_budget / 3 / per_second))))
    # the float32 hidden states a batch returns stay within a third of the budget too
    out_per_second = upstream.frame_rate * dim * len(layers) * 4
    batch_seconds = min(float(batch_seconds), max(0.5, int(memory_budget / 3 / out_per_second)))
    return Plan(sample_rate=int(upstream.sample_rate), batch_seconds=float(batch_seconds),
                chunk_seconds=chunk_seconds,
                max_padding=float(max_padding) if max_padding is not None
                else DEFAULT_MAX_PADDING.get(device, DEFAULT_MAX_PADDING["cuda"]),
                padding_sensitive=bool(upstream.padding_sensitive),
                max_seconds=upstream.max_seconds)


@dataclass
class ExtractStats:
    """What one call did: nothing (reused), or extracted some layers."""

    store: FeatureStore
    layers_computed: list[int] = field(default_factory=list)
    reused: bool = False
    resumed_at: int = 0
    utterances: int = 0
    audio_s: float = 0.0
    padded_audio_s: float = 0.0
    seconds: float = 0.0
    gflop: float | None = None
    precision: str = "fp32"
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.reused:
            return f"features reused from {self.store.path}"
        secs = max(self.seconds, 1e-9)
        parts = [f"extracted {self.utterances} utterances ({self.audio_s / 3600:.2f} h of audio)"
                 f" in {self.seconds:.1f} s: {self.utterances / secs:.1f} utt/s, "
                 f"{self.audio_s / secs:.1f} audio-s/s"]
        if self.gflop:
            parts.append(f"{self.gflop / secs:.1f} GFLOP/s")
        parts.append(f"layers {self.layers_computed}, {self.precision} on {self.device}")
        return ", ".join(parts) + f"; store {self.store.path}"


def extract(upstream: Upstream, manifest: Manifest, layers: Sequence[int], *,
            store_dir: Path | None = None, precision: str = "fp32", on_bad_audio: str = "fail",
            reporter: Reporter | None = None, batch_seconds: float | None = None,
            memory_budget: int = DEFAULT_MEMORY, workers: int | None = None,
            options: Mapping[str, Any] | None = None,
            max_padding: float | None = None, runtime: str = "torch") -> FeatureStore:
    """Features of ``layers`` for every utterance of ``manifest``; reuses a matching store."""
    return extract_stats(upstream, manifest, layers, store_dir=store_dir, precision=precision,
                         on_bad_audio=on_bad_audio, reporter=reporter,
                         batch_seconds=batch_seconds, memory_budget=memory_budget,
                         workers=workers, options=options, max_padding=max_padding,
                         runtime=runtime).store


def extract_stats(upstream: Upstream, manifest: Manifest, layers: Sequence[int], *,
                  store_dir: Path | None = None, precision: str = "fp32",
                  on_bad_audio: str = "fail", reporter: Reporter | None = None,
                  batch_seconds: float | None = None, memory_budget: int = DEFAULT_MEMORY,
                  workers: int | None = None, options: Mapping[str, Any] | None = None,
                  max_padding: float | None = None, runtime: str = "torch") -> ExtractStats:
    """:func:`extract`, returning what was done (reused, resumed, throughput).

    on_bad_audio: "fail" stops at the first unreadable (or too short) utterance, naming it, with
        the chunks done so far kept; "skip" leaves it out, records the reason in the store's
        ``skipped`` and goes on.
    batch_seconds: padded audio seconds per batch (default: 16 on CPU, 400 on GPU); the features
        do not depend on it in exact mode beyond float rounding.
    memory_budget: bytes of features and decoded audio held in memory at once.
    max_padding: padding allowed in a batch relative to its shortest input (default 0.25).
    runtime: "torch", or "openvino" (CPU; see :mod:`emobox.extraction.runtime`).
    """
    if on_bad_audio not in ON_BAD_AUDIO:
        raise EmoboxUsageError(f"--on-bad-audio must be one of {', '.join(ON_BAD_AUDIO)}")
    warnings = check_precision(precision, upstream.device)
    check_runtime(runtime, upstream.device)
    reporter = reporter or Reporter()
    notes: list[str] = []
    layers = upstream.resolve_layers(list(layers))
    request = store_request(upstream, manifest, precision, options)
    path = request.path(store_dir or paths.features_dir())
    device = str(upstream.device)

    def existing() -> tuple[FeatureStore, list[int]]:
        store = FeatureStore(path)
        if not store.exists():
            return store, layers
        diff = store.matches(request)
        if diff:
            raise DataError(f"{path}: feature store does not match this request ({diff}); "
                            f"remove it with `emobox features rm {path}`", path=str(path))
        store.check()
        found = check_audio(store, manifest.root, (u.path for u in manifest))
        if found.changed:
            raise DataError(stale_audio_message(store, manifest.root, found),
                            path=str(manifest.root / found.changed[0][0]))
        if found.refreshed and not refresh_audio_records(store, found.refreshed):
            notes.append(f"{len(found.refreshed)} audio files have new modification times "
                         f"but their old content; the store is read-only, so they are hashed "
                         f"again on each use")
        return store, [L for L in layers if L not in store.layers()]

    def reused(store: FeatureStore) -> ExtractStats:
        store.check_for_training(layers)  # the content a reuse hands on (hashes checked once)
        _drop_finished_partial(path, store)
        return ExtractStats(store, reused=True, precision=precision, device=device, notes=notes)

    store, missing = existing()
    if not missing:
        return reused(store)
    with store_lock(path, on_wait=reporter.log):
        store, missing = existing()
        if not missing:
            return reused(store)
        missing = _resumable_layers(path, request, missing, upstream.num_layers)
        plan = make_plan(upstream, missing, batch_seconds, memory_budget, max_padding)
        from emobox.extraction.engine import upstream_windows

        windows = upstream_windows(upstream)
        extra_meta = {"frame_rate": upstream.frame_rate, "sample_rate": upstream.sample_rate,
                      "upstream_num_layers": upstream.num_layers,
                      "hidden_size": upstream.hidden_size,
                      "padding_sensitive": bool(upstream.padding_sensitive),
                      "max_seconds": upstream.max_seconds,
                      "long_audio": {"window_s": windows.samples / upstream.sample_rate,
                                     "step_s": windows.step / upstream.sample_rate,
                                     "exact": windows.exact}}
        provenance = dict(getattr(upstream, "provenance", {}) or {})
        if provenance:
            extra_meta["provenance"] = provenance
        writer = StoreWriter(path, request, missing, plan.to_dict(), extra_meta,
                             audio_root=os.path.abspath(manifest.root))
        notes += writer.notes
        plan = Plan(**writer.plan)
        start = writer.resume_position
        stats = ExtractStats(store, layers_computed=missing, resumed_at=start,
                             precision=precision, device=device, notes=notes)
        label = f"extract {upstream.name} on {manifest.corpus} (layers " \
                f"{','.join(map(str, missing))}, {precision})"
        if start:
            label += f", resuming at {start + 1}"
        for warning in warnings:  # before the work, where it can still be stopped
            reporter.log(f"warning: {warning}")
        t0 = time.perf_counter()
        with reporter.task(label, len(manifest) - start, "utt") as task:
            engine = Engine(upstream, missing, plan, precision, on_bad_audio, task, runtime,
                            heap_pad=pad_for(memory_budget))
            workers = workers or default_workers()
            try:
                engine.run(manifest, writer, workers,
                           max_ahead_bytes=max(16 << 20, memory_budget // 3))
            except RuntimeDisagreement as exc:
                shutil.rmtree(writer.partial, ignore_errors=True)
                raise DataError(str(exc), path=str(path)) from None
        settings = engine.settings(workers)
        store = writer.finish({"engine": settings}, layer_meta={"engine": settings})
        c = engine.counters
        stats.store = store
        stats.seconds = time.perf_counter() - t0
        stats.utterances, stats.audio_s, stats.padded_audio_s = c.utterances, c.audio_s, \
            c.padded_audio_s
        stats.gflop = c.gflop or None
        stats.notes += c.notes
        append_session(path, {
            "layers": missing, "precision": precision, "device": device,
            "resumed_at": start, "utterances": c.utterances, "audio_s": round(c.audio_s, 3),
            "padded_audio_s": round(c.padded_audio_s, 3), "seconds": round(stats.seconds, 3),
            "gflop": round(c.gflop, 3), "batches": c.batches, "plan": plan.to_dict(),
            "compute_s": round(c.compute_s, 3), "audio_wait_s": round(c.audio_wait_s, 3),
            "runtime_setup_s": round(c.runtime_setup_s, 3),
            "runtime_check_s": round(c.runtime_check_s, 3),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "emobox": __version__, "engine": settings})
    for note in stats.notes:
        reporter.log(f"note: {note}")
    reporter.log(stats.summary())
    return stats


def _drop_finished_partial(path: Path, store: FeatureStore) -> None:
    """Remove a ``.partial`` left by a kill after meta.json was written (its layers are all in
    the store), when no other process holds the store."""

    partial = path / PARTIAL
    if not partial.is_dir():
        return
    try:
        header = _read_journal(partial / JOURNAL)[0]
        layers = header.get("layers")
        if not (isinstance(layers, list) and set(layers) <= set(store.layers())):
            return
        with store_lock(path, wait=False):
            shutil.rmtree(partial, ignore_errors=True)
    except (OSError, ValueError, EmoboxUsageError):
        return


def _resumable_layers(path: Path, request: StoreRequest, missing: list[int],
                      num_layers: int) -> list[int]:
    """``missing``, or the layers of an interrupted extraction of this store covering them."""
    try:
        header = _read_journal(path / PARTIAL / JOURNAL)[0]
    except (OSError, ValueError):
        return missing
    layers = header.get("layers") or []
    if not isinstance(layers, list) or not all(isinstance(L, int) and not isinstance(L, bool)
                                               for L in layers):
        return missing
    if (header.get("identity") == request.identity() and set(missing) <= set(layers)
            and all(isinstance(L, int) and 0 <= L <= num_layers for L in layers)
            and not set(layers) & set(FeatureStore(path).layers() if
                                      (path / "meta.json").exists() else [])):
        return sorted(layers)
    return missing


def default_workers() -> int:
    """Audio decoding threads: two, or more on machines with many cores."""
    return max(2, min(8, (os.cpu_count() or 2) // 4))


@dataclass(frozen=True)
class ExtractOptions:
    """The options of ``emobox extract`` (library twin: :func:`extract_corpus`)."""

    upstream: str
    corpus: str
    layers: Sequence[int | str] | int | str | None = None  # None = last; "all"; ints
    root: str | None = None
    scheme: str = "emobox"  # the partition scheme of the runs to come (it decides the channels)
    device: str = "cpu"
    precision: str = "fp32"
    batch_seconds: float | None = None
    on_bad_audio: str = "fail"
    features_dir: str | None = None
    upstream_ckpt: str | None = None
    upstream_options: Mapping[str, Any] = field(default_factory=dict)
    corpus_options: Mapping[str, Any] = field(default_factory=dict)
    workers: int | None = None
    memory_budget: int = DEFAULT_MEMORY
    runtime: str = "torch"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmoboxUsageError(f"--device {device}: no CUDA device is available on this machine")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise EmoboxUsageError(f"--device {device!r}: use cpu, cuda, cuda:N or auto")
    return device


def extract_corpus(opts: ExtractOptions, reporter: Reporter | None = None,
                     registry=None) -> ExtractStats:
    """Build the upstream and the corpus by name and extract (library twin of the CLI)."""
    registry = registry or get_registry()
    up_spec = registry.upstream(opts.upstream)
    corpus_spec = registry.corpus(opts.corpus)
    device = resolve_device(opts.device)
    check_precision(opts.precision, device)
    check_runtime(opts.runtime, device)
    corpus = corpus_spec.build(None if corpus_spec.embedded and not opts.root
                               else paths.corpus_root(opts.corpus, opts.root),
                               **dict(opts.corpus_options))
    upstream = up_spec.load(ckpt=opts.upstream_ckpt, device=device,
                             **dict(opts.upstream_options))
    layers = upstream.resolve_layers(opts.layers)
    if opts.scheme not in SCHEMES:
        raise EmoboxUsageError(f"unknown partition scheme {opts.scheme!r}; use one of "
                               f"{', '.join(SCHEMES)}")
    # what a run in this scheme reads (one store for run, cross run and extract): its channels
    # and, in scheme emobox, no file the corpus's published table leaves out of every split
    manifest = corpus.manifest_for(opts.scheme)
    unused = corpus.out_of_scheme() if opts.scheme == "emobox" else {}
    if unused:
        manifest = manifest.subset([u.key for u in manifest if u.key not in unused])
    stats = extract_stats(upstream, manifest, layers, precision=opts.precision,
                          store_dir=Path(opts.features_dir) if opts.features_dir else None,
                          on_bad_audio=opts.on_bad_audio, reporter=reporter,
                          batch_seconds=opts.batch_seconds, memory_budget=opts.memory_budget,
                          workers=opts.workers, options=dict(opts.upstream_options),
                          runtime=opts.runtime)
    if unused:
        key = next(iter(unused))
        stats.notes.append(f"{len(unused)} utterances of the scan are in no split of scheme "
                           f"emobox and were not extracted (e.g. {key}: {unused[key]})")
    return stats


class FrameSource:
    """Frames of a set of utterances, gathered by utterance index into packed batches.

    ``layer`` is one layer index (frames ``[N, D]``) or a sequence of layers (frames stacked on a
    leading axis, ``[L, N, D]``, for heads that read every layer). Each layer is normalised in
    float32 as ``norm`` says (:func:`normalise_frames`: ``"utterance"``, EmoBox's, the default;
    ``"frame"``; ``"none"``), then held as ``dtype`` (float32, or bfloat16 for bf16 training).
    The selected utterances' frames are held in memory when they fit in ``memory_limit`` bytes,
    else read from the memory-mapped store per batch.
    """

    def __init__(self, store: FeatureStore, layer: int | Sequence[int], keys: Sequence[str],
                 norm: str = "utterance", memory_limit: int = 4 << 30,
                 dtype: torch.dtype = torch.float32):
        self.stacked = not isinstance(layer, (int, np.integer))
        self.layers = [int(x) for x in layer] if self.stacked else [int(layer)]
        store.check_for_training(self.layers)  # checksums: an edited store is never trained on
        self.store = store
        all_keys, offsets, lengths = store.index()
        pos = {k: i for i, k in enumerate(all_keys)}
        missing = [k for k in keys if k not in pos]
        if missing:
            raise DataError(f"{store.path}: no features for {len(missing)} utterances, e.g. "
                            f"{missing[0]!r}", path=str(store.path))
        rows = np.asarray([pos[k] for k in keys], dtype=np.int64)
        if not self.layers:
            raise EmoboxUsageError("FrameSource needs at least one layer")
        self.keys = list(keys)
        self.norm = _check_norm(norm)
        self.dtype = dtype
        dims = {store.dim(L) for L in self.layers}
        if len(dims) != 1:
            raise DataError(f"{store.path}: layers {self.layers} differ in dimension "
                            f"{sorted(dims)}", path=str(store.path))
        self.dim = dims.pop()
        srcs = [store.layer(L) for L in self.layers]
        self.lengths = torch.from_numpy(lengths[rows].copy())
        src_offsets = torch.from_numpy(offsets[rows].copy())
        n_frames = int(self.lengths.sum())
        itemsize = torch.empty((), dtype=dtype).element_size()
        if n_frames * self.dim * itemsize * len(self.layers) <= memory_limit:
            idx = _frame_index(src_offsets, self.lengths).numpy()
            held = [self._norm(self._finite(torch.from_numpy(np.asarray(src[idx],
                                                                         dtype=np.float32)),
                                            L, self.lengths, self.keys),
                               self.lengths, inplace=True)
                    for L, src in zip(self.layers, srcs)]
            self._frames = torch.stack(held) if self.stacked else held[0]
            self._srcs = None
            self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        else:
            self._frames = None
            self._srcs = srcs
            self.offsets = src_offsets

    def _finite(self, x: torch.Tensor, layer: int, lengths: torch.Tensor,
                keys: Sequence[str]) -> torch.Tensor:
        """``x`` (frames of utterances ``keys`` with ``lengths``), or a :class:`DataError`
        naming the first utterance with a NaN or infinite value (a damaged store)."""
        finite = torch.isfinite(x).all(dim=-1)
        if bool(finite.all()):
            return x
        row = int((~finite).nonzero()[0, 0])
        utt = int(torch.searchsorted(torch.cumsum(lengths.cpu(), 0), row, right=True))
        path = self.store.path / f"layer_{layer}.f16"
        raise DataError(f"{path}: NaN or infinite features for utterance {keys[utt]!r}; the "
                        f"store is damaged: delete it with `emobox features rm "
                        f"{self.store.path}` and extract again", path=str(path))

    @classmethod
    def from_frames(cls, frames: torch.Tensor, lengths: torch.Tensor, keys: Sequence[str],
                    norm: str = "none", dtype: torch.dtype = torch.float32
                    ) -> "FrameSource":
        """An in-memory source over packed ``frames`` (``[N, D]``, or ``[L, N, D]`` for stacked
        layers) of utterances with ``lengths``, without a feature store (tests, benchmarks)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        if len(keys) != len(lengths) or int(lengths.sum()) != frames.shape[-2]:
            raise DataError(f"from_frames: {len(keys)} keys, {len(lengths)} lengths summing to "
                            f"{int(lengths.sum())}, {frames.shape[-2]} frames")
        self = cls.__new__(cls)
        self.stacked = frames.dim() == 3
        self.layers = list(range(frames.shape[0])) if self.stacked else [0]
        self.keys = list(keys)
        self.norm = _check_norm(norm)
        self.dtype = dtype
        self.dim = frames.shape[-1]
        self.lengths = lengths
        self.offsets = torch.cumsum(lengths, 0) - lengths
        self._frames = self._norm(frames, lengths)
        self._srcs = None
        return self

    def _norm(self, x: torch.Tensor, lengths: torch.Tensor, inplace: bool = False
              ) -> torch.Tensor:
        return normalise_frames(x, lengths, self.norm, inplace=inplace).to(self.dtype)

    def __len__(self) -> int:
        return len(self.keys)

    def to(self, device: torch.device | str) -> "FrameSource":
        """Hold the frames on ``device`` (e.g. a GPU), so that batches are gathered there."""
        if self._frames is not None:
            self._frames = self._frames.to(device)
            self.lengths = self.lengths.to(device)
            self.offsets = self.offsets.to(device)
        return self

    @property
    def n_frames(self) -> int:
        return int(self.lengths.sum())

    def gather_range(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames and lengths of the consecutive utterances ``start..stop-1``: a view of the held
        frames (no copy) when they are in memory."""
        if self._frames is None:
            return self.gather(torch.arange(start, stop))
        lengths = self.lengths[start:stop]
        first = int(self.offsets[start]) if stop > start else 0
        return self._frames.narrow(-2, first, int(lengths.sum())), lengths

    def gather(self, utt_idx: torch.Tensor,
               out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed frames ``[N, D]`` (``[L, N, D]`` for stacked layers) of utterances ``utt_idx``
        and their lengths ``[B]``. ``out``, a flat buffer of this source's dtype, is used for the
        frames when it is large enough (no fresh allocation per batch); the result is a view of
        it, valid until the next call with the same buffer."""
        lengths = self.lengths[utt_idx]
        idx = _frame_index(self.offsets[utt_idx], lengths)
        n = len(idx)
        if self._frames is not None:
            shape = (len(self.layers), n, self.dim) if self.stacked else (n, self.dim)
            if out is None or out.numel() < math.prod(shape) or out.dtype != self.dtype:
                return self._frames.index_select(-2, idx), lengths
            view = out[:math.prod(shape)].view(shape)
            torch.index_select(self._frames, -2, idx, out=view)
            return view, lengths
        np_idx = idx.cpu().numpy()
        keys = [self.keys[int(i)] for i in utt_idx.reshape(-1).tolist()]
        held = [self._norm(self._finite(torch.from_numpy(np.asarray(src[np_idx],
                                                                    dtype=np.float32)),
                                        L, lengths, keys),
                           lengths.cpu(), inplace=True)
                for L, src in zip(self.layers, self._srcs)]
        return (torch.stack(held) if self.stacked else held[0]), lengths


FEATURE_NORMS = ("utterance", "frame", "none")
NORM_EPS = 1e-5  # torch's layer_norm default, which EmoBox used


def _check_norm(norm: str) -> str:
    if norm not in FEATURE_NORMS:
        raise EmoboxUsageError(f"--feature-norm {norm!r}: use one of {', '.join(FEATURE_NORMS)}")
    return norm


def normalise_frames(x: torch.Tensor, lengths: torch.Tensor, norm: str = "utterance",
                     inplace: bool = False) -> torch.Tensor:
    """Packed frames ``[N, D]`` (or ``[L, N, D]``: each layer on its own) of utterances with
    ``lengths``, normalised in float32 (no learned scale or shift, eps 1e-5):

    - ``"utterance"`` (EmoBox's: ``F.layer_norm(feats, feats.shape[1:])`` on each utterance's
      ``[1, T, D]``): one mean and one variance per utterance (and layer) over all its frames and
      dimensions together;
    - ``"frame"``: each frame over its D values (``F.layer_norm(x, (D,))``); it makes any
      1-dimensional feature zero;
    - ``"none"``: the features as stored.

    ``inplace`` lets a float32 ``x`` be overwritten (a fresh copy read from the store).
    """
    _check_norm(norm)
    x = x.float()
    if norm == "none":
        return x
    if norm == "frame":
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), eps=NORM_EPS)
    if not inplace:
        x = x.clone()
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=x.device)
    n_utt, dim = len(lengths), x.shape[-1]
    segments = torch.repeat_interleave(torch.arange(n_utt, device=x.device), lengths)
    count = (lengths.double() * dim).clamp(min=1)
    lead = x.shape[:-2]  # () or (L,)

    def per_utterance(row_values: torch.Tensor) -> torch.Tensor:  # [..., N] -> [..., B]
        sums = torch.zeros(*lead, n_utt, dtype=torch.float64, device=x.device)
        return sums.index_add_(-1, segments, row_values.double()) / count

    # row sums in float32 (D values each), accumulated per utterance in float64
    mean = per_utterance(x.sum(-1))
    x.sub_(mean.float().index_select(-1, segments).unsqueeze(-1))
    var = per_utterance(torch.linalg.vector_norm(x, dim=-1).double().square())
    rstd = (var + NORM_EPS).rsqrt().float()
    return x.mul_(rstd.index_select(-1, segments).unsqueeze(-1))


def _frame_index(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Frame rows of utterances starting at ``starts`` with ``lengths``, concatenated."""
    if lengths.device.type == "cpu":  # numpy: no thread pool wake-up for a small job
        st, ln = starts.numpy(), lengths.numpy()
        total = int(ln.sum())
        seg_start = np.cumsum(ln) - ln
        return torch.from_numpy(np.arange(total, dtype=np.int64) + np.repeat(st - seg_start, ln))
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=lengths.device)
    seg_start = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - seg_start, lengths)
    return torch.arange(total, dtype=torch.long, device=lengths.device) + shift
