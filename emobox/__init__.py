"""emobox: speech emotion recognition benchmarking, upstream x corpus x downstream.

The public surface for plugin authors and scripts. Torch-dependent names (``Upstream``,
``Downstream``, ``run``...) are imported on first use so that listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

from emobox._version import __version__  # noqa: E402

from . import _legacy  # noqa: E402

_legacy.install()

from emobox.datasets.corpus import Corpus, ReferenceTable  # noqa: E402
from .errors import (AudioError, CheckpointNotFoundError, ContractError, DataError,  # noqa: E402
                     EmoboxError, EmoboxUsageError, ExitCode, PluginError)
from emobox.plugin.hookspecs import hookimpl  # noqa: E402
from emobox.datasets.manifest import Manifest, Utterance  # noqa: E402
from emobox.plugin.specs import CorpusSpec, DownstreamSpec, HParam, UpstreamSpec  # noqa: E402
from emobox.datasets.splits import Fold, FoldTableRow  # noqa: E402

_LAZY = {
    "Upstream": ("emobox.extraction.upstream", "Upstream"),
    "UpstreamOutput": ("emobox.extraction.upstream", "UpstreamOutput"),
    "Downstream": ("emobox.training.downstream", "Downstream"),
    "ResultRow": ("emobox.reporting.results", "ResultRow"),
    "RunOptions": ("emobox.tracks.runner", "RunOptions"),
    "run": ("emobox.tracks.runner", "run"),
    "ExtractOptions": ("emobox.extraction.extract", "ExtractOptions"),
    "extract_corpus": ("emobox.extraction.extract", "extract_corpus"),
    "load_audio": ("emobox.datasets.audio", "load_audio"),
    "get_registry": ("emobox.plugin.registry", "get_registry"),
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
