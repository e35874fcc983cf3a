"""Faster kernels for known encoder blocks, swapped in for the duration of an extraction.

The convolutional feature encoder of transformers' wav2vec 2.0-style models (wav2vec2, HuBERT,
WavLM, data2vec-audio; the large checkpoints and data2vec use a layer norm after every
convolution) computes each block as ``conv1d`` on ``[B, C, T]``, then transposes to ``[B, T, C]``
for the layer norm and back: on a CPU each of those transposes is a copy of the whole
activation, the strided convolutions run well below the matmul peak, and together they take
about half of a base-sized encoder's time for about a third of its arithmetic.

:func:`channels_last_conv` runs those stacks time-major instead: each convolution is a matmul
over the overlapping windows of the previous block's ``[B, T, C]`` output (``as_strided``, the
window ``kernel x channels`` wide), the layer norm then normalises the last dimension where it
already is, and only the stack's output is handed back as the ``[B, C, T]`` view transformers
expects. On a CPU each block runs a piece of 4096 output frames of one item at a time: the
piece's windows, matmul, norm and activation stay in the CPU's caches and the block's output is
written once (a base-sized WavLM on a 2-core AMX CPU: 1.08-1.11x faster in float32 on batches
of 4 x 5 s and 1 x 20 s, 1.02-1.08x in bfloat16, batches of 8 x 2 s the same as whole-sequence
ops; a GPU runs each op once over the whole batch). The values are those of the convolutions up
to float32 summation order (about 1e-6 of the activations); under autocast the matmul runs in
the autocast dtype as the convolution did, and on a CPU a block's output that only feeds the
next matmul is stored in it.

Only stacks whose every block is one of transformers' layer-norm convolution blocks, with an
unpadded, undilated, ungrouped ``Conv1d``, no hooks and the stock ``forward``, are swapped;
anything else (third party subclasses, hooked modules) is left as it is.

Group-norm stacks (wav2vec2-base, HuBERT-base: a group norm of one channel per group after the
first convolution, none after the others) have no transposes to save, and in float32 their
convolutions run faster as convolutions (the time-major stack took 1.2-1.5x longer on a 2-core
CPU). In bfloat16 on a CPU, though, oneDNN reorders every convolution's weights and
activations at each call: there the stack took as long as in float32, and time-major it runs
1.3-1.4x faster (measured on a 2-core CPU with AMX, 4-20-s clips; 1-s clips take the same
time). ``group_norm=True`` swaps them too: the first block (its convolution from the waveform
and the group norm, which normalises each channel over time) runs as it is, its output is made
time-major once, and the blocks without a norm after it run as matmuls.

WavLM's self-attention (transformers' ``WavLMAttention``) asks torch for the attention weights
it never uses, so every block runs attention unfused: the gated relative position bias, then the
padding mask merged into a copy of it, the scores, their softmax and a head average, each a
``[B x heads, T, T]`` tensor. :func:`fused_wavlm_attention` computes the same attention with
``scaled_dot_product_attention``: the gate times the relative position bias (shared by the batch
instead of repeated per item), the padding mask written into that one tensor, then the fused
kernel. The values are the stock ones up to float32 summation order. Under bf16/fp16 autocast
the relative position bias is held in the low precision (cast once per forward) and the gated
bias computed in it, and with the weights held in it (the engine's fast modes) the query, key
and value projections run as one matmul. The gain grows with the
clip length (the ``[T, T]`` tensors): measured on a 2-core AVX2 CPU with a base-sized WavLM,
extraction of 0.5-20-s clips takes 1.06-1.12x less compute time across runs, of 2-5-s clips no
less. The blocks of a batch write their bias into one shared buffer (a fresh ``[B, heads, T, T]``
tensor per block made the attention of two 20-s clips 1.24x slower). Only unhooked, stock
``WavLMAttention`` modules in eval mode are swapped, and all of a model's or none (each block
hands the position bias to the next).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

# blocks whose forward is conv -> transpose -> LayerNorm -> transpose -> activation
_LN_BLOCKS = ("LayerNormConvLayer", "Data2VecAudioConvLayer")


def _transformers_class(mod: torch.nn.Module) -> bool:
    return type(mod).__module__.startswith("transformers.models.")


def _transformers_capture(hook) -> bool:
    """transformers' own output-capturing hook (installed on the first call that asks for
    hidden states; it records an output only when the caller asks for that output)."""
    return (getattr(hook, "__name__", "") == "output_capturing_hook"
            and getattr(hook, "__module__", "").startswith("transformers."))


def _hooked(mod: torch.nn.Module, capture_ok: bool = False) -> bool:
    """Whether ``mod`` has hooks, parametrizations or its own forward. ``capture_ok``: a swap
    that still calls the module (its hooks run) may ignore transformers' capturing hooks."""
    hooks = [h for h in mod._forward_hooks.values()
             if not (capture_ok and _transformers_capture(h))]
    return bool(hooks or mod._forward_pre_hooks or hasattr(mod, "parametrizations")
                or "forward" in mod.__dict__)


