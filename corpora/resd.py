"""resd: RESD (Russian Emotional Speech Dialogs), Russian acted dialogues.

What it is
    1,396 utterances cut from about 3.5 hours of acted dialogues: pairs of actors, each voicing
    an assigned emotion for about 3 minutes; WAV at 16 kHz (716) or 44.1 kHz (680), 2.3 h.
License and source
    MIT (Aniemore project); https://huggingface.co/datasets/Aniemore/resd and
    https://github.com/aniemore/Aniemore. Lubenets, Davidchuk, Amentes, "Aniemore", 2022.
Layout expected
    ``train.csv`` and ``test.csv`` at the top level; audio in ``train/<dialog>/<file>.wav`` and
    ``test/<dialog>/<file>.wav`` (dialog folders such as ``01_happiness_anger``; file names may
    contain spaces, e.g. ``01_happiness_anger a_010.wav``).
Labels
    The sheet's ``emotion`` column; its ``path`` column gives the file under ``train/`` or
    ``test/``. anger -> Angry, disgust -> Disgust, enthusiasm -> Enthusiastic, fear -> Fear,
    happiness -> Happy, neutral -> Neutral, sadness -> Sad. The dialog folder names the
    dialogue's two emotions, so it is not the label.
Speakers
    None in the release: EmoBox used the file name (with ``.wav`` and any space) as the
    speaker, 1,396 "speakers" against the 200 actors the paper reports; kept as the speaker
    field, and ``has_speaker_ids`` is False. The dialog folder (50 dialogues) is the nearest
    proxy for who speaks.
Keys
    ``resd-<file name>`` including ``.wav``, as EmoBox wrote them.
How EmoBox split it
    The official sheets: one fold, train.csv (1,116) trains and test.csv (280) tests, not
    speaker-independent. Validation: a seeded stratified 20% of the training part.
"""

from __future__ import annotations


from emobox import Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus


class RESD(MetadataCorpus):
    name = "resd"
    description = "RESD: Russian acted dialogues, 7 emotions, official train/test (1396 utterances)"
    languages = ("Russian",)
    license = "MIT"
    homepage = "https://huggingface.co/datasets/Aniemore/resd"
    citation = ("I. Lubenets, N. Davidchuk, A. Amentes: Aniemore: open library of artificial "
                "intelligence for emotion analysis in speech. Hugging Face, 2022")
    labels = ("Angry", "Disgust", "Enthusiastic", "Fear", "Happy", "Neutral", "Sad")
    label_map = {"anger": "Angry", "disgust": "Disgust", "enthusiasm": "Enthusiastic",
                 "fear": "Fear", "happiness": "Happy", "neutral": "Neutral", "sadness": "Sad"}
    has_speaker_ids = False
    audio_suffixes = (".wav",)
    expected_top_level = "train.csv, test.csv, train/ and test/"
    markers = ("train.csv", "test.csv")

    def scan(self):
        utts = []
        for split in ("train", "test"):
            sheet = self.metadata_file(f"{split}.csv", what=f"{split} sheet")
            source = self.rel(sheet)
            index = self.audio_index(split)
            for lineno, row in self.read_table(sheet, ("path", "emotion")):
                rel_in_split = row["path"].replace("\\", "/").lstrip("/")
                raw = row["emotion"]
                label = self.map_label(raw, source)
                expected = f"{split}/{rel_in_split}"
                rel = index.find(expected)
                if rel is None:
                    self.report_missing(expected, f"{source}:{lineno}")
                    continue
                name = rel_in_split.rsplit("/", 1)[-1]
                utts.append(Utterance(key=f"resd-{name}", path=rel, label=label, raw_label=raw,
                                      speaker=name, custom={"split": split}))
            self.report_unused(index, source)
        return self.make_manifest(utts)


@hookimpl
def emobox_corpora():
    return [corpus_spec(RESD)]
