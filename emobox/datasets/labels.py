"""The canonical emotion vocabulary: one spelling per class, shared by every corpus.

Corpora write emotions their own way (MELD ``anger``/``joy``, SAVEE ``a``/``h``, IEMOCAP
``ang``/``exc``, RAVDESS the code ``05``). Each corpus adapter maps its raw labels to canonical
classes (``Corpus.label_map``, explicit data per corpus); this module holds the other half: the
canonical class names and the English words that stand for them (:data:`ALIASES`), so that a
class set typed by a user (``angry,happy,neutral,sad``), a pseudo-label file written by another
model (``joy``, ``sadness``, emotion2vec's bilingual ``生气/angry``) or a published list all
resolve to the same classes. Corpus-specific codes (``a``, ``sa``, ``ang``) are not aliases here:
they mean something only inside their corpus and stay in its adapter's label map.

The cross-corpus track compares corpora only through these canonical names: a class is shared
when several corpora's adapters map some raw label to it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from emobox.errors import EmoboxUsageError, close_names

# The classes emobox's corpora use, in the spelling their adapters produce.
CANONICAL: tuple[str, ...] = (
    "Angry", "Happy", "Neutral", "Sad", "Surprise", "Fear", "Disgust", "Calm", "Contempt",
    "Boredom", "Excited", "Enthusiastic", "Sleepy", "Amused", "Anxious", "Apologetic",
    "Assertive", "Concerned", "Encouraging", "Sarcastic", "Worried", "Poker", "Other",
)

# English words (lower case) -> canonical class. The canonical names themselves (any case) are
# always accepted and are not repeated here.
ALIASES: Mapping[str, str] = {
    "anger": "Angry", "angered": "Angry", "annoyed": "Angry", "mad": "Angry",
    "happiness": "Happy", "joy": "Happy", "joyful": "Happy", "glad": "Happy",
    "neutrality": "Neutral",
    "sadness": "Sad", "sorrow": "Sad",
    "surprised": "Surprise", "surprising": "Surprise",
    "fearful": "Fear", "afraid": "Fear", "scared": "Fear",
    "disgusted": "Disgust", "disgusting": "Disgust",
    "contemptuous": "Contempt",
    "bored": "Boredom", "boring": "Boredom",
    "excitement": "Excited",
    "enthusiasm": "Enthusiastic",
    "amusement": "Amused",
    "anxiety": "Anxious",
    "sleepiness": "Sleepy",
    "others": "Other",
}

# The four classes the EmoBox cross-corpus track shares (its Table 3).
CROSS_CORPUS_CLASSES: tuple[str, ...] = ("Angry", "Happy", "Neutral", "Sad")

_BY_LOWER = {c.lower(): c for c in CANONICAL}


def canonical(label: str | None) -> str | None:
    """The canonical class ``label`` stands for, or None when it names none.

    Case-insensitive; surrounding blanks are ignored; a bilingual label ``<other>/<english>``
    (emotion2vec writes ``生气/angry``) is read by its last part.
    """
    if label is None:
        return None
    text = str(label).strip()
    if "/" in text:
        text = text.rsplit("/", 1)[1].strip()
    low = text.lower()
    return _BY_LOWER.get(low) or ALIASES.get(low)


def canonical_classes(names: Iterable[str], what: str = "--classes") -> tuple[str, ...]:
    """Canonical classes of user-given ``names`` (order kept, duplicates dropped); an unknown
    name is an :class:`EmoboxUsageError` suggesting close ones."""
    out: list[str] = []
    for name in names:
        name = str(name).strip()
        if not name:
            continue
        cls = canonical(name)
        if cls is None:
            close = close_names(name.lower(), list(_BY_LOWER) + list(ALIASES))
            hint = (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else
                    f"; known classes: {', '.join(CANONICAL)}")
            raise EmoboxUsageError(f"{what}: {name!r} is not an emotion class emobox knows{hint}")
        if cls not in out:
            out.append(cls)
    if not out:
        raise EmoboxUsageError(f"{what}: no class given")
    return tuple(out)


def raw_labels_of(label_map: Mapping[str, str], cls: str) -> list[str]:
    """The raw labels a corpus's ``label_map`` maps to class ``cls`` (sorted)."""
    return sorted(raw for raw, c in label_map.items() if c == cls)
