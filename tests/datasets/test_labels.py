"""The canonical emotion vocabulary and the label harmonisation of the cross-corpus corpora."""

from __future__ import annotations

import pytest

from emobox import EmoboxUsageError
from emobox.datasets.labels import CANONICAL, CROSS_CORPUS_CLASSES, canonical, canonical_classes
from emobox.plugin.registry import get_registry


@pytest.mark.parametrize("text, cls", [
    ("angry", "Angry"), ("Anger", "Angry"), ("ANGRY", "Angry"), (" joy ", "Happy"),
    ("happiness", "Happy"), ("sadness", "Sad"), ("neutral", "Neutral"),
    ("surprised", "Surprise"), ("fearful", "Fear"), ("disgusted", "Disgust"),
    ("生气/angry", "Angry"), ("开心/happy", "Happy"), ("难过/sad", "Sad"),
    ("中立/neutral", "Neutral"),
])
def test_canonical_reads_words_and_bilingual_labels(text, cls):
    assert canonical(text) == cls


@pytest.mark.parametrize("text", ["a", "sa", "ang", "exc", "05", "<unk>", "", "calmness"])
def test_corpus_codes_and_unknown_words_are_not_classes(text):
    # corpus-specific codes mean something only in their corpus's label map
    assert canonical(text) is None


def test_canonical_classes_keeps_order_and_drops_duplicates():
    assert canonical_classes(["sad", "anger", "Angry", "joy"]) == ("Sad", "Angry", "Happy")
    assert canonical_classes("angry,happy,neutral,sad".split(",")) == CROSS_CORPUS_CLASSES


def test_unknown_class_name_is_a_usage_error_with_suggestions():
    with pytest.raises(EmoboxUsageError, match=r"'sadnes' is not an emotion class.*'sadness'"):
        canonical_classes(["angry", "sadnes"])


# The harmonisation of the four cross-corpus corpora, written out: raw label (as each corpus
# writes it) -> the class shared across corpora. The adapters' label maps must agree.
HARMONISATION = {
    "iemocap": {"ang": "Angry", "hap": "Happy", "exc": "Happy", "neu": "Neutral", "sad": "Sad"},
    "meld": {"anger": "Angry", "joy": "Happy", "neutral": "Neutral", "sadness": "Sad"},
    "ravdess": {"Angry": "Angry", "Happy": "Happy", "Neutral": "Neutral", "Sad": "Sad"},
    "savee": {"a": "Angry", "h": "Happy", "n": "Neutral", "sa": "Sad"},
}


@pytest.mark.parametrize("name", sorted(HARMONISATION))
def test_cross_corpus_label_maps_harmonise_to_the_shared_classes(name):
    cls = get_registry().corpus(name).build
    shared = {raw: c for raw, c in cls.label_map.items() if c in CROSS_CORPUS_CLASSES}
    assert shared == HARMONISATION[name]
    assert set(CROSS_CORPUS_CLASSES) <= set(cls.labels)


def test_ravdess_codes_reach_the_shared_classes():
    from emobox.corpora.ravdess import EMOTIONS, Ravdess

    codes = {code: Ravdess.label_map[name] for code, name in EMOTIONS.items()
             if Ravdess.label_map[name] in CROSS_CORPUS_CLASSES}
    assert codes == {"05": "Angry", "03": "Happy", "01": "Neutral", "04": "Sad"}


def test_every_corpus_spells_canonical_classes_canonically():
    """No adapter may call a canonical class by another name ('Anger', 'happiness'), or the
    cross-corpus track would not see the class as shared."""
    bad = []
    for spec in get_registry().specs("corpus"):
        for label in getattr(spec.build, "labels", ()) or ():
            cls = canonical(label)
            if cls is not None and cls != label:
                bad.append((spec.name, label, cls))
    assert bad == []
    assert set(CROSS_CORPUS_CLASSES) <= set(CANONICAL)