def _block_kind(block: torch.nn.Module) -> str | None:
    """``layer``, ``group`` or ``none`` (the block's norm) for a stock transformers convolution
    block with a plain convolution; None for anything else."""
    name = type(block).__name__
    if not _transformers_class(block):
        return None
    if name.endswith("NoLayerNormConvLayer"):
        kind, norm_type = "none", None
    elif name.endswith("GroupNormConvLayer"):
        kind, norm_type = "group", torch.nn.GroupNorm
    elif name.endswith(_LN_BLOCKS):
        kind, norm_type = "layer", torch.nn.LayerNorm
    else:
        return None
    conv, norm = getattr(block, "conv", None), getattr(block, "layer_norm", None)
    if type(conv) is not torch.nn.Conv1d or type(norm) is not (norm_type or type(None)) \
            or not callable(getattr(block, "activation", None)):
        return None
    if any(_hooked(m) for m in (block, conv, norm) if m is not None):
        return None
    if not (conv.padding == (0,) and conv.dilation == (1,) and conv.groups == 1
            and conv.padding_mode == "zeros"):
        return None
    if kind == "layer" and norm.normalized_shape != (conv.out_channels,):
        return None
    if kind == "group" and not (norm.num_groups == norm.num_channels == conv.out_channels):
        return None
    return kind


def _stack_kind(mod: torch.nn.Module) -> str | None:
    """``layer`` for a stack of layer-norm blocks, ``group`` for a group-norm block followed by
    blocks without a norm, None for anything else."""
    blocks = getattr(mod, "conv_layers", None)
    if not (_transformers_class(mod) and type(mod).__name__.endswith("FeatureEncoder")
            and not _hooked(mod) and isinstance(blocks, torch.nn.ModuleList) and len(blocks) > 0
            and type(getattr(blocks[0], "conv", None)) is torch.nn.Conv1d
            and blocks[0].conv.in_channels == 1):
        return None
    kinds = [_block_kind(b) for b in blocks]
    if all(k == "layer" for k in kinds):
        return "layer"
    if kinds[0] == "group" and all(k == "none" for k in kinds[1:]):
        return "group"
    return None


def _swappable(mod: torch.nn.Module, group_norm: bool = False) -> bool:
    kind = _stack_kind(mod)
    return kind == "layer" or (group_norm and kind == "group")


def _derived(cache: dict, key, sources: tuple, make):
    """``make()``, a tensor derived from ``sources`` (weights), made once per swap and kept in
    ``cache`` under ``key``; made again when a source is no longer the same tensor (the engine
    swapped in its bf16 weights after the swap began)."""
    held = cache.get(key)
    if held is None or any(a is not b for a, b in zip(held[0], sources)):
        held = cache[key] = (sources, make())
    return held[1]


# output frames per piece of a time-major block: the piece's windows, matmul, norm and
# activation stay in the CPU's caches (of 2048, 4096 and 8192, 4096 was the only one never
# slower than whole-sequence ops on a 2-core CPU)
BLOCK_ROWS = 4096


