"""emobox: speech emotion recognition benchmarking, upstream x corpus x downstream.

The public surface for plugin authors and scripts: plugins, benchmarks and the README import
from ``emobox`` itself (``__all__``) and from ``emobox.testing`` (test helpers); every other
module is internal and may move (``tests/plugin/test_public_api.py`` keeps it so).
Torch-dependent names (``Upstream``, ``Downstream``, ``run``...) are imported on first use so
that listing plugins stays fast.
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
    "BenchOptions": ("emobox.tracks.bench", "BenchOptions"),
    "bench": ("emobox.tracks.bench", "bench"),
    "CrossOptions": ("emobox.tracks.cross", "CrossOptions"),
    "cross_run": ("emobox.tracks.cross", "cross_run"),
    "cross_average": ("emobox.reporting.cross_report", "cross_average"),
    "CrossBuildOptions": ("emobox.tracks.cross_build", "BuildOptions"),
    "cross_build": ("emobox.tracks.cross_build", "cross_build"),
    "build_balanced_set": ("emobox.datasets.balanced", "build_balanced_set"),
    # reports, submissions and the leaderboard
    "write_report": ("emobox.reporting.report", "write_report"),
    "pack_submission": ("emobox.reporting.submission", "pack"),
    "validate_submission": ("emobox.reporting.submission", "validate"),
    "score_submission": ("emobox.reporting.submission", "score"),
    "leaderboard_add": ("emobox.reporting.leaderboard", "add"),
    "cross_corpus_heatmap": ("emobox.reporting.plots", "cross_corpus_heatmap"),
    "ExtractOptions": ("emobox.extraction.extract", "ExtractOptions"),
    "extract_corpus": ("emobox.extraction.extract", "extract_corpus"),
    "load_audio": ("emobox.datasets.audio", "load_audio"),
    "canonical_label": ("emobox.datasets.labels", "canonical"),
    "CANONICAL_LABELS": ("emobox.datasets.labels", "CANONICAL"),
    "find_stores": ("emobox.extraction.store_admin", "find_stores"),
    "verify_store": ("emobox.extraction.store_admin", "verify_store"),
    "remove_stores": ("emobox.extraction.store_admin", "remove_stores"),
    "get_registry": ("emobox.plugin.registry", "get_registry"),
    # helpers for upstream and downstream plugins
    "find_checkpoint": ("emobox.extraction.checkpoints", "find_checkpoint"),
    "checkpoint_id": ("emobox.extraction.checkpoints", "checkpoint_id"),
    "pad_batch": ("emobox.extraction.upstream", "pad_batch"),
    "has_graph": ("emobox.extraction.runtime", "has_graph"),
    "segment_ids": ("emobox.training.downstream", "segment_ids"),
    "BalancedSet": ("emobox.datasets.balanced", "BalancedSet"),
    # the extraction and training engine, for scripts and benchmarks
    "extract": ("emobox.extraction.extract", "extract"),
    "extract_stats": ("emobox.extraction.extract", "extract_stats"),
    "FrameSource": ("emobox.extraction.extract", "FrameSource"),
    "Split": ("emobox.training.sweep", "Split"),
    "TrainConfig": ("emobox.training.sweep", "TrainConfig"),
    "train_sweep": ("emobox.training.sweep", "train_sweep"),
    "expand_grid": ("emobox.training.sweep", "expand_grid"),
    "config_id": ("emobox.training.sweep", "config_id"),
    "seed_for": ("emobox.training.sweep", "seed_for"),
    "lr_at": ("emobox.training.sweep", "lr_at"),
    "DEFAULT_GRAD_CLIP": ("emobox.training.sweep", "DEFAULT_GRAD_CLIP"),
    "scores": ("emobox.training.metrics", "scores"),
    "stratified_split": ("emobox.datasets.splits", "stratified_split"),
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
