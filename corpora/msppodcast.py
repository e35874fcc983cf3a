"""msppodcast: MSP-Podcast, English natural speech from podcasts.

What it is
    Speaking turns cut from podcasts (CC-licensed audio), each rated by crowd workers for a
    primary emotion and for arousal/valence/dominance; 16 kHz WAV. Release 1.8, which EmoBox
    used, holds 73,042 labelled turns (Train 44,879, Validation 7,800, Test1 15,326, Test2
    5,041); EmoBox's published lists hold the 15,326 test and 7,800 validation turns.
License and source
    Academic licence from UT Dallas MSP lab:
    https://ecs.utdallas.edu/research/researchgroups/msp/MSP-Podcast.html. Lotfian and Busso,
    "Building naturalistic emotionally balanced speech corpus by retrieving emotional speech
    from existing podcast recordings", IEEE Trans. Affective Computing 10(4), 2019.
Layout expected
    ``Audio/MSP-PODCAST_<pppp>_<ssss>[_<kkkk>].wav`` and the consensus labels: EmoBox's
    ``label/labels_concensus.json`` (its spelling), or the release's
    ``Labels/labels_consensus.json`` or ``Labels/labels_consensus.csv``.
Labels
    ``EmoClass``: A -> Angry, C -> Contempt, D -> Disgust, F -> Fear, H -> Happy, N -> Neutral,
    S -> Sad, U -> Surprise, and, as EmoBox kept them, O -> Other and X -> No-agreement (10
    classes; X is 2,955 of the 15,326 test turns).
Speakers
    ``SpkrID`` (about 1,300 ids), read from the labels file as EmoBox did (its published table
    carries no speakers for this corpus). The release writes ``Unknown`` where the speaker is
    not identified; those turns keep that value and so form one group: the
    ``speaker-independent`` scheme puts all of them on the same side of every fold, so no
    identified speaker, and no unidentified one, is in both train and test.
How EmoBox split it
    The official partition, one fold: train = ``Split_Set`` Train, validation = Validation
    (official), test = Test1; Test2 (and later releases' Test3) are in no split. The table
    EmoBox published lists only the test and validation turns: train turns come from the labels
    file; a test or validation turn the table lacks is in no split. Later releases call the
    validation part ``Development``; both are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from emobox import DataError, FoldTableRow, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

LABEL_FILES = ("label/labels_concensus.json", "Labels/labels_consensus.json",
               "Labels/labels_consensus.csv", "label/labels_consensus.json",
               "Labels/labels_concensus.json")


class MSPPodcast(MetadataCorpus):
    name = "msppodcast"
    description = "MSP-Podcast: English podcast speech, 10 classes incl. Other/No-agreement"
    languages = ("English",)
    license = "academic licence (UT Dallas MSP lab)"
    homepage = "https://ecs.utdallas.edu/research/researchgroups/msp/MSP-Podcast.html"
    citation = ("R. Lotfian, C. Busso: Building naturalistic emotionally balanced speech corpus "
                "by retrieving emotional speech from existing podcast recordings. IEEE Trans. "
                "Affective Computing 10(4), 2019")
    labels = ("Angry", "Contempt", "Disgust", "Fear", "Happy", "Neutral", "No-agreement",
              "Other", "Sad", "Surprise")
    label_map = {"A": "Angry", "C": "Contempt", "D": "Disgust", "F": "Fear", "H": "Happy",
                 "N": "Neutral", "O": "Other", "S": "Sad", "U": "Surprise", "X": "No-agreement"}
    official_valid = True
    train_splits = frozenset({"Train"})  # the part EmoBox's published table does not list
    audio_suffixes = (".wav",)
    expected_top_level = ("Audio/ and label/labels_concensus.json (or the release's "
                          "Labels/labels_consensus.json or .csv)")
    markers = ("Audio/MSP-PODCAST_*", "label/labels_concensus.json", "Labels/labels_consensus.*")

    def scan(self):
        path = self.metadata_file(*LABEL_FILES, what="consensus label file")
        source = self.rel(path)
        entries = self._entries(path)
        index = self.audio_index("Audio")
        utts = []
        for name, fields in entries:
            raw = str(fields.get("EmoClass", "")).strip()
            label = self.map_label(raw, source)
            rel = index.find(f"Audio/{name}")
            if rel is None:
                self.report_missing(f"Audio/{name}", source)
                continue
            speaker = str(fields.get("SpkrID", "")).strip()
            if not speaker:
                raise DataError(f"{self.name}: {source}: {name} has no SpkrID (the release "
                                f"writes 'Unknown' for unidentified speakers)", path=str(path))
            utts.append(Utterance(
                key=f"msppodcast-{name.split('.')[0]}", path=rel, label=label, raw_label=raw,
                speaker=speaker, custom={"split": str(fields.get("Split_Set", "")).strip()}))
        self.report_unused(index, source)
        return self.make_manifest(utts)

    def unlisted_fold_row(self, utt: Utterance) -> FoldTableRow | None:
        """EmoBox's table lists only the test and validation turns: a training turn of the
        labels file trains; any other turn the table lacks is in no split."""
        if utt.custom.get("split") in self.train_splits:
            return FoldTableRow(0, False)
        return None

    def _entries(self, path: Path) -> list[tuple[str, Mapping]]:
        if path.suffix.lower() == ".csv":
            rows = self.read_table(path, ("FileName", "EmoClass", "SpkrID", "Split_Set"))
            return [(row["FileName"], row) for _, row in rows]
        data = self.load_json(path)
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise DataError(f"{self.name}: {path} should map each file name to its fields "
                            f"(EmoClass, SpkrID, Split_Set)", path=str(path))
        return list(data.items())


@hookimpl
def emobox_corpora():
    return [corpus_spec(MSPPodcast)]
