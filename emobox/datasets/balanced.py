"""Balanced test sets: the same number of utterances per speaker and class, as files and rules.

A :class:`BalancedSet` lists the test utterances of one corpus for the cross-corpus track by the
corpus adapter's keys, each with its canonical class and the speaker its quota counts. Corpus
plugins may ship a published one (``CorpusSpec.balanced_test_set``: EmoBox's four sets come with
the IEMOCAP, MELD, RAVDESS and SAVEE adapters); :func:`build_balanced_set` makes new ones from a
recipe: classes, a quota of speakers x utterances per class per speaker, a seed, and optionally
pseudo-labels so that only utterances a labelling model agrees with are kept (EmoBox filtered its
sets with emotion2vec this way).

On disk a set is a TSV file ``<corpus>.tsv`` with the columns

    key            the corpus adapter's utterance key
    label          the canonical class
    speaker        the speaker the quota counts
    source         where the publisher listed it (EmoBox's path), or empty
    also_excluded  comma-separated keys never to train on besides this one (an utterance the
                   published entry may also mean), or empty

and ``emobox cross build`` writes a ``recipe.json`` beside the TSV files saying how they were made.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from emobox.errors import DataError, EmoboxUsageError
from emobox.datasets.labels import canonical, canonical_classes
from emobox.datasets.manifest import Manifest, Utterance, read_tsv_rows
from emobox.datasets.splits import seeded_order
from emobox.io import read_mapping

COLUMNS = ("key", "label", "speaker", "source", "also_excluded")
SPEAKER_FIELDS = ("speaker", "emobox")


@dataclass(frozen=True)
class BalancedItem:
    key: str
    label: str  # canonical class
    speaker: str  # the speaker the quota counts
    source: str = ""  # the publisher's name for it (e.g. EmoBox's wav_filename)
    also_excluded: tuple[str, ...] = ()  # keys kept out of training along with this one


@dataclass(frozen=True)
class BalancedSet:
    """The balanced test set of one corpus."""

    corpus: str
    items: tuple[BalancedItem, ...]
    origin: str = ""  # who made it, in words
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for item in self.items:
            if item.key in seen:
                raise DataError(f"balanced set of {self.corpus}: key {item.key!r} is listed twice")
            seen.add(item.key)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def keys(self) -> list[str]:
        return [i.key for i in self.items]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted({i.label for i in self.items}))

    def excluded_from_training(self) -> set[str]:
        """Every key that must stay out of the corpus's training side."""
        return {i.key for i in self.items} | {k for i in self.items for k in i.also_excluded}

    def structure(self) -> dict[str, dict[str, int]]:
        """``{speaker: {class: count}}``."""
        out: dict[str, Counter] = defaultdict(Counter)
        for i in self.items:
            out[i.speaker][i.label] += 1
        return {s: dict(sorted(c.items())) for s, c in sorted(out.items())}

    def quota(self) -> tuple[int, int] | None:
        """``(speakers, per class per speaker)`` when the set is exactly balanced, else None."""
        structure = self.structure()
        classes = self.classes
        counts = {n for per in structure.values() for n in per.values()}
        if len(counts) != 1 or any(set(per) != set(classes) for per in structure.values()):
            return None
        return len(structure), counts.pop()

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for i in self.items:
            h.update(f"{i.key}\t{i.label}\t{i.speaker}\t{','.join(i.also_excluded)}\n".encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        q = self.quota()
        shape = (f"{q[0]} speakers x {q[1]} per class" if q else "not balanced")
        return f"{len(self)} utterances, {'/'.join(self.classes)}, {shape}"

    # -- files -------------------------------------------------------------------------------
    def to_tsv(self, path: str | Path | None = None) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for i in self.items:
            writer.writerow([i.key, i.label, i.speaker, i.source, ",".join(i.also_excluded)])
        text = buf.getvalue()
        if path is not None:
            from emobox.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_tsv(cls, path: str | Path, corpus: str | None = None, origin: str = ""
                 ) -> "BalancedSet":
        """Read a set file; ``corpus`` defaults to the file name's stem. Labels are read through
        the canonical vocabulary."""
        path = Path(path)
        items = []
        for lineno, row in read_tsv_rows(path, ("key", "label", "speaker"), "balanced set"):
            label = canonical(row["label"])
            if not row["key"] or label is None:
                raise DataError(f"{path}:{lineno}: bad row (key {row['key']!r}, label "
                                f"{row['label']!r})", path=str(path))
            also = tuple(k for k in (row.get("also_excluded") or "").split(",") if k)
            items.append(BalancedItem(row["key"], label, row["speaker"] or "",
                                      row.get("source") or "", also))
        if not items:
            raise DataError(f"{path}: the balanced set is empty", path=str(path))
        return cls(corpus or path.stem, tuple(items), origin or f"file {path}")


# -- recipes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Quota:
    """``speakers`` (None = every speaker with utterances of the classes) x ``per_class``
    utterances of every class per speaker."""

    speakers: int | None
    per_class: int

    def __str__(self) -> str:
        return f"{'all' if self.speakers is None else self.speakers}x{self.per_class}"

    @classmethod
    def parse(cls, text: Any, what: str = "--quota") -> "Quota":
        if isinstance(text, Quota):
            return text
        if isinstance(text, Mapping):
            spk = text.get("speakers", "all")
            return cls.parse(f"{spk}x{text.get('per_class')}", what)
        m = re.fullmatch(r"\s*(all|\d+)\s*[xX*]\s*(\d+)\s*", str(text))
        if not m:
            raise EmoboxUsageError(f"{what} {text!r}: expected SPEAKERSxPER_CLASS, e.g. 10x6 "
                                   f"(10 speakers, 6 utterances of every class each) or allx15")
        speakers = None if m[1] == "all" else int(m[1])
        per = int(m[2])
        if per < 1 or speakers == 0:
            raise EmoboxUsageError(f"{what} {text!r}: speakers and utterances must be positive")
        return cls(speakers, per)


@dataclass(frozen=True)
class Recipe:
    """How to draw balanced sets (one per corpus)."""

    classes: tuple[str, ...]
    quotas: Mapping[str, Quota]  # corpus -> quota
    seed: int = 0
    speaker_field: str = "speaker"  # speaker | emobox (the speaker EmoBox recorded)
    speakers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # corpus -> fixed list

    def __post_init__(self) -> None:
        if self.speaker_field not in SPEAKER_FIELDS:
            raise EmoboxUsageError(f"speaker field {self.speaker_field!r}: use one of "
                                   f"{', '.join(SPEAKER_FIELDS)}")

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "seed": self.seed,
                "speaker_field": self.speaker_field,
                "quota": {c: str(q) for c, q in sorted(self.quotas.items())},
                "speakers": {c: list(s) for c, s in sorted(self.speakers.items())}}


