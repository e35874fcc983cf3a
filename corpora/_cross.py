"""EmoBox's cross-corpus test sets (its track 2), resolved to the adapters' utterance keys.

``reference/cross_corpus/<corpus>.jsonl`` holds EmoBox's four balanced sets as published
(``data/track2/<X>_selected_balenced.jsonl``): 240 rows each, 60 per class of angry, happy,
neutral and sad, with fields ``wav_filename`` (a path under EmoBox's own converted copy of the
corpus, not the download's layout), ``label`` and ``speaker``. Each row is resolved here to
exactly one key of the corpus adapter, and the resolution is checked: the key must exist in
EmoBox's reference table with the same class (through the canonical vocabulary) and the same
speaker, else building the set fails naming the row.

How the paths map
    IEMOCAP ``<class>/<utterance id>.wav`` -> ``iemocap-<utterance id>``. The set's speaker is
    EmoBox's (the dialog prefix without ``Ses``: ``02F``), so its 10 x 6-per-class structure is
    per session side, not per talking actor (by actor the sets hold 19 to 29 utterances each).
    RAVDESS ``Actor_<NN>/<name>.wav`` -> ``ravdess-<name>``.
    SAVEE ``<SPK>/<code><NN>.wav`` -> ``savee-<SPK>-<code><NN>``.
    MELD ``audio/dia<D>_utt<U>.wav`` lost the split: dialogue and utterance numbers restart in
    train, dev and test, so the path names up to three clips. The row's speaker and class pick
    one in 236 of 240 rows. ``audio/final_videos_testdia<D>_utt<U>.wav`` (2 rows) is the test
    folder's second copy of ``dia<D>_utt<U>``: the test clip. Two rows (``dia208_utt1`` and
    ``dia252_utt15``, both Joey, neutral) fit a test and a train clip alike; they resolve to the
    test clip, as the set itself most often is where speaker and class decide: of the 32 other
    rows whose number exists in both test and train, 25 are the test clip, 3 the train clip and
    4 the dev clip. The train clip of the same number is kept out of training too
    (``also_excluded``), so that neither can leak.
"""

from __future__ import annotations

import functools
import json
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Callable

from emobox import DataError
from emobox.datasets.balanced import BalancedItem, BalancedSet
from emobox.datasets.labels import canonical

from ._reference import REFERENCE, reference_rows

if TYPE_CHECKING:
    from ._emobox import EmoboxCorpus

CROSS_DIR = REFERENCE / "cross_corpus"
SOURCE_NAMES = {"iemocap": "IEMOCAP", "meld": "MELD", "ravdess": "RAVDESS", "savee": "SAVEE"}
MELD_SPLIT_PREFERENCE = ("test", "dev", "train")


def _iemocap(path: PurePosixPath) -> list[str]:
    return [f"iemocap-{path.stem}"]


def _meld(path: PurePosixPath) -> list[str]:
    stem = path.stem
    if stem.startswith("final_videos_test"):
        return [f"meld-{stem[len('final_videos_test'):]}-test"]
    return [f"meld-{stem}-{split}" for split in MELD_SPLIT_PREFERENCE]


def _ravdess(path: PurePosixPath) -> list[str]:
    return [f"ravdess-{path.stem}"]


def _savee(path: PurePosixPath) -> list[str]:
    return [f"savee-{path.parent.name}-{path.stem}"]


# EmoBox path -> candidate keys, most preferred first
RESOLVERS: dict[str, Callable[[PurePosixPath], list[str]]] = {
    "iemocap": _iemocap, "meld": _meld, "ravdess": _ravdess, "savee": _savee}
# the set's speaker -> the reference table's speaker column
TABLE_SPEAKER: dict[str, Callable[[str], str]] = {"iemocap": lambda s: f"Ses{s}"}


def has_cross_set(name: str) -> bool:
    return name in RESOLVERS and (CROSS_DIR / f"{name}.jsonl").is_file()


def emobox_cross_rows(name: str) -> list[dict]:
    """EmoBox's published rows of ``name``'s cross-corpus test set."""
    text = (CROSS_DIR / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@functools.lru_cache(maxsize=None)
def _resolved(cls: type[EmoboxCorpus]) -> BalancedSet:
    name = cls.table_name()
    resolver = RESOLVERS[name]
    table_speaker = TABLE_SPEAKER.get(name, lambda s: s)
    ref = {r["key"]: r for r in reference_rows(name)}
    items = []
    where = f"reference/cross_corpus/{name}.jsonl"
    for lineno, row in enumerate(emobox_cross_rows(name), start=1):
        label = canonical(row["label"])
        if label is None:
            raise DataError(f"{where}:{lineno}: unknown class {row['label']!r}")
        candidates = [k for k in resolver(PurePosixPath(row["wav_filename"])) if k in ref]
        fits = [k for k in candidates if cls.reference_label(ref[k]) == label
                and ref[k]["speaker"] == table_speaker(row["speaker"])]
        if not fits:
            raise DataError(f"{where}:{lineno}: {row['wav_filename']} ({row['label']}, speaker "
                            f"{row['speaker']}) matches no utterance of EmoBox's {name} table "
                            f"(candidates: {', '.join(candidates) or 'none'})")
        items.append(BalancedItem(fits[0], label, str(row["speaker"]), row["wav_filename"],
                                  tuple(fits[1:])))
    source = SOURCE_NAMES.get(name, name)
    origin = f"EmoBox cross-corpus test set (data/track2/{source}_selected_balenced.jsonl)"
    return BalancedSet(cls.name, tuple(items), origin)


def emobox_balanced_set(cls: type[EmoboxCorpus]) -> BalancedSet:
    """EmoBox's balanced test set of adapter ``cls``, by the adapter's keys."""
    return _resolved(cls)
