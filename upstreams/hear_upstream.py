"""Any HEAR module (Holistic Evaluation of Audio Representations, 2021 API) as an upstream.

``emobox run -u hear -U module=hearbaseline.naive [-U model_file=PATH] -c demo``

A HEAR module is an installed Python module with ``load_model(model_file_path)`` and
``get_timestamp_embeddings(audio, model) -> (embeddings [B, T, D], timestamps [B, T] in ms)``; the
model ``load_model`` returns has the attributes ``sample_rate`` and ``timestamp_embedding_size``
(read from the module where the model lacks them). emobox feeds it audio at the
module's ``sample_rate`` (the extraction engine resamples), reads the frame rate from the
timestamps it returns, and keys the feature store by the module's name and the model file's
content hash. HEAR modules pad a batch to its longest item, which can change an item's last
frames, so every HEAR upstream is padding-sensitive: items of unequal length are never batched.
"""

from __future__ import annotations

import hashlib
import importlib
import numbers
import re
from pathlib import Path

from emobox import EmoboxUsageError
from emobox.extraction.checkpoints import checkpoint_id as hash_checkpoint
from emobox.extraction.upstream import Upstream, UpstreamOutput, pad_batch

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_REQUIRED = ("load_model", "get_timestamp_embeddings")
_MODEL_ATTRIBUTES = ("sample_rate", "timestamp_embedding_size")


def load_hear_module(name: str):
    """Import the HEAR module ``name`` and check that it has the HEAR API."""
    if not name:
        raise EmoboxUsageError("-u hear needs the module to load: -U module=NAME "
                               "(e.g. -U module=hearbaseline.naive)")
    if not _MODULE_NAME.match(name):
        raise EmoboxUsageError(f"-U module={name!r} is not a Python module name")
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise EmoboxUsageError(f"HEAR module {name!r} is not installed ({exc}); "
                               f"pip install the package that provides it") from exc
    missing = [a for a in _REQUIRED if not hasattr(module, a)]
    if missing:
        raise EmoboxUsageError(f"{name!r} is not a HEAR module: it lacks {', '.join(missing)}")
    return module


class HearUpstream(Upstream):
    """Frames of a HEAR module's ``get_timestamp_embeddings`` (one output, ``num_layers`` = 0)."""

    padding_sensitive = True
    lowp_weight_cache = False

    def __init__(self, module_name: str, model_file: str | None = None) -> None:
        import torch

        super().__init__()
        self.module = load_hear_module(module_name)
        if model_file:
            path = Path(model_file)
            if not path.exists():
                raise EmoboxUsageError(f"{model_file}: HEAR model file not found")
            self.model = self.module.load_model(str(path))
            weights = hash_checkpoint(path) if path.is_file() else _tree_hash(path)
        else:
            self.model = self.module.load_model()
            weights = "none"
        if hasattr(self.model, "eval"):
            self.model.eval()
        attributes = {}
        for attr in _MODEL_ATTRIBUTES:
            value = getattr(self.model, attr, getattr(self.module, attr, None))
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0 \
                    or value != int(value):
                raise EmoboxUsageError(
                    f"{module_name!r} is not a HEAR module: its model has no {attr} "
                    f"(a positive integer; got {value!r})")
            attributes[attr] = int(value)
        self.name = "hear"
        self.sample_rate = attributes["sample_rate"]
        self.hidden_size = attributes["timestamp_embedding_size"]
        self.num_layers = 0
        self.checkpoint_id = hashlib.sha256(f"{module_name}\0{weights}".encode()).hexdigest()[:16]
        self.store_options = {"module": module_name}
        self.provenance = {"hear_module": module_name, "hear_model_file": str(model_file or "")}
        # the frame rate is what the module's timestamps say (two seconds of silence)
        probe = torch.zeros(1, 2 * self.sample_rate)
        with torch.no_grad():
            emb, ts = self.module.get_timestamp_embeddings(probe, self.model)
        if emb.ndim != 3 or emb.shape[-1] != self.hidden_size:
            raise EmoboxUsageError(
                f"HEAR module {module_name!r} returned embeddings of shape {tuple(emb.shape)}; "
                f"expected [1, T, {self.hidden_size}] (its timestamp_embedding_size)")
        ts = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
        if ts.numel() < 2 or not bool((ts[1:] > ts[:-1]).all()):
            raise EmoboxUsageError(f"HEAR module {module_name!r} returned timestamps that do not "
                                   f"increase; the frame rate cannot be read from them")
        self.hop_ms = float((ts[1:] - ts[:-1]).median())
        self.frame_rate = 1000.0 / self.hop_ms

    def frames_for(self, num_samples: int) -> int:
        return max(1, int(num_samples * self.frame_rate / self.sample_rate))

    def forward(self, wavs, layers):
        import torch

        batch, sizes = pad_batch([w.float().cpu() for w in wavs])
        lengths = sizes.tolist()
        with torch.no_grad():
            emb, ts = self.module.get_timestamp_embeddings(batch, self.model)
        emb = torch.as_tensor(emb).float()
        ts = torch.as_tensor(ts, dtype=torch.float64).reshape(len(wavs), -1)
        valid = []
        for i, n in enumerate(lengths):
            # frames whose centre lies inside the item's own audio
            end_ms = 1000.0 * n / self.sample_rate
            valid.append(max(1, int((ts[i] <= end_ms + 1e-6).sum())))
        hidden = {layer: emb for layer in self.resolve_layers(layers)}
        return UpstreamOutput(hidden=hidden, lengths=torch.tensor(valid, dtype=torch.int64))


def _tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        digest.update(str(p.relative_to(path)).encode() + b"\0")
        digest.update(hash_checkpoint(p).encode())
    return digest.hexdigest()[:16]
