"""m3ed: M3ED (Multi-modal Multi-scene Multi-label Emotional Dialogue), Mandarin TV series.

What it is
    24,449 dialogue utterances from 56 Chinese TV series, labelled with 7 emotions (main
    emotion by majority of annotators); 16 kHz WAV. EmoBox keeps 24,437 (12 annotated utterances
    have no usable audio), 9.8 h.
License and source
    Research use on request (agreement with the authors):
    https://github.com/aim3-ruc/RUCM3ED. Zhao et al., "M3ED: Multi-modal Multi-scene Multi-label
    Emotional Dialogue Database", ACL 2022.
Layout expected
    ``annotation.json``, ``splitInfo/movie_list_{train,val,test}.txt`` and
    ``modality_speech/<A|B>_<utterance>.wav`` (e.g. ``modality_speech/A_anjia_11_1.wav``).
Labels
    ``annotation.json`` maps series -> clip -> ``Dialog`` -> utterance id -> fields; the label
    is ``EmoAnnotation.final_main_emo``: Anger -> Angry, Disgust, Fear, Happy, Neutral, Sad,
    Surprise. The audio file is the utterance's ``Speaker`` letter + ``_`` + utterance id.
Speakers
    ``<series>_<Name>`` with the name from the clip's ``SpeakerInfo`` for that letter (635
    values; a few are placeholders such as ``anjia_anjia_p2``, 161 utterances have a name with a
    space). Utterances whose audio is missing are reported in ``skipped``.
How EmoBox split it
    Official, by series (``splitInfo``): one fold, train 17,420 / validation 2,819 (official)
    / test 4,198, with no speaker in two parts. EmoBox's published lists hold only the test and
    validation parts; every other utterance of its list (``m3ed.jsonl``) trains. An utterance
    EmoBox did not list is in no split (``emobox corpora check`` lists it).
"""

from __future__ import annotations


from emobox import DataError, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

SPLIT_LISTS = (("train", "train"), ("valid", "val"), ("test", "test"))


class M3ED(MetadataCorpus):
    name = "m3ed"
    description = "M3ED: dialogues from 56 Mandarin TV series, 7 emotions (24437 utterances)"
    languages = ("Mandarin",)
    license = "research use by agreement with the authors"
    homepage = "https://github.com/aim3-ruc/RUCM3ED"
    citation = ("J. Zhao et al.: M3ED: Multi-modal Multi-scene Multi-label Emotional Dialogue "
                "Database. ACL 2022")
    labels = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    label_map = {"Anger": "Angry", "Disgust": "Disgust", "Fear": "Fear", "Happy": "Happy",
                 "Neutral": "Neutral", "Sad": "Sad", "Surprise": "Surprise"}
    official_valid = True
    audio_suffixes = (".wav",)
    expected_top_level = ("annotation.json, splitInfo/movie_list_{train,val,test}.txt and "
                          "modality_speech/")
    markers = ("annotation.json", "splitInfo", "modality_speech")

    def scan(self):
        ann_path = self.metadata_file("annotation.json", what="annotation file")
        source = self.rel(ann_path)
        annotation = self.load_json(ann_path)
        split_of = self._movie_splits()
        index = self.audio_index("modality_speech")
        utts = []
        for movie, clips in annotation.items():
            split = split_of.get(movie)
            if split is None:
                self.skipped.append((f"splitInfo (series {movie!r})", "series is in no "
                                     "movie_list_*.txt; its utterances are in no EmoBox split"))
            for clip_id, clip in clips.items():
                names = {letter: (info or {}).get("Name")
                         for letter, info in (clip.get("SpeakerInfo") or {}).items()}
                for uid, entry in (clip.get("Dialog") or {}).items():
                    letter = entry.get("Speaker")
                    try:
                        raw = entry["EmoAnnotation"]["final_main_emo"]
                    except (KeyError, TypeError):
                        raise DataError(f"{self.name}: {source}: utterance {uid} has no "
                                        f"EmoAnnotation.final_main_emo", path=str(ann_path))
                    if names.get(letter) is None:
                        raise DataError(f"{self.name}: {source}: clip {clip_id} has no "
                                        f"SpeakerInfo name for speaker {letter!r} of {uid}",
                                        path=str(ann_path))
                    label = self.map_label(raw, source)
                    expected = f"modality_speech/{letter}_{uid}.wav"
                    rel = index.find(expected)
                    if rel is None:
                        self.report_missing(expected, source)
                        continue
                    utts.append(Utterance(key=f"m3ed-{uid}", path=rel, label=label,
                                          raw_label=raw, speaker=f"{movie}_{names[letter]}",
                                          custom={"split": split}))
        self.report_unused(index, source)
        return self.make_manifest(utts)

    def _movie_splits(self) -> dict[str, str]:
        split_of: dict[str, str] = {}
        for split, stem in SPLIT_LISTS:
            path = self.metadata_file(f"splitInfo/movie_list_{stem}.txt",
                                      what="M3ED split list")
            for line in self.read_text(path).splitlines():
                movie = line.strip()
                if movie:
                    split_of.setdefault(movie, split)
        return split_of


@hookimpl
def emobox_corpora():
    return [corpus_spec(M3ED)]
