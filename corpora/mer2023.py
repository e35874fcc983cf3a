"""mer2023: MER2023 (Multimodal Emotion Recognition challenge 2023), Mandarin film and TV clips.

What it is
    Video clips (AVI or MP4) from Chinese films and TV series, one speaker and one discrete
    emotion per clip: 3,373 labelled training clips (MER-MULTI train), test1 (411), test2 (412,
    the noisy MER-NOISE track) and test3 (834, MER-SEMI). Audio at 44.1, 48 or 16 kHz; 5.9 h
    over the four parts.
License and source
    Academic use by agreement (EULA of the MER challenge): http://merchallenge.cn/ and
    https://github.com/zeroQiaoba/MER2023-Baseline. Lian et al., "MER 2023: Multi-label
    Learning, Modality Robustness, and Semi-Supervised Learning", ACM MM 2023.
Layout expected
    ``mer2023train/train-label.csv`` with clips in ``mer2023train/train/``,
    ``test-labels/test{1,2,3}-label.csv``, clips in ``test1/``, ``test2/`` and
    ``mer2023train/test3/``. A clip is ``<name>.avi``, else ``<name>.mp4``.
Labels
    The ``discrete`` column, matched on ``name``: angry, happy, neutral, sad, surprise, worried
    (capitalised). A name that appears in an earlier sheet is skipped in later ones (reported).
Speakers
    None: EmoBox used the clip name (``.avi`` stripped, ``.mp4`` kept) as the speaker, one per
    clip; kept as the speaker field, and ``has_speaker_ids`` is False.
Keys
    ``mer2023-<name>`` for AVI clips and ``mer2023-<name>.mp4`` for MP4 clips, as EmoBox wrote
    them.
How EmoBox split it
    One fold: train = the training sheet, test = test1 only. The test2 and test3 clips (1,246)
    are scanned but belong to no split: they never train, validate or test (test_fold -1).
    Validation: a seeded stratified 20% of the training part. The sheets test2/test3 are
    optional here; without them those clips are simply not scanned.
"""

from __future__ import annotations

from typing import Mapping

from emobox import FoldTableRow, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

PARTS = (  # split, label sheet, clip folder, required
    ("train", "mer2023train/train-label.csv", "mer2023train/train", True),
    ("test1", "test-labels/test1-label.csv", "test1", True),
    ("test2", "test-labels/test2-label.csv", "test2", False),
    ("test3", "test-labels/test3-label.csv", "mer2023train/test3", False),
)
NO_SPLIT_FOLDERS = ("test2/", "mer2023train/test3/")


class MER2023(MetadataCorpus):
    name = "mer2023"
    description = "MER2023: Mandarin film/TV clips, 6 emotions; train vs test1 (5030 clips)"
    languages = ("Mandarin",)
    license = "academic use by agreement (MER challenge EULA)"
    homepage = "https://github.com/zeroQiaoba/MER2023-Baseline"
    citation = ("Z. Lian et al.: MER 2023: Multi-label Learning, Modality Robustness, and "
                "Semi-Supervised Learning. ACM Multimedia 2023")
    labels = ("Angry", "Happy", "Neutral", "Sad", "Surprise", "Worried")
    label_map = {"angry": "Angry", "happy": "Happy", "neutral": "Neutral", "sad": "Sad",
                 "surprise": "Surprise", "worried": "Worried"}
    has_speaker_ids = False
    audio_suffixes = (".avi", ".mp4")
    expected_top_level = ("mer2023train/ (train-label.csv, train/, test3/), test-labels/, "
                          "test1/ and test2/")
    markers = ("mer2023train/train-label.csv", "test-labels")

    @classmethod
    def reference_fold_row(cls, row: Mapping[str, str]) -> FoldTableRow:
        if row["path"].startswith(NO_SPLIT_FOLDERS):
            return FoldTableRow(-1, False)  # test2 / test3: in no split (the table says 0)
        return super().reference_fold_row(row)

    def scan(self):
        utts, seen = [], {}
        for split, sheet, folder, required in PARTS:
            if not required and self.find_file(sheet) is None:
                self.skipped.append((sheet, f"label sheet not found; {split} clips (in no "
                                            f"split) are not scanned"))
                continue
            path = self.metadata_file(sheet, what=f"{split} label sheet")
            source = self.rel(path)
            index = self.audio_index(folder)
            for lineno, row in self.read_table(path, ("name", "discrete")):
                name = row["name"]
                if name in seen:
                    self.skipped.append((f"{source}:{lineno}", f"{name} already labelled in "
                                                               f"{seen[name]}; ignored"))
                    continue
                seen[name] = source
                raw = row["discrete"]
                label = self.map_label(raw, source)
                rel = index.find(f"{folder}/{name}.avi")
                clip = name
                if rel is None:
                    rel, clip = index.find(f"{folder}/{name}.mp4"), f"{name}.mp4"
                if rel is None:
                    self.report_missing(f"{folder}/{name}.avi (or .mp4)", source)
                    continue
                utts.append(Utterance(key=f"mer2023-{clip}", path=rel, label=label,
                                      raw_label=raw, speaker=clip, custom={"split": split}))
            self.report_unused(index, source)
        return self.make_manifest(utts)


@hookimpl
def emobox_corpora():
    return [corpus_spec(MER2023)]
