"""Numeric precision of feature extraction: exact fp32, and the labelled fast modes.

- ``fp32`` (exact, the default): float32 everywhere; on CUDA, TF32 is switched off so that the
  features do not depend on the GPU generation.
- ``bf16``: autocast to bfloat16 (CPUs with AVX512-BF16 or AMX, and GPUs). Stores and reports made
  this way say so.
- ``fp16``: autocast to float16 (GPUs only).

:func:`lowp_weights` is the helper that makes autocast pay off on CPUs: autocast casts every
Linear/Conv weight to the low precision again at each call (frozen weights do not hit its cache),
which for a one-utterance-at-a-time loop costs as much as the matmuls it speeds up. Casting those
weights once, before the loop, gives bit-identical results (autocast rounds the same fp32 weights
the same way) without the per-call copies. The extraction engine applies it to every upstream in
a fast mode; an upstream whose code reads such weights outside autocast-covered ops opts out with
``Upstream.lowp_weight_cache = False``.

:class:`ContiguousProjections` removes the other trap: transformers' WavLM attention hands
``F.multi_head_attention_forward`` a transposed ``[T, B, D]`` view; for a batch of more than one
utterance the q/k/v projections of that view then run, under bf16 autocast, as a batched matmul
with the weight expanded and copied once per frame (seconds per layer). Making those inputs
contiguous first gives the same values (bit-identical) at the speed of one matmul.
:func:`fast_path` combines both; upstream wrappers that run their own low-precision forward can
use it too.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

from emobox.errors import EmoboxUsageError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_LOWP_MODULES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def check_precision(precision: str, device: str | torch.device) -> list[str]:
    """Validate a precision for a device; returns notes worth telling the user."""
    if precision not in PRECISIONS:
        raise EmoboxUsageError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)} "
                               f"(fp32 is exact; bf16/fp16 are faster and labelled)")
    kind = torch.device(device).type
    if precision == "fp16" and kind == "cpu":
        raise EmoboxUsageError("--precision fp16 needs a GPU (--device cuda); CPUs compute fp16 "
                               "slowly and less accurately than bf16: use --precision bf16")
    notes = []
    if precision == "bf16" and kind == "cpu" and not cpu_native_bf16():
        ratio = bf16_slowdown()
        notes.append(f"this CPU has no native bfloat16 (AVX512-BF16 or AMX): a bfloat16 matmul "
                     f"measured {ratio:.0f}x slower than float32 here, so bf16 extraction will "
                     f"be slower than exact fp32 (use --precision fp32)")
    return notes


@lru_cache(maxsize=1)
def bf16_slowdown(n: int = 256, repeats: int = 10) -> float:
    """How many times longer an ``n x n`` linear layer (the op autocast sends to bfloat16) takes
    in bfloat16 than in float32 on this CPU: best of ``repeats`` each, so that other work on
    the machine does not inflate either (a few tens of milliseconds where bfloat16 is not
    native)."""
    F = torch.nn.functional
    x, w = torch.randn(n, n), torch.randn(n, n)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = x.to(dtype), w.to(dtype)
        F.linear(a, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            F.linear(a, b)
            best = min(best, time.perf_counter() - t0)
        times[dtype] = max(best, 1e-9)
    return times[torch.bfloat16] / times[torch.float32]


def cpu_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matmul instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = open("/proc/cpuinfo").read()
        return " avx512_bf16" in flags or " amx_bf16" in flags
    except OSError:
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:
            return False


@contextmanager
def compute_context(precision: str, device: str | torch.device) -> Iterator[None]:
    """``torch.inference_mode()`` plus the precision's autocast (or TF32 off for exact fp32)."""
    kind = torch.device(device).type
    with torch.inference_mode():
        if precision == "fp32":
            with _no_tf32() if kind == "cuda" else nullcontext():
                yield
        else:
            with torch.autocast(kind, dtype=DTYPES[precision]):
                yield


@contextmanager
def _no_tf32() -> Iterator[None]:
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextmanager
def lowp_weights(module: torch.nn.Module, dtype: torch.dtype | str) -> Iterator[int]:
    """Within the block, Linear/Conv weights and biases of ``module`` are held in ``dtype``.

    Under autocast to the same ``dtype`` the results are bit-identical to the float32 weights
    (autocast would round them the same way at every call); the block only saves the per-call
    copies. Modules with forward pre-hooks or parametrizations (weight norm) are left alone, as
    they compute their weight at call time. Yields the number of tensors swapped; the float32
    tensors are put back on exit.
    """
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Parameter]] = []
    memo: dict[int, torch.nn.Parameter] = {}
    for mod in module.modules():
        if type(mod) not in _LOWP_MODULES or mod._forward_pre_hooks \
                or hasattr(mod, "parametrizations"):
            continue
        for name in ("weight", "bias"):
            param = mod._parameters.get(name)
            if param is None or param.dtype != torch.float32:
                continue
            low = memo.get(id(param))
            if low is None:
                low = memo[id(param)] = torch.nn.Parameter(param.detach().to(dtype),
                                                           requires_grad=False)
            mod._parameters[name] = low
            swapped.append((mod, name, param))
    try:
        yield len(swapped)
    finally:
        for mod, name, param in swapped:
            mod._parameters[name] = param


class ContiguousProjections(TorchFunctionMode):
    """Within the mode, linear projections and attention never see non-contiguous views.

    ``F.multi_head_attention_forward`` gets contiguous query/key/value (one copy when they are the
    same tensor) and ``F.linear`` a contiguous input when it has more than two dimensions. Values
    are unchanged; only the memory layout the kernels see is.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        F = torch.nn.functional
        if func is F.multi_head_attention_forward and len(args) >= 3:
            copies: dict[int, Any] = {}

            def contiguous(t):
                if isinstance(t, torch.Tensor) and not t.is_contiguous():
                    return copies.setdefault(id(t), t.contiguous())
                return t

            args = tuple(contiguous(a) for a in args[:3]) + tuple(args[3:])
        elif (func is F.linear and args and isinstance(args[0], torch.Tensor)
              and args[0].dim() > 2 and not args[0].is_contiguous()):
            args = (args[0].contiguous(),) + tuple(args[1:])
        return func(*args, **kwargs)


@contextmanager
def fast_path(module: torch.nn.Module, precision: str, lowp_cache: bool = True
              ) -> Iterator[None]:
    """The low-precision forward of ``module`` without per-call weight or per-frame copies.

    Use inside ``torch.autocast`` (see :func:`compute_context`); a no-op for ``fp32``.
    """
    if precision == "fp32":
        yield
        return
    with (lowp_weights(module, DTYPES[precision]) if lowp_cache else nullcontext()), \
            ContiguousProjections():
        yield
