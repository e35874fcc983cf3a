"""emodb: Berlin Database of Emotional Speech (EmoDB), German acted speech.

What it is
    535 utterances: 10 professional actors (5 female, 5 male) each say up to 10 everyday German
    sentences in 7 emotions; 16 kHz mono WAV, 0.41 h.
License and source
    Free for research; http://emodb.bilderbar.info/ (``download.zip``). Burkhardt et al., "A
    database of German emotional speech", Interspeech 2005.
Layout expected
    ``wav/<SS><text><E><v>.wav`` (e.g. ``wav/03a01Fa.wav``: speaker 03, text a01, emotion F,
    take a), plus EmoBox's ``lists/`` folder, which the official zip does not contain:
    ``lists/emotions/<emotion>.txt`` (file names per emotion: anger, boredem [sic], disgust,
    fear, happy, neutral, sad), ``lists/speakers/<male_03|female_08|...>.txt`` (file names per
    speaker) and ``lists/cv_k_fold1`` ... ``cv_k_fold5`` (EmoBox's test lists). Other official
    folders (``lablaut/``, ``silb/`` ...) are ignored.
Labels
    From ``lists/emotions/`` as EmoBox read them: anger -> Angry, boredem -> Boredom,
    disgust -> Disgust, fear -> Fear, happy -> Happy, neutral -> Neutral, sad -> Sad. Without a
    ``lists/`` folder the same labels come from the file name's 6th letter (W anger, L boredom,
    E disgust, A fear, F happiness, T sadness, N neutral), which the lists agree with.
Speakers
    The speaker list naming the file (``male_03`` ...); without ``lists/``, the same ids from the
    file name's first two digits and the corpus's documented genders.
Quirks
    EmoBox's label map has the key ``"Neutral"`` while the list is called ``neutral``, so its
    table keeps the unmapped ``neutral`` (79 utterances) and its own loader cannot use them. This
    adapter maps them to ``Neutral``, a deliberate deviation from EmoBox's table.
How EmoBox split it
    5 folds from ``lists/cv_k_fold1-5`` (107 test utterances each). Every fold holds all 10
    speakers: speaker-dependent 5-fold cross-validation, not stratified by emotion. Validation:
    a seeded stratified 20% of each fold's training part.
"""

from __future__ import annotations

from pathlib import Path

from emobox import DataError, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

EMOTION_LISTS = ("anger", "boredem", "disgust", "fear", "happy", "neutral", "sad")
LETTER_TO_LIST = {"W": "anger", "L": "boredem", "E": "disgust", "A": "fear", "F": "happy",
                  "N": "neutral", "T": "sad"}
SPEAKER_GENDER = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
                  "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}


class EmoDB(MetadataCorpus):
    name = "emodb"
    description = "Berlin EmoDB: 10 German actors, 7 emotions, acted (535 utterances)"
    languages = ("German",)
    license = "free for research (EmoDB terms)"
    homepage = "http://emodb.bilderbar.info/"
    citation = ("F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss: A database of "
                "German emotional speech. Interspeech 2005")
    labels = ("Angry", "Boredom", "Disgust", "Fear", "Happy", "Neutral", "Sad")
    label_map = {"anger": "Angry", "boredem": "Boredom", "disgust": "Disgust", "fear": "Fear",
                 "happy": "Happy", "neutral": "Neutral", "sad": "Sad"}
    reference_label_fixes = {"neutral": "Neutral"}
    audio_suffixes = (".wav",)
    expected_top_level = ("wav/ (e.g. wav/03a01Fa.wav) and EmoBox's lists/ folder (lists/emotions/"
                          "*.txt, lists/speakers/*.txt)")
    markers = ("wav/*.wav", "wav/*.WAV", "lists/emotions")

    def scan(self):
        index = self.audio_index("wav")
        if (self.root / "lists").is_dir():
            labels, speakers, source = self._read_lists()
        else:
            labels, speakers, source = self._from_file_names(index), None, "the file names"
        utts = []
        for name, (raw, list_file) in sorted(labels.items()):
            rel = index.find(f"wav/{name}")
            if rel is None:
                self.report_missing(f"wav/{name}", list_file)
                continue
            stem = Path(name).stem
            if speakers is None:
                speaker = f"{SPEAKER_GENDER.get(stem[:2], 'speaker')}_{stem[:2]}"
            elif name in speakers:
                speaker = speakers[name]
            else:
                raise DataError(f"{self.name}: {name} (in {list_file}) is in no speaker list "
                                f"under {self.root / 'lists' / 'speakers'}",
                                path=str(self.root / "lists" / "speakers"))
            utts.append(Utterance(key=f"emodb-{stem}", path=rel, speaker=speaker,
                                  raw_label=raw, label=self.map_label(raw, list_file)))
        self.report_unused(index, source)
        return self.make_manifest(utts)

    def _read_lists(self) -> tuple[dict[str, tuple[str, str]], dict[str, str], str]:
        emo_dir = self.root / "lists" / "emotions"
        for emotion in EMOTION_LISTS:
            self.metadata_file(f"lists/emotions/{emotion}.txt", what="EmoBox emotion list")
        labels: dict[str, tuple[str, str]] = {}
        for path in sorted(p for p in emo_dir.iterdir() if p.suffix.lower() == ".txt"
                           and not p.name.startswith(".")):
            raw, rel = path.stem, self.rel(path)
            self.map_label(raw, rel)  # an unknown list name is an unknown label
            for name in self._lines(path):
                if name in labels and labels[name][0] != raw:
                    raise DataError(f"{self.name}: {name} is in two emotion lists, "
                                    f"{labels[name][1]} and {rel}", path=str(path))
                labels[name] = (raw, rel)
        spk_dir = self.root / "lists" / "speakers"
        if not spk_dir.is_dir():
            raise DataError(f"{self.name}: speaker lists not found: looked for {spk_dir}/*.txt",
                            path=str(spk_dir))
        speakers: dict[str, str] = {}
        for path in sorted(spk_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                for name in self._lines(path):
                    speakers[name] = path.name.split(".")[0]
        return labels, speakers, "lists/emotions/*.txt"

    def _lines(self, path: Path) -> list[str]:
        return [line.strip() for line in self.read_text(path).splitlines() if line.strip()]

    def _from_file_names(self, index) -> dict[str, tuple[str, str]]:
        labels = {}
        for rel in index.paths:
            name = rel.split("/")[-1]
            stem = Path(name).stem
            letter = stem[5:6]
            if letter not in LETTER_TO_LIST:
                self.skipped.append((rel, f"no emotion letter at position 6 of {name!r}"))
                index.mark_used(rel)
                continue
            labels[f"{stem}.wav"] = (LETTER_TO_LIST[letter], rel)
        return labels


@hookimpl
def emobox_corpora():
    return [corpus_spec(EmoDB)]
