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
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from emobox.errors import EmoboxError

from .net import D2v2Config, Data2Vec2Encoder
from ..checkpoint_guard import (MAX_CONV_LAYERS, MAX_KERNEL, MAX_LAYERS, MAX_POSITIONS,
                                MAX_WIDTH, CheckpointDataError, loading, read_json_object)
from ..safe_load import CheckpointFormatError, plain, read_pickle

FORMAT = "emobox.data2vec2"
CONVERTED_FILES = ("config.json", "model.safetensors")  # what convert_checkpoint writes
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
    odd = next((k for k in tensors if not isinstance(k, str)), None)
    if odd is not None:
        raise CheckpointDataError(f"{path}: the state dict names a tensor {odd!r:.40}; weight "
                                  f"names must be strings", path=str(path))
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
MAX_SPEC_CHARS = 2000


def parse_conv_spec(spec: str, where: str = "") -> tuple[tuple[int, int, int], ...]:
    """fairseq's ``feature_encoder_spec`` ("[(512, 10, 5)] + [(512, 3, 2)] * 4 ...") evaluated
    without ``eval``: lists and tuples of integers joined by ``+`` and repeated by ``*``.
    Bounded before anything is expanded: at most 64 layers of (channels 1..65536, kernel
    1..1024, stride 1..1024); ``where`` names the checkpoint in errors."""
    prefix = f"{where}: " if where else ""

    def fail(why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{prefix}cannot read feature_encoder_spec "
                                     f"{str(spec)[:80]!r} ({why})")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Mult):
                seq, n = (left, right) if isinstance(left, (list, tuple)) else (right, left)
                if isinstance(seq, (list, tuple)) and isinstance(n, int):
                    if len(seq) * max(n, 0) > MAX_CONV_LAYERS:
                        raise fail(f"more than {MAX_CONV_LAYERS} layers")
                elif isinstance(left, int) and isinstance(right, int):
                    if abs(left * right) > MAX_CONV_LAYERS * MAX_WIDTH:
                        raise fail("a number out of range")
                return left * right
            result = left + right
            if isinstance(result, (list, tuple)) and len(result) > MAX_CONV_LAYERS:
                raise fail(f"more than {MAX_CONV_LAYERS} layers")
            return result
        raise fail(f"unsupported element {ast.dump(node)[:40]}")

    if not isinstance(spec, str) or len(spec) > MAX_SPEC_CHARS:
        raise fail(f"expected a text of at most {MAX_SPEC_CHARS} characters")
    try:
        layers = ev(ast.parse(spec, mode="eval"))
        if not isinstance(layers, (list, tuple)) or len(layers) > MAX_CONV_LAYERS:
            raise fail(f"expected a list of at most {MAX_CONV_LAYERS} layers")
        out = tuple((d, k, s) for d, k, s in layers)
    except CheckpointFormatError:
        raise
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise fail(str(exc) or type(exc).__name__) from None
    for layer in out:
        d, k, s = layer
        if not all(type(v) is int for v in layer) or not (
                1 <= d <= MAX_WIDTH and 1 <= k <= MAX_KERNEL and 1 <= s <= MAX_KERNEL):
            raise fail(f"layer {layer!r:.40} is not (channels 1..{MAX_WIDTH}, kernel "
                       f"1..{MAX_KERNEL}, stride 1..{MAX_KERNEL})")
    if not out:
        raise fail("no layers")
    return out


