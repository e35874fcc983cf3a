"""The registered EmoBox corpora and their fixture trees (shared by the corpus tests)."""

from __future__ import annotations

from pathlib import Path

from emobox.corpora._emobox import EmoboxCorpus, has_reference, reference_rows
from emobox.plugin.registry import Registry
from corpus_writers import write_fixture


def reference_corpora() -> dict[str, type[EmoboxCorpus]]:
    """Every registered corpus whose adapter ships an EmoBox reference table, by name."""
    out = {}
    for spec in Registry().specs("corpus"):
        cls = spec.build
        if (isinstance(cls, type) and issubclass(cls, EmoboxCorpus)
                and has_reference(cls.table_name())):
            out[spec.name] = cls
    return out


REFERENCE_CORPORA = reference_corpora()


def build_fixture(name: str, root: Path, clutter: bool = False):
    """(the adapter over a fixture tree of all reference rows, the fixture's extra fold rows)"""
    cls = REFERENCE_CORPORA[name]
    extras = write_fixture(cls, root, reference_rows(cls.table_name()), clutter=clutter)
    return cls(root), dict(extras or {})
