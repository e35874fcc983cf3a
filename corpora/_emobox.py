"""Shared machinery of the EmoBox corpus adapters: the published reference tables.

``reference/<corpus>.tsv.gz`` (package data built by ``scripts/build_reference_data.py``) holds
every utterance EmoBox listed: key, path relative to the corpus root, channel, segment, speaker,
raw and mapped label, the fold in which it is a test item (0 = train only, single-fold corpora:
1 = test) and the official-valid flag. :class:`EmoboxCorpus` turns it into the ``emobox``
scheme's fold table; adapters implement ``scan()`` (or declare a file-name layout through
:class:`emobox.corpora._filename.FileNameCorpus`).

Conventions every EmoBox adapter follows (the reference test harness,
``tests/corpora/test_reference.py``, checks them against every row of the table):

- utterance keys are EmoBox's keys exactly;
- ``Utterance.speaker`` is a real speaker id; where EmoBox recorded something else (a path, a
  bogus id), EmoBox's value is kept in ``Utterance.custom["emobox_speaker"]``;
- ``Utterance.label`` is the class after the adapter's label map; where the table's ``emotion``
  column is not the class EmoBox meant (a map EmoBox failed to apply), the adapter lists the fix
  in ``reference_label_fixes`` and its card says why;
- the ``emobox`` scheme's membership of a row is its ``test_fold``/``valid`` columns unless the
  adapter knows better (:meth:`EmoboxCorpus.reference_fold_row`);
- ``Utterance.channel`` is None (mix down) unless the corpus needs one channel in every scheme
  (MELD's recorded dialogue channel); scheme ``emobox`` reads the first channel of the others,
  as EmoBox's extraction did (:meth:`emobox.Corpus.manifest_for`);
- the test suite holds, for every adapter, a writer of a tiny copy of the corpus in its native
  layout (audio and native metadata files) made from reference rows, so that the harness can
  scan it (``tests/corpus_writers.py``).
"""

from __future__ import annotations

import functools
import sys
import textwrap
from typing import Any, ClassVar, Mapping

from emobox import Corpus, CorpusSpec, FoldTableRow, ReferenceTable, Utterance

from ._cross import emobox_balanced_set, has_cross_set
from ._reference import REFERENCE, has_reference, reference_info, reference_rows  # noqa: F401


