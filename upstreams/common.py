"""Pieces shared by the built-in neural upstreams (and usable by third-party ones).

- :func:`spec_of` / :func:`locate_checkpoint`: where an upstream's weights are, by the rules of
  :mod:`emobox.checkpoints` (``--upstream-ckpt``, ``$EMOBOX_MODELS/<name>``, the Hugging Face cache
  offline), with a how-to-obtain hint built from the spec.
- :func:`capture_blocks`: run a model and keep the hidden states of some transformer blocks,
  stopping right after the highest one (no block beyond it runs; the model is not copied or
  changed).
- :func:`conv_lengths`, :func:`transformer_flops`, :func:`conv1d_flops`: exact frame counts and
  analytic FLOPs.
- :func:`normalize_waveform` (fairseq's ``task.normalize``), :func:`feature_extractor_normalize`
  (transformers' ``Wav2Vec2FeatureExtractor``), :func:`stack_padded`,
  :func:`equal_length_groups`: input and batching helpers.

Importing this module is cheap (torch is imported inside the functions that need it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from emobox.extraction.checkpoints import find_checkpoint

if TYPE_CHECKING:
    import torch

    from emobox import UpstreamSpec


def how_to_get(spec: "UpstreamSpec") -> str:
    """The hint printed when ``spec``'s weights are missing."""
    from emobox import paths

    target = paths.models_dir() / spec.name
    if spec.checkpoint:
        rev = f" --revision {spec.revision}" if spec.revision else ""
        return (f"on a machine with internet access run `hf download "
                f"{spec.checkpoint}{rev}` (it fills the Hugging Face cache, which emobox reads "
                f"offline), or save the model folder (config.json + weights) as {target}")
    return f"put the checkpoint in {target}"


def locate_checkpoint(spec: "UpstreamSpec", ckpt=None,
                      must_contain: Sequence[str] = ("config.json",)) -> Path:
    """Local path of ``spec``'s weights; raises :class:`emobox.CheckpointNotFoundError`."""
    return find_checkpoint(spec.name, ckpt, hub_id=spec.checkpoint, revision=spec.revision,
                           how_to_get=how_to_get(spec), must_contain=must_contain)


# -- frames and FLOPs --------------------------------------------------------------------------

def conv_lengths(num_samples: int, layers: Iterable[tuple[int, int]]) -> int:
    """Output length of a stack of unpadded 1-D convolutions ``(kernel, stride)``."""
    n = int(num_samples)
    for kernel, stride in layers:
        n = (n - kernel) // stride + 1 if n >= kernel else 0
    return n


def min_samples_for_one_frame(layers: Sequence[tuple[int, int]]) -> int:
    """Receptive field of a conv stack: the shortest input that gives one output frame."""
    n = 1
    for kernel, stride in reversed(list(layers)):
        n = (n - 1) * stride + kernel
    return n