def _block_time_major(x: torch.Tensor, block: torch.nn.Module, weights: dict,
                      last: bool, pieces: bool | None = None) -> torch.Tensor:
    """One convolution block (convolution, layer norm if any, activation) on time-major ``x``
    ``[B, T, C_in]``: ``[B, T_out, C_out]``. With ``pieces`` (the default on a CPU) it is
    computed a piece of ``BLOCK_ROWS`` output frames of one item at a time and written once;
    the values are those of the whole-sequence ops (the matmul over fewer rows sums in the same
    order on these shapes), and under autocast a block that feeds another is stored in the
    autocast dtype, which the next matmul would cast it to. Elsewhere (GPUs, where the pieces
    would only add kernel launches) each op runs once over the whole batch."""
    conv = block.conv
    c_out, c_in, k = conv.weight.shape
    stride = conv.stride[0]
    x = x.contiguous()
    b, t, _ = x.shape
    if t < k:  # too short for one window: the convolution's own error
        return conv(x.transpose(1, 2)).transpose(1, 2)
    t_out = (t - k) // stride + 1
    # the weight's columns in (k, c_in) order
    w = _derived(weights, id(conv), (conv.weight,),
                 lambda: conv.weight.permute(0, 2, 1).reshape(c_out, k * c_in).t())
    norm = getattr(block, "layer_norm", None)

    def block_of(windows: torch.Tensor) -> torch.Tensor:  # [rows, K x C_in] -> [rows, C_out]
        y = windows @ w if conv.bias is None else torch.addmm(conv.bias, windows, w)
        if norm is not None:
            y = F.layer_norm(y, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        return block.activation(y)

    # window j of item i starts at frame j * stride: K consecutive frames of C_in values
    if not (x.device.type == "cpu" if pieces is None else pieces):
        windows = x.as_strided((b, t_out, k * c_in), (t * c_in, stride * c_in, 1))
        return block_of(windows.reshape(b * t_out, k * c_in)).view(b, t_out, c_out)
    out = None
    for i in range(b):
        for j0 in range(0, t_out, BLOCK_ROWS):
            rows = min(BLOCK_ROWS, t_out - j0)
            y = block_of(x.as_strided((rows, k * c_in), (stride * c_in, 1),
                                      x.storage_offset() + (i * t + j0 * stride) * c_in))
            if out is None:
                dtype = y.dtype
                if not last and torch.is_autocast_enabled(x.device.type):
                    dtype = torch.get_autocast_dtype(x.device.type)
                out = torch.empty((b, t_out, c_out), dtype=dtype, device=x.device)
            out[i, j0:j0 + rows].copy_(y)
    return out


def _channels_last_forward(self, input_values: torch.Tensor, *, weights: dict) -> torch.Tensor:
    blocks = list(self.conv_layers)
    if type(getattr(blocks[0], "layer_norm", None)) is torch.nn.GroupNorm:
        # the group norm normalises over time: its block runs as it is, made time-major once
        x = blocks.pop(0)(input_values[:, None]).transpose(1, 2).contiguous()
    else:
        x = input_values[:, :, None]
    for n, block in enumerate(blocks):
        x = _block_time_major(x, block, weights, last=n == len(blocks) - 1)
    return x.transpose(1, 2)  # [B, C, T], as the stock forward returns it


@contextmanager
def _forwards_swapped(modules: list[torch.nn.Module], forward) -> Iterator[int]:
    """``forward(m)`` is each module's forward within the block; yields how many; the stock
    forward is back on exit."""
    for m in modules:
        m.forward = forward(m)
    try:
        yield len(modules)
    finally:
        for m in modules:
            m.__dict__.pop("forward", None)


def channels_last_conv(module: torch.nn.Module, group_norm: bool = False):
    """Within the block, the layer-norm convolutional feature encoders in ``module`` run
    time-major (see the module's docstring), and the group-norm ones with ``group_norm``.
    Yields how many were swapped; puts the stock forward back on exit. Use under
    ``torch.inference_mode()`` or ``no_grad``."""
    weights: dict = {}  # each convolution's weight as a matmul operand, made once
    return _forwards_swapped([m for m in module.modules() if _swappable(m, group_norm)],
                             lambda m: functools.partial(_channels_last_forward, m,
                                                         weights=weights))


def conv_kernel_name(module: torch.nn.Module, group_norm: bool = False) -> str | None:
    """What :func:`channels_last_conv` does to ``module``: a line for the engine record, or
    None when it swaps nothing."""
    kinds = {_stack_kind(m) for m in module.modules()
             if _swappable(m, group_norm)}
    if not kinds:
        return None
    return f"time-major matmul ({' and '.join(sorted(kinds))}-norm convolution stacks)"


_WAVLM_PARTS = ("q_proj", "k_proj", "v_proj", "out_proj", "gru_rel_pos_linear",
                "gru_rel_pos_const", "compute_bias", "num_heads", "head_dim")


def _wavlm_attentions(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The ``WavLMAttention`` modules of ``module`` if every one of them can be swapped, else
    none: one block's position bias goes to the next, so the blocks change shape together."""
    found = [m for m in module.modules()
             if type(m).__name__ == "WavLMAttention" and _transformers_class(m)]
    if not all(all(hasattr(m, a) for a in _WAVLM_PARTS) and not _hooked(m, capture_ok=True)
               and not m.training
               and not any(_hooked(p) for p in (m.q_proj, m.k_proj, m.v_proj, m.out_proj,
                                                 m.gru_rel_pos_linear))
               for m in found):
        return []
    return found


def _qkv(self, hidden_states: torch.Tensor, scratch: dict) -> tuple[torch.Tensor, ...]:
    """The query, key and value projections of ``hidden_states``. With low-precision weights
    (bf16/fp16, held by the engine for the run) they run as one matmul over the three weights
    concatenated, made once per swap: one cast of the input instead of three and a matmul three
    times as wide, which oneDNN runs closer to its peak (a base-sized WavLM's projections of
    250-1000 frames in bf16: 1.04-1.96x). Float32 keeps the three stock projections."""
    projs = (self.q_proj, self.k_proj, self.v_proj)
    weights = tuple(p.weight for p in projs)
    if weights[0].dtype not in (torch.bfloat16, torch.float16) or not all(
            type(p) is torch.nn.Linear and p.bias is not None
            and p.weight.dtype == weights[0].dtype for p in projs):
        return tuple(p(hidden_states) for p in projs)
    biases = tuple(p.bias for p in projs)
    weight, bias = _derived(scratch, ("qkv", id(self)), weights + biases,
                            lambda: (torch.cat(weights), torch.cat(biases)))
    return F.linear(hidden_states, weight, bias).chunk(3, dim=-1)


def _wavlm_attention_forward(self, hidden_states: torch.Tensor,
                             attention_mask: torch.Tensor | None = None,
                             position_bias: torch.Tensor | None = None, index: int = 0,
                             *, scratch: dict, **kwargs) -> tuple[torch.Tensor, None, torch.Tensor]:
    bsz, length, dim = hidden_states.shape
    heads = self.num_heads
    if position_bias is None:  # the first block: [1, heads, T, T], broadcast over the batch
        position_bias = self.compute_bias(length, length)[None]
    # the gate of the relative position bias, as the stock module computes it: [B, heads, T, 1]
    gated = hidden_states.view(bsz, length, heads, -1).permute(0, 2, 1, 3)
    proj = self.gru_rel_pos_linear(gated).view(gated.shape[:-1] + (2, 4)).sum(-1)
    gate_a, gate_b = torch.sigmoid(proj).chunk(2, dim=-1)
    gate = gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0
    q, k, v = (p.view(bsz, length, heads, self.head_dim).transpose(1, 2)
               for p in _qkv(self, hidden_states, scratch))
    # in a low precision the position bias is cast once, by the first block, and the gated
    # bias computed in that precision (a fifth of the float32 product's time, then cast)
    position_bias = position_bias.to(q.dtype)
    # [B, heads, T, T], written into one buffer that the blocks of a batch share
    shape = (bsz, heads, length, length)
    bias = scratch.get("bias")
    if bias is None or bias.shape != shape or bias.dtype != q.dtype:
        scratch.pop("bias", None)
        bias = scratch["bias"] = torch.empty(shape, dtype=q.dtype, device=hidden_states.device)
    torch.mul(gate.to(q.dtype), position_bias, out=bias)
    if attention_mask is not None:
        padded = attention_mask.ne(1)  # keys of padded frames
        if bool(padded.any()):
            bias.masked_fill_(padded[:, None, None, :], float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = self.out_proj(out.transpose(1, 2).reshape(bsz, length, dim))
    return out, None, position_bias


def fused_wavlm_attention(module: torch.nn.Module):
    """Within the block, the ``WavLMAttention`` modules in ``module`` run fused (see the
    module's docstring). Yields how many were swapped; puts the stock forward back on exit.
    Use under ``torch.inference_mode()`` or ``no_grad``. The bias buffer the blocks share
    lives as long as the swap."""
    scratch: dict = {}
    return _forwards_swapped(_wavlm_attentions(module), lambda m: functools.partial(
        _wavlm_attention_forward, m, scratch=scratch))


def attention_kernel_name(module: torch.nn.Module) -> str | None:
    """What :func:`fused_wavlm_attention` does to ``module``: a line for the engine record,
    or None when it swaps nothing."""
    if _wavlm_attentions(module):
        return "emobox fused sdpa"
    return None
