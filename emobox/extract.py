"""Feature extraction: run an upstream once over a corpus manifest into a feature store."""

from __future__ import annotations

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
    """Frames of a set of utterances, gathered by utterance index into packed float32 batches.

    Holds the selected utterances' frames in memory (layer-normalised once) when they fit in
    ``memory_limit`` bytes, else reads them from the memory-mapped store per batch.
    """

    def __init__(self, store: FeatureStore, layer: int, keys: Sequence[str],
                 layer_norm: bool = True, memory_limit: int = 4 << 30):
        all_keys, offsets, lengths = store.index()
        pos = {k: i for i, k in enumerate(all_keys)}
        missing = [k for k in keys if k not in pos]
        if missing:
            raise DataError(f"{store.path}: no features for {len(missing)} utterances, e.g. "
                            f"{missing[0]!r}", path=str(store.path))
        rows = np.asarray([pos[k] for k in keys], dtype=np.int64)
        self.keys = list(keys)
        self.layer_norm = layer_norm
        self.dim = store.dim(layer)
        src = store.layer(layer)
        self.lengths = torch.from_numpy(lengths[rows].copy())
        src_offsets = torch.from_numpy(offsets[rows].copy())
        n_frames = int(self.lengths.sum())
        if n_frames * self.dim * 4 <= memory_limit:
            idx = _frame_index(src_offsets, self.lengths).numpy()
            frames = torch.from_numpy(np.asarray(src[idx], dtype=np.float32))
            self._frames = self._norm(frames)
            self._src = None
            self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        else:
            self._frames = None
            self._src = src
            self.offsets = src_offsets

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:
            return torch.nn.functional.layer_norm(x, (x.shape[-1],))
        return x

    def __len__(self) -> int:
        return len(self.keys)

    def gather(self, utt_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed frames ``[N, D]`` of utterances ``utt_idx`` and their lengths ``[B]``."""
        lengths = self.lengths[utt_idx]
        idx = _frame_index(self.offsets[utt_idx], lengths)
        if self._frames is not None:
            return self._frames[idx], lengths
        frames = torch.from_numpy(np.asarray(self._src[idx.numpy()], dtype=np.float32))
        return self._norm(frames), lengths


def _frame_index(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Frame rows of utterances starting at ``starts`` with ``lengths``, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    seg_start = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - seg_start, lengths)
    return torch.arange(total, dtype=torch.long) + shift
