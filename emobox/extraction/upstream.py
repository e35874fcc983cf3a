"""The upstream contract: a frozen encoder from waveforms to per-layer frame features.

Layers are numbered as in SUPERB/transformers ``hidden_states``: 0 is the input to the first
transformer block (the CNN/embedding output), ``i`` the output of block ``i``, and
``num_layers`` (the default) the encoder's output, transformers' ``last_hidden_state`` (for a
pre-norm encoder, after its final layer norm); README "Upstreams" says it in full. A baseline
without layers (fbank, mfcc) has ``num_layers = 0`` and only layer 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from emobox.errors import EmoboxUsageError


@dataclass(frozen=True)
class Windows:
    """How an input longer than one window is encoded: window by window, so that memory does
    not grow with its length.

    Window ``j`` holds the samples ``[j * step, j * step + step + overlap)``; its frames are
    concatenated in order. A last window shorter than ``min_tail`` samples (after the first) is
    left out: it holds no whole frame. ``exact``: the frames equal those of the whole input
    (frame-local front ends, or a model that itself runs in independent windows); otherwise
    the windows are a policy that changes the features of inputs longer than one window, and
    it is part of the feature store's identity (``long_window_s``).
    """

    step: int
    overlap: int = 0
    min_tail: int = 1
    exact: bool = False

    @property
    def samples(self) -> int:
        """Length of one whole window: inputs longer than this are encoded in windows."""
        return self.step + self.overlap


# inputs longer than this are encoded in windows of this length by upstreams that do not
# declare their own (transformer encoders: full attention over an hour of audio would not fit)
DEFAULT_WINDOW_SECONDS = 60.0


@dataclass
class UpstreamOutput:
    hidden: dict[int, torch.Tensor]  # layer -> [B, T, D] float
    lengths: torch.Tensor  # [B] int64: valid frames of each item


class Upstream(torch.nn.Module):
    """Base class of every upstream. Subclasses set the attributes and implement ``forward``.

    ``forward(wavs, layers)`` takes a list of 1-D float tensors at ``sample_rate`` (any lengths)
    and the layer indices wanted, and returns an :class:`UpstreamOutput` with ``[B, T, D]``
    hidden states per requested layer and the valid frame count of each item; it computes no
    block beyond the highest requested layer. It pads internally
    (with attention masks where the model has them). A ``padding_sensitive`` upstream (group-norm
    feature encoders such as wav2vec2-base and HuBERT-base) may give different features for a
    padded item: the extraction engine never batches unequal lengths for it.
    """

    name: str = ""
    sample_rate: int = 16000
    num_layers: int = 0
    hidden_size: int = 0
    frame_rate: float = 100.0
    max_seconds: float | None = None  # inputs longer than this are processed in windows
    padding_sensitive: bool = False
    checkpoint_id: str = ""  # identifies the weights (hash); part of the feature store's key
    # in bf16/fp16 extraction the engine holds Linear/Conv weights in that precision for the
    # run (bit-identical to autocast); False when forward reads them outside autocast'd ops
    lowp_weight_cache: bool = True
    # the engine runs transformers' layer-norm convolutional feature encoders found inside the
    # upstream time-major (emobox.extraction.kernels: same values up to float32 summation
    # order, faster on CPUs); False keeps the stock modules
    fast_kernels: bool = True
    # options that change the features (e.g. Whisper's mode); part of the feature store's key
    store_options: Mapping[str, Any] = MappingProxyType({})
    # bumped by an implementation whenever what it computes for the same weights and options
    # changes (a layer's definition, the frame count, the input normalisation); part of the
    # feature store's key, so stores of the old features are never reused. "" = never changed.
    feature_version: str = ""
    # how the features were made where it is not an option (e.g. where the waveform
    # normalisation setting came from): written to the store's meta.json, not part of its key
    provenance: Mapping[str, str] = MappingProxyType({})

    # set by the extraction engine for the length of one run on another runtime
    # (emobox.extraction.runtime): called as ``runtime(self, layers, batch, mask)`` in place of
    # :meth:`graph`'s forward; None: torch computes
    runtime: Any = None

    def forward(self, wavs: Sequence[torch.Tensor], layers: Sequence[int]) -> UpstreamOutput:
        raise NotImplementedError

    def graph(self, layers: Sequence[int], masked: bool) -> torch.nn.Module | None:
        """The upstream's tensor computation for ``layers`` as a module another runtime can
        trace (``--runtime openvino``): ``forward(batch[, mask])`` takes a float32 batch (e.g.
        zero-padded waveforms ``[B, S]``, or log-mel ``[B, n_mels, M]``) and, when ``masked``,
        its int64 mask (1 = real input), and returns one ``[B, T, D]`` tensor per layer, in the
        order of ``layers``. An upstream that returns one hands those tensors to :attr:`runtime`
        (``runtime(self, layers, batch, mask)``) when it is set. None (the default, for either
        kind of batch): torch runs that kind on every runtime."""
        return None

    # -- helpers shared by implementations ---------------------------------------------------
    def resolve_layers(self, layers: Iterable[int | str] | int | str | None) -> list[int]:
        """Turn user layer requests (``None``/"last", "all", ints, negative ints) into indices."""
        return resolve_layers(layers, self.num_layers, self.name)

    def flops(self, num_samples: int, layer: int | None = None) -> float | None:
        """Analytic forward FLOPs for one utterance of ``num_samples`` samples when layers up to
        ``layer`` (default: the last) are computed, or None when unknown."""
        return None

    def frames_for(self, num_samples: int) -> int:
        """Number of output frames for an input of ``num_samples`` samples (override if exact)."""
        return max(1, int(num_samples * self.frame_rate / self.sample_rate))

    def windows(self) -> Windows:
        """How inputs longer than one window are encoded (see :class:`Windows`). The default:
        consecutive windows of :data:`DEFAULT_WINDOW_SECONDS`, each encoded on its own (as
        Whisper runs its 30-s windows); inputs up to that length are encoded whole, unchanged.
        Frame-local front ends and windowed models override it with their exact layout."""
        return Windows(step=int(round(DEFAULT_WINDOW_SECONDS * self.sample_rate)))

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


def resolve_layers(layers, num_layers: int, name: str = "upstream") -> list[int]:
    if layers is None or layers == "last":
        return [num_layers]
    if layers == "all":
        return list(range(num_layers + 1))
    if isinstance(layers, (int, str)):
        layers = [layers]
    out: list[int] = []
    for layer in layers:
        if layer == "last":
            idx = num_layers
        else:
            try:
                idx = int(layer)
            except (TypeError, ValueError):
                raise EmoboxUsageError(f"bad layer {layer!r}: use an integer, 'last' or 'all'")
            if idx < 0:
                idx = num_layers + 1 + idx
        if not 0 <= idx <= num_layers:
            raise EmoboxUsageError(f"{name} has layers 0..{num_layers}; layer {layer} does not "
                                   f"exist")
        if idx not in out:
            out.append(idx)
    return sorted(out)


def pad_batch(wavs: Sequence[torch.Tensor], min_len: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D waveforms with zeros: ``[B, max(S, min_len)]`` and the lengths ``[B]``."""
    lengths = torch.tensor([int(w.shape[-1]) for w in wavs], dtype=torch.long)
    width = max(int(lengths.max()), min_len)
    out = torch.zeros(len(wavs), width, dtype=wavs[0].dtype, device=wavs[0].device)
    for i, w in enumerate(wavs):
        out[i, : w.shape[-1]] = w
    return out, lengths


def padding_mask(lengths: torch.Tensor, width: int) -> torch.Tensor | None:
    """The int64 mask ``[B, width]`` of each item's real inputs (1) in a right-padded batch, or
    None when no item is padded."""
    lengths = lengths.reshape(-1)
    if bool((lengths >= width).all()):
        return None
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).long()


class LayersGraph(torch.nn.Module):
    """What :meth:`Upstream.graph` returns for an upstream whose computation is
    ``hidden_states(batch, mask, layers) -> {layer: [B, T, D]}``: that computation for fixed
    layers as one forward, ``forward(batch[, mask])`` giving one tensor per layer in order.
    ``owner`` (the module holding the weights) is registered, so a tracer sees its
    parameters."""

    def __init__(self, owner: torch.nn.Module, layers: Sequence[int],
                 hidden_states: Callable[[torch.Tensor, "torch.Tensor | None", list[int]],
                                         Mapping[int, torch.Tensor]]):
        super().__init__()
        self.owner = owner
        self.layers = sorted(int(L) for L in layers)
        self._hidden_states = hidden_states

    def forward(self, batch: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, ...]:
        hidden = self._hidden_states(batch, mask, self.layers)
        return tuple(hidden[L] for L in self.layers)