def _mapping(value: Any, what: str, where: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CheckpointDataError(f"{where}: {what} must be a mapping, found "
                                  f"{type(value).__name__}", path=where)
    return value


def _weight(state: Mapping[str, torch.Tensor], key: str, ndim: int | tuple[int, ...],
            where: str) -> torch.Tensor | None:
    """``state[key]`` (None when absent), checked to have ``ndim`` dimensions."""
    t = state.get(key)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if t is not None and t.dim() not in allowed:
        raise CheckpointDataError(f"{where}: {key} has shape {tuple(t.shape)}; expected "
                                  f"{' or '.join(map(str, allowed))} dimensions", path=where)
    return t


def check_config(cfg: D2v2Config, where: str, stored_bytes: int) -> D2v2Config:
    """``cfg``'s values checked for type and range before the network is built (caps: widths
    up to 65536, at most 1024 blocks, kernels up to 1024, at most 100000 extra tokens), and
    its parameters against the weights stored (2 bytes each at least)."""
    def fail(message: str) -> CheckpointDataError:
        return CheckpointDataError(f"{where}: {message}", path=where)

    def whole(name: str, value: Any, low: int, high: int) -> int:
        if type(value) is not int or not low <= value <= high:
            raise fail(f"{name} is {value!r:.40}; it must be a whole number between {low} "
                       f"and {high}")
        return value

    conv = cfg.conv_layers
    if not isinstance(conv, tuple) or not 1 <= len(conv) <= MAX_CONV_LAYERS:
        raise fail(f"conv_layers must hold 1 to {MAX_CONV_LAYERS} layers")
    for layer in conv:
        if not isinstance(layer, tuple) or len(layer) != 3:
            raise fail(f"conv_layers holds {layer!r:.40}, not (channels, kernel, stride)")
        whole("a CNN layer's channels", layer[0], 1, MAX_WIDTH)
        whole("a CNN layer's kernel", layer[1], 1, MAX_KERNEL)
        whole("a CNN layer's stride", layer[2], 1, MAX_KERNEL)
    if cfg.extractor_mode not in ("layer_norm", "default"):
        raise fail(f"extractor_mode is {cfg.extractor_mode!r:.40}, not 'layer_norm' or "
                   f"'default'")
    D = whole("embed_dim", cfg.embed_dim, 1, MAX_WIDTH)
    heads = whole("num_heads", cfg.num_heads, 1, D)
    if D % heads:
        raise fail(f"num_heads {heads} does not divide the width {D}")
    whole("depth", cfg.depth, 0, MAX_LAYERS)
    whole("prenet_depth", cfg.prenet_depth, 0, MAX_LAYERS)
    if cfg.num_layers < 1:
        raise fail("the model has no transformer blocks")
    mlp = whole("mlp_dim", cfg.mlp_dim, 1, MAX_WIDTH)
    eps = cfg.norm_eps
    if type(eps) is not float or not math.isfinite(eps) or not 0 < eps <= 1:
        raise fail(f"norm_eps is {eps!r:.40}; it must be a finite number above 0 and at most 1")
    whole("conv_pos_depth", cfg.conv_pos_depth, 0, MAX_LAYERS)
    whole("conv_pos_kernel", cfg.conv_pos_kernel, 1, MAX_KERNEL)
    groups = whole("conv_pos_groups", cfg.conv_pos_groups, 1, D)
    if D % groups:
        raise fail(f"conv_pos_groups {groups} does not divide the width {D}")
    whole("num_extra_tokens", cfg.num_extra_tokens, 0, MAX_POSITIONS)
    for name in ("conv_bias", "norm_affine", "conv_pos_pre_ln", "use_alibi", "normalize"):
        if type(getattr(cfg, name)) is not bool:
            raise fail(f"{name} must be true or false, not {getattr(cfg, name)!r:.40}")
    shape = cfg.alibi_scale_shape
    if (not isinstance(shape, tuple) or len(shape) != 2 or shape[0] not in (1, cfg.num_layers)
            or shape[1] not in (1, heads)):
        raise fail(f"alibi_scale_shape {shape!r:.40} is not (1 or {cfg.num_layers}, 1 or "
                   f"{heads})")
    params = cfg.num_layers * (4 * D * D + 2 * D * mlp) + cfg.num_extra_tokens * D
    params += cfg.conv_pos_depth * D * (D // groups) * cfg.conv_pos_kernel
    c_in = 1
    for dim, kernel, _ in conv:
        params += c_in * dim * kernel
        c_in = dim
    if 2 * params > stored_bytes:
        raise fail(f"describes at least {params:,} parameters, but the file holds "
                   f"{stored_bytes:,} bytes of weights")
    return cfg


def _indices(state: Mapping[str, Any], prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pat.match(k))})