def conv1d_flops(in_ch: int, out_ch: int, kernel: int, out_len: int, groups: int = 1) -> float:
    """Multiply-adds x 2 of one ``Conv1d``."""
    return 2.0 * out_len * out_ch * (in_ch // groups) * kernel


def transformer_flops(frames: int, dim: int, ffn_dim: int, blocks: int) -> float:
    """Forward FLOPs of ``blocks`` standard encoder blocks on ``frames`` positions: the four
    projections (8 T D^2), attention scores and weighted sum (4 T^2 D) and the feed-forward
    (4 T D F). Layer norms, softmax and activations are left out (under 1%)."""
    t, d = float(frames), float(dim)
    return blocks * (8 * t * d * d + 4 * t * t * d + 4 * t * d * ffn_dim)


# -- batching --------------------------------------------------------------------------------

def normalize_waveform(wav: "torch.Tensor") -> "torch.Tensor":
    """Zero mean, unit variance over the utterance as fairseq's ``task.normalize`` does it:
    ``F.layer_norm(wav, wav.shape)``, i.e. ``(x - mean) / sqrt(var + 1e-5)``."""
    import torch

    if wav.numel() == 0:
        return wav
    return torch.nn.functional.layer_norm(wav, wav.shape)


FEATURE_EXTRACTOR_EPS = 1e-7

# waveform normalisation methods of the wav2vec 2.0-style encoders (``WaveformNorm.method``)
NORM_NONE = "none"
NORM_FEATURE_EXTRACTOR = "feature-extractor"  # transformers' Wav2Vec2FeatureExtractor
NORM_LAYER_NORM = "layer-norm"  # fairseq's task.normalize: F.layer_norm(wav, wav.shape)
NORM_METHODS = {
    NORM_NONE: "none (the waveform as it is)",
    NORM_FEATURE_EXTRACTOR: f"zero mean, unit variance: (x - mean) / sqrt(var + "
                            f"{FEATURE_EXTRACTOR_EPS:g}), as transformers' "
                            f"Wav2Vec2FeatureExtractor (do_normalize)",
    NORM_LAYER_NORM: "zero mean, unit variance: (x - mean) / sqrt(var + 1e-05), as fairseq's "
                     "task.normalize (F.layer_norm over the waveform)",
}


def feature_extractor_normalize(wav: "torch.Tensor") -> "torch.Tensor":
    """Zero mean, unit variance over the utterance as transformers' ``Wav2Vec2FeatureExtractor``
    (``do_normalize``) does it: ``(x - x.mean()) / sqrt(x.var() + 1e-7)`` on a float32 numpy
    array (numpy's own float32 mean and population variance; the square root taken in float64,
    as numpy 1.x promoted the Python epsilon). Runs on the CPU, returns float32 on
    ``wav``'s device."""
    import numpy as np
    import torch

    x = wav.detach().reshape(-1).to("cpu", torch.float32).numpy()
    if x.size == 0:
        return wav.reshape(-1).to(torch.float32)
    std = np.float32(np.sqrt(np.float64(x.var()) + FEATURE_EXTRACTOR_EPS))
    out = (x - x.mean()) / std
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(wav.device)


def stack_padded(wavs: Sequence["torch.Tensor"], min_len: int = 0
                 ) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Right-pad 1-D tensors with zeros into ``[B, S]``; returns it and the lengths ``[B]``
    (:func:`emobox.extraction.upstream.pad_batch`, imported when first used)."""
    from emobox.extraction.upstream import pad_batch

    return pad_batch(wavs, min_len)


def equal_length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped by equal length, in first-seen order."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    return list(groups.values())


# -- running a layer stack up to a layer -------------------------------------------------------

class _Stop(Exception):
    """Raised from a forward hook once the highest wanted block has run."""


def capture_blocks(blocks: Sequence[Any], wanted: Iterable[int], run: Callable[[], Any],
                   stop: bool = True) -> dict[int, "torch.Tensor"]:
    """Call ``run()`` (a forward pass through a model whose transformer blocks are ``blocks``)
    and return ``{layer: hidden}`` for the wanted layers: 0 is the input of ``blocks[0]``,
    ``i`` the output of ``blocks[i - 1]``. Forward hooks record the states and end the pass
    right after block ``max(wanted)``, so later blocks (and the model's head) never run. The
    hooks are removed afterwards; the model is neither copied nor changed. ``stop=False``
    lets the pass run to its end (for tracing a graph, where an exception cannot end it; the
    caller then hands ``run`` a model holding only the blocks needed).
    """
    wanted = set(int(w) for w in wanted)
    top = max(wanted)
    out: dict[int, Any] = {}
    handles = []

    def first_input(module, args, kwargs):
        out[0] = args[0] if args else kwargs["hidden_states"]
        if top == 0 and stop:
            raise _Stop

    def block_output(index: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, (tuple, list)) else output
            if index in wanted:
                out[index] = hidden
            if index == top and stop:
                raise _Stop
        return hook

    try:
        if 0 in wanted:
            handles.append(blocks[0].register_forward_pre_hook(first_input, with_kwargs=True))
        for i in range(top):
            handles.append(blocks[i].register_forward_hook(block_output(i + 1)))
        try:
            run()
        except _Stop:
            pass
    finally:
        for h in handles:
            h.remove()
    missing = wanted - set(out)
    if missing:
        raise RuntimeError(f"layers {sorted(missing)} were not produced by the forward pass")
    return out


def ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


__all__ = ["how_to_get", "locate_checkpoint", "conv_lengths", "min_samples_for_one_frame",
           "conv1d_flops", "transformer_flops", "normalize_waveform",
           "feature_extractor_normalize", "FEATURE_EXTRACTOR_EPS", "NORM_NONE",
           "NORM_FEATURE_EXTRACTOR", "NORM_LAYER_NORM", "NORM_METHODS", "stack_padded",
           "equal_length_groups", "capture_blocks", "ceil_div"]
