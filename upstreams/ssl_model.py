"""wav2vec 2.0-style encoders through transformers: wav2vec2, HuBERT, WavLM, data2vec-audio.

All four share one shape: a strided convolutional feature encoder (20 ms frames, 50 Hz), a
projection, a convolutional relative position embedding and a stack of transformer blocks.
Layers follow transformers' ``hidden_states``: layer 0 is the input of the first block (after
the position embedding, and for post-norm models its layer norm), layer ``i`` the output of
block ``i``. For pre-norm ("stable layer norm") models the encoder's final layer norm belongs
to no layer, as in transformers 5 and in fairseq's ``extract_features(layer=N)``.

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

from emobox.checkpoints import checkpoint_id as hash_checkpoint
from emobox.errors import CheckpointNotFoundError, EmoboxUsageError
from emobox.upstream import Upstream, UpstreamOutput

from .common import (capture_blocks, conv1d_flops, conv_lengths, equal_length_groups,
                     min_samples_for_one_frame, normalize_waveform, stack_padded,
                     transformer_flops)


class SSLEncoder(Upstream):
    """An :class:`emobox.Upstream` over a transformers ``Wav2Vec2Model``-like model."""

    def __init__(self, name: str, model: torch.nn.Module, *, normalize: bool,
                 padding_sensitive: bool, checkpoint_id: str):
        super().__init__()
        cfg = model.config
        self.name = name
        self.model = model.eval()
        self.num_layers = int(cfg.num_hidden_layers)
        self.hidden_size = int(cfg.hidden_size)
        self.normalize = bool(normalize)
        self.padding_sensitive = bool(padding_sensitive)
        self.checkpoint_id = checkpoint_id
        self.store_options = {"normalize": self.normalize}
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
    def _prepare(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.reshape(-1).to(self.device, torch.float32)
        if self.normalize:
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
        mask = None
        if int(lengths.min()) != int(lengths.max()):
            mask = (torch.arange(batch.shape[1], device=batch.device)[None, :]
                    < lengths.to(batch.device)[:, None]).long()
        return capture_blocks(self.model.encoder.layers, layers,
                              lambda: self.model(batch, attention_mask=mask))


def load_ssl(name: str, path: Path, model_class: str, model_type: str, *, num_layers: int,
             hidden_size: int, normalize: bool, padding_sensitive: bool,
             device: str = "cpu") -> SSLEncoder:
    """Load a transformers checkpoint folder ``path`` as the upstream ``name`` (offline)."""
    import transformers

    if path.is_file():
        raise CheckpointNotFoundError(
            f"{path}: {name} needs a transformers checkpoint folder (config.json + "
            f"model.safetensors or pytorch_model.bin), not a single file")
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointNotFoundError(f"{path}: cannot read config.json ({exc})") from None
    if config.model_type != model_type:
        raise EmoboxUsageError(f"{path}: a {config.model_type!r} checkpoint, but {name} needs a "
                               f"{model_type!r} one")
    if (config.num_hidden_layers, config.hidden_size) != (num_layers, hidden_size):
        raise EmoboxUsageError(
            f"{path}: {config.num_hidden_layers} layers x {config.hidden_size}, but {name} has "
            f"{num_layers} x {hidden_size}; pass a checkpoint of this model")
    cls = getattr(transformers, model_class)
    model, info = cls.from_pretrained(str(path), local_files_only=True, dtype=torch.float32,
                                      output_loading_info=True)
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("masked_spec_embed")]
    if missing:
        raise EmoboxUsageError(f"{path}: not a complete {name} checkpoint, {len(missing)} "
                               f"weights are missing (e.g. {sorted(missing)[0]})")
    return SSLEncoder(name, model, normalize=normalize, padding_sensitive=padding_sensitive,
                      checkpoint_id=hash_checkpoint(path)).to(device)
