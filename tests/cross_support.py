"""Fixture trees for the cross-corpus tests: subsets of EmoBox corpora that hold their balanced
test sets, with audio whose pitch says the class (so that a model can learn and transfer)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from emobox.corpora._emobox import reference_rows
from emobox.plugin.registry import Registry
from emobox.datasets.splits import seeded_order
from emobox.testing import write_audio
from corpus_writers import write_fixture

TONES = {"Angry": 300.0, "Happy": 600.0, "Neutral": 1200.0, "Sad": 2400.0}


def write_tree(root: Path, name: str, extra: int, keep: Iterable[str] = (),
               drop: Iterable[str] = (), tones: bool = True) -> Path:
    """A fixture tree of corpus ``name`` under ``root/name``: its published balanced set (and the
    keys it keeps out of training), ``keep``, and ``extra`` more reference rows (seeded), minus
    ``drop``. With ``tones``, each file is a tone whose frequency codes its class."""
    spec = Registry().corpus(name)
    cls = spec.build
    need = set(keep)
    if spec.balanced_test_set is not None:
        need |= spec.balanced_test_set().excluded_from_training()
    rows = reference_rows(cls.table_name())
    others = seeded_order([r["key"] for r in rows if r["key"] not in need], 0, name)[:extra]
    chosen = (need | set(others)) - set(drop)
    tree = root / name
    write_fixture(cls, tree, [r for r in rows if r["key"] in chosen])
    if tones:
        class_tones(tree, name)
    return tree


def class_tones(tree: Path, name: str) -> None:
    """Replace every audio file of the corpus at ``tree`` by a tone coding its class."""
    corpus = Registry().corpus(name).build(tree)
    templates: dict[tuple[str, float], Path] = {}
    for utt in corpus.manifest:
        path = corpus.manifest.audio_path(utt)
        freq = TONES.get(utt.label, 150.0)
        suffix = path.suffix.lower()
        if (suffix, freq) not in templates:
            templates[(suffix, freq)] = write_audio(tree.parent / ".tones" / f"{int(freq)}{suffix}",
                                                    seconds=0.15, freq=freq)
        os.unlink(path)  # fixture files are hard links of one file: never write through them
        os.link(templates[(suffix, freq)], path)
