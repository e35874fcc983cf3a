"""Faster kernels for known encoder blocks, swapped in for the duration of an extraction.

The convolutional feature encoder of transformers' wav2vec 2.0-style models (wav2vec2, HuBERT,
WavLM, data2vec-audio; the large checkpoints and data2vec use a layer norm after every
convolution) computes each block as ``conv1d`` on ``[B, C, T]``, then transposes to ``[B, T, C]``
for the layer norm and back: on a CPU each of those transposes is a copy of the whole
activation, the strided convolutions run well below the matmul peak, and together they take
about half of a base-sized encoder's time for about a third of its arithmetic.

:func:`channels_last_conv` runs those stacks time-major instead: each convolution is one matmul
over the overlapping windows of the previous block's ``[B, T, C]`` output (``as_strided``, the
window ``kernel x channels`` wide), the layer norm then normalises the last dimension where it
already is, and only the stack's output is handed back as the ``[B, C, T]`` view transformers
expects. The values are those of the convolutions up to float32 summation order (about 1e-6 of
the activations); under autocast the matmul runs in the autocast dtype as the convolution did.

Only stacks whose every block is one of transformers' layer-norm convolution blocks, with an
unpadded, undilated, ungrouped ``Conv1d``, no hooks and the stock ``forward``, are swapped;
anything else (group-norm stacks, whose convolutions already run without transposes, third
party subclasses, hooked modules) is left as it is.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

# blocks whose forward is conv -> transpose -> LayerNorm -> transpose -> activation
_LN_BLOCKS = ("LayerNormConvLayer", "Data2VecAudioConvLayer")


def _transformers_class(mod: torch.nn.Module) -> bool:
    return type(mod).__module__.startswith("transformers.models.")


def _hooked(mod: torch.nn.Module) -> bool:
    return bool(mod._forward_hooks or mod._forward_pre_hooks or hasattr(mod, "parametrizations")
                or "forward" in mod.__dict__)


def _plain_ln_block(block: torch.nn.Module) -> bool:
    name = type(block).__name__
    if not (_transformers_class(block) and name.endswith(_LN_BLOCKS)):
        return False
    conv, norm = getattr(block, "conv", None), getattr(block, "layer_norm", None)
    if not (type(conv) is torch.nn.Conv1d and type(norm) is torch.nn.LayerNorm
            and callable(getattr(block, "activation", None))):
        return False
    if any(_hooked(m) for m in (block, conv, norm)):
        return False
    return (conv.padding == (0,) and conv.dilation == (1,) and conv.groups == 1
            and conv.padding_mode == "zeros" and norm.normalized_shape == (conv.out_channels,))


def _swappable(mod: torch.nn.Module) -> bool:
    blocks = getattr(mod, "conv_layers", None)
    return (_transformers_class(mod) and type(mod).__name__.endswith("FeatureEncoder")
            and not _hooked(mod) and isinstance(blocks, torch.nn.ModuleList) and len(blocks) > 0
            and all(_plain_ln_block(b) for b in blocks)
            and blocks[0].conv.in_channels == 1)


def conv_as_matmul(x: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    """``conv`` applied to time-major ``x`` ``[B, T, C_in]``: ``[B, T_out, C_out]``, contiguous.

    Equal to ``conv(x.transpose(1, 2)).transpose(1, 2)`` for an unpadded, undilated, ungrouped
    convolution, up to float32 summation order.
    """
    weight = conv.weight  # [C_out, C_in, K]
    c_out, c_in, k = weight.shape
    stride = conv.stride[0]
    x = x.contiguous()
    b, t, _ = x.shape
    if t < k:  # too short for one window: the convolution's own error
        return conv(x.transpose(1, 2)).transpose(1, 2)
    t_out = (t - k) // stride + 1
    # window j of item i starts at frame j * stride: K consecutive frames of C_in values
    windows = x.as_strided((b, t_out, k * c_in), (t * c_in, stride * c_in, 1))
    windows = windows.reshape(b * t_out, k * c_in)
    w = weight.permute(0, 2, 1).reshape(c_out, k * c_in)  # columns in (k, c_in) order
    if conv.bias is None:
        out = windows @ w.t()
    else:
        out = torch.addmm(conv.bias, windows, w.t())
    return out.view(b, t_out, c_out)


def _channels_last_forward(self, input_values: torch.Tensor) -> torch.Tensor:
    x = input_values[:, :, None]
    for block in self.conv_layers:
        x = conv_as_matmul(x, block.conv)
        norm = block.layer_norm
        x = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        x = block.activation(x)
    return x.transpose(1, 2)  # [B, C, T], as the stock forward returns it


@contextmanager
def channels_last_conv(module: torch.nn.Module) -> Iterator[int]:
    """Within the block, the layer-norm convolutional feature encoders in ``module`` run
    time-major (see the module's docstring). Yields how many were swapped; puts the stock
    forward back on exit. Use under ``torch.inference_mode()`` or ``no_grad``."""
    swapped = [m for m in module.modules() if _swappable(m)]
    for m in swapped:
        m.forward = _channels_last_forward.__get__(m)
    try:
        yield len(swapped)
    finally:
        for m in swapped:
            m.__dict__.pop("forward", None)


def conv_kernel_name(module: torch.nn.Module) -> str | None:
    """What :func:`channels_last_conv` does to ``module``: a line for the engine record, or
    None when it swaps nothing."""
    if any(_swappable(m) for m in module.modules()):
        return "time-major matmul (layer-norm convolution stacks)"
    return None
