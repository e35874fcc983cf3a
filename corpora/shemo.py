"""shemo: ShEMO (Sharif Emotional Speech Database), Persian radio-play speech.

What it is
    3,000 semi-natural utterances of 87 speakers (31 female, 56 male) cut from Persian radio
    plays, labelled by majority vote of 12 annotators; WAV at 44.1 kHz (a few at 22.05 kHz).
    EmoBox keeps the 2,838 that ``shemo.json`` describes (3.3 h).
License and source
    Free for academic use; https://github.com/pariajm/sharif-emotional-speech-dataset (zips
    ``female.zip``, ``male.zip`` and the label file ``shemo.json``). Mohamad Nezami et al.,
    "ShEMO: a large-scale validated database for Persian speech emotion detection", LRE 53,
    2019.
Layout expected
    ``shemo.json``, ``female/F<SS><E><NN>.wav`` and ``male/M<SS><E><NN>.wav``.
Labels
    ``shemo.json`` keyed by file stem, field ``emotion`` (lower-cased): angry -> Angry,
    fearful -> Fear, happy -> Happy, neutral -> Neutral, sad -> Sad, surprised -> Surprise. The
    4th character of the file name agrees (A, F, H, N, S, W).
Speakers
    ``speaker_id`` (``F01`` ... ``M56``: 87 speakers). The repository's newer ``shemo.json``
    (a list of entries with ``id`` and no ``speaker_id``) is read too; the speaker is then the
    id's first three characters, which is what ``speaker_id`` holds.
Quirks
    The 162 recordings the JSON does not describe (their transcripts are misnamed in the
    release) are reported in ``skipped``, not scanned. Two files last 33 s; both are kept.
How EmoBox split it
    One speaker-dependent fold: 25% of each emotion in test (707 / 2,131), drawn at random.
    Validation: a seeded stratified 20% of the training part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from emobox import DataError, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus


class ShEMO(MetadataCorpus):
    name = "shemo"
    description = "ShEMO: 87 Persian radio-play speakers, 6 emotions (2838 utterances)"
    languages = ("Persian",)
    license = "free for academic use"
    homepage = "https://github.com/pariajm/sharif-emotional-speech-dataset"
    citation = ("O. Mohamad Nezami, P. Jamshid Lou, M. Karami: ShEMO: a large-scale validated "
                "database for Persian speech emotion detection. Language Resources and "
                "Evaluation 53, 2019")
    labels = ("Angry", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    label_map = {"angry": "Angry", "fearful": "Fear", "happy": "Happy", "neutral": "Neutral",
                 "sad": "Sad", "surprised": "Surprise"}
    audio_suffixes = (".wav",)
    expected_top_level = "shemo.json, female/ and male/"
    markers = ("shemo.json", "female/F[0-9][0-9]*.wav", "male/M[0-9][0-9]*.wav")

    def scan(self):
        path = self.metadata_file("shemo.json", what="label file")
        source = self.rel(path)
        index = self.audio_index()
        utts = []
        for stem, entry in self._entries(path):
            gender = str(entry.get("gender", "")).strip()
            expected = f"{gender}/{stem}.wav"
            raw = str(entry.get("emotion", "")).strip()
            label = self.map_label(raw.lower(), source)
            rel = index.find(expected)
            if rel is None:
                self.report_missing(expected, source)
                continue
            speaker = str(entry.get("speaker_id") or stem[:3])
            utts.append(Utterance(key=f"shemo-{stem}", path=rel, speaker=speaker,
                                  raw_label=raw, label=label))
        self.report_unused(index, source)
        return self.make_manifest(utts)

    def _entries(self, path: Path) -> list[tuple[str, Mapping]]:
        data = self.load_json(path)
        if isinstance(data, dict):
            return [(str(k), v) for k, v in data.items()]
        if isinstance(data, list) and all(isinstance(e, dict) and "id" in e for e in data):
            return [(str(e["id"]), e) for e in data]
        raise DataError(f"{self.name}: {path} should map file stems to their fields (or list "
                        f"entries with an 'id')", path=str(path))


@hookimpl
def emobox_corpora():
    return [corpus_spec(ShEMO)]
