"""Reading ``torch.save`` checkpoints without running pickled code.

``torch.load(weights_only=True)`` reads plain checkpoints (tensors in dicts and lists). Training
checkpoints (fairseq's, for one) also pickle numpy scalars and objects of their own classes; for
those, an unpickler rebuilds tensors, numpy scalars and plain containers and turns every other
object into an inert placeholder, so nothing a file names is imported or called.
"""

from __future__ import annotations

import io
import pickle
import re
import types
from pathlib import Path
from typing import Any, Mapping

import torch

from emobox.errors import EmoboxUsageError


class CheckpointFormatError(EmoboxUsageError):
    """A checkpoint file that is not (or not entirely) the expected model."""


class _Opaque:
    """Stands in for any pickled object that is not a tensor or a plain container."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # pickled functions applied by REDUCE
        return _Opaque(*args)


def _opaque_class(module: str, name: str) -> type:
    return type(name, (_Opaque,), {"__module__": "emobox.opaque." + module})


_TORCH_REBUILD = re.compile(r"_rebuild_[a-z0-9_]+$")
_SAFE_BUILTINS = {"set", "frozenset", "slice", "complex", "bytearray", "range", "bytes"}
_NUMPY_GLOBALS = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "scalar"),
                  ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct")}


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "collections" and name in ("OrderedDict", "defaultdict"):
            return super().find_class(module, name)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        if module == "_codecs" and name == "encode":
            return super().find_class(module, name)
        if (module, name) in _NUMPY_GLOBALS or module == "numpy.dtypes":
            return super().find_class(module, name)
        if module in ("torch._utils", "torch._tensor") and _TORCH_REBUILD.match(name):
            return super().find_class(module, name)
        if module == "torch" and (name.endswith("Storage") or name in ("Size", "device")):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) in (("torch.storage", "TypedStorage"), ("torch.storage", "UntypedStorage"),
                              ("torch.nn.parameter", "Parameter")):
            return super().find_class(module, name)
        return _opaque_class(module, name)


_inert_pickle = types.ModuleType("emobox_inert_pickle")
_inert_pickle.Unpickler = _InertUnpickler
_inert_pickle.load = lambda f, **kw: _InertUnpickler(f, **kw).load()
_inert_pickle.loads = lambda b, **kw: _InertUnpickler(io.BytesIO(b), **kw).load()
_inert_pickle.__name__ = "emobox_inert_pickle"


def read_pickle(path: Path) -> Any:
    """``torch.load`` of ``path`` on the CPU without running any pickled code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # training state (numpy scalars, fairseq objects): rebuild it inertly below
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=_inert_pickle)
    except Exception as exc:  # a corrupt or foreign file: say which and why
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None


def plain(obj: Any) -> Any:
    """Config objects as plain dicts/lists (opaque objects dropped)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, _Opaque):
        state = getattr(obj, "state", None)
        if isinstance(state, Mapping):  # an argparse Namespace, an omegaconf node
            if "_content" in state:
                return plain(state["_content"])
            if "_val" in state:
                return plain(state["_val"])
            return plain(state)
        return None
    return obj
