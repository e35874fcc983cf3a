"""Old import paths, kept working for one release.

emobox's modules live in stage subpackages (``emobox.datasets``, ``emobox.extraction``,
``emobox.training``, ``emobox.tracks``, ``emobox.reporting``, ``emobox.plugin``,
``emobox.validate``). Code that still imports an old flat name such as ``emobox.runner`` gets the
same module object under the old name (so monkeypatching and ``isinstance`` keep working) and one
``DeprecationWarning`` naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: old dotted name -> new dotted name
MOVED: dict[str, str] = {
    "emobox.hookspecs": "emobox.plugin.hookspecs",
    "emobox.specs": "emobox.plugin.specs",
    "emobox.plugins": "emobox.plugin.registry",
    "emobox.corpus": "emobox.datasets.corpus",
    "emobox.manifest": "emobox.datasets.manifest",
    "emobox.splits": "emobox.datasets.splits",
    "emobox.audio": "emobox.datasets.audio",
    "emobox.labels": "emobox.datasets.labels",
    "emobox.balanced": "emobox.datasets.balanced",
    "emobox.emobox_import": "emobox.datasets.emobox_import",
    "emobox.corpus_tools": "emobox.datasets.corpus_tools",
    "emobox.upstream": "emobox.extraction.upstream",
    "emobox.checkpoints": "emobox.extraction.checkpoints",
    "emobox.extract": "emobox.extraction.extract",
    "emobox.engine": "emobox.extraction.engine",
    "emobox.batching": "emobox.extraction.batching",
    "emobox.precision": "emobox.extraction.precision",
    "emobox.store": "emobox.extraction.store",
    "emobox.features": "emobox.extraction.store_admin",
    "emobox.upstream_catalog": "emobox.extraction.upstream_catalog",
    "emobox.downstream": "emobox.training.downstream",
    "emobox.fused": "emobox.training.fused",
    "emobox.sweep": "emobox.training.sweep",
    "emobox.metrics": "emobox.training.metrics",
    "emobox.runner": "emobox.tracks.runner",
    "emobox.rundirs": "emobox.tracks.rundirs",
    "emobox.bench": "emobox.tracks.bench",
    "emobox.executors": "emobox.tracks.executors",
    "emobox.cross": "emobox.tracks.cross",
    "emobox.cross_build": "emobox.tracks.cross_build",
    "emobox.results": "emobox.reporting.results",
    "emobox.report": "emobox.reporting.report",
    "emobox.plots": "emobox.reporting.plots",
    "emobox.paper": "emobox.reporting.paper",
    "emobox.submission": "emobox.reporting.submission",
    "emobox.submission_io": "emobox.reporting.submission_io",
    "emobox.leaderboard": "emobox.reporting.leaderboard",
    "emobox.cross_report": "emobox.reporting.cross_report",
    "emobox.contracts": "emobox.validate.contracts",
    "emobox.doctor": "emobox.validate.plugins_doctor",
    "emobox.envreport": "emobox.environment",
    "emobox.upstreams.whisper_formats": "emobox.upstreams.whisper.formats",
    "emobox.upstreams.whisper_model": "emobox.upstreams.whisper.model",
    "emobox.upstreams.data2vec2_ckpt": "emobox.upstreams.data2vec2.ckpt",
    "emobox.upstreams.data2vec2_net": "emobox.upstreams.data2vec2.net",
    "emobox.upstreams.data2vec2_upstream": "emobox.upstreams.data2vec2.upstream",
}

_warned: set[str] = set()


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):  # a placeholder; exec_module swaps in the real module
        return None

    def get_code(self, fullname):  # ``python -m <old name>`` runs the new module's code
        shim = (f"import runpy, warnings\n"
                f"warnings.warn({fullname!r} + ' is deprecated; run -m {self.new} instead', "
                f"DeprecationWarning)\n"
                f"runpy.run_module({self.new!r}, run_name='__main__', alter_sys=True)\n")
        return compile(shim, f"<{fullname}>", "exec")

    def exec_module(self, module) -> None:
        old = module.__spec__.name
        real = importlib.import_module(self.new)
        if old not in _warned:
            _warned.add(old)
            warnings.warn(f"{old} is deprecated; import {self.new} instead",
                          DeprecationWarning, stacklevel=2)
        # the import system returns whatever sys.modules holds under the old name after this
        sys.modules[old] = real


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
