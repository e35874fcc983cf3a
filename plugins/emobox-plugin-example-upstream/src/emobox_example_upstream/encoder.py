"""A small convolutional speech encoder implementing the ``emobox.Upstream`` contract.

Architecture (the shape of wav2vec 2.0's feature encoder, scaled down)::

    waveform (16 kHz, normalised per utterance)
      -> 7 strided 1-D convolutions, kernels (10,3,3,3,3,2,2), strides (5,2,2,2,2,2,2):
         320 samples per frame (50 frames/s), receptive field 400 samples (25 ms);
         each followed by a per-frame LayerNorm and GELU
      -> LayerNorm + Linear to ``hidden``                              = layer 0
      -> ``layers`` residual blocks: depthwise conv (``kernel`` frames) -> LayerNorm
         -> Linear(hidden, 2 hidden) -> GELU -> Linear(2 hidden, hidden)  = layers 1..L

Every operation is per utterance or per frame, and frames past an utterance's length are zeroed
before each depthwise convolution, so an utterance gives the same features alone or in a padded
batch (``padding_sensitive = False``). The weights are drawn from ``seed`` with a private
generator (no global random state), so the encoder needs no download and is reproducible.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from emobox import EmoboxUsageError, Upstream, UpstreamOutput, checkpoint_id

KERNELS = (10, 3, 3, 3, 3, 2, 2)
STRIDES = (5, 2, 2, 2, 2, 2, 2)
RECEPTIVE_FIELD = 400  # samples seen by one output frame
FORMAT = "emobox-example-upstream/1"  # checkpoint format written by ConvEncoder.save
DEFAULTS = {"hidden": 64, "layers": 4, "channels": 64, "kernel": 5, "seed": 0}


def _frame_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the channels of every frame of ``x [B, C, T]``."""
    return norm(x.transpose(1, 2)).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, hidden: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.norm = nn.LayerNorm(hidden)
        self.up = nn.Linear(hidden, 2 * hidden)
        self.down = nn.Linear(2 * hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, T, H]``, ``mask [B, T, 1]`` (1 on real frames)."""
        y = self.conv((x * mask).transpose(1, 2)).transpose(1, 2)
        y = self.down(nn.functional.gelu(self.up(self.norm(y))))
        return (x + y) * mask


class ConvEncoder(Upstream):
    """``example_upstream``: see the module docstring. Options are the constructor's arguments."""

    sample_rate = 16000
    frame_rate = 50.0
    max_seconds = None
    padding_sensitive = False

    def __init__(self, hidden: int = 64, layers: int = 4, channels: int = 64, kernel: int = 5,
                 seed: int = 0, name: str = "example_upstream"):
        super().__init__()
        for key, value in (("hidden", hidden), ("layers", layers), ("channels", channels),
                           ("kernel", kernel), ("seed", seed)):
            if not isinstance(value, int) or isinstance(value, bool) or value < (
                    0 if key in ("layers", "seed") else 1):
                raise EmoboxUsageError(f"{name}: option {key} must be a "
                                       f"{'non-negative' if key in ('layers', 'seed') else 'positive'}"
                                       f" integer, got {value!r}")
        if kernel % 2 == 0:
            raise EmoboxUsageError(f"{name}: option kernel must be odd, got {kernel}")
        self.name = name
        self.hidden_size, self.num_layers = hidden, layers
        self.config = {"hidden": hidden, "layers": layers, "channels": channels,
                       "kernel": kernel, "seed": seed}
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else channels, channels, k, s, bias=False)
            for i, (k, s) in enumerate(zip(KERNELS, STRIDES)))
        self.conv_norms = nn.ModuleList(nn.LayerNorm(channels) for _ in KERNELS)
        self.proj_norm = nn.LayerNorm(channels)
        self.proj = nn.Linear(channels, hidden)
        self.blocks = nn.ModuleList(Block(hidden, kernel) for _ in range(layers))
        self._init_weights(seed)
        self.checkpoint_id = ("example-conv-v1:" + "-".join(f"{k}{v}" for k, v in
                                                          sorted(self.config.items())))

    def _init_weights(self, seed: int) -> None:
        """He-normal weights, zero biases, unit norms, drawn in a fixed order from ``seed``."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in sorted(self.named_parameters()):
                if "norm" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif p.dim() == 1:
                    p.zero_()
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))

    # -- the contract -------------------------------------------------------------------------
    def frames_for(self, num_samples: int) -> int:
        n = max(num_samples, RECEPTIVE_FIELD)
        for k, s in zip(KERNELS, STRIDES):
            n = (n - k) // s + 1
        return n

    def flops(self, num_samples: int) -> float:
        """Multiply-adds x 2 of one forward pass through every layer (norms and GELU ignored)."""
        c, h = self.config["channels"], self.hidden_size
        n, total = max(num_samples, RECEPTIVE_FIELD), 0.0
        for i, (k, s) in enumerate(zip(KERNELS, STRIDES)):
            n = (n - k) // s + 1
            total += 2.0 * k * (1 if i == 0 else c) * c * n
        total += 2.0 * c * h * n
        total += self.num_layers * n * (2.0 * self.config["kernel"] * h + 2.0 * 4 * h * h)
        return total

    def forward(self, wavs: Sequence[torch.Tensor], layers: Any = None) -> UpstreamOutput:
        wanted = self.resolve_layers(layers)
        device = self.convs[0].weight.device
        lengths = torch.tensor([self.frames_for(int(w.shape[-1])) for w in wavs])
        batch = torch.zeros(len(wavs), max(max(int(w.shape[-1]) for w in wavs), RECEPTIVE_FIELD),
                            device=device)
        for i, w in enumerate(wavs):
            w = w.to(device=device, dtype=torch.float32)
            batch[i, : w.shape[-1]] = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
        x = batch.unsqueeze(1)
        for conv, norm in zip(self.convs, self.conv_norms):
            x = nn.functional.gelu(_frame_norm(conv(x), norm))
        x = x.transpose(1, 2)[:, : int(lengths.max())]  # [B, T, C]
        mask = (torch.arange(x.shape[1], device=device)[None, :] <
                lengths.to(device)[:, None]).unsqueeze(-1).to(x.dtype)
        x = self.proj(self.proj_norm(x)) * mask
        hidden = {0: x} if 0 in wanted else {}
        for i, block in enumerate(self.blocks, start=1):
            if i > wanted[-1]:
                break  # compute no block beyond the highest requested layer
            x = block(x, mask)
            if i in wanted:
                hidden[i] = x
        return UpstreamOutput(hidden, lengths)

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the configuration and weights to ``path`` (load with ``--upstream-ckpt``)."""
        path = Path(path)
        torch.save({"format": FORMAT, "config": dict(self.config),
                    "state_dict": self.state_dict()}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> "ConvEncoder":
        """An encoder from a checkpoint written by :meth:`save`; ``options`` must agree with it."""
        path = Path(path)
        if path.is_dir():
            files = sorted(path.glob("*.pt"))
            if len(files) != 1:
                raise EmoboxUsageError(f"example_upstream: {path} must hold exactly one .pt "
                                       f"checkpoint, found {len(files)}")
            path = files[0]
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EmoboxUsageError(f"example_upstream: cannot read checkpoint {path}: {exc}")
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise EmoboxUsageError(f"example_upstream: {path} is not a checkpoint written by "
                                   f"ConvEncoder.save (format {FORMAT!r})")
        config = dict(blob["config"])
        clash = {k: v for k, v in options.items() if k in config and config[k] != v}
        if clash:
            key = sorted(clash)[0]
            raise EmoboxUsageError(f"example_upstream: option {key}={clash[key]!r} contradicts "
                                   f"the checkpoint {path} ({key}={config[key]!r})")
        model = cls(**config)
        model.load_state_dict(blob["state_dict"])
        model.checkpoint_id = checkpoint_id(path)
        return model
