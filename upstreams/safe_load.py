"""Reading ``torch.save`` checkpoints without running pickled code.

Every checkpoint is read by torch's ``weights_only`` unpickler, which builds tensors and plain
containers and refuses every other global. Training checkpoints (fairseq's, FunASR's) also
pickle numpy scalars and their configuration (an ``argparse.Namespace`` or an omegaconf
``DictConfig``); for those, an explicit list of fully qualified names is admitted
(:data:`ALLOWED_GLOBALS`): numpy's scalar and array reconstruction (arrays of numbers only,
each filled from the bytes the file holds: :class:`CheckpointArray`), and inert stand-ins of
this module for the configuration classes, so that no class or function the file names is
imported or called. Any other global is an error naming it. The list has no module
wildcards, and the unpickler resolves names by exact match only (never by attribute path).
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from emobox.errors import EmoboxUsageError


class CheckpointFormatError(EmoboxUsageError):
    """A checkpoint file that is not (or not entirely) the expected model."""


class _Record:
    """Stands in for a pickled configuration object: keeps its constructor arguments and state,
    runs nothing."""

    def __new__(cls, *args, **kwargs):
        inst = super().__new__(cls)
        inst.args = args
        inst.state = None
        return inst

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


class _TypeName(_Record):
    """Stands in for a type that a config names as a value (``typing.Any``, ``builtins.dict``)."""


def _record_class(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")
    return type(name, (_Record,), {"__module__": "emobox.checkpoint_record." + module})


def _plain_dict(*_args) -> dict:
    """``collections.defaultdict(factory)`` rebuilt as a plain dict (the factory is not kept)."""
    return {}


_multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray
_scalar = _multiarray.scalar


class CheckpointArray(np.ndarray):
    """A numpy array read from a checkpoint (what the name ``numpy.ndarray`` stands for there).
    It is created empty, whatever shape is asked for, and filled by its pickled state, which
    must carry the array's bytes: object arrays and a shape whose bytes the file does not hold
    are refused before anything is allocated."""

    def __new__(cls, *args, **kwargs):
        return np.ndarray.__new__(cls, (0,), np.uint8)

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("a numpy array with an unreadable state")
        shape, dtype, data = state[-4], state[-3], state[-1]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError(f"a numpy array of dtype {dtype!r:.40} (only arrays of "
                                         f"numbers are read)")
        if (not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape)
                or not isinstance(data, (bytes, bytearray))):
            raise pickle.UnpicklingError("a numpy array without its data")
        count = 1
        for n in shape:
            count *= n
        if count * dtype.itemsize != len(data):
            raise pickle.UnpicklingError(f"a numpy array of shape {shape!r:.60} whose data holds "
                                         f"{len(data)} bytes")
        super().__setstate__(state)


def _reconstruct(subtype, shape, dtype) -> CheckpointArray:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``, the first step of unpickling an array
    (numpy always pickles those arguments): an empty :class:`CheckpointArray`."""
    if subtype is not CheckpointArray or shape != (0,):
        raise pickle.UnpicklingError("a numpy array built other than numpy pickles arrays")
    return CheckpointArray((0,))

# numpy >= 1.25 builds a dtype as an instance of its class in numpy.dtypes: numbers and bools
_NUMERIC_DTYPES = ("BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType",
                   "UInt8DType", "UInt16DType", "UInt32DType", "UInt64DType", "Float16DType",
                   "Float32DType", "Float64DType", "LongDType", "ULongDType", "LongLongDType",
                   "ULongLongDType", "ByteDType", "UByteDType", "ShortDType", "UShortDType",
                   "IntDType", "UIntDType")
_NUMERIC_DTYPES = tuple(n for n in _NUMERIC_DTYPES if hasattr(getattr(np, "dtypes", None), n))
# configuration classes of fairseq (argparse) and fairseq/FunASR/hydra (omegaconf) checkpoints
_CONFIG_CLASSES = (
    "argparse.Namespace",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
)
# types an omegaconf node records as its ref/object/key/element type: names, never called
_TYPE_VALUES = ("typing.Any", "builtins.dict", "builtins.list", "builtins.int", "builtins.float",
                "builtins.str", "builtins.bool")

ALLOWED_GLOBALS: tuple[tuple[Any, str], ...] = (
    (_scalar, "numpy.core.multiarray.scalar"),
    (_scalar, "numpy._core.multiarray.scalar"),
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (CheckpointArray, "numpy.ndarray"),
    (np.dtype, "numpy.dtype"),
    *((getattr(np.dtypes, name), f"numpy.dtypes.{name}") for name in _NUMERIC_DTYPES),
    (_plain_dict, "collections.defaultdict"),
    *((_record_class(name), name) for name in _CONFIG_CLASSES),
    *((_TypeName(name), name) for name in _TYPE_VALUES),
)

_UNSUPPORTED = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+) ")


def read_pickle(path: Path, *, mmap: bool = False) -> Any:
    """``torch.load`` of ``path`` on the CPU with torch's ``weights_only`` unpickler and
    :data:`ALLOWED_GLOBALS`; anything else in the file is a :class:`CheckpointFormatError`."""
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on pickle protocols
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = _UNSUPPORTED.search(text)
        if found:
            name = found.group(1) if "." in found.group(1) else "builtins." + found.group(1)
            raise CheckpointFormatError(
                f"{path}: refers to {name}, which is not loaded from a checkpoint "
                f"(only tensors, numpy scalars and arrays, and argparse/omegaconf configurations "
                f"are read; nothing in the file is run)") from None
        raise CheckpointFormatError(
            f"{path}: not a readable PyTorch checkpoint ({_reason(text, exc)})") from None
    except MemoryError:
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint (it describes "
                                    f"more data than fits in memory)") from None
    except Exception as exc:  # a corrupt or foreign file: say which and why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointFormatError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


_MAX_DEPTH = 64


def _reason(text: str, exc: BaseException) -> str:
    """The line of torch's message that says what was refused."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else type(exc).__name__)
    for line in lines:  # torch's advice (weights_only=False, add_safe_globals) is left out
        if "weights_only" not in line and "safe_globals" not in line:
            return line
    return type(exc).__name__


def plain(obj: Any, _depth: int = 0) -> Any:
    """Config objects as plain dicts/lists (other stand-ins dropped; nesting deeper than
    64 levels, or a cycle, ends in None)."""
    if _depth > _MAX_DEPTH:
        return None
    if isinstance(obj, Mapping):
        return {str(k): plain(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, _depth + 1) for v in obj]
    if isinstance(obj, _TypeName):
        return None
    if isinstance(obj, _Record):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], Mapping):
            state = state[0]  # (dict state, slot state)
        if isinstance(state, Mapping):  # an argparse Namespace, an omegaconf node
            if "_content" in state:
                return plain(state["_content"], _depth + 1)
            if "_val" in state:
                return plain(state["_val"], _depth + 1)
            return plain(state, _depth + 1)
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
