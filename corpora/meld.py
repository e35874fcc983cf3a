"""meld: MELD (Multimodal EmotionLines Dataset), English TV dialogues (Friends).

What it is
    13,708 utterances from 1,433 dialogues of the TV series Friends, each an MP4 clip with
    48 kHz audio, labelled with one of 7 emotions by 3 annotators (majority). EmoBox keeps
    13,706 (two clips failed to load for it), 12.1 h.
License and source
    GPL-3.0; https://affective-meld.github.io/ (``MELD.Raw.tar.gz``). Poria et al., "MELD: A
    Multimodal Multi-Party Dataset for Emotion Recognition in Conversations", ACL 2019.
Layout expected
    EmoBox's layout: ``train/train_splits/dia<D>_utt<U>.mp4`` with ``train/train_sent_emo.csv``,
    ``dev_splits_complete/`` with ``dev_sent_emo.csv`` and ``output_repeated_splits_test/`` with
    ``test_sent_emo.csv``. The flat layout of the extracted release (``train_splits/`` and all
    three CSVs at the top level) is accepted too.
Labels
    The ``Emotion`` column of the split's CSV, matched on ``Dialogue_ID``/``Utterance_ID``:
    anger -> Angry, disgust -> Disgust, fear -> Fear, joy -> Happy, neutral -> Neutral,
    sadness -> Sad, surprise -> Surprise.
Speakers
    The ``Speaker`` column with spaces replaced by ``-`` (``1st-Customer``); 304 names, some of
    them roles rather than people.
Keys and channels
    Dialogue and utterance numbers restart in each split, so keys end in ``-train``, ``-dev``
    or ``-test`` (``meld-dia0_utt0-dev``). Most clips carry 5.1 audio: EmoBox records channel 3
    (front centre, the dialogue channel) for every clip that is not stereo and channel 1 for
    stereo ones, and its extraction read that one channel. Those channels are used for the
    clips its table lists, in every scheme; a clip it does not list reads its first channel in
    scheme ``emobox`` (as EmoBox's loader would) and is mixed down in the others.
Quirks
    CSV text may hold Windows-1252 characters (read as such when not UTF-8). Three clips run
    over 30 s (up to 305 s) and 237 under 0.3 s; all are kept.
How EmoBox split it
    The official split, one fold: train = train CSV, validation = dev CSV (official), test =
    test CSV. Speakers recur across the splits (the main characters), so the split is not
    speaker-independent. The two clips EmoBox's table lacks (one train clip and dev
    ``dia110_utt7``, which the release ships damaged) are in no split and never read; ``emobox
    corpora check`` lists them.
"""

from __future__ import annotations


from emobox import Utterance, hookimpl

from ._emobox import corpus_spec, reference_rows
from ._metadata import MetadataCorpus

SPLITS = (  # split, CSV candidates, clip folder candidates (EmoBox's first)
    ("train", ("train/train_sent_emo.csv", "train_sent_emo.csv"),
     ("train/train_splits", "train_splits")),
    ("dev", ("dev_sent_emo.csv", "dev/dev_sent_emo.csv"),
     ("dev_splits_complete", "dev/dev_splits_complete")),
    ("test", ("test_sent_emo.csv", "test/test_sent_emo.csv"),
     ("output_repeated_splits_test", "test/output_repeated_splits_test")),
)
CSV_HEADER = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID",
              "Utterance_ID", "Season", "Episode", "StartTime", "EndTime")


class MELD(MetadataCorpus):
    name = "meld"
    description = "MELD: Friends TV dialogues, 7 emotions, official split (13706 utterances)"
    languages = ("English",)
    license = "GPL-3.0"
    homepage = "https://affective-meld.github.io/"
    citation = ("S. Poria et al.: MELD: A Multimodal Multi-Party Dataset for Emotion Recognition "
                "in Conversations. ACL 2019")
    labels = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    label_map = {"anger": "Angry", "disgust": "Disgust", "fear": "Fear", "joy": "Happy",
                 "neutral": "Neutral", "sadness": "Sad", "surprise": "Surprise"}
    official_valid = True
    audio_suffixes = (".mp4",)
    expected_top_level = ("train/train_splits/ with train/train_sent_emo.csv, "
                          "dev_splits_complete/ with dev_sent_emo.csv, "
                          "output_repeated_splits_test/ with test_sent_emo.csv")
    markers = ("dev_sent_emo.csv", "train/train_sent_emo.csv", "train_sent_emo.csv")

    def scan(self):
        channels = {r["key"]: int(r["channel"]) for r in reference_rows(self.name)}
        utts: list[Utterance] = []
        for split, csv_candidates, folders in SPLITS:
            csv_path = self.metadata_file(*csv_candidates, what=f"MELD {split} label sheet")
            source = self.rel(csv_path)
            folder = next((f for f in folders if (self.root / f).is_dir()), folders[0])
            index = self.audio_index(folder)
            seen: dict[str, int] = {}
            rows = self.read_table(csv_path, ("Dialogue_ID", "Utterance_ID", "Speaker",
                                              "Emotion"))
            for lineno, row in rows:
                dia = self.int_field(row, "Dialogue_ID", csv_path, lineno)
                clip = f"dia{dia}_utt{self.int_field(row, 'Utterance_ID', csv_path, lineno)}"
                if clip in seen:
                    self.skipped.append((f"{source}:{lineno}", f"second row for {clip} "
                                         f"(first at line {seen[clip]}) ignored"))
                    continue
                seen[clip] = lineno
                raw = row["Emotion"]
                label = self.map_label(raw, source)
                rel = index.find(f"{folder}/{clip}.mp4")
                if rel is None:
                    self.report_missing(f"{folder}/{clip}.mp4", source)
                    continue
                key = f"meld-{clip}-{split}"
                utts.append(Utterance(
                    key=key, path=rel, label=label, raw_label=raw,
                    speaker=row["Speaker"].replace(" ", "-"), channel=channels.get(key),
                    custom={"split": split}))
            self.report_unused(index, source)
        return self.make_manifest(utts)


@hookimpl
def emobox_corpora():
    return [corpus_spec(MELD)]
