"""wav2vec 2.0-style encoders through transformers: wav2vec2, HuBERT, WavLM, data2vec-audio.

All four share one shape: a strided convolutional feature encoder (20 ms frames, 50 Hz), a
projection, a convolutional relative position embedding and a stack of transformer blocks.

Layers: layer 0 is the input of the first block (after the position embedding, and for
post-norm models its layer norm), layer ``i < N`` the output of block ``i``, and layer ``N`` (the
default) the encoder's output, transformers' ``last_hidden_state``: for pre-norm ("stable layer
norm", ``do_stable_layer_norm``) models the last block's output *after* the encoder's final layer
norm, for post-norm models the last block's output (which is their encoder output). That is what
EmoBox fed its head (``last_hidden_state``), what fairseq's ``extract_features()`` returns and how
transformers 4.x numbered ``hidden_states``; transformers 5's ``hidden_states[-1]`` of a pre-norm
model leaves the final norm out.

Input: the waveform is normalised to zero mean and unit variance or left as it is, as
:class:`WaveformNorm` says (see :mod:`emobox.upstreams.ssl_family` for where the setting comes
from).

Batching: items are right-padded with zeros and an attention mask hides the padding. That is
exact for encoders whose feature encoder normalises each frame on its own (layer norm). For
``padding_sensitive`` ones (group norm over time in the first convolution, or stacked position
convolutions that see the padding) :meth:`SSLEncoder.forward` only ever batches items of equal
length; the rest run separately, so its output never depends on the batch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from emobox.extraction.checkpoints import checkpoint_id as hash_checkpoint
from emobox.errors import CheckpointNotFoundError, EmoboxUsageError
from emobox.extraction.upstream import LayersGraph, Upstream, UpstreamOutput, padding_mask

from .checkpoint_guard import (MAX_KERNEL, MAX_LAYERS, MAX_POSITIONS, CheckpointDataError,
                               int_field, int_list_field, loading, positive_float_field,
                               read_json_object, weight_files)

from .common import (NORM_FEATURE_EXTRACTOR, NORM_LAYER_NORM, NORM_METHODS, NORM_NONE,
                     capture_blocks, conv1d_flops, conv_lengths, equal_length_groups,
                     feature_extractor_normalize, min_samples_for_one_frame, normalize_waveform,
                     stack_padded, transformer_flops)

# what ``feature_version`` says: 2 = layer N is ``last_hidden_state`` (final layer norm of
# pre-norm models included) and the waveform normalisation follows WaveformNorm
FEATURE_VERSION = "2"


class WaveformNorm:
    """How an encoder's input waveform is normalised (``method``, one of :data:`NORM_METHODS`)
    and where that setting came from (``source``, shown by ``emobox upstreams info`` and written
    to the feature store's meta.json)."""

    __slots__ = ("method", "source")

    def __init__(self, method: str, source: str = ""):
        if method not in NORM_METHODS:
            raise ValueError(f"unknown waveform normalisation {method!r}")
        self.method = method
        self.source = source

    @classmethod
    def of(cls, normalize: "bool | str | WaveformNorm", source: str = "") -> "WaveformNorm":
        """From a WaveformNorm, a method name, or a bool (True: the feature extractor's)."""
        if isinstance(normalize, WaveformNorm):
            return normalize
        if isinstance(normalize, str):
            return cls(normalize, source)
        return cls(NORM_FEATURE_EXTRACTOR if normalize else NORM_NONE, source)

    def describe(self) -> str:
        return NORM_METHODS[self.method] + (f"; setting: {self.source}" if self.source else "")

    def __repr__(self) -> str:
        return f"WaveformNorm({self.method!r}, {self.source!r})"


class SSLEncoder(Upstream):
    """An :class:`emobox.Upstream` over a transformers ``Wav2Vec2Model``-like model."""

    feature_version = FEATURE_VERSION

    def __init__(self, name: str, model: torch.nn.Module, *,
                 normalize: "bool | str | WaveformNorm", padding_sensitive: bool,
                 checkpoint_id: str):
        super().__init__()
        cfg = model.config
        if getattr(cfg, "add_adapter", False):
            where = getattr(cfg, "name_or_path", "") or "this checkpoint"
            raise EmoboxUsageError(f"{where}: {name}: checkpoints with an adapter after the "
                                   f"encoder (add_adapter) are not supported")
        self.name = name
        self.model = model.eval()
        self.num_layers = int(cfg.num_hidden_layers)
        self.hidden_size = int(cfg.hidden_size)
        self.waveform_norm = WaveformNorm.of(normalize)
        self.padding_sensitive = bool(padding_sensitive)
        self.checkpoint_id = checkpoint_id
        # pre-norm models end in a layer norm that belongs to the encoder output (layer N)
        # (transformers' *EncoderStableLayerNorm classes, chosen by do_stable_layer_norm)
        self.final_norm = (model.encoder.layer_norm
                           if type(model.encoder).__name__.endswith("StableLayerNorm") else None)
        self.store_options = {"input_norm": self.waveform_norm.method}
        self.provenance = {"waveform_normalisation": self.waveform_norm.describe()}
        self._conv = list(zip(cfg.conv_kernel, cfg.conv_stride))
        self.min_samples = min_samples_for_one_frame(self._conv)
        self.frame_rate = self.sample_rate / math.prod(cfg.conv_stride)

    # -- sizes -----------------------------------------------------------------------------
    def frames_for(self, num_samples: int) -> int:
        """Frames of the convolutional feature encoder; inputs shorter than its receptive field
        (25 ms) are zero-padded to it and give one frame."""
        return conv_lengths(max(int(num_samples), self.min_samples), self._conv)

    def flops(self, num_samples: int, layer: int | None = None) -> float:
        cfg = self.model.config
        blocks = self.num_layers if layer is None else int(layer)
        n = max(int(num_samples), self.min_samples)
        total, in_ch = 0.0, 1
        for out_ch, (kernel, stride) in zip(cfg.conv_dim, self._conv):
            n = (n - kernel) // stride + 1
            total += conv1d_flops(in_ch, out_ch, kernel, n)
            in_ch = out_ch
        frames, dim = n, self.hidden_size
        total += 2.0 * frames * in_ch * dim  # feature projection
        groups = cfg.num_conv_pos_embedding_groups
        if hasattr(cfg, "conv_pos_kernel_size"):  # data2vec-audio: a stack of small convs
            total += cfg.num_conv_pos_embeddings * conv1d_flops(
                dim, dim, cfg.conv_pos_kernel_size, frames, groups)
        else:
            total += conv1d_flops(dim, dim, cfg.num_conv_pos_embeddings, frames, groups)
        return total + transformer_flops(frames, dim, cfg.intermediate_size, blocks)

    # -- forward ---------------------------------------------------------------------------
    @property
    def normalize(self) -> bool:
        """Whether the input waveform is normalised (by either method)."""
        return self.waveform_norm.method != NORM_NONE

    def _prepare(self, wav: torch.Tensor) -> torch.Tensor:
        method = self.waveform_norm.method
        if method == NORM_FEATURE_EXTRACTOR:
            wav = feature_extractor_normalize(wav)  # numpy on the CPU, like transformers
        wav = wav.reshape(-1).to(self.device, torch.float32)
        if method == NORM_LAYER_NORM:
            wav = normalize_waveform(wav)
        if wav.numel() < self.min_samples:
            wav = torch.nn.functional.pad(wav, (0, self.min_samples - wav.numel()))
        return wav

    def forward(self, wavs: Sequence[torch.Tensor], layers: Sequence[int] | None = None
                ) -> UpstreamOutput:
        wanted = self.resolve_layers(layers)
        prepared = [self._prepare(w) for w in wavs]
        frames = torch.tensor([self.frames_for(int(w.numel())) for w in wavs], dtype=torch.long)
        if self.padding_sensitive:
            groups = equal_length_groups([int(p.numel()) for p in prepared])
        else:
            groups = [list(range(len(prepared)))]
        if len(groups) == 1:
            return UpstreamOutput(self.encode_padded(prepared, wanted), frames)
        width = int(frames.max())
        out = {L: prepared[0].new_zeros(len(prepared), width, self.hidden_size) for L in wanted}
        for group in groups:
            hidden = self.encode_padded([prepared[i] for i in group], wanted)
            for L in wanted:
                t = int(frames[group[0]])
                out[L][group, :t] = hidden[L][:, :t].to(out[L].dtype)
        return UpstreamOutput(out, frames)

    def encode_padded(self, wavs: Sequence[torch.Tensor], layers: Sequence[int]
                      ) -> dict[int, torch.Tensor]:
        """Hidden states of prepared waveforms run as one zero-padded batch, with an attention
        mask when their lengths differ. For a padding-sensitive model the padded items' features
        differ from their one-at-a-time features: :meth:`forward` never calls it that way."""
        batch, lengths = stack_padded(wavs)
        mask = padding_mask(lengths.to(batch.device), batch.shape[1])
        if self.runtime is not None:
            return self.runtime(self, sorted(layers), batch, mask)
        return self.hidden_states(batch, mask, layers)

    def hidden_states(self, batch: torch.Tensor, mask: torch.Tensor | None,
                      layers: Sequence[int], traced: bool = False) -> dict[int, torch.Tensor]:
        """``{layer: [B, T, D]}`` of a padded batch: the blocks' outputs taken by hooks, the
        final norm of a pre-norm model closing layer N. The pass ends after the highest
        layer's block; ``traced`` (a trace cannot end a pass early) runs it through a model
        holding only the blocks up to that one instead."""
        encoder = self.model.encoder
        blocks = encoder.layers
        if traced:
            encoder.layers = torch.nn.ModuleList(list(blocks)[: max(max(layers), 1)])
        try:
            hidden = capture_blocks(encoder.layers, layers,
                                    lambda: self.model(batch, attention_mask=mask),
                                    stop=not traced)
        finally:
            encoder.layers = blocks
        if self.final_norm is not None and self.num_layers in hidden:
            hidden[self.num_layers] = self.final_norm(hidden[self.num_layers])
        return hidden

    def graph(self, layers: Sequence[int], masked: bool) -> torch.nn.Module:
        return LayersGraph(self, layers, lambda batch, mask, wanted: self.hidden_states(
            batch, mask, wanted, traced=True))


def load_ssl(name: str, path: Path, model_class: str, model_type: str, *, num_layers: int,
             hidden_size: int, normalize: "bool | str | WaveformNorm", padding_sensitive: bool,
             device: str = "cpu") -> SSLEncoder:
    """Load a transformers checkpoint folder ``path`` as the upstream ``name`` (offline)."""
    import transformers

    if path.is_file():
        raise CheckpointNotFoundError(
            f"{path}: {name} needs a transformers checkpoint folder (config.json + "
            f"model.safetensors or pytorch_model.bin), not a single file")
    check_folder(name, path, model_type, num_layers, hidden_size)
    with loading(path, name):
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        cls = getattr(transformers, model_class)
        model, info = cls.from_pretrained(str(path), local_files_only=True, dtype=torch.float32,
                                          output_loading_info=True)
        missing = [k for k in info.get("missing_keys", ())
                   if not k.endswith("masked_spec_embed")]
        if missing:
            raise EmoboxUsageError(f"{path}: not a complete {name} checkpoint, {len(missing)} "
                                   f"weights are missing (e.g. {sorted(missing)[0]})")
        mismatched = info.get("mismatched_keys") or ()
        if mismatched:
            raise CheckpointDataError(f"{path}: {len(mismatched)} {name} weight(s) of the wrong "
                                      f"shape (e.g. {list(mismatched)[0]})", path=str(path))
        if config.model_type != model_type:
            raise EmoboxUsageError(f"{path}: a {config.model_type!r} checkpoint, but {name} "
                                   f"needs a {model_type!r} one")
        encoder = SSLEncoder(name, model, normalize=normalize,
                             padding_sensitive=padding_sensitive,
                             checkpoint_id=hash_checkpoint(path))
    return encoder.to(device)


def check_folder(name: str, path: Path, model_type: str, num_layers: int,
                 hidden_size: int) -> None:
    """The folder's ``config.json`` (types and ranges of what shapes the model, caps named in
    the messages) and weight files, checked before transformers reads them: one error naming
    the file otherwise. The weights must hold at least 2 bytes for each parameter the config
    describes (float16), so a config that describes a huge model is refused before anything
    is allocated."""
    file = path / "config.json"
    cfg = read_json_object(file)

    def fail(message: str) -> CheckpointDataError:
        return CheckpointDataError(f"{file}: {message}", path=str(file))

    kind = cfg.get("model_type")
    if kind != model_type:
        raise EmoboxUsageError(f"{file}: a {kind!r:.40} checkpoint, but {name} needs a "
                               f"{model_type!r} one")
    layers = int_field(cfg, "num_hidden_layers", file, high=MAX_LAYERS)
    width = int_field(cfg, "hidden_size", file)
    if (layers, width) != (num_layers, hidden_size):
        raise EmoboxUsageError(
            f"{path}: {layers} layers x {width}, but {name} has {num_layers} x {hidden_size}; "
            f"pass a checkpoint of this model")
    heads = int_field(cfg, "num_attention_heads", file, high=width)
    if width % heads:
        raise fail(f"num_attention_heads {heads} does not divide hidden_size {width}")
    ffn = int_field(cfg, "intermediate_size", file)
    convs = []
    if any(k in cfg for k in ("conv_dim", "conv_kernel", "conv_stride")):
        dims = int_list_field(cfg, "conv_dim", file)
        kernels = int_list_field(cfg, "conv_kernel", file, high=MAX_KERNEL)
        strides = int_list_field(cfg, "conv_stride", file, high=MAX_KERNEL)
        if not len(dims) == len(kernels) == len(strides):
            raise fail(f"conv_dim, conv_kernel and conv_stride must have one entry per "
                       f"convolution (found {len(dims)}, {len(kernels)}, {len(strides)})")
        convs = list(zip(dims, kernels))
    for key in ("num_conv_pos_embeddings", "conv_pos_kernel_size"):
        if key in cfg:
            int_field(cfg, key, file, high=MAX_KERNEL)
    if "num_conv_pos_embedding_groups" in cfg:
        groups = int_field(cfg, "num_conv_pos_embedding_groups", file, high=width)
        if width % groups:
            raise fail(f"num_conv_pos_embedding_groups {groups} does not divide hidden_size "
                       f"{width}")
    for key in ("num_buckets", "max_bucket_distance"):  # WavLM's relative positions
        if key in cfg:
            int_field(cfg, key, file, high=MAX_POSITIONS)
    if "layer_norm_eps" in cfg:
        positive_float_field(cfg, "layer_norm_eps", file)
    if cfg.get("quantization_config") is not None:
        raise fail("quantization_config is set; only unquantised checkpoints are read")
    if cfg.get("add_adapter"):
        raise EmoboxUsageError(f"{file}: {name}: checkpoints with an adapter after the encoder "
                               f"(add_adapter) are not supported")
    files = weight_files(path)
    if not files:
        raise CheckpointDataError(f"{path}: no model.safetensors or pytorch_model.bin",
                                  path=str(path))
    params = layers * (4 * width * width + 2 * width * ffn)
    c_in = 1
    for dim, kernel in convs:
        params += c_in * dim * kernel
        c_in = dim
    stored = sum(f.stat().st_size for f in files)
    if 2 * params > stored:
        raise fail(f"describes at least {params:,} parameters, but the weight files hold "
                   f"{stored:,} bytes; the config does not belong to these weights")
