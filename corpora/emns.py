"""emns: EMNS (Emotive Narrative Storytelling), English acted speech of one voice.

What it is
    1,181 short utterances (WebM/Opus, 48 kHz, 1.9 h) of narrative sentences read by a single
    female voice actor in 8 emotions, collected for expressive speech synthesis.
License and source
    As stated on the dataset card, https://huggingface.co/datasets/knoriy/EMNS (the collection
    tool is Apache-2.0). Noriy et al., "EMNS /Imz/ Corpus:
    An emotive single-speaker dataset for narrative storytelling in games, television and
    graphic novels", 2023.
Layout expected
    ``metadata.csv`` (pipe-separated) and ``cleaned_webm/<name>.webm``.
Labels
    The ``emotion`` column of the ``metadata.csv`` row whose ``audio_recording`` is
    ``wavs/<name>.webm``: Angry, Disgust, Excited, Happy, Neutral, Sad, Sarcastic, and
    Surprised -> Surprise (EmoBox's renaming).
Speakers
    None in the metadata: EmoBox wrote the constant ``3`` for every utterance, kept here as the
    speaker field. There is one voice, so no speaker-independent split exists
    (``has_speaker_ids`` is False).
How EmoBox split it
    One speaker-dependent fold: 25% of each emotion in test (291 / 890), drawn at random.
    Validation: a seeded stratified 20% of the training part.
"""

from __future__ import annotations

from pathlib import Path

from emobox import Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

HEADER = ("id", "utterance", "description", "emotion", "date_created", "status", "gender", "age",
          "level", "audio_recording")


class EMNS(MetadataCorpus):
    name = "emns"
    description = "EMNS: one English voice actor, 8 emotions, narrative sentences (1181 utterances)"
    languages = ("English",)
    license = "see the dataset card (huggingface.co/datasets/knoriy/EMNS)"
    homepage = "https://huggingface.co/datasets/knoriy/EMNS"
    citation = ("K. A. Noriy, X. Yang, J. J. Zhang: EMNS /Imz/ Corpus: An emotive single-speaker "
                "dataset for narrative storytelling in games, television and graphic novels. "
                "arXiv:2305.13137, 2023")
    labels = ("Angry", "Disgust", "Excited", "Happy", "Neutral", "Sad", "Sarcastic", "Surprise")
    label_map = {**{c: c for c in labels}, "Surprised": "Surprise"}
    has_speaker_ids = False
    audio_suffixes = (".webm",)
    expected_top_level = "metadata.csv (pipe-separated) and cleaned_webm/"
    markers = ("cleaned_webm",)

    def scan(self):
        path = self.metadata_file("metadata.csv", what="metadata sheet")
        source = self.rel(path)
        entries: dict[str, tuple[int, str, str]] = {}  # folded name -> line, emotion, name
        for lineno, row in self.read_table(path, ("emotion", "audio_recording"), delimiter="|"):
            name = row["audio_recording"].rsplit("/", 1)[-1]
            if name.casefold() in entries:
                self.skipped.append((f"{source}:{lineno}", f"second row for {name} (first at "
                                     f"line {entries[name.casefold()][0]}) ignored"))
                continue
            entries[name.casefold()] = (lineno, row["emotion"], name)
        index = self.audio_index("cleaned_webm")
        utts, named = [], set()
        for rel in index.paths:
            name = rel.rsplit("/", 1)[-1]
            entry = entries.get(name.casefold())
            if entry is None:
                continue  # reported below as audio without an entry
            index.mark_used(rel)
            named.add(name.casefold())
            raw = entry[1]
            utts.append(Utterance(key=f"emns-{Path(name).stem}", path=rel, speaker="3",
                                  raw_label=raw, label=self.map_label(raw, source)))
        for folded, (lineno, _, name) in entries.items():
            if folded not in named:
                self.report_missing(f"cleaned_webm/{name}", f"{source}:{lineno}")
        self.report_unused(index, source)
        return self.make_manifest(utts)


@hookimpl
def emobox_corpora():
    return [corpus_spec(EMNS)]
