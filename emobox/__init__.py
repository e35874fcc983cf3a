"""emobox: speech emotion recognition benchmarking, upstream x corpus x downstream.

The public surface for plugin authors and scripts. Torch-dependent names (``Upstream``,
``Downstream``, ``run``...) are imported on first use so that listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .corpus import Corpus, ReferenceTable  # noqa: E402
from .errors import (AudioError, CheckpointNotFoundError, ContractError, DataError,  # noqa: E402
                     EmoboxError, EmoboxUsageError, ExitCode, PluginError)
from .hookspecs import hookimpl  # noqa: E402
from .manifest import Manifest, Utterance  # noqa: E402
from .specs import CorpusSpec, DownstreamSpec, HParam, UpstreamSpec  # noqa: E402
from .splits import Fold, FoldTableRow  # noqa: E402

_LAZY = {
    "Upstream": ("emobox.upstream", "Upstream"),
    "UpstreamOutput": ("emobox.upstream", "UpstreamOutput"),
    "Downstream": ("emobox.downstream", "Downstream"),
    "ResultRow": ("emobox.results", "ResultRow"),
    "RunOptions": ("emobox.runner", "RunOptions"),
    "run": ("emobox.runner", "run"),
    "ExtractOptions": ("emobox.extract", "ExtractOptions"),
    "extract_corpus": ("emobox.extract", "extract_corpus"),
    "load_audio": ("emobox.audio", "load_audio"),
    "get_registry": ("emobox.plugins", "get_registry"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emobox' has no attribute {name!r}")


__all__ = ["__version__", "hookimpl", "UpstreamSpec", "CorpusSpec", "DownstreamSpec", "HParam", "Corpus",
           "ReferenceTable", "Manifest", "Utterance", "Fold", "FoldTableRow", "EmoboxError", "EmoboxUsageError",
           "DataError", "AudioError", "PluginError", "ContractError", "CheckpointNotFoundError",
           "ExitCode", *_LAZY]
