"""Feature extraction: run an upstream once over a corpus manifest into a feature store."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import paths
from .audio import load_audio
from .errors import AudioError, DataError, EmoboxUsageError
from .manifest import Manifest
from .progress import Reporter
from .store import FeatureStore, StoreRequest, StoreWriter
from .upstream import Upstream

ON_BAD_AUDIO = ("fail", "skip")


def store_request(upstream: Upstream, manifest: Manifest, precision: str = "fp32") -> StoreRequest:
    options = dict(getattr(upstream, "store_options", {}) or {})
    return StoreRequest(upstream=upstream.name, checkpoint_id=upstream.checkpoint_id,
                        corpus=manifest.corpus, manifest_hash=manifest.content_hash(),
                        precision=precision, options=options)


def extract(upstream: Upstream, manifest: Manifest, layers: Sequence[int], *,
            store_dir: Path | None = None, precision: str = "fp32", on_bad_audio: str = "fail",
            reporter: Reporter | None = None) -> FeatureStore:
    """Features of ``layers`` for every utterance of ``manifest``; reuses a matching store.

    on_bad_audio: "fail" stops at the first unreadable file (naming it); "skip" leaves it out,
        records the reason in the store's ``skipped`` and goes on.
    """
    if on_bad_audio not in ON_BAD_AUDIO:
        raise EmoboxUsageError(f"--on-bad-audio must be one of {', '.join(ON_BAD_AUDIO)}")
    if precision != "fp32":
        raise EmoboxUsageError(f"precision {precision!r} is not supported; use fp32")
    reporter = reporter or Reporter()
    request = store_request(upstream, manifest, precision)
    path = request.path(store_dir or paths.features_dir())
    store = FeatureStore(path)
    layers = sorted(set(layers))
    if store.complete:
        diff = store.matches(request)
        if diff:
            raise DataError(f"{path}: feature store does not match this request ({diff}); "
                            f"remove it with `emobox features rm`", path=str(path))
        if set(layers) <= set(store.layers()):
            return store
        layers = sorted(set(layers) | set(store.layers()))
    writer = StoreWriter(path, request, layers, {
        "frame_rate": upstream.frame_rate, "sample_rate": upstream.sample_rate,
        "upstream_num_layers": upstream.num_layers})
    try:
        with reporter.task(f"extract {upstream.name} on {manifest.corpus}", len(manifest),
                           "utt") as task, torch.inference_mode():
            for utt in manifest:
                try:
                    wav = load_audio(manifest.audio_path(utt), sample_rate=upstream.sample_rate,
                                     channel=utt.channel, start=utt.start, end=utt.end)
                except AudioError as exc:
                    if on_bad_audio == "fail":
                        raise AudioError(f"{exc} (utterance {utt.key}; use --on-bad-audio skip "
                                         f"to leave such files out)", path=exc.path) from None
                    writer.skip(utt.key, str(exc))
                    task.advance(1)
                    continue
                out = upstream([torch.from_numpy(wav).to(upstream.device)], layers)
                n = int(out.lengths[0])
                writer.append(utt.key, {L: out.hidden[L][0, :n].float().cpu().numpy()
                                        for L in layers})
                task.advance(1, audio_s=len(wav) / upstream.sample_rate)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


class FrameSource:
    """Frames of a set of utterances, gathered by utterance index into packed batches.

    ``layer`` is one layer index (frames ``[N, D]``) or a sequence of layers (frames stacked on a
    leading axis, ``[L, N, D]``, for heads that read every layer). Each layer is layer-normalised
    over the feature axis (in float32) when ``layer_norm``, then held as ``dtype`` (float32, or
    bfloat16 for bf16 training). The selected utterances' frames are held in memory when they fit
    in ``memory_limit`` bytes, else read from the memory-mapped store per batch.
    """

    def __init__(self, store: FeatureStore, layer: int | Sequence[int], keys: Sequence[str],
                 layer_norm: bool = True, memory_limit: int = 4 << 30,
                 dtype: torch.dtype = torch.float32):
        all_keys, offsets, lengths = store.index()
        pos = {k: i for i, k in enumerate(all_keys)}
        missing = [k for k in keys if k not in pos]
        if missing:
            raise DataError(f"{store.path}: no features for {len(missing)} utterances, e.g. "
                            f"{missing[0]!r}", path=str(store.path))
        rows = np.asarray([pos[k] for k in keys], dtype=np.int64)
        self.stacked = not isinstance(layer, (int, np.integer))
        self.layers = [int(x) for x in layer] if self.stacked else [int(layer)]
        if not self.layers:
            raise EmoboxUsageError("FrameSource needs at least one layer")
        self.keys = list(keys)
        self.layer_norm = layer_norm
        self.dtype = dtype
        dims = {store.dim(L) for L in self.layers}
        if len(dims) != 1:
            raise DataError(f"{store.path}: layers {self.layers} differ in dimension {sorted(dims)}",
                            path=str(store.path))
        self.dim = dims.pop()
        srcs = [store.layer(L) for L in self.layers]
        self.lengths = torch.from_numpy(lengths[rows].copy())
        src_offsets = torch.from_numpy(offsets[rows].copy())
        n_frames = int(self.lengths.sum())
        itemsize = torch.empty((), dtype=dtype).element_size()
        if n_frames * self.dim * itemsize * len(self.layers) <= memory_limit:
            idx = _frame_index(src_offsets, self.lengths).numpy()
            held = [self._norm(torch.from_numpy(np.asarray(src[idx], dtype=np.float32)))
                    for src in srcs]
            self._frames = torch.stack(held) if self.stacked else held[0]
            self._srcs = None
            self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        else:
            self._frames = None
            self._srcs = srcs
            self.offsets = src_offsets

    @classmethod
    def from_frames(cls, frames: torch.Tensor, lengths: torch.Tensor, keys: Sequence[str],
                    layer_norm: bool = False, dtype: torch.dtype = torch.float32
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
        self.layer_norm = layer_norm
        self.dtype = dtype
        self.dim = frames.shape[-1]
        self.lengths = lengths
        self.offsets = torch.cumsum(lengths, 0) - lengths
        self._frames = self._norm(frames)
        self._srcs = None
        return self

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:
            x = torch.nn.functional.layer_norm(x.float(), (x.shape[-1],))
        return x.to(self.dtype)

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
        held = [self._norm(torch.from_numpy(np.asarray(src[np_idx], dtype=np.float32)))
                for src in self._srcs]
        return (torch.stack(held) if self.stacked else held[0]), lengths


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