def read_recipe(path: str | Path) -> dict:
    """A recipe file (JSON or YAML) as a plain mapping; see :func:`recipe_from`."""
    data = read_mapping(Path(path), f"recipe {path}", "(classes, quota, seed, ...)")
    known = {"classes", "quota", "seed", "speaker_field", "speakers", "corpora",
             "pseudo_labels"}
    written = {"kind", "schema_version", "emobox_version", "sets"}  # in a build's recipe.json
    unknown = sorted(set(data) - known - written)
    if unknown:
        raise EmoboxUsageError(f"recipe {path}: unknown entries {unknown}; known: "
                               f"{', '.join(sorted(known))}")
    return data


def recipe_from(corpora: Sequence[str], classes: Iterable[str], quota: Any, seed: int = 0,
                speaker_field: str = "speaker",
                speakers: Mapping[str, Sequence[str]] | None = None,
                default_quotas: Mapping[str, Quota] | None = None) -> Recipe:
    """A :class:`Recipe` for ``corpora``. ``quota``: one quota for every corpus (``"10x6"``), or
    a mapping corpus -> quota (key ``default`` for the rest); corpora without one take
    ``default_quotas`` (e.g. the published sets' structure), else it is an error."""
    per_corpus: dict[str, Any] = {}
    fallback: Any = None
    if isinstance(quota, Mapping) and not {"speakers", "per_class"} & set(quota):
        per_corpus = {k: v for k, v in quota.items() if k != "default"}
        fallback = quota.get("default")
    elif quota is not None:
        fallback = quota
    unknown = sorted(set(per_corpus) - set(corpora))
    if unknown:
        raise EmoboxUsageError(f"quota given for {', '.join(unknown)}, which is not among the "
                               f"corpora {', '.join(corpora)}")
    quotas = {}
    for c in corpora:
        q = per_corpus.get(c, fallback)
        if q is None and default_quotas and c in default_quotas:
            quotas[c] = default_quotas[c]
            continue
        if q is None:
            raise EmoboxUsageError(f"no quota for {c}: pass --quota {c}=SPEAKERSxPER_CLASS "
                                   f"(e.g. {c}=10x6) or a quota for every corpus (--quota 10x6)")
        quotas[c] = Quota.parse(q, f"quota of {c}")
    return Recipe(canonical_classes(classes), quotas, int(seed), speaker_field,
                  {c: tuple(str(s) for s in v) for c, v in (speakers or {}).items()})


