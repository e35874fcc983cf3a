"""The extraction loop: decode ahead in background threads, batch, run the upstream, append chunks.

The main thread only runs the upstream; audio is decoded and resampled by a pool of threads
(libsndfile, soxr and PyAV release the GIL) that stays ahead of it, and finished chunks are
written to the store by another thread while the next chunk computes. The decoding threads also
record each audio file's size, time and SHA-256 for the store (``audio.tsv``).

An utterance longer than one of the upstream's windows (:meth:`Upstream.windows`) is never
decoded whole: it is its own chunk, decoded, resampled and encoded window by window, its frames
appended to the store as they come, so that memory does not depend on its length.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.nn.utils import parametrize

from emobox.datasets.audio import audio_samples, load_audio, stream_audio
from emobox.extraction.batching import Plan, chunk_full, plan_batches
from emobox.extraction.runtime import OpenVINORuntime, has_graph, runtime_for
from emobox.errors import AudioError, ContractError, DataError
from emobox.datasets.manifest import Manifest, Utterance
from emobox.extraction.kernels import (attention_kernel_name, channels_last_conv,
                                      conv_kernel_name, fused_wavlm_attention)
from emobox.extraction.allocator import heap_kept, heap_setting
from emobox.extraction.precision import compute_context, fast_path, lowp_weights
from emobox.progress import Task
from emobox.extraction.store import FP16_MAX, AudioRecord, ChunkData, StoreWriter, audio_record
from emobox.extraction.upstream import Upstream, Windows


@dataclass
class Loaded:
    position: int  # in the manifest
    utt: Utterance
    wav: np.ndarray | None
    error: AudioError | None = None
    path: str = ""  # the audio file
    record: AudioRecord | None = None  # the file as it was read
    long: bool = False  # longer than one window: streamed, ``wav`` is None
    samples: int = 0  # (long) samples the header promises at the upstream's rate


def upstream_windows(upstream: Upstream) -> Windows:
    """The upstream's :class:`Windows` (checked); the default policy for objects without one."""
    fn = getattr(upstream, "windows", None)
    w = fn() if callable(fn) else Upstream.windows(upstream)
    name = getattr(upstream, "name", "") or type(upstream).__name__
    if not (isinstance(w, Windows) and isinstance(w.step, int) and w.step >= 1
            and isinstance(w.overlap, int) and w.overlap >= 0 and isinstance(w.min_tail, int)
            and w.min_tail >= 1):
        raise ContractError(f"upstream {name}: windows() must return Windows(step >= 1, "
                            f"overlap >= 0, min_tail >= 1), got {w!r}")
    return w