def infer_config(state: Mapping[str, torch.Tensor], model_cfg: Mapping, task_cfg: Mapping,
                 preset: D2v2Config, where: str) -> D2v2Config:
    """The architecture of a fairseq-named state dict (shapes first, then cfg, then preset)."""
    model_cfg = _mapping(model_cfg, "cfg.model", where)
    task_cfg = _mapping(task_cfg, "cfg.task", where)
    modalities = _mapping(model_cfg.get("modalities"), "cfg.model.modalities", where)
    audio = _mapping(modalities.get("audio"), "cfg.model.modalities.audio", where)
    if model_cfg.get("layer_norm_first"):
        raise CheckpointFormatError(f"{where}: pre-norm (layer_norm_first) data2vec 2.0 models "
                                    f"are not supported")
    if AUDIO + "alibi_bias" in state:
        raise CheckpointFormatError(f"{where}: learned ALiBi tables are not supported")
    proj = _weight(state, AUDIO + "project_features.2.weight", 2, where)
    if proj is None:
        raise CheckpointFormatError(
            f"{where}: not a data2vec 2.0 audio checkpoint (no '{AUDIO}project_features.2.weight'"
            f"; first keys: {', '.join(list(state)[:5])})")
    D = int(proj.shape[0])
    conv_idx = _indices(state, AUDIO + "local_encoder.conv_layers.")
    conv_w = [_weight(state, f"{AUDIO}local_encoder.conv_layers.{i}.0.weight", 3, where)
              for i in conv_idx]
    if any(w is None for w in conv_w):
        raise CheckpointDataError(f"{where}: CNN layer weights are missing "
                                  f"({AUDIO}local_encoder.conv_layers.N.0.weight)", path=where)
    kernels = [int(w.shape[2]) for w in conv_w]
    dims = [int(w.shape[0]) for w in conv_w]
    spec = audio.get("feature_encoder_spec")
    conv_layers = parse_conv_spec(spec, where) if spec else preset.conv_layers
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
    pos_w = _weight(state, f"{pos_prefix}{pos_idx[0]}.0.weight", 3, where) if pos_idx else None
    if pos_w is not None and not 1 <= int(pos_w.shape[1]) <= D:
        raise CheckpointDataError(f"{where}: positional convolution weight of shape "
                                  f"{tuple(pos_w.shape)} does not fit the width {D}", path=where)
    scale = _weight(state, AUDIO + "alibi_scale", (4, 5), where)
    heads = model_cfg.get("num_heads") or (int(scale.shape[-3]) if scale is not None and
                                           scale.shape[-3] > 1 else preset.num_heads)
    extra = _weight(state, AUDIO + "extra_tokens", 3, where)
    fc1 = _weight(state, "blocks.0.mlp.fc1.weight", 2, where)
    normalize = task_cfg.get("normalize") if task_cfg else None
    eps = model_cfg.get("norm_eps") or preset.norm_eps
    if isinstance(eps, int) and not isinstance(eps, bool):
        eps = float(eps)
    return D2v2Config(
        conv_layers=conv_layers, extractor_mode=mode,
        conv_bias=f"{AUDIO}local_encoder.conv_layers.0.0.bias" in state,
        embed_dim=D, num_heads=heads,
        depth=len(_indices(state, "blocks.")),
        prenet_depth=len(_indices(state, AUDIO + "context_encoder.blocks.")),
        mlp_dim=int(fc1.shape[0]) if fc1 is not None else preset.mlp_dim,
        norm_eps=eps,
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
    with loading(path, "data2vec 2.0"):
        if is_converted(path):
            return _load_converted(path), []
        tensors, model_cfg, task_cfg = split_checkpoint(read_pickle(path), path)
        cfg = infer_config(tensors, model_cfg, task_cfg, preset, str(path))
        ours, ignored = map_state_dict(tensors, cfg, str(path))
        check_config(cfg, str(path), sum(t.numel() * t.element_size() for t in ours.values()))
        model = Data2Vec2Encoder(cfg)
        load_into(model, ours, str(path))
    return model.eval(), ignored


def _load_converted(path: Path) -> Data2Vec2Encoder:
    from safetensors.torch import load_file

    meta = read_json_object(path / "config.json")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path / 'config.json'}: not an emobox data2vec 2.0 conversion (format "
            f"{meta.get('format')!r} version {meta.get('format_version')!r}; expected {FORMAT!r} "
            f"version {FORMAT_VERSION})")
    where = str(path / "config.json")
    try:
        cfg = D2v2Config.from_dict(_mapping(meta.get("config"), "config", where))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointDataError(f"{where}: 'config' is not a data2vec 2.0 architecture "
                                  f"({type(exc).__name__}: {exc})", path=where) from None
    check_config(cfg, where, (path / "model.safetensors").stat().st_size)
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
    except EmoboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    cfg = D2v2Config.from_dict(json.loads((dst / "config.json").read_text())["config"])
    print(f"wrote {dst}: {cfg.num_layers} blocks of {cfg.embed_dim}, "
          f"{cfg.num_extra_tokens} extra tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
