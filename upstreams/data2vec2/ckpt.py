"""Released data2vec 2.0 / emotion2vec checkpoints -> :class:`Data2Vec2Encoder`.

Accepted files:

- fairseq checkpoints (``base_libri.pt``, ``large_vox.pt``): a pickled dict with ``model`` (the
  ``Data2VecMultiModel`` state dict, EMA teacher under ``_ema``) and ``cfg`` (``cfg.model`` the
  architecture, ``cfg.task.normalize`` the waveform normalisation);
- the emotion2vec release (``emotion2vec_base.pt``, same key names), with or without ``cfg``; a
  FunASR ``config.yaml`` next to it (``model_conf``) is read when the file has no ``cfg``;
- a converted folder written by :func:`convert_checkpoint`: ``config.json`` +
  ``model.safetensors`` with this module's own parameter names (smaller, loads faster).

The architecture is read from the state dict's shapes wherever they determine it (widths,
number of blocks, kernels, extra tokens), and from ``cfg`` (or a preset) for the rest (strides,
heads, epsilons, waveform normalisation). The key mapping is strict: every parameter of the
network must come from exactly one checkpoint key, and every checkpoint key must be used or be
a known pre-training-only module (EMA teacher, decoders); otherwise the error names the keys.

Files are unpickled without running any pickled code (:func:`emobox.upstreams.safe_load.read_pickle`).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from emobox.errors import EmoboxUsageError

from .net import D2v2Config, Data2Vec2Encoder
from ..safe_load import CheckpointFormatError, plain, read_pickle

FORMAT = "emobox.data2vec2"
FORMAT_VERSION = 1
AUDIO = "modality_encoders.AUDIO."
# pre-training-only parts of a checkpoint, never part of the encoder
IGNORED_PREFIXES = ("_ema", "ema.", AUDIO + "decoder.", "shared_decoder.", "recon_proj.",
                    "proj.")


def split_checkpoint(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """The model state dict, the model config and the task config of a loaded checkpoint."""
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{path}: expected a dict of tensors or a training checkpoint "
                                    f"with a 'model' entry, found {type(obj).__name__}")
    cfg = plain(obj.get("cfg")) or {}
    if not cfg and "args" in obj:  # older fairseq: an argparse namespace
        args = plain(obj["args"]) or {}
        cfg = {"model": args, "task": args}
    state = obj
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), Mapping):
            state = state[key]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointFormatError(f"{path}: holds no tensors (keys: {', '.join(list(obj)[:8])})")
    model_cfg = cfg.get("model") if isinstance(cfg.get("model"), Mapping) else {}
    task_cfg = cfg.get("task") if isinstance(cfg.get("task"), Mapping) else {}
    if not model_cfg:
        model_cfg, task_cfg = _sidecar_config(path)
    return tensors, model_cfg, task_cfg


def _sidecar_config(path: Path) -> tuple[dict, dict]:
    """FunASR's ``config.yaml`` beside a checkpoint: ``model_conf`` holds the architecture."""
    side = path.with_name("config.yaml")
    if not side.is_file():
        return {}, {}
    import yaml

    try:
        conf = yaml.safe_load(side.read_text()) or {}
    except (yaml.YAMLError, OSError) as exc:
        raise CheckpointFormatError(f"{side}: unreadable ({exc})") from None
    model_conf = conf.get("model_conf") if isinstance(conf, Mapping) else None
    if not isinstance(model_conf, Mapping):
        return {}, {}
    return dict(model_conf), {"normalize": model_conf.get("normalize")}