class AudioPrefetcher:
    """Utterances ``positions`` of ``manifest``, decoded by ``workers`` threads, in order.

    At most ``max_items`` utterances (and about ``max_bytes`` of decoded audio) are held ahead of
    the consumer.
    """

    def __init__(self, manifest: Manifest, positions: Sequence[int], sample_rate: int,
                 workers: int = 2, max_items: int = 256, max_bytes: int = 256 << 20,
                 long_samples: int | None = None):
        self.manifest = manifest
        self.positions = list(positions)
        self.sample_rate = sample_rate
        self.long_samples = long_samples
        self._records: dict[str, AudioRecord | threading.Event] = {}
        self._records_lock = threading.Lock()
        self.max_items = max(1, max_items)
        self.max_bytes = max_bytes
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="emobox-audio")
        self.queue: deque[tuple[int, Future]] = deque()
        self.next = 0
        self.wait_s = 0.0  # time the consumer spent waiting for audio

    def record(self, utt: Utterance) -> AudioRecord:
        """The audio file's record, computed once per file (segments share their file)."""
        with self._records_lock:
            got = self._records.get(utt.path)
            if got is None:
                mine = self._records[utt.path] = threading.Event()
        if isinstance(got, AudioRecord):
            return got
        if got is not None:  # another thread is hashing this file
            got.wait()
            return self._records[utt.path]  # type: ignore[return-value]
        rec = audio_record(self.manifest.root, utt.path)
        with self._records_lock:
            self._records[utt.path] = rec
        mine.set()
        return rec

    def _load(self, position: int) -> Loaded:
        utt = self.manifest.utterances[position]
        path = self.manifest.audio_path(utt)
        record = self.record(utt)
        try:
            if self.long_samples is not None:
                n = audio_samples(path, sample_rate=self.sample_rate, start=utt.start,
                                  end=utt.end)
                if n is not None and n > self.long_samples:
                    return Loaded(position, utt, None, path=str(path), record=record,
                                  long=True, samples=n)
            wav = load_audio(path, sample_rate=self.sample_rate, channel=utt.channel,
                             start=utt.start, end=utt.end)
            return Loaded(position, utt, wav, path=str(path), record=record)
        except AudioError as exc:
            return Loaded(position, utt, None, exc, path=str(path), record=record)

    def _held_bytes(self) -> int:
        return sum(f.result().wav.nbytes for _, f in self.queue
                   if f.done() and f.exception() is None and f.result().wav is not None)

    def _top_up(self) -> None:
        while (self.next < len(self.positions) and len(self.queue) < self.max_items
               and (not self.queue or self._held_bytes() < self.max_bytes)):
            pos = self.positions[self.next]
            self.queue.append((pos, self.pool.submit(self._load, pos)))
            self.next += 1

    def __iter__(self) -> Iterator[Loaded]:
        try:
            while True:
                self._top_up()
                if not self.queue:
                    return
                _, fut = self.queue.popleft()
                if not fut.done():
                    t0 = time.perf_counter()
                    item = fut.result()
                    self.wait_s += time.perf_counter() - t0
                else:
                    item = fut.result()
                yield item
        finally:
            self.close()

    def close(self) -> None:
        for _, fut in self.queue:
            fut.cancel()
        self.queue.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


def iter_chunks(items: Iterator[Loaded], plan: Plan) -> Iterator[list[Loaded]]:
    """Chunks of consecutive utterances; a long (streamed) utterance is a chunk of its own."""
    chunk: list[Loaded] = []
    seconds = 0.0
    for item in items:
        if item.long:
            if chunk:
                yield chunk
                chunk, seconds = [], 0.0
            yield [item]
            continue
        chunk.append(item)
        if item.wav is not None:
            seconds += len(item.wav) / plan.sample_rate
        if chunk_full(len(chunk), seconds, plan):
            yield chunk
            chunk, seconds = [], 0.0
    if chunk:
        yield chunk


@dataclass
class Counters:
    utterances: int = 0
    audio_s: float = 0.0
    padded_audio_s: float = 0.0
    gflop: float = 0.0
    batches: int = 0
    compute_s: float = 0.0
    audio_wait_s: float = 0.0  # time the encoder waited for decoded audio
    runtime_setup_s: float = 0.0  # converting and compiling for another runtime (OpenVINO)
    runtime_check_s: float = 0.0  # torch computing the batches it is checked on
    notes: list[str] = field(default_factory=list)


def attention_implementation(module: torch.nn.Module) -> str | None:
    """The attention implementation transformers uses in ``module`` (``eager``, ``sdpa``, ...),
    from the first model config found in it; None when it holds no transformers model."""
    for sub in module.modules():
        impl = getattr(getattr(sub, "config", None), "_attn_implementation", None)
        if isinstance(impl, str):
            return impl
    return None


