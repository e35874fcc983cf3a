"""Fixture writers live with the tests, not in the shipped adapters."""

from __future__ import annotations

import ast
from pathlib import Path

from corpus_fixtures import REFERENCE_CORPORA
from corpus_writers import WRITERS

from emobox.corpora._metadata import MetadataCorpus

CORPORA = Path(__file__).resolve().parents[2] / "corpora"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_adapter_imports_the_test_helpers():
    offenders = sorted(p.name for p in CORPORA.rglob("*.py")
                       if any(n == "emobox.testing" or n.startswith("emobox.testing.")
                              for n in _imports(p)))
    assert offenders == []


def test_no_adapter_carries_a_fixture_writer():
    assert [name for name, cls in REFERENCE_CORPORA.items()
            if hasattr(cls, "make_fixture")] == []


def test_every_metadata_corpus_has_a_writer():
    # a corpus reading its own metadata files cannot be scanned from audio alone
    need = {name for name, cls in REFERENCE_CORPORA.items() if issubclass(cls, MetadataCorpus)}
    assert need == set(WRITERS)
