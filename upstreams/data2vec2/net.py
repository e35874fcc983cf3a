"""The data2vec 2.0 audio encoder (also emotion2vec's) in plain torch.

The network, in the order it runs on a 16 kHz waveform:

1. optional per-utterance normalisation of the waveform (zero mean, unit variance);
2. a CNN feature encoder (7 convolutions without bias, 320x down-sampling, each followed by a
   layer norm over channels and GELU; the older "default" mode has a group norm on the first
   convolution only), 50 frames per second;
3. a layer norm over the 512 CNN channels and a linear projection to the model width;
4. a relative positional encoder: ``conv_pos_depth`` grouped 1-D convolutions (kernel
   ``max(3, conv_pos_width // conv_pos_depth)``), each followed by a parameter-free layer norm
   and GELU, whose output is added to the projected features;
5. ``num_extra_tokens`` learned tokens prepended (emotion2vec has 10, data2vec 2.0 none);
6. a layer norm, then ``prenet_depth`` transformer blocks (the modality's "context encoder")
   and ``depth`` shared transformer blocks. Blocks are post-norm (``x = LN(x + attn(x));
   x = LN(x + mlp(x))``) and their attention carries an ALiBi bias ``-slope_h * |i - j|``
   scaled by a learned, non-negative per-head factor; extra tokens get no bias.

Hidden state ``0`` is the input of the first block (after step 6's layer norm), hidden state
``k`` the output of block ``k`` counting prenet blocks first; the extra tokens are removed from
every returned state. There is no final layer norm (the released models are post-norm).

Batches: a padded item gives the same frames as the item alone. The CNN's valid frames never
see padding, padded frames are masked out of attention, and the positional convolutions read
zeros past an item's end exactly as they do for an item alone. (The reference code lets those
convolutions read the CNN output of the padding, so its batched output differs slightly.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_CONV_LAYERS = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass(frozen=True)
class D2v2Config:
    """Everything that shapes the network; read from a checkpoint by ``data2vec2_ckpt``."""

    conv_layers: tuple[tuple[int, int, int], ...] = DEFAULT_CONV_LAYERS  # (dim, kernel, stride)
    extractor_mode: str = "layer_norm"  # "layer_norm" (every conv) or "default" (group norm, 1st)
    conv_bias: bool = False
    embed_dim: int = 768
    num_heads: int = 12
    depth: int = 12
    prenet_depth: int = 0
    mlp_dim: int = 3072
    norm_eps: float = 1e-5
    norm_affine: bool = True
    conv_pos_depth: int = 5
    conv_pos_kernel: int = 19
    conv_pos_groups: int = 16
    conv_pos_pre_ln: bool = False
    num_extra_tokens: int = 0
    use_alibi: bool = True
    alibi_scale_shape: tuple[int, int] = (1, 12)  # (1 or all layers, 1 or num_heads)
    normalize: bool = True  # layer-normalise each waveform before the CNN

    @property
    def num_layers(self) -> int:
        return self.prenet_depth + self.depth

    @property
    def downsample(self) -> int:
        return math.prod(s for _, _, s in self.conv_layers)

    @property
    def padding_sensitive(self) -> bool:
        # a group norm over time makes every frame depend on the padded length
        return self.extractor_mode != "layer_norm"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_layers"] = [list(c) for c in self.conv_layers]
        d["alibi_scale_shape"] = list(self.alibi_scale_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "D2v2Config":
        d = dict(d)
        d["conv_layers"] = tuple(tuple(int(v) for v in c) for c in d["conv_layers"])
        d["alibi_scale_shape"] = tuple(int(v) for v in d["alibi_scale_shape"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def conv_output_length(num_samples: int, conv_layers) -> int:
    """Frames the CNN makes from ``num_samples`` samples (0 when shorter than its field)."""
    n = int(num_samples)
    for _, k, s in conv_layers:
        if n < k:
            return 0
        n = (n - k) // s + 1
    return n


def receptive_field(conv_layers) -> int:
    """Fewest samples that give one frame."""
    n = 1
    for _, k, s in reversed(conv_layers):
        n = (n - 1) * s + k
    return n


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi head slopes: a geometric series from 2^(-8/n); non-powers of two interleave."""
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    p = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(p) + alibi_slopes(2 * p)[0::2][: num_heads - p]


class ConvBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int, norm: str, bias: bool):
        super().__init__()
        self.conv = nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "layer":
            self.norm = nn.LayerNorm(n_out)
        elif norm == "group":
            self.norm = nn.GroupNorm(n_out, n_out)
        else:
            self.norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        x = self.conv(x)
        if self.norm_kind == "layer":
            x = F.layer_norm(x.transpose(1, 2).float(), self.norm.normalized_shape,
                             self.norm.weight.float(), self.norm.bias.float(),
                             self.norm.eps).transpose(1, 2).type_as(x)
        elif self.norm_kind == "group":
            x = F.group_norm(x.float(), self.norm.num_groups, self.norm.weight.float(),
                             self.norm.bias.float(), self.norm.eps).type_as(x)
        return F.gelu(x)


class Block(nn.Module):
    """Post-norm transformer block with an additive attention bias."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float, affine: bool):
        super().__init__()
        self.heads = heads
        self.attn_in = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
        self.ffn_in = nn.Linear(dim, mlp_dim)
        self.ffn_out = nn.Linear(mlp_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor, bias: "AttentionBias") -> torch.Tensor:
        B, T, D = x.shape
        qkv = self.attn_in(x).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = bias.attend(qkv[0], qkv[1], qkv[2])  # [B, H, T, hd]
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(B, T, D)))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class AttentionBias:
    """ALiBi plus key padding for one batch, built per chunk of queries to bound memory."""

    max_elements = 1 << 26  # bias elements held at once (256 MiB in fp32)

    def __init__(self, T: int, n_extra: int, key_padding: torch.Tensor | None,
                 device: torch.device, dtype: torch.dtype, chunked: bool = True):
        self.T, self.n_extra, self.chunked = T, n_extra, chunked
        self.device, self.dtype = device, dtype
        self.key_bias = None
        if key_padding is not None:
            self.key_bias = torch.zeros(key_padding.shape, device=device, dtype=dtype).masked_fill(
                key_padding, float("-inf"))[:, None, None, :]  # [B, 1, 1, T]
        idx = torch.arange(T, device=device)
        self.pos = (idx - n_extra).to(dtype)
        self.is_token = idx < n_extra
        self.slopes: torch.Tensor | None = None  # [H], set per block

    def attend(self, q, k, v) -> torch.Tensor:
        B, H, T, _ = q.shape
        if self.slopes is None and self.key_bias is None:
            return F.scaled_dot_product_attention(q, k, v)
        # one chunk where the graph is traced (its sizes are not known until it runs)
        chunk = max(1, min(T, self.max_elements // max(1, B * H * T))) if self.chunked else T
        outs = []
        for start in range(0, T, chunk):
            stop = min(T, start + chunk)
            mask = None
            if self.slopes is not None:
                dist = (self.pos[start:stop, None] - self.pos[None, :]).abs()  # [c, T]
                dist = dist.masked_fill(self.is_token[start:stop, None] | self.is_token[None, :], 0)
                mask = (-self.slopes[:, None, None] * dist)[None]  # [1, H, c, T]
            if self.key_bias is not None:
                mask = self.key_bias if mask is None else mask + self.key_bias
            outs.append(F.scaled_dot_product_attention(q[:, :, start:stop], k, v, attn_mask=mask))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


class Data2Vec2Encoder(nn.Module):
    """data2vec 2.0 / emotion2vec audio encoder returning per-layer hidden states."""

    def __init__(self, cfg: D2v2Config):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        convs, n_in = [], 1
        for i, (dim, k, s) in enumerate(cfg.conv_layers):
            norm = ("layer" if cfg.extractor_mode == "layer_norm" else
                    "group" if cfg.extractor_mode == "default" and i == 0 else "none")
            convs.append(ConvBlock(n_in, dim, k, s, norm, cfg.conv_bias))
            n_in = dim
        self.cnn = nn.ModuleList(convs)
        self.proj_norm = nn.LayerNorm(n_in)
        self.proj = nn.Linear(n_in, D)
        self.pos_pre_norm = nn.LayerNorm(D) if cfg.conv_pos_pre_ln else None
        k = cfg.conv_pos_kernel
        self.pos_convs = nn.ModuleList(
            nn.Conv1d(D, D, k, padding=k // 2, groups=cfg.conv_pos_groups)
            for _ in range(cfg.conv_pos_depth))
        self.extra_tokens = (nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, D))
                             if cfg.num_extra_tokens else None)
        self.alibi_scale = (nn.Parameter(torch.ones(cfg.alibi_scale_shape))
                            if cfg.use_alibi else None)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(cfg.num_heads)),
                             persistent=False)
        self.context_norm = nn.LayerNorm(D, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.blocks = nn.ModuleList(
            Block(D, cfg.num_heads, cfg.mlp_dim, cfg.norm_eps, cfg.norm_affine)
            for _ in range(cfg.num_layers))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        n = lengths.clone()
        for _, k, s in self.cfg.conv_layers:
            n = torch.div(n - k, s, rounding_mode="floor") + 1
        return n.clamp_min(0)

    def positional(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """Relative positional encoding of ``x`` [B, T, D]; padded frames read as zeros."""
        if self.pos_pre_norm is not None:
            x = self.pos_pre_norm(x)
        y = x.transpose(1, 2)  # [B, D, T]
        keep = None if pad is None else (~pad)[:, None, :].to(y.dtype)
        T = y.shape[-1]
        for conv in self.pos_convs:
            if keep is not None:
                y = y * keep
            y = conv(y)[..., :T]  # an even kernel makes one extra frame: drop it
            y = F.layer_norm(y.transpose(1, 2), (y.shape[1],)).transpose(1, 2)
            y = F.gelu(y)
        return y.transpose(1, 2)

    def block_slopes(self, layer: int) -> torch.Tensor | None:
        if self.alibi_scale is None:
            return None
        scale = self.alibi_scale[0 if self.alibi_scale.shape[0] == 1 else layer].clamp_min(0)
        return self.slopes.to(scale.dtype) * scale

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, layers) -> tuple[dict, torch.Tensor]:
        """Hidden states ``{layer: [B, T, D]}`` of ``layers`` for a zero-padded batch ``wav``
        [B, S] of ``lengths`` samples, and the valid frames per item. Normalisation of the
        waveform is the caller's (it must happen before padding)."""
        frames = self.frame_lengths(lengths.to(wav.device))
        return self.hidden_states(wav, frames, layers), frames

    def hidden_states(self, wav: torch.Tensor, frames: torch.Tensor | None, layers,
                      traced: bool = False) -> dict[int, torch.Tensor]:
        """:meth:`forward`'s hidden states, given each item's valid ``frames`` (None: no item
        is padded). ``traced``: the padding mask is applied wherever ``frames`` is given and
        attention runs in one chunk, so that no branch depends on the values or sizes and a
        trace holds for every batch."""
        wanted = set(int(layer) for layer in layers)
        x = wav[:, None, :]
        for conv in self.cnn:
            x = conv(x)
        x = self.proj(self.proj_norm(x.transpose(1, 2)))  # [B, T, D]
        B, T, _ = x.shape
        pad = None
        if frames is not None and (traced or bool((frames < T).any())):
            pad = torch.arange(T, device=x.device)[None, :] >= frames[:, None]
        x = x + self.positional(x, pad)
        n = self.cfg.num_extra_tokens
        if n:
            x = torch.cat([self.extra_tokens.expand(B, -1, -1).to(x.dtype), x], dim=1)
            if pad is not None:
                pad = torch.cat([pad.new_zeros(B, n), pad], dim=1)
        x = self.context_norm(x)
        hidden = {0: x[:, n:]} if 0 in wanted else {}
        last = max(wanted, default=0)
        if last > 0:
            bias = AttentionBias(x.shape[1], n, pad, x.device, x.dtype, chunked=not traced)
            for i in range(last):  # no block beyond the highest requested layer
                bias.slopes = self.block_slopes(i)
                x = self.blocks[i](x, bias)
                if i + 1 in wanted:
                    hidden[i + 1] = x[:, n:]
        return hidden

    def flops(self, num_samples: int) -> float:
        """Multiply-adds x 2 of one forward pass over ``num_samples`` samples (all layers)."""
        cfg, total, n, c_in = self.cfg, 0.0, int(num_samples), 1
        for dim, k, s in cfg.conv_layers:
            n = (n - k) // s + 1
            total += 2.0 * c_in * dim * k * max(n, 0)
            c_in = dim
        T = max(n, 1)
        D = cfg.embed_dim
        total += 2.0 * T * c_in * D  # projection
        total += cfg.conv_pos_depth * 2.0 * T * D * (D // cfg.conv_pos_groups) * cfg.conv_pos_kernel
        Tt = T + cfg.num_extra_tokens
        per_block = 2.0 * Tt * D * (4 * D + 2 * cfg.mlp_dim) + 4.0 * Tt * Tt * D
        return total + cfg.num_layers * per_block