@functools.lru_cache(maxsize=None)
def reference_summary(name: str, fixes: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """What the shipped table holds: utterances, speakers, classes and counts, folds, hours.
    ``fixes`` are the adapter's ``reference_label_fixes``: classes are counted as it yields them."""
    info = reference_info(name)
    hours = sum(float(r["end"] or 0) - float(r["start"] or 0) for r in reference_rows(name))
    fix = dict(fixes)
    labels: dict[str, int] = {}
    for label, n in info["labels"].items():
        labels[fix.get(label, label)] = labels.get(fix.get(label, label), 0) + n
    return {"utterances": info["utterances"], "speakers": info["speakers"],
            "labels": dict(sorted(labels.items())), "folds": info["folds"],
            "official_valid": info["official_valid"], "hours": round(hours / 3600, 4),
            "train_lists_complete": info["train_lists_complete"],
            "problems": list(info["problems"]),
            "source": f"EmoBox metadata (emobox.corpora reference/{name}.tsv.gz)"}


class EmoboxCorpus(Corpus):
    """A corpus of the EmoBox benchmark: scheme ``emobox`` follows the published tables."""

    homepage: ClassVar[str] = ""
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference_name: ClassVar[str] = ""  # table name, when it differs from ``name``
    # EmoBox's table keeps a few labels its own label map failed to map (EmoDB's "neutral",
    # EMOVO's codes): reference ``emotion`` -> the class this adapter yields instead
    reference_label_fixes: ClassVar[Mapping[str, str]] = {}
    emobox_channels = True  # scheme emobox reads EmoBox's channel (Corpus.manifest_for)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("labels") and cls.label_map:
            cls.labels = tuple(sorted(set(cls.label_map.values())))
        if cls.__doc__ and not cls.__dict__.get("description"):
            cls.description = cls.__doc__.strip().splitlines()[0]

    @classmethod
    def table_name(cls) -> str:
        return cls.reference_name or cls.name

    def fold_table(self) -> dict[str, FoldTableRow]:
        rows = reference_rows(self.table_name())
        return {r["key"]: self.reference_fold_row(r) for r in rows}

    # -- the reference harness's hooks ---------------------------------------------------------
    @classmethod
    def reference_fold_row(cls, row: Mapping[str, str]) -> FoldTableRow:
        """The ``emobox`` scheme's membership of a reference row: its ``test_fold`` and
        ``valid`` columns, unless the adapter knows better (MER2023's test2/test3 rows, which the
        table marks 0 like train rows, are in no split: ``test_fold`` -1)."""
        return FoldTableRow(int(row["test_fold"]), row["valid"] == "1", row["path"])

    @classmethod
    def reference_label(cls, row: Mapping[str, str]) -> str:
        """The class a reference row stands for (its ``emotion``, after ``reference_label_fixes``)."""
        return cls.reference_label_fixes.get(row["emotion"], row["emotion"])


def emobox_speaker(utt: Utterance) -> str | None:
    """The speaker EmoBox recorded for ``utt`` (differs from ``utt.speaker`` where EmoBox's was
    wrong, e.g. IEMOCAP's dialog prefix; kept in ``custom["emobox_speaker"]``)."""
    return utt.custom.get("emobox_speaker", utt.speaker)


def reference_table(cls: type[EmoboxCorpus]) -> ReferenceTable:
    """EmoBox's published keys, classes (with the adapter's label fixes), folds and durations."""
    rows = reference_rows(cls.table_name())
    fixes = cls.reference_label_fixes
    return ReferenceTable(
        corpus=cls.name, labels=tuple(cls.labels),
        label={r["key"]: fixes.get(r["emotion"], r["emotion"]) for r in rows},
        folds={r["key"]: cls.reference_fold_row(r) for r in rows},
        duration={r["key"]: float(r["duration"]) for r in rows if r.get("duration")})


def card_layout(doc: str | None) -> str:
    """The "Layout" section of a corpus card (an adapter's module docstring), dedented: either
    a ``Layout expected`` heading over an indented paragraph, or a ``Layout (...)::`` line over
    an indented literal block."""
    lines = (doc or "").splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("Layout"):
            continue
        head = line.rstrip(":").strip()
        body: list[str] = []
        for nxt in lines[i + 1:]:
            if nxt.strip() and not nxt.startswith(" "):
                break
            body.append(nxt)
        text = textwrap.dedent("\n".join(body)).strip("\n")
        if head == "Layout expected":
            return text
        head = head[len("Layout"):].strip()  # "(48 kHz WAV)", "(WAV), flat or nested"
        if head.startswith("(") and head.endswith(")"):
            head = head[1:-1]
        return f"{head}:\n" + textwrap.indent(text, "    ") if head else text
    return ""


def corpus_spec(cls: type[EmoboxCorpus]) -> CorpusSpec:
    """The plugin spec of an adapter class, from its class attributes (and the layout from its
    corpus card)."""
    name = cls.table_name()
    reference = (functools.partial(reference_summary, name,
                                   tuple(sorted(cls.reference_label_fixes.items())))
                 if has_reference(name) else None)
    return CorpusSpec(name=cls.name, build=cls, description=cls.description,
                      languages=tuple(cls.languages), license=cls.license,
                      homepage=cls.homepage, citation=cls.citation,
                      expected_top_level=cls.expected_top_level, reference=reference,
                      layout=card_layout(getattr(sys.modules.get(cls.__module__), "__doc__", "")),
                      reference_table=(functools.partial(reference_table, cls)
                                       if has_reference(name) else None),
                      balanced_test_set=(functools.partial(emobox_balanced_set, cls)
                                         if has_cross_set(name) else None))