# -- pseudo-labels ----------------------------------------------------------------------------

def read_pseudo_labels(path: str | Path) -> dict[str, str | None]:
    """``key -> canonical class`` (None where the label names no class emobox knows, e.g.
    ``<unk>``: such an utterance never agrees with its gold label).

    Accepted: JSON ``{key: label}``; TSV or CSV with a header naming ``key`` and ``label`` (or
    ``predicted``, as in a run's ``predictions/*.tsv``); or two columns without a header.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EmoboxUsageError(f"pseudo-label file {path}: cannot read: {exc.strerror}")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})", path=str(path))
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object key -> label", path=str(path))
        return {str(k): canonical(v) for k, v in data.items()}
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        raise DataError(f"{path}: empty pseudo-label file", path=str(path))
    head = [h.strip().lower() for h in rows[0]]
    if "key" in head:
        label_col = next((c for c in ("label", "predicted", "pseudo_label") if c in head), None)
        if label_col is None:
            raise DataError(f"{path}: the header names no label column (label or predicted)",
                            path=str(path))
        ki, li = head.index("key"), head.index(label_col)
        body = rows[1:]
    else:
        ki, li, body = 0, 1, rows
    out: dict[str, str | None] = {}
    for lineno, row in enumerate(body, start=2 if body is not rows else 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) <= max(ki, li):
            raise DataError(f"{path}:{lineno}: expected a key and a label", path=str(path))
        out[row[ki].strip()] = canonical(row[li])
    return out


def run_pseudo_labels(run_dir: str | Path) -> dict[str, str | None]:
    """Out-of-fold predictions of an ``emobox run`` directory (``predictions/fold*.tsv``: every
    key predicted by the fold that tested it) as pseudo-labels."""
    run_dir = Path(run_dir)
    files = sorted((run_dir / "predictions").glob("fold*.tsv"))
    if not files:
        raise EmoboxUsageError(f"{run_dir}: no predictions/fold*.tsv (is it an emobox run "
                               f"directory?)")
    out: dict[str, str | None] = {}
    for f in files:
        out.update(read_pseudo_labels(f))
    return out


# -- the builder ------------------------------------------------------------------------------

def speaker_of(utt: Utterance, speaker_field: str) -> str | None:
    if speaker_field == "emobox":
        return utt.custom.get("emobox_speaker", utt.speaker)
    return utt.speaker


def build_balanced_set(manifest: Manifest, classes: Sequence[str], quota: Quota, seed: int = 0,
                       speaker_field: str = "speaker", speakers: Sequence[str] = (),
                       pseudo_labels: Mapping[str, str | None] | None = None,
                       origin: str = "") -> BalancedSet:
    """Draw a balanced set from ``manifest``: ``quota.per_class`` utterances of every class of
    ``classes`` for each of ``quota.speakers`` speakers (every eligible one when None, the
    listed ``speakers`` when given), keeping only utterances whose pseudo-label agrees with the
    gold label when ``pseudo_labels`` is given.

    Deterministic given ``seed``: speakers are drawn in a seeded order among those that can
    fill the quota, and each speaker's utterances of a class in a seeded order. A quota the
    corpus cannot fill is an :class:`EmoboxUsageError` naming the speakers and classes that
    are short and by how much.
    """
    corpus = manifest.corpus
    classes = tuple(classes)
    pool: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    total: dict[str, Counter] = defaultdict(Counter)
    disagree = 0
    for u in manifest:
        if u.label not in classes:
            continue
        spk = speaker_of(u, speaker_field)
        if spk is None:
            continue
        total[spk][u.label] += 1
        if pseudo_labels is not None and pseudo_labels.get(u.key) != u.label:
            disagree += 1
            continue
        pool[spk][u.label].append(u.key)
    if not total:
        raise EmoboxUsageError(f"{corpus}: no utterance of the classes {', '.join(classes)} has a "
                               f"speaker (its classes: {', '.join(manifest.labels)})")
    missing_cls = [c for c in classes if not any(t[c] for t in total.values())]
    if missing_cls:
        raise EmoboxUsageError(f"{corpus} has no utterance of {', '.join(missing_cls)} (its "
                               f"classes: {', '.join(manifest.labels)})")
    filt = " whose pseudo-label agrees" if pseudo_labels is not None else ""

    def shortfall(spk: str) -> list[str]:
        return [f"{c} {len(pool[spk][c])}/{quota.per_class}"
                + (f" ({total[spk][c]} before filtering)" if pseudo_labels is not None else "")
                for c in classes if len(pool[spk][c]) < quota.per_class]

    def refuse(head: str, short: Sequence[str]) -> EmoboxUsageError:
        shown = "; ".join(f"{s}: {', '.join(shortfall(s))}" for s in short[:8])
        more = f"; and {len(short) - 8} more speakers" if len(short) > 8 else ""
        tail = f". Short: {shown}{more}" if short else ""
        return EmoboxUsageError(f"{corpus}: quota {quota} ({quota.per_class} utterances{filt} of "
                                f"each of {', '.join(classes)} per speaker) cannot be met: "
                                f"{head}{tail}")

    all_speakers = sorted(total)
    eligible = [s for s in all_speakers if not shortfall(s)]
    if speakers:
        unknown = [s for s in speakers if s not in total]
        if unknown:
            raise EmoboxUsageError(f"{corpus}: speakers {', '.join(map(repr, unknown))} have no "
                                   f"utterance of the classes (speakers: "
                                   f"{', '.join(all_speakers[:20])}"
                                   f"{' ...' if len(all_speakers) > 20 else ''})")
        short = [s for s in speakers if s not in eligible]
        if short:
            raise refuse(f"{len(short)} of the {len(speakers)} listed speakers are short", short)
        if quota.speakers is not None and quota.speakers != len(speakers):
            raise EmoboxUsageError(f"{corpus}: quota {quota} asks for {quota.speakers} speakers "
                                   f"but {len(speakers)} are listed")
        chosen = list(speakers)
    elif quota.speakers is None:
        short = [s for s in all_speakers if s not in eligible]
        if short:
            raise refuse(f"{len(short)} of its {len(all_speakers)} speakers are short (quota "
                         f"'all' needs every speaker)", short)
        chosen = all_speakers
    else:
        if len(eligible) < quota.speakers:
            short = sorted((s for s in all_speakers if s not in eligible),
                           key=lambda s: (len(shortfall(s)), s))
            if len(all_speakers) < quota.speakers:
                head = (f"it has only {len(all_speakers)} speakers with utterances of these "
                        f"classes, {quota.speakers} are needed")
            else:
                head = (f"only {len(eligible)} of its {len(all_speakers)} speakers can fill it, "
                        f"{quota.speakers} are needed")
            raise refuse(head, short)
        chosen = seeded_order(eligible, seed, f"{corpus}/balanced/speakers")[:quota.speakers]
    items = []
    for spk in sorted(chosen):
        for c in classes:
            picked = seeded_order(pool[spk][c], seed, f"{corpus}/balanced/{spk}/{c}")
            items += [BalancedItem(k, c, spk) for k in sorted(picked[:quota.per_class])]
    notes = []
    if pseudo_labels is not None:
        notes.append(f"{disagree} utterances of the classes left out because their pseudo-label "
                     f"disagrees with the gold label (or is missing)")
    return BalancedSet(corpus, tuple(items), origin or f"emobox cross build (quota {quota}, seed "
                       f"{seed})", tuple(notes))
