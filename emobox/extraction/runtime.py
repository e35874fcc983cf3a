"""Where an upstream's tensors are computed: torch (the default) or OpenVINO (``--runtime``).

``--runtime openvino`` runs, on the CPU, the computation an upstream exposes through
:meth:`emobox.Upstream.graph` (the wav2vec2 family: wav2vec2, HuBERT, WavLM, data2vec-audio;
data2vec 2.0 and emotion2vec; Whisper's encoder in both modes, on torch's log-mel) as OpenVINO
models: the graph is traced for each set of layers and each of the two batch shapes (equal
lengths, or padded with a mask), with every dimension dynamic, and compiled for the CPU at the
extraction's precision (``f32`` for exact fp32, ``bf16`` for the bf16 mode; OpenVINO computes
in f32 where the CPU has no bfloat16, and the record says which it used). Everything around it
(decoding, batching, windows, the store) is emobox's own, unchanged.

Nothing computed by OpenVINO is used unchecked: the first batch of each compiled model is
computed by torch too, and the model is used only when its features agree with torch's: in
fp32 within ``1e-4`` of the largest torch feature's magnitude (at least 1e-4 absolute), in bf16
with a minimum frame cosine of ``0.999``. Otherwise the rest of the run goes on with torch and
a note says why. Batches 2, 4, 8, 16... of each model (other batch sizes and lengths than the
traced one) are computed by torch too and compared the same way; should one disagree, the
extraction stops with an error and the features it computed so far are discarded, since the
batches between two checks were not compared. A process converts each graph of an upstream
once (``emobox bench`` extracts many corpora with one upstream); each run checks again. An
upstream without a graph runs on torch, with a note. The runtime is written to the store's
``engine`` record and to every result row; like the batching it is not part of the store's
key, since fp32 features of both runtimes agree within the exactness tolerance.
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

from emobox.errors import EmoboxUsageError

RUNTIMES = ("torch", "openvino")
EXACT_TOLERANCE = 1e-4  # of max(1, the largest |torch feature|), fp32
MIN_COSINE = 0.999  # bf16


def check_runtime(runtime: str, device: str | torch.device = "cpu") -> None:
    """Refuse an unknown runtime, OpenVINO off the CPU, or OpenVINO not installed."""
    if runtime not in RUNTIMES:
        raise EmoboxUsageError(f"--runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "openvino":
        if torch.device(device).type != "cpu":
            raise EmoboxUsageError(f"--runtime openvino runs on the CPU; --device {device} "
                                   f"runs torch (drop one of the two)")
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise EmoboxUsageError("--runtime openvino needs the openvino package: "
                                   "pip install openvino") from None


def has_graph(upstream: Any, layers: Sequence[int]) -> bool:
    """Whether ``upstream`` exposes a graph for ``layers`` for either kind of batch (equal
    lengths, or padded with a mask): what another runtime can compute."""
    return any(upstream.graph(layers, masked) is not None for masked in (False, True))


def openvino_version() -> str:
    import openvino

    return str(openvino.__version__).split("-")[0]


# compiled models by upstream (while it lives), so that the extractions of one process (a bench
# over many corpora) convert each graph once; every run still checks its own first batches
_COMPILED: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


class RuntimeDisagreement(Exception):
    """OpenVINO's features of a later batch differ from torch's: the extraction stops and its
    unfinished features are discarded (batches between two checks were not compared)."""


class OpenVINORuntime:
    """Compiled OpenVINO models of one upstream, one per (layers, masked), made on first use
    and checked against torch on that first batch."""

    def __init__(self, precision: str, threads: int | None = None):
        import openvino as ov

        self._ov = ov
        self.core = ov.Core()
        self.precision = precision
        self.threads = int(threads or torch.get_num_threads())
        self.models: dict[tuple, Any] = {}
        self.inference_precision: str | None = None
        self.refused: str | None = None  # why torch took over
        self.notes: list[str] = []
        self.compile_s = 0.0
        self.check_s = 0.0
        self.calls: dict[tuple, int] = {}
        self.next_check: dict[tuple, int] = {}

    def describe(self) -> str:
        """The engine record's ``runtime``: what computed the features."""
        version = f"openvino {openvino_version()}"
        if self.refused:
            return f"torch ({version} refused: {self.refused})"
        return f"{version} (CPU, {self.inference_precision or self._hint()})"

    def _hint(self) -> str:
        return "f32" if self.precision == "fp32" else "bf16"

    def __call__(self, upstream: Any, layers: Sequence[int], batch: torch.Tensor,
                 mask: torch.Tensor | None) -> dict[int, torch.Tensor]:
        layers = [int(L) for L in layers]
        key = (tuple(layers), mask is not None)
        batch = batch.detach().to(torch.float32)
        inputs = [batch.contiguous().numpy()]
        if mask is not None:
            mask = mask.detach().to(torch.int64)
            inputs.append(mask.contiguous().numpy())
        model = self.models.get(key)
        if model is None:
            return self._first(upstream, layers, key, batch, mask, inputs)
        outs = model.infer(inputs)
        got = [torch.from_numpy(outs[i].copy()) for i in range(len(layers))]
        self.calls[key] += 1
        if self.calls[key] == self.next_check[key]:  # calls 2, 4, 8, ...: checked again
            self.next_check[key] *= 2
            ref = self._reference(upstream.graph(layers, mask is not None), batch, mask)
            problem = self._disagreement(ref, got)
            if problem:
                raise RuntimeDisagreement(
                    f"--runtime openvino: {upstream.name}: on batch {self.calls[key]} of its "
                    f"kind {problem}; the features this extraction computed are discarded: "
                    f"run it again with --runtime torch")
        return {L: got[i] for i, L in enumerate(layers)}

    def _first(self, upstream: Any, layers: list[int], key: tuple, batch: torch.Tensor,
               mask: torch.Tensor | None, inputs: list) -> dict[int, torch.Tensor]:
        """Convert, compile, and check this model against torch on its first batch."""
        ov = self._ov
        graph = upstream.graph(layers, mask is not None)
        example = (batch,) if mask is None else (batch, mask)
        ref = self._reference(graph, batch, mask)
        t0 = time.perf_counter()
        compiled_at = None  # the set-up's end: its first inference is not set-up
        # every dimension dynamic: batch size and length vary from call to call
        shapes = [(ov.PartialShape([-1] * batch.dim()), ov.Type.f32)]
        if mask is not None:
            shapes.append((ov.PartialShape([-1] * mask.dim()), ov.Type.i64))
        cache = _COMPILED.setdefault(upstream, {})
        cached = (key, self._hint(), self.threads)
        try:
            if cached in cache:  # compiled by an earlier run in this process: checked again
                request, self.inference_precision = cache[cached]
            else:
                with _plain_torch(), warnings.catch_warnings():
                    # the tracer's notes on shape checks it records as constants: the checks
                    # against torch below are what tells whether the graph holds
                    warnings.simplefilter("ignore")
                    converted = ov.convert_model(graph, example_input=example, input=shapes)
                compiled = self.core.compile_model(converted, "CPU", {
                    "INFERENCE_PRECISION_HINT": self._hint(), "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1})
                used = compiled.get_property("INFERENCE_PRECISION_HINT")
                self.inference_precision = str(getattr(used, "get_type_name", lambda: used)())
                request = compiled.create_infer_request()
            compiled_at = time.perf_counter()
            outs = request.infer(inputs)
            got = [torch.from_numpy(outs[i].copy()) for i in range(len(layers))]
        except Exception as exc:  # a graph OpenVINO cannot take: torch computes the run
            return self._refuse(upstream, f"it could not convert or run the model "
                                          f"({type(exc).__name__}: {str(exc)[:200]})", ref,
                                layers)
        finally:
            self.compile_s += (compiled_at or time.perf_counter()) - t0
        problem = self._disagreement(ref, got, " on the first batch")
        if problem:
            return self._refuse(upstream, problem, ref, layers)
        self.models[key] = request
        cache[cached] = (request, self.inference_precision)
        self.calls[key], self.next_check[key] = 1, 2
        return {L: got[i] for i, L in enumerate(layers)}

    def _reference(self, graph: torch.nn.Module, batch: torch.Tensor,
                   mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """What torch computes for the batch (the features OpenVINO's are checked against)."""
        t0 = time.perf_counter()
        with _plain_torch():
            ref = graph.eval()(*((batch,) if mask is None else (batch, mask)))
        self.check_s += time.perf_counter() - t0
        return ref

    def _disagreement(self, ref: Sequence[torch.Tensor], got: Sequence[torch.Tensor],
                      where: str = "") -> str:
        """Why OpenVINO's output ``got`` cannot stand for torch's ``ref`` ("" if it can);
        ``where`` is said after the measured figure."""
        for r, g in zip(ref, got):
            if tuple(r.shape) != tuple(g.shape):
                return f"its output has shape {tuple(g.shape)}, torch's {tuple(r.shape)}"
            r32, g32 = r.float(), g.float()
            if not bool(torch.isfinite(g32).all()):
                return "its output holds NaN or infinity"
            if self.precision == "fp32":
                scale = max(1.0, float(r32.abs().max()))
                diff = float((r32 - g32).abs().max())
                if diff > EXACT_TOLERANCE * scale:
                    return (f"its features differ from torch's by up to {diff:.2e}{where} "
                            f"(allowed: {EXACT_TOLERANCE * scale:.2e})")
            else:
                cos = torch.nn.functional.cosine_similarity(
                    r32.reshape(-1, r32.shape[-1]), g32.reshape(-1, g32.shape[-1]), dim=-1,
                    eps=1e-12)
                low = float(cos.min()) if cos.numel() else 1.0
                if not math.isfinite(low) or low < MIN_COSINE:
                    return (f"its features have a minimum frame cosine of {low:.6f} with "
                            f"torch's{where} (required: {MIN_COSINE})")
        return ""

    def _refuse(self, upstream: Any, reason: str, ref: Sequence[torch.Tensor],
                layers: list[int]) -> dict[int, torch.Tensor]:
        self.refused = reason
        self.notes.append(f"--runtime openvino: {upstream.name}: OpenVINO was not used, "
                          f"{reason}; torch computed the features")
        upstream.runtime = None  # the rest of the run: torch
        return {L: ref[i] for i, L in enumerate(layers)}


@contextmanager
def _plain_torch() -> Iterator[None]:
    """float32 torch without autocast or inference mode: the reference the check compares
    with, and what tracing records (autocast's casts would end up in the graph)."""
    with torch.inference_mode(False), torch.no_grad(), torch.autocast("cpu", enabled=False):
        yield


@contextmanager
def runtime_for(upstream: Any, runtime: OpenVINORuntime | None) -> Iterator[None]:
    """``upstream`` computes through ``runtime`` within the block (torch where it is None)."""
    if runtime is None:
        yield
        return
    upstream.runtime = runtime
    try:
        yield
    finally:
        upstream.runtime = None
