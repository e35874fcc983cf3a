"""Fixture trees of the EmoBox corpora, built from the reference tables and scanned once."""

from __future__ import annotations

import pytest

from corpus_fixtures import build_fixture
from emobox.corpora._emobox import EmoboxCorpus


@pytest.fixture(scope="session")
def scanned(tmp_path_factory):
    """``scanned(name)``: (the adapter over a clean fixture tree of all its reference rows, the
    fixture's extra fold rows), scanned once per session (the tree stays on disk)."""
    cache: dict[str, tuple[EmoboxCorpus, dict]] = {}

    def get(name: str) -> tuple[EmoboxCorpus, dict]:
        if name not in cache:
            corpus, extras = build_fixture(name, tmp_path_factory.mktemp(f"{name}-tree"))
            corpus.manifest  # scan now
            cache[name] = (corpus, extras)
        return cache[name]

    return get
