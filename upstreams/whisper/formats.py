"""Whisper encoder weights from three formats, and the converter to a transformers folder.

Every reader returns ``(config, state)``: ``config`` the encoder's ``WhisperConfig`` keyword
arguments, ``state`` a float32 state dict with the names of transformers' ``WhisperEncoder``
(``conv1.weight``, ``layers.0.self_attn.q_proj.weight``, ..., ``layer_norm.bias``).

- transformers: a folder with ``config.json`` and ``model.safetensors`` (sharded or not) or
  ``pytorch_model.bin``, holding a ``WhisperForConditionalGeneration`` / ``WhisperModel`` /
  ``WhisperEncoder`` state dict; only the encoder's tensors are read.
- OpenAI: the ``.pt`` files of the ``openai-whisper`` package (``{"dims": ..., "model_state_dict":
  ...}``), loaded by :func:`emobox.upstreams.safe_load.read_pickle`: no OpenAI code runs.
- CTranslate2: a folder with ``model.bin`` (binary format version 6, as written by
  CTranslate2's converters, e.g. faster-whisper models) and ``config.json``. Float32, float16 and
  bfloat16 weights are read as they are; int8/int16 weights are dequantised with their scales.

The CTranslate2 ``model.bin`` layout (little endian): ``u32`` binary version, string spec name,
``u32`` spec revision, ``u32`` variable count, then per variable: string name, ``u8`` rank,
``u32`` x rank shape, ``u8`` dtype id (0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
5 bfloat16), ``u32`` byte count, raw bytes; then ``u32`` alias count and (alias, target) string
pairs. A string is a ``u16`` length (including a final NUL byte) and the UTF-8 bytes with the NUL.
The encoder's attention stores q, k and v fused in ``linear_0`` (rows in that order, with a zero
key bias, which transformers' Whisper has no parameter for: a key bias adds the same amount to
every score of a query and cancels in the softmax).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from emobox.errors import CheckpointNotFoundError, DataError

from ..checkpoint_guard import (MAX_LAYERS, MAX_POSITIONS, CheckpointDataError, int_field,
                               read_json_object, weight_files)
from ..safe_load import CheckpointFormatError, read_pickle

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
ENCODER_FIELDS = ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
                  "num_mel_bins", "max_source_positions")


def detect_format(path: Path) -> str:
    """``"transformers"``, ``"openai"`` or ``"ctranslate2"`` for a checkpoint path."""
    path = Path(path)
    if path.is_file():
        if path.name == "model.bin" and (path.parent / "config.json").exists():
            return "ctranslate2"
        if path.suffix in (".pt", ".pth"):
            return "openai"
        raise CheckpointNotFoundError(f"{path}: not a Whisper checkpoint (expected an OpenAI "
                                      f".pt file or a folder)")
    if (path / "model.bin").is_file() and not _is_transformers_config(path / "config.json"):
        return "ctranslate2"
    if (path / "config.json").is_file():
        return "transformers"
    raise CheckpointNotFoundError(f"{path}: not a Whisper checkpoint folder (no config.json)")


def _is_transformers_config(path: Path) -> bool:
    try:
        return "d_model" in read_json_object(path)
    except CheckpointDataError:
        return False


WINDOW_POSITIONS = 1500  # encoder positions of a 30-s window


def check_config(config: dict, where: Path | str, labels: dict | None = None) -> dict:
    """The encoder fields of ``config`` checked for type and range before anything is built
    from them (caps: widths and mel bins up to 65536, blocks up to 1024, positions from 1500,
    a 30-s window, up to 100000); one error naming ``where`` (and the field as ``labels``
    calls it in that file) otherwise."""
    labels = labels or {}

    def name(key: str) -> str:
        return labels.get(key, key)

    def field(key: str, **kw) -> int:
        return int_field(config, key, where, label=name(key), **kw)

    d = field("d_model")
    field("encoder_layers", high=MAX_LAYERS)
    heads = field("encoder_attention_heads", high=d)
    if d % heads:
        raise CheckpointDataError(f"{where}: {name('encoder_attention_heads')} {heads} does not "
                                  f"divide {name('d_model')} {d}", path=str(where))
    field("encoder_ffn_dim")
    field("num_mel_bins")
    field("max_source_positions", low=WINDOW_POSITIONS, high=MAX_POSITIONS)
    if d < 4 or d % 2:
        raise CheckpointDataError(f"{where}: {name('d_model')} {d} must be even and at least 4 "
                                  f"(the position table has sin and cos halves)", path=str(where))
    return config


def read_encoder(path: Path) -> tuple[dict, dict]:
    fmt = detect_format(path)
    reader = {"transformers": read_transformers, "openai": read_openai,
              "ctranslate2": read_ctranslate2_whisper}[fmt]
    return reader(Path(path))


# -- transformers ------------------------------------------------------------------------------

def read_transformers(folder: Path) -> tuple[dict, dict]:
    folder = Path(folder)
    cfg = read_json_object(folder / "config.json")
    if cfg.get("model_type") != "whisper":
        raise CheckpointNotFoundError(f"{folder}: model_type {cfg.get('model_type')!r:.40} is "
                                      f"not a Whisper checkpoint")
    config = check_config({k: cfg[k] for k in ENCODER_FIELDS if k in cfg},
                          folder / "config.json")
    state: dict[str, Any] = {}
    for file in _weight_files(folder):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as fh:
                for key in fh.keys():
                    name = _encoder_key(key)
                    if name is not None:
                        state[name] = fh.get_tensor(key).float()
        else:
            sd = _tensor_dict(read_pickle(file, mmap=True), file, "a state dict")
            for key, value in sd.items():
                name = _encoder_key(key)
                if name is not None:
                    state[name] = value.float()
    if not state:
        raise CheckpointNotFoundError(f"{folder}: no Whisper encoder weights found")
    return config, state


def _weight_files(folder: Path) -> list[Path]:
    files = weight_files(folder)
    if not files:
        raise CheckpointNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")
    return files


def _tensor_dict(value: Any, file: Path, what: str) -> dict:
    """``value`` checked to be a dict of str -> tensor (``what`` names it in the error)."""
    import torch

    if not isinstance(value, dict):
        raise CheckpointDataError(f"{file}: {what} must map weight names to tensors, found "
                                  f"{type(value).__name__}", path=str(file))
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointDataError(
                f"{file}: {what} must map weight names to tensors, found {key!r:.40} -> "
                f"{type(tensor).__name__}", path=str(file))
    return value


def _encoder_key(key: str) -> str | None:
    for prefix in ("model.encoder.", "encoder."):
        if key.startswith(prefix):
            return key[len(prefix):]
    if key.startswith(("model.", "decoder.", "proj_out")):
        return None
    return key  # a bare WhisperEncoder state dict


# -- OpenAI ----------------------------------------------------------------------------------

_OPENAI_BLOCK = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj",
                 "attn.value": "self_attn.v_proj", "attn.out": "self_attn.out_proj",
                 "attn_ln": "self_attn_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2",
                 "mlp_ln": "final_layer_norm"}


def read_openai(file: Path) -> tuple[dict, dict]:
    try:
        ckpt = read_pickle(file)
    except CheckpointFormatError as exc:
        raise CheckpointNotFoundError(f"{exc} (expected an OpenAI Whisper checkpoint)") from None
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise CheckpointNotFoundError(f"{file}: not an OpenAI Whisper checkpoint (expected "
                                      f"'dims' and 'model_state_dict')")
    dims = ckpt["dims"]
    sd = _tensor_dict(ckpt["model_state_dict"], file, "'model_state_dict'")
    if not isinstance(dims, dict):
        raise CheckpointDataError(f"{file}: 'dims' must be a dict of the model's sizes, found "
                                  f"{type(dims).__name__}", path=str(file))
    fields = {"d_model": "n_audio_state", "encoder_layers": "n_audio_layer",
              "encoder_attention_heads": "n_audio_head", "num_mel_bins": "n_mels",
              "max_source_positions": "n_audio_ctx"}
    for ours, theirs in fields.items():
        value = dims.get(theirs)
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointDataError(f"{file}: dims['{theirs}'] must be a whole number, not "
                                      f"{value!r:.40}", path=str(file))
    config = {ours: dims[theirs] for ours, theirs in fields.items()}
    d = config["d_model"]
    config["encoder_ffn_dim"] = 4 * d
    check_config(config, file,
                 labels={ours: f"dims['{theirs}']" for ours, theirs in fields.items()})
    state = {}
    for key, value in sd.items():
        if not key.startswith("encoder."):
            continue
        try:
            name = openai_to_transformers(key[len("encoder."):])
        except CheckpointNotFoundError as exc:
            raise CheckpointDataError(f"{file}: {exc}", path=str(file)) from None
        state[name] = value.float()
    if "embed_positions.weight" not in state:  # a buffer some exports leave out
        state["embed_positions.weight"] = sinusoids(config["max_source_positions"], d)
    return config, state


def openai_to_transformers(name: str) -> str:
    """``blocks.3.attn.query.weight`` -> ``layers.3.self_attn.q_proj.weight`` and so on."""
    if name == "positional_embedding":
        return "embed_positions.weight"
    if name.startswith("ln_post."):
        return "layer_norm." + name[len("ln_post."):]
    if name.startswith("blocks."):
        _, idx, rest = (name.split(".", 2) + ["", ""])[:3]
        for old, new in _OPENAI_BLOCK.items():
            if idx.isdigit() and rest.startswith(old + "."):
                return f"layers.{idx}.{new}.{rest[len(old) + 1:]}"
    if name.startswith(("conv1.", "conv2.")):
        return name
    raise CheckpointNotFoundError(f"unexpected OpenAI Whisper encoder weight {name!r:.80}")


def transformers_to_openai(name: str) -> str:
    """The inverse of :func:`openai_to_transformers`."""
    if name == "embed_positions.weight":
        return "positional_embedding"
    if name.startswith("layer_norm."):
        return "ln_post." + name[len("layer_norm."):]
    if name.startswith("layers."):
        _, idx, rest = name.split(".", 2)
        for old, new in _OPENAI_BLOCK.items():
            if rest.startswith(new + "."):
                return f"blocks.{idx}.{old}.{rest[len(new) + 1:]}"
    return name


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0):
    """Whisper's sinusoidal position table ``[length, channels]`` (sin half, then cos half)."""
    import torch

    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


