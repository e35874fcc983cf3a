"""The whole extension surface of emobox.

A plugin is a module (or object) with functions decorated by ``emobox.hookimpl`` and named after
the hooks below, exposed through an entry point of group ``emobox``::

    [options.entry_points]            # setup.cfg
    emobox =
        my_models = my_package.plugin

Every hook is called with keyword arguments only and returns a list of specs. Hooks are called
once per process, when a command first needs the list; they must be cheap (no heavy imports, no
model loading: that belongs in the spec's ``build``).
"""

from __future__ import annotations

import pluggy

from emobox.plugin.specs import CorpusSpec, DownstreamSpec, UpstreamSpec

PROJECT = "emobox"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def emobox_upstreams() -> list[UpstreamSpec]:
    """Return the upstream encoders this plugin provides."""


@hookspec
def emobox_corpora() -> list[CorpusSpec]:
    """Return the corpus adapters this plugin provides."""


@hookspec
def emobox_downstreams() -> list[DownstreamSpec]:
    """Return the downstream heads this plugin provides."""