# -- architecture --------------------------------------------------------------------------------
def parse_conv_spec(spec: str) -> tuple[tuple[int, int, int], ...]:
    """fairseq's ``feature_encoder_spec`` ("[(512, 10, 5)] + [(512, 3, 2)] * 4 ...") evaluated
    without ``eval``: lists and tuples of integers joined by ``+`` and repeated by ``*``."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)[:40]}")

    try:
        layers = ev(ast.parse(spec, mode="eval"))
        out = tuple((int(d), int(k), int(s)) for d, k, s in layers)
    except (SyntaxError, ValueError, TypeError) as exc:
        raise CheckpointFormatError(f"cannot read feature_encoder_spec {spec!r} ({exc})") from None
    if not out:
        raise CheckpointFormatError(f"feature_encoder_spec {spec!r} has no layers")
    return out


def _indices(state: Mapping[str, Any], prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pat.match(k))})


def infer_config(state: Mapping[str, torch.Tensor], model_cfg: Mapping, task_cfg: Mapping,
                 preset: D2v2Config, where: str) -> D2v2Config:
    """The architecture of a fairseq-named state dict (shapes first, then cfg, then preset)."""
    audio = model_cfg.get("modalities", {}).get("audio", {}) if model_cfg else {}
    if model_cfg.get("layer_norm_first"):
        raise CheckpointFormatError(f"{where}: pre-norm (layer_norm_first) data2vec 2.0 models "
                                    f"are not supported")
    if AUDIO + "alibi_bias" in state:
        raise CheckpointFormatError(f"{where}: learned ALiBi tables are not supported")
    proj = state.get(AUDIO + "project_features.2.weight")
    if proj is None:
        raise CheckpointFormatError(
            f"{where}: not a data2vec 2.0 audio checkpoint (no '{AUDIO}project_features.2.weight'"
            f"; first keys: {', '.join(list(state)[:5])})")
    D = int(proj.shape[0])
    conv_idx = _indices(state, AUDIO + "local_encoder.conv_layers.")
    kernels = [int(state[f"{AUDIO}local_encoder.conv_layers.{i}.0.weight"].shape[2])
               for i in conv_idx]
    dims = [int(state[f"{AUDIO}local_encoder.conv_layers.{i}.0.weight"].shape[0])
            for i in conv_idx]
    spec = audio.get("feature_encoder_spec")
    conv_layers = parse_conv_spec(spec) if spec else preset.conv_layers
    if [(d, k) for d, k, _ in conv_layers] != list(zip(dims, kernels)):
        raise CheckpointFormatError(
            f"{where}: CNN layers {list(zip(dims, kernels))} (dim, kernel) do not match the "
            f"configured {[(d, k) for d, k, _ in conv_layers]}")
    if f"{AUDIO}local_encoder.conv_layers.0.2.1.weight" in state:
        mode = "layer_norm"
    elif f"{AUDIO}local_encoder.conv_layers.0.2.weight" in state:
        mode = "default"
    else:
        mode = audio.get("extractor_mode", preset.extractor_mode)
    pre_ln = state.get(AUDIO + "relative_positional_encoder.0.weight")
    pre_ln = pre_ln is not None and pre_ln.dim() == 1
    pos_prefix = AUDIO + "relative_positional_encoder." + ("1." if pre_ln else "")
    pos_idx = _indices(state, pos_prefix)
    pos_w = state.get(f"{pos_prefix}{pos_idx[0]}.0.weight") if pos_idx else None
    scale = state.get(AUDIO + "alibi_scale")
    heads = int(model_cfg.get("num_heads") or (scale.shape[-3] if scale is not None and
                                                scale.shape[-3] > 1 else preset.num_heads))
    extra = state.get(AUDIO + "extra_tokens")
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    normalize = task_cfg.get("normalize") if task_cfg else None
    return D2v2Config(
        conv_layers=conv_layers, extractor_mode=mode,
        conv_bias=f"{AUDIO}local_encoder.conv_layers.0.0.bias" in state,
        embed_dim=D, num_heads=heads,
        depth=len(_indices(state, "blocks.")),
        prenet_depth=len(_indices(state, AUDIO + "context_encoder.blocks.")),
        mlp_dim=int(fc1.shape[0]) if fc1 is not None else preset.mlp_dim,
        norm_eps=float(model_cfg.get("norm_eps") or preset.norm_eps),
        norm_affine=("blocks.0.norm1.weight" in state or
                     f"{AUDIO}context_encoder.norm.weight" in state),
        conv_pos_depth=len(pos_idx),
        conv_pos_kernel=int(pos_w.shape[2]) if pos_w is not None else preset.conv_pos_kernel,
        conv_pos_groups=D // int(pos_w.shape[1]) if pos_w is not None else preset.conv_pos_groups,
        conv_pos_pre_ln=pre_ln,
        num_extra_tokens=int(extra.shape[1]) if extra is not None else 0,
        use_alibi=scale is not None,
        alibi_scale_shape=((int(scale.shape[0]) if scale.dim() == 5 else 1, int(scale.shape[-3]))
                           if scale is not None else preset.alibi_scale_shape),
        normalize=bool(preset.normalize if normalize is None else normalize),
    )


# -- key mapping ---------------------------------------------------------------------------------
_BLOCK_PARTS = {"norm1": "attn_norm", "attn.qkv": "attn_in", "attn.proj": "attn_out",
                "norm2": "ffn_norm", "mlp.fc1": "ffn_in", "mlp.fc2": "ffn_out"}


def key_map(cfg: D2v2Config) -> dict[str, str]:
    """fairseq checkpoint key -> parameter name of :class:`Data2Vec2Encoder`."""
    m: dict[str, str] = {}
    for i, _ in enumerate(cfg.conv_layers):
        src = f"{AUDIO}local_encoder.conv_layers.{i}."
        m[src + "0.weight"] = f"cnn.{i}.conv.weight"
        if cfg.conv_bias:
            m[src + "0.bias"] = f"cnn.{i}.conv.bias"
        norm = ("2.1." if cfg.extractor_mode == "layer_norm" else
                "2." if cfg.extractor_mode == "default" and i == 0 else None)
        if norm:
            m[src + norm + "weight"] = f"cnn.{i}.norm.weight"
            m[src + norm + "bias"] = f"cnn.{i}.norm.bias"
    for n in ("weight", "bias"):
        m[f"{AUDIO}project_features.1.{n}"] = f"proj_norm.{n}"
        m[f"{AUDIO}project_features.2.{n}"] = f"proj.{n}"
        pos = AUDIO + "relative_positional_encoder."
        if cfg.conv_pos_pre_ln:
            m[f"{pos}0.{n}"] = f"pos_pre_norm.{n}"
            pos += "1."
        for j in range(cfg.conv_pos_depth):
            m[f"{pos}{j + 1}.0.{n}"] = f"pos_convs.{j}.{n}"
        if cfg.norm_affine:
            m[f"{AUDIO}context_encoder.norm.{n}"] = f"context_norm.{n}"
    if cfg.num_extra_tokens:
        m[AUDIO + "extra_tokens"] = "extra_tokens"
    if cfg.use_alibi:
        m[AUDIO + "alibi_scale"] = "alibi_scale"
    for i in range(cfg.num_layers):
        src = (f"{AUDIO}context_encoder.blocks.{i}." if i < cfg.prenet_depth else
               f"blocks.{i - cfg.prenet_depth}.")
        for part, ours in _BLOCK_PARTS.items():
            for n in ("weight", "bias"):
                if part.startswith("norm") and not cfg.norm_affine:
                    continue
                m[f"{src}{part}.{n}"] = f"blocks.{i}.{ours}.{n}"
    return m


def _listing(keys: list[str], n: int = 8) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def map_state_dict(state: Mapping[str, torch.Tensor], cfg: D2v2Config,
                   where: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our state dict from a fairseq-named one, and the pre-training keys left out.

    Raises :class:`CheckpointFormatError` naming missing keys (the network needs them, the
    file lacks them) and unexpected keys (the file has them, nothing uses them).
    """
    mapping = key_map(cfg)
    missing = sorted(k for k in mapping if k not in state)
    ignored = sorted(k for k in state if k not in mapping and k.startswith(IGNORED_PREFIXES))
    unexpected = sorted(k for k in state if k not in mapping and not k.startswith(IGNORED_PREFIXES))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        raise CheckpointFormatError(f"{where}: does not fit the data2vec 2.0 encoder it "
                                    f"describes; " + "; ".join(parts))
    out = {}
    for src, ours in mapping.items():
        t = state[src]
        if ours == "alibi_scale":  # (L, 1, H, 1, 1), or (1, H, 1, 1) in early checkpoints
            t = t.reshape(cfg.alibi_scale_shape)
        out[ours] = t.float()
    return out, ignored