# -- CTranslate2 -----------------------------------------------------------------------------

def read_ctranslate2(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin``: header ``{"version", "spec", "revision"}`` and
    ``{variable name: array}`` (aliases resolved; bfloat16 arrays come back as float32)."""
    path = Path(path)
    file = path / "model.bin" if path.is_dir() else path
    try:
        with open(file, "rb") as fh:
            return _read_ct2(fh, file)
    except OSError as exc:
        raise CheckpointNotFoundError(f"{file}: cannot read ({exc})") from None
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{file}: not a valid CTranslate2 model.bin ({exc})",
                        path=str(file)) from None


def _read_ct2(fh: BinaryIO, file: Path) -> tuple[dict, dict[str, np.ndarray]]:
    def unpack(fmt: str):
        size = struct.calcsize("<" + fmt)
        data = fh.read(size)
        if len(data) != size:
            raise ValueError("truncated file")
        return struct.unpack("<" + fmt, data)[0]

    def string() -> str:
        n = unpack("H")
        raw = fh.read(n)
        if len(raw) != n or not raw.endswith(b"\0"):
            raise ValueError("bad string")
        return raw[:-1].decode("utf-8")

    version = unpack("I")
    if version != 6:
        raise ValueError(f"binary version {version}; this reader handles version 6 (written by "
                         f"current CTranslate2 converters): convert the model again")
    header = {"version": version, "spec": string(), "revision": unpack("I")}
    variables: dict[str, np.ndarray] = {}
    for _ in range(unpack("I")):
        name = string()
        shape = tuple(unpack("I") for _ in range(unpack("B")))
        dtype_id = unpack("B")
        nbytes = unpack("I")
        raw = fh.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"truncated variable {name}")
        dtype = CT2_DTYPES.get(dtype_id)
        if dtype is None:
            raise ValueError(f"variable {name}: unknown dtype id {dtype_id}")
        if dtype == "bfloat16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32).reshape(shape)
        else:
            array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        variables[name] = array
    for _ in range(unpack("I")):
        alias, target = string(), string()
        if target not in variables:
            raise ValueError(f"alias {alias!r:.80} names no variable ({target!r:.80})")
        variables[alias] = variables[target]
    return header, variables


def _dequantize(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    value = variables[name]
    if value.dtype in (np.int8, np.int16):
        scale = variables.get(name + "_scale")
        if scale is None:
            raise ValueError(f"{name} is quantised but has no {name}_scale")
        scale = np.asarray(scale, dtype=np.float32)
        if scale.ndim == 1:
            scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
        return value.astype(np.float32) / scale
    return value.astype(np.float32)


def read_ctranslate2_whisper(folder: Path) -> tuple[dict, dict]:
    folder = Path(folder)
    folder = folder.parent if folder.is_file() else folder
    header, var = read_ctranslate2(folder)
    if header["spec"] != "WhisperSpec":
        raise CheckpointNotFoundError(f"{folder}: a CTranslate2 {header['spec']}, not a Whisper "
                                      f"model")
    try:
        config, state = _ct2_whisper_state(var)
    except (KeyError, ValueError, IndexError) as exc:
        raise DataError(f"{folder / 'model.bin'}: unexpected CTranslate2 Whisper layout ({exc})",
                        path=str(folder / "model.bin")) from None
    return check_config(config, folder / "model.bin"), state


def _ct2_whisper_state(var: dict[str, np.ndarray]) -> tuple[dict, dict]:
    import torch

    def t(name: str) -> "torch.Tensor":
        return torch.from_numpy(np.ascontiguousarray(_dequantize(var, name)))

    blocks = [re.match(r"encoder/layer_(\d+)/", k) for k in var]
    n_layers = 1 + max(int(m.group(1)) for m in blocks if m)
    conv1 = var["encoder/conv1/weight"]
    if conv1.ndim != 3:
        raise ValueError(f"encoder/conv1/weight has shape {tuple(conv1.shape)}, not "
                         f"(width, mel bins, kernel)")
    ffn = var["encoder/layer_0/ffn/linear_0/weight"]
    positions = var["encoder/position_encodings/encodings"]
    if ffn.ndim != 2 or positions.ndim != 2:
        raise ValueError("the feed-forward and position tables must be 2-D")
    d = int(conv1.shape[0])
    state = {"conv1.weight": t("encoder/conv1/weight"), "conv1.bias": t("encoder/conv1/bias"),
             "conv2.weight": t("encoder/conv2/weight"), "conv2.bias": t("encoder/conv2/bias"),
             "embed_positions.weight": t("encoder/position_encodings/encodings"),
             "layer_norm.weight": t("encoder/layer_norm/gamma"),
             "layer_norm.bias": t("encoder/layer_norm/beta")}
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = t(f"{src}/self_attention/linear_0/weight"), \
            t(f"{src}/self_attention/linear_0/bias")
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{dst}.self_attn.{proj}.weight"] = qkv_w[j * d:(j + 1) * d].clone()
            if proj != "k_proj":
                state[f"{dst}.self_attn.{proj}.bias"] = qkv_b[j * d:(j + 1) * d].clone()
        pairs = {"self_attn.out_proj": "self_attention/linear_1", "fc1": "ffn/linear_0",
                 "fc2": "ffn/linear_1"}
        for ours, theirs in pairs.items():
            state[f"{dst}.{ours}.weight"] = t(f"{src}/{theirs}/weight")
            state[f"{dst}.{ours}.bias"] = t(f"{src}/{theirs}/bias")
        for ours, theirs in {"self_attn_layer_norm": "self_attention/layer_norm",
                             "final_layer_norm": "ffn/layer_norm"}.items():
            state[f"{dst}.{ours}.weight"] = t(f"{src}/{theirs}/gamma")
            state[f"{dst}.{ours}.bias"] = t(f"{src}/{theirs}/beta")
    heads = int(np.asarray(var["encoder/num_heads"]).reshape(-1)[0])
    config = {"d_model": d, "encoder_layers": n_layers, "encoder_attention_heads": heads,
              "encoder_ffn_dim": int(var["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
              "num_mel_bins": int(conv1.shape[1]),
              "max_source_positions": int(var["encoder/position_encodings/encodings"].shape[0])}
    return config, state


# -- building and saving -----------------------------------------------------------------------

def whisper_config(config: dict):
    """A transformers ``WhisperConfig`` for an encoder (the decoder fields mirror the encoder;
    they are never used)."""
    from transformers import WhisperConfig

    return WhisperConfig(
        d_model=config["d_model"], encoder_layers=config["encoder_layers"],
        encoder_attention_heads=config["encoder_attention_heads"],
        encoder_ffn_dim=config["encoder_ffn_dim"], num_mel_bins=config["num_mel_bins"],
        max_source_positions=config["max_source_positions"],
        decoder_layers=config["encoder_layers"],
        decoder_attention_heads=config["encoder_attention_heads"],
        decoder_ffn_dim=config["encoder_ffn_dim"])


def build_encoder(config: dict, state: dict, where: Path | str = "checkpoint"):
    """A transformers ``WhisperEncoder`` holding ``state`` exactly (every weight required, each
    of the shape the architecture gives it); ``where`` names the checkpoint in errors."""
    import torch
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    check_config(config, where)
    cfg = whisper_config(config)
    with torch.device("meta"):
        encoder = WhisperEncoder(cfg)
    expected = set(encoder.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise CheckpointDataError(
            f"{where}: Whisper encoder weights do not fit the architecture: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected "
            f"(e.g. {[k[:60] for k in extra[:2]]})", path=str(where))
    own = encoder.state_dict()
    wrong = [f"{k} {tuple(state[k].shape)}, expected {tuple(v.shape)}" for k, v in own.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointDataError(f"{where}: {len(wrong)} Whisper encoder weight(s) of the wrong "
                                  f"shape (e.g. {wrong[0]})", path=str(where))
    encoder.load_state_dict(state, strict=True, assign=True)
    return encoder.eval()


def save_encoder(config: dict, state: dict, out: Path, note: dict | None = None) -> Path:
    """Write a transformers Whisper encoder folder (``config.json`` + ``model.safetensors`` with
    ``WhisperEncoder`` names), deterministically and atomically: the folder appears complete or
    not at all. ``transformers.WhisperEncoder.from_pretrained(out)`` loads it."""
    import os
    import shutil
    import tempfile

    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        cfg = whisper_config(config).to_dict()
        cfg.pop("transformers_version", None)
        cfg["architectures"] = ["WhisperEncoder"]
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        save_file({k: v.contiguous() for k, v in sorted(state.items())},
                  str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if note:
            (tmp / "conversion.json").write_text(json.dumps(note, indent=2, sort_keys=True)
                                                 + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
