"""emozionalmente: Emozionalmente, crowd-sourced Italian acted speech.

What it is
    6,902 recordings of 431 non-professional Italian speakers, who acted 18 sentences in 7
    emotions through a web app (2021); WAV at 16 kHz (6,752) or 44.1 kHz (150), 6.3 h.
License and source
    Open access on Zenodo (licence on the record): https://zenodo.org/records/6569824.
    Catania, Wilke and Garzotto, "Emozionalmente: A Crowdsourced Corpus of Simulated Emotional
    Speech in Italian", IEEE/ACM Trans. Audio, Speech and Language Processing 33, 2025. The
    record also ships its own speaker-independent train/dev/test split, which EmoBox did not
    use.
Layout expected
    ``audio/<epoch-ms>.wav`` and ``metadata/samples.csv`` (plus ``metadata/users.csv``: speaker
    gender and age, not needed for labels).
Labels
    ``samples.csv`` matched on ``file_name``, column ``emotion_expressed``: anger -> Angry,
    disgust -> Disgust, fear -> Fear, joy -> Happy, neutrality -> Neutral, sadness -> Sad,
    surprise -> Surprise (986 each).
Speakers
    The ``actor`` column: a 64-hex hash of the username (431 actors; 44 have one clip, the
    largest 105).
Keys
    ``emozionalmente-<file stem>`` with ``_`` written ``-``, as EmoBox did.
How EmoBox split it
    One speaker-dependent fold: 25% of each emotion in test (1,722 / 5,180), drawn at random,
    although the corpus has 431 speakers (their clip counts differ, so EmoBox's speaker rule
    fell back). Validation: a seeded stratified 20% of the training part.
"""

from __future__ import annotations

from pathlib import Path

from emobox import Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus


class Emozionalmente(MetadataCorpus):
    name = "emozionalmente"
    description = "Emozionalmente: 431 crowd-sourced Italian speakers, 7 emotions (6902 utterances)"
    languages = ("Italian",)
    license = "open access (see the Zenodo record)"
    homepage = "https://zenodo.org/records/6569824"
    citation = ("F. Catania, J. W. Wilke, F. Garzotto: Emozionalmente: A Crowdsourced Corpus of "
                "Simulated Emotional Speech in Italian. IEEE/ACM TASLP 33, 2025")
    labels = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    label_map = {"anger": "Angry", "disgust": "Disgust", "fear": "Fear", "joy": "Happy",
                 "neutrality": "Neutral", "sadness": "Sad", "surprise": "Surprise"}
    audio_suffixes = (".wav",)
    expected_top_level = "audio/ and metadata/samples.csv"
    markers = ("metadata/samples.csv", "metadata/users.csv")

    def scan(self):
        path = self.metadata_file("metadata/samples.csv", what="sample sheet")
        source = self.rel(path)
        entries: dict[str, tuple[int, dict]] = {}
        for lineno, row in self.read_table(path, ("file_name", "actor", "emotion_expressed")):
            folded = row["file_name"].casefold()
            if folded in entries:
                self.skipped.append((f"{source}:{lineno}", f"second row for {row['file_name']} "
                                     f"(first at line {entries[folded][0]}) ignored"))
                continue
            entries[folded] = (lineno, row)
        index = self.audio_index("audio" if (self.root / "audio").is_dir() else "")
        utts, named = [], set()
        for rel in index.paths:
            name = rel.rsplit("/", 1)[-1]
            entry = entries.get(name.casefold())
            if entry is None:
                continue
            index.mark_used(rel)
            named.add(name.casefold())
            row = entry[1]
            raw = row["emotion_expressed"]
            utts.append(Utterance(
                key=f"emozionalmente-{Path(name).stem.replace('_', '-')}", path=rel,
                speaker=row["actor"], raw_label=raw, label=self.map_label(raw, source)))
        for folded, (lineno, row) in entries.items():
            if folded not in named:
                self.report_missing(f"audio/{row['file_name']}", f"{source}:{lineno}")
        self.report_unused(index, source)
        return self.make_manifest(utts)


@hookimpl
def emobox_corpora():
    return [corpus_spec(Emozionalmente)]