class Engine:
    """Runs one upstream over chunks of a manifest and hands the features to a store writer."""

    def __init__(self, upstream: Upstream, layers: Sequence[int], plan: Plan, precision: str,
                 on_bad_audio: str, task: Task, runtime: str = "torch", heap_pad: int = 0):
        self.upstream = upstream
        self.layers = sorted(layers)
        self.plan = plan
        self.precision = precision
        self.on_bad_audio = on_bad_audio
        self.task = task
        self.device = upstream.device
        self.counters = Counters()
        self.runtime: OpenVINORuntime | None = None
        self.runtime_note: str | None = None
        if runtime == "openvino":
            if not has_graph(upstream, self.layers):
                self.runtime_note = (f"--runtime openvino: {upstream.name} has no graph for "
                                     f"OpenVINO; torch computed its features")
            else:
                self.runtime = OpenVINORuntime(precision)
        # OpenVINO traces the stock float32 modules and chooses its own kernels and precision
        self.use_lowp = (precision != "fp32" and getattr(upstream, "lowp_weight_cache", True)
                         and self.runtime is None)
        fast = getattr(upstream, "fast_kernels", True) and self.runtime is None
        on_cpu = torch.device(self.device).type == "cpu"
        # group-norm stacks run time-major only in low precision on a CPU (kernels.py)
        self.gn_time_major = precision != "fp32" and on_cpu
        self.conv_kernel = (conv_kernel_name(upstream, group_norm=self.gn_time_major) if fast
                            else None)
        self.attention_kernel = attention_kernel_name(upstream) if fast else None
        self.windows = upstream_windows(upstream)
        # glibc keeps its heap while the CPU computes (allocator.py): where it applies
        self.heap_pad = heap_pad if on_cpu else 0
        self.heap = heap_setting(self.heap_pad)

    def settings(self, workers: int) -> dict:
        """How the features were computed (meta.json ``engine``, the session journal): the
        numeric settings that shape them and the execution settings that shaped the run."""
        kind = torch.device(self.device).type
        out = {"precision": self.precision, "device": str(self.device),
               "autocast": None if self.precision == "fp32" else self.precision,
               "lowp_weight_cache": bool(self.use_lowp), "inference_mode": True,
               "tf32": False if kind == "cuda" else None,
               "runtime": self.runtime.describe() if self.runtime is not None else None,
               "attention": self.attention_kernel or attention_implementation(self.upstream),
               "conv_feature_encoder": self.conv_kernel,
               "batching": ("equal lengths only" if self.plan.padding_sensitive else
                            f"sorted by length, padding <= {self.plan.max_padding:g} of the "
                            f"shortest, attention mask"),
               "batch_seconds": self.plan.batch_seconds,
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "allocator": self.heap,
               "interop_threads": torch.get_num_interop_threads(), "decode_workers": workers}
        return {k: v for k, v in out.items() if v is not None}

    # -- the loop -----------------------------------------------------------------------------
    def run(self, manifest: Manifest, writer: StoreWriter, workers: int, max_ahead_bytes: int
            ) -> None:
        positions = range(writer.resume_position, len(manifest))
        prefetch = AudioPrefetcher(manifest, positions, self.upstream.sample_rate, workers,
                                   max_items=max(64, min(self.plan.chunk_items, 1024)),
                                   max_bytes=max_ahead_bytes, long_samples=self.windows.samples)
        pending: Future | None = None
        # the faster kernels and the low-precision weights are swapped in once for the whole
        # run, not at every batch (casting a base-sized encoder's weights took as long as a
        # batch of one short clip), and parametrized weights (the weight-normed positional
        # convolution of the wav2vec2 family) are computed once for the run where torch computes
        # the features: the same tensors, not recomputed at every batch
        with ThreadPoolExecutor(1, thread_name_prefix="emobox-store") as write_pool, \
                (heap_kept(self.heap_pad) if self.heap else nullcontext()), \
                (parametrize.cached() if self.runtime is None else nullcontext()), \
                (lowp_weights(self.upstream, self.precision) if self.use_lowp
                 else nullcontext()), \
                (channels_last_conv(self.upstream, group_norm=self.gn_time_major)
                 if self.conv_kernel else nullcontext()), \
                (fused_wavlm_attention(self.upstream) if self.attention_kernel
                 else nullcontext()), \
                runtime_for(self.upstream, self.runtime):
            try:
                for chunk in iter_chunks(iter(prefetch), self.plan):
                    if chunk[0].long:
                        if pending is not None:
                            pending.result()
                            pending = None
                        data = self.stream_long(chunk[0], writer)
                    else:
                        data = self.compute_chunk(chunk)
                    if pending is not None:
                        pending.result()
                    pending = write_pool.submit(writer.append_chunk, data)
                if pending is not None:
                    pending.result()
            finally:
                prefetch.close()
        self.counters.audio_wait_s = prefetch.wait_s
        self.counters.notes.extend(self._wait_note(prefetch.wait_s))
        if self.runtime_note:
            self.counters.notes.append(self.runtime_note)
        if self.runtime is not None:
            self.counters.notes.extend(self.runtime.notes)
            self.counters.runtime_setup_s = self.runtime.compile_s
            self.counters.runtime_check_s = self.runtime.check_s

    def _wait_note(self, wait_s: float) -> list[str]:
        total = self.counters.compute_s + wait_s
        if total > 10 and wait_s > 0.2 * total:
            return [f"the encoder waited {wait_s:.0f} s of {total:.0f} s for audio decoding "
                    f"(slow storage or compressed audio); more --workers may help"]
        return []

    def compute_chunk(self, chunk: list[Loaded]) -> ChunkData:
        skipped: dict[str, str] = {}
        ok: list[Loaded] = []
        for item in chunk:
            if item.error is None:
                ok.append(item)
            elif self.on_bad_audio == "fail":
                raise AudioError(f"{item.error} (utterance {item.utt.key}; use --on-bad-audio "
                                 f"skip to leave such files out)", path=item.error.path) from None
            else:
                skipped[item.utt.key] = str(item.error)
        skipped_now = len(skipped)
        if skipped_now:
            self.task.advance(skipped_now)
        results: dict[int, tuple[dict, dict]] = {}
        saturated = {L: 0 for L in self.layers}
        lengths = [len(item.wav) for item in ok]
        for batch in plan_batches(lengths, self.plan):
            items = [ok[i] for i in batch]
            t0 = time.perf_counter()
            outputs = self.forward_or_isolate(items)
            for item, (frames, pooled, sat, err) in zip(items, outputs):
                if err is not None:
                    if self.on_bad_audio == "fail":
                        raise DataError(f"{err} (use --on-bad-audio skip to leave such "
                                        f"utterances out)", path=item.path)
                    skipped[item.utt.key] = err
                    continue
                results[item.position] = (frames, pooled)
                for L in self.layers:
                    saturated[L] += sat[L]
            self.counters.compute_s += time.perf_counter() - t0
            audio_s = sum(len(it.wav) for it in items) / self.plan.sample_rate
            gflop = self._gflop(items)
            self.counters.utterances += len(items)
            self.counters.audio_s += audio_s
            self.counters.padded_audio_s += len(items) * self.plan.cost(max(len(it.wav)
                                                                            for it in items))
            self.counters.gflop += gflop or 0.0
            self.counters.batches += 1
            fields = {"audio_s": audio_s}
            if gflop is not None:
                fields["gflop"] = gflop
            self.task.advance(len(items), **fields)
        keys, frames, pooled = [], {L: [] for L in self.layers}, {L: [] for L in self.layers}
        for item in chunk:
            if item.position in results:
                keys.append(item.utt.key)
                f, p = results[item.position]
                for L in self.layers:
                    frames[L].append(f[L])
                    pooled[L].append(p[L])
        return ChunkData(keys, frames, pooled, chunk[-1].position + 1, skipped,
                         {L: n for L, n in saturated.items() if n},
                         audio=[it.record for it in chunk if it.record is not None])

    # -- one long utterance, window by window ---------------------------------------------------
    def stream_long(self, item: Loaded, writer: StoreWriter) -> ChunkData:
        """Decode, resample and encode ``item`` window by window (see :class:`Windows`),
        appending its frames to the store as they come; the returned chunk journals it."""
        key = item.utt.key
        audio = [item.record] if item.record is not None else []
        empty = {L: [] for L in self.layers}
        try:
            n_frames, pooled, saturated = self._stream_windows(item, writer)
        except (AudioError, _WindowError) as exc:
            writer.stream_abort()
            reason = str(exc)
            if self.on_bad_audio == "fail":
                if isinstance(exc, AudioError):
                    raise AudioError(f"{reason} (utterance {key}; use --on-bad-audio skip to "
                                     f"leave such files out)", path=exc.path) from None
                raise DataError(f"{reason} (use --on-bad-audio skip to leave such utterances "
                                f"out)", path=item.path) from None
            self.task.advance(1)
            return ChunkData([], dict(empty), dict(empty), item.position + 1, {key: reason},
                             audio=audio)
        self.task.advance(1)
        self.counters.utterances += 1
        return ChunkData([key], dict(empty), {L: [pooled[L]] for L in self.layers},
                         item.position + 1, {}, {L: n for L, n in saturated.items() if n},
                         audio=audio, lengths=[n_frames])

    def _stream_windows(self, item: Loaded, writer: StoreWriter
                        ) -> tuple[int, dict[int, np.ndarray], dict[int, int]]:
        w, sr = self.windows, self.plan.sample_rate
        per_call = max(1, int(self.plan.batch_seconds * sr) // w.samples)
        sums = {L: None for L in self.layers}
        saturated = {L: 0 for L in self.layers}
        n_frames = 0
        buf = np.zeros(0, np.float32)
        batch: list[np.ndarray] = []
        first = True

        def encode(windows: list[np.ndarray]) -> None:
            nonlocal n_frames
            t0 = time.perf_counter()
            try:
                out = self._call([torch.from_numpy(x).to(self.device) for x in windows])
            except (RuntimeError, ValueError, IndexError) as exc:
                raise _WindowError(
                    f"{item.utt.key}: upstream {self.upstream.name} failed on a window of this "
                    f"utterance ({len(windows[0]) / sr:.3f} s at {n_frames} frames): "
                    f"{type(exc).__name__}: {str(exc)[:300]}") from None
            lengths = out.lengths.tolist()
            for b in range(len(windows)):
                n = int(lengths[b])
                if n < 1:
                    continue
                chunk = {}
                for L in self.layers:
                    h = out.hidden[L][b, :n]
                    lo, hi = (float(v) for v in torch.aminmax(h))
                    if not (np.isfinite(lo) and np.isfinite(hi)):
                        raise _WindowError(
                            f"{item.utt.key}: upstream {self.upstream.name} produced NaN or "
                            f"infinite features (layer {L}, precision {self.precision}, window "
                            f"at {n_frames} frames)")
                    s = h.sum(0, dtype=torch.float64).cpu().numpy()
                    sums[L] = s if sums[L] is None else sums[L] + s
                    if hi > FP16_MAX or lo < -FP16_MAX:
                        saturated[L] += int((h.abs() > FP16_MAX).sum())
                        h = h.float().clamp(-FP16_MAX, FP16_MAX)
                    chunk[L] = h.to(torch.float16).cpu().numpy()
                writer.stream_frames(chunk)
                n_frames += n
            seconds = sum(len(x) for x in windows) / sr
            self.counters.compute_s += time.perf_counter() - t0
            self.counters.audio_s += seconds
            self.counters.padded_audio_s += len(windows) * self.plan.cost(max(map(len, windows)))
            self.counters.batches += 1
            gflop = self._gflop_lengths([len(x) for x in windows])
            self.counters.gflop += gflop or 0.0
            fields = {"audio_s": seconds}
            if gflop is not None:
                fields["gflop"] = gflop
            self.task.advance(0, **fields)

        utt = item.utt
        for block in stream_audio(item.path, sample_rate=sr, channel=utt.channel,
                                  start=utt.start, end=utt.end):
            buf = np.concatenate([buf, block]) if buf.size else block
            while len(buf) >= w.samples:
                batch.append(np.array(buf[:w.samples], copy=True))
                buf = buf[w.step:]
                first = False
                if len(batch) == per_call:
                    encode(batch)
                    batch = []
        if batch:
            encode(batch)
        if buf.size and (first or len(buf) >= w.min_tail):
            encode([np.ascontiguousarray(buf)])
        if n_frames < 1:
            raise _WindowError(f"{utt.key}: no output frame from {self.upstream.name}")
        pooled = {L: (sums[L] / n_frames).astype(np.float32) for L in self.layers}
        return n_frames, pooled, saturated

    def _gflop(self, items: list[Loaded]) -> float | None:
        return self._gflop_lengths([len(it.wav) for it in items])

    def _gflop_lengths(self, lengths: list[int]) -> float | None:
        total = 0.0
        for n in lengths:
            f = self.upstream.flops(n)
            if f is None:
                return None
            total += float(f)
        return total / 1e9

    # -- one batch ------------------------------------------------------------------------------
    def forward_or_isolate(self, items: list[Loaded]) -> list[tuple[dict, dict, dict, str | None]]:
        """:meth:`forward`; when the upstream fails on a batch, each item alone, so that the
        utterance it cannot take is named (and skipped with ``--on-bad-audio skip``)."""
        try:
            return self.forward(items)
        except (RuntimeError, ValueError, IndexError) as exc:
            if len(items) > 1:
                return [r for it in items for r in self.forward_or_isolate([it])]
            it = items[0]
            return [({}, {}, {}, f"{it.utt.key}: upstream {self.upstream.name} failed on this "
                     f"utterance ({len(it.wav)} samples, {len(it.wav) / self.plan.sample_rate:.3f}"
                     f" s): {type(exc).__name__}: {str(exc)[:300]}")]

    def forward(self, items: list[Loaded]) -> list[tuple[dict, dict, dict, str | None]]:
        """Features of one batch: per item (fp16 frames, float32 means, saturated, error)."""
        wavs = [torch.from_numpy(it.wav).to(self.device, non_blocking=True) for it in items]
        return self._split(items, self._call(wavs))

    def _call(self, wavs: list[torch.Tensor]):
        # on another runtime torch only prepares its inputs: in float32, without autocast or
        # the fast path's function mode (which would also slow the tracing down); run() holds
        # the low-precision weights (use_lowp), so the fast path here casts none
        other = self.upstream.runtime is not None
        precision = "fp32" if other else self.precision
        with compute_context(precision, self.device), \
                (nullcontext() if other else fast_path(self.upstream, precision,
                                                       lowp_cache=False)):
            out = self.upstream(wavs, self.layers)
        self._check_output(out, len(wavs))
        return out

    def _check_output(self, out, batch: int) -> None:
        name = self.upstream.name or type(self.upstream).__name__
        missing = [L for L in self.layers if L not in out.hidden]
        if missing:
            raise ContractError(f"upstream {name} returned layers {sorted(out.hidden)} but was "
                                f"asked for {self.layers}")
        lengths = out.lengths
        if tuple(lengths.shape) != (batch,):
            raise ContractError(f"upstream {name} returned lengths of shape "
                                f"{tuple(lengths.shape)} for a batch of {batch}")
        for L in self.layers:
            h = out.hidden[L]
            if h.dim() != 3 or h.shape[0] != batch or int(lengths.max()) > h.shape[1]:
                raise ContractError(f"upstream {name} layer {L}: expected [B={batch}, T>="
                                    f"{int(lengths.max())}, D] hidden states, got "
                                    f"{list(h.shape)}")

    def _split(self, items: list[Loaded], out) -> list[tuple[dict, dict, dict, str | None]]:
        results = []
        lengths = out.lengths.tolist()
        for b, item in enumerate(items):
            n = int(lengths[b])
            if n < 1:
                results.append(({}, {}, {}, f"{item.utt.key}: {len(item.wav)} samples "
                                 f"({len(item.wav) / self.plan.sample_rate:.3f} s) are too short"
                                 f" for {self.upstream.name}: no output frame"))
                continue
            frames, pooled, sat = {}, {}, {}
            bad = None
            for L in self.layers:
                h = out.hidden[L][b, :n]
                lo, hi = (float(v) for v in torch.aminmax(h))
                if not (np.isfinite(lo) and np.isfinite(hi)):
                    bad = (f"{item.utt.key}: upstream {self.upstream.name} produced NaN or "
                           f"infinite features for this utterance (layer {L}, precision "
                           f"{self.precision})")
                    break
                pooled[L] = h.mean(0, dtype=torch.float32).cpu().numpy()
                sat[L] = 0
                if hi > FP16_MAX or lo < -FP16_MAX:  # rare: clip to the fp16 range, counted
                    sat[L] = int((h.abs() > FP16_MAX).sum())
                    h = h.float().clamp(-FP16_MAX, FP16_MAX)
                frames[L] = h.to(torch.float16).cpu().numpy()
            results.append(({}, {}, {}, bad) if bad else (frames, pooled, sat, None))
        return results


class _WindowError(Exception):
    """A window of a long utterance that the upstream cannot encode (named, or skipped)."""
