"""Every registered emobox upstream as a HEAR 2021 module.

``emobox.hear.<name>`` (e.g. ``emobox.hear.fbank``, ``emobox.hear.whisper_tiny_en``) is a module
with the HEAR API, generated when it is imported::

    import emobox.hear.fbank as hear
    model = hear.load_model()                      # or load_model("path/to/checkpoint")
    emb, ts = hear.get_timestamp_embeddings(audio, model)   # audio [n_sounds, n_samples]
    scene = hear.get_scene_embeddings(audio, model)

Timestamp embeddings are the upstream's last layer (``-u NAME`` with the default layer), one per
frame; timestamps are the frame centres in milliseconds, ``(i + 0.5) * 1000 / frame_rate``. The
scene embedding is the mean of the last layer over the frames of the sound. ``model_file_path``
is what ``--upstream-ckpt`` would be (empty: where ``emobox run`` looks).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import torch

from emobox.errors import EmoboxUsageError
from emobox.plugin.registry import get_registry

__all__ = ["hear_module"]


class HearModel(torch.nn.Module):
    """What ``load_model`` returns: a ``torch.nn.Module`` (as HEAR requires of PyTorch models)
    holding the upstream, with the attributes ``sample_rate``, ``timestamp_embedding_size`` and
    ``scene_embedding_size``."""

    def __init__(self, upstream) -> None:
        super().__init__()
        self.upstream = upstream.eval()
        self.sample_rate = int(upstream.sample_rate)
        self.timestamp_embedding_size = int(upstream.hidden_size)
        self.scene_embedding_size = int(upstream.hidden_size)
        self.layer = upstream.resolve_layers(None)[-1]

    def forward(self, audio):
        return _timestamp_embeddings(audio, self)


def _timestamp_embeddings(audio, model: HearModel):
    if not isinstance(model, HearModel):
        raise TypeError("model must come from this module's load_model()")
    audio = torch.as_tensor(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples], got shape {tuple(audio.shape)}")
    device = model.upstream.device
    wavs = [a.float().to(device) for a in audio]
    with torch.no_grad():
        out = model.upstream(wavs, [model.layer])
    emb = out.hidden[model.layer].float()
    hop = 1000.0 / float(model.upstream.frame_rate)
    t = (torch.arange(emb.shape[1], dtype=torch.float32, device=emb.device) + 0.5) * hop
    return emb, t.unsqueeze(0).expand(emb.shape[0], -1).contiguous()


def _scene_embeddings(audio, model: HearModel):
    emb, _ = _timestamp_embeddings(audio, model)
    return emb.mean(dim=1)


def hear_module(name: str) -> types.ModuleType:
    """A HEAR module for the registered upstream ``name``."""
    spec = get_registry().upstream(name)
    module = types.ModuleType(f"{__name__}.{name}", f"emobox upstream {name!r} as a HEAR module")

    def load_model(model_file_path: str = "", device: str = "cpu") -> HearModel:
        return HearModel(spec.load(ckpt=model_file_path or None, device=device))

    module.load_model = load_model
    module.get_timestamp_embeddings = _timestamp_embeddings
    module.get_scene_embeddings = _scene_embeddings
    module.__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        prefix = __name__ + "."
        if not fullname.startswith(prefix) or "." in fullname[len(prefix):]:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        name = spec.name.rsplit(".", 1)[1]
        try:
            return hear_module(name)
        except EmoboxUsageError as exc:
            raise ModuleNotFoundError(str(exc), name=spec.name) from None

    def exec_module(self, module):
        return None


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())