def load_into(model: Data2Vec2Encoder, tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Strict load with a readable error for shape mismatches."""
    own = model.state_dict()
    bad = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
           if k in tensors and tensors[k].shape != v.shape]
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if bad or missing or unexpected:
        parts = ([f"wrong shapes: {_listing(bad)}"] if bad else []) + (
            [f"missing keys: {_listing(missing)}"] if missing else []) + (
            [f"unexpected keys: {_listing(unexpected)}"] if unexpected else [])
        raise CheckpointFormatError(f"{where}: " + "; ".join(parts))
    model.load_state_dict(tensors, strict=True)


# -- entry points --------------------------------------------------------------------------------
def is_converted(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and (
        path / "model.safetensors").is_file()


def load_encoder(path: Path, preset: D2v2Config) -> tuple[Data2Vec2Encoder, list[str]]:
    """Build the encoder from a released checkpoint file or a converted folder.

    Returns the encoder (eval mode) and the checkpoint keys left out as pre-training-only.
    """
    path = Path(path)
    if is_converted(path):
        return _load_converted(path), []
    tensors, model_cfg, task_cfg = split_checkpoint(read_pickle(path), path)
    cfg = infer_config(tensors, model_cfg, task_cfg, preset, str(path))
    ours, ignored = map_state_dict(tensors, cfg, str(path))
    model = Data2Vec2Encoder(cfg)
    load_into(model, ours, str(path))
    return model.eval(), ignored


def _load_converted(path: Path) -> Data2Vec2Encoder:
    from safetensors.torch import load_file

    try:
        meta = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"{path / 'config.json'}: unreadable ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path / 'config.json'}: not an emobox data2vec 2.0 conversion (format "
            f"{meta.get('format')!r} version {meta.get('format_version')!r}; expected {FORMAT!r} "
            f"version {FORMAT_VERSION})")
    cfg = D2v2Config.from_dict(meta["config"])
    model = Data2Vec2Encoder(cfg)
    load_into(model, load_file(str(path / "model.safetensors")), str(path))
    return model.eval()


def convert_checkpoint(src: str | Path, dst: str | Path,
                       preset: D2v2Config | None = None) -> Path:
    """Write ``dst/config.json`` + ``dst/model.safetensors`` from a released checkpoint."""
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    model, ignored = load_encoder(src, preset or D2v2Config())
    dst.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(dst / "model.safetensors"))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
            "source": src.name, "ignored_keys": len(ignored)}
    (dst / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    return dst


def main(argv: list[str] | None = None) -> int:
    """``python -m emobox.upstreams.data2vec2.ckpt SRC DST``: convert a released checkpoint."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m emobox.upstreams.data2vec2.ckpt",
        description="Convert a data2vec 2.0 / emotion2vec checkpoint (fairseq or FunASR .pt) "
                    "into a folder of encoder weights (config.json + model.safetensors).")
    parser.add_argument("src", help="the released .pt file")
    parser.add_argument("dst", help="output folder, e.g. $EMOBOX_MODELS/data2vec2_large")
    args = parser.parse_args(argv)
    try:
        dst = convert_checkpoint(args.src, args.dst)
    except EmoboxUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = D2v2Config.from_dict(json.loads((dst / "config.json").read_text())["config"])
    print(f"wrote {dst}: {cfg.num_layers} blocks of {cfg.embed_dim}, "
          f"{cfg.num_extra_tokens} extra tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
