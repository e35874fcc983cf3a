"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song (speech, audio only).

Two statements acted by 24 professional actors (12 female, 12 male; North American English) in
neutral, calm and six emotions at two intensities, two repetitions each (Livingstone, Russo
2018). License CC BY-NC-SA 4.0; get ``Audio_Speech_Actors_01-24.zip`` from Zenodo
(https://zenodo.org/records/1188976).

Layout (48 kHz WAV)::

    audio/Audio_Speech_Actors_01-24/Actor_<NN>/03-01-<EE>-<II>-<SS>-<RR>-<NN>.wav
        e.g. .../Actor_01/03-01-01-01-01-01-01.wav

(the zip alone unpacks to ``Actor_<NN>/...``, which works too). The seven fields are modality
(03 audio only), vocal channel (01 speech, 02 song), emotion, intensity (01 normal, 02 strong),
statement, repetition and actor (odd = male).

Label: the 3rd field: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
08 surprised -> Neutral, Calm, Happy, Sad, Angry, Fear, Disgust, Surprise. Speaker: the 7th
field (01-24). Key: ``ravdess-<name>``.

Song files (vocal channel 02, ``Audio_Song_Actors_01-24.zip``) are not part of EmoBox's corpus:
they are recorded as skipped, not scanned.

EmoBox split: 6 folds of 4 test actors (240 utterances each): 01 11 20 21 | 04 10 12 14 (all
female) | 08 09 19 23 | 03 05 07 24 | 02 15 16 18 | 06 13 17 22.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus

EMOTIONS = {"01": "Neutral", "02": "Calm", "03": "Happy", "04": "Sad", "05": "Angry",
            "06": "Fearful", "07": "Disgust", "08": "Surprised"}


class Ravdess(FileNameCorpus):
    """RAVDESS (speech): acted North American English, 24 actors, 8 classes"""

    name = "ravdess"
    languages = ("English",)
    homepage = "https://zenodo.org/records/1188976"
    license = "CC BY-NC-SA 4.0"
    citation = ("S. R. Livingstone, F. A. Russo, \"The Ryerson audio-visual database of "
                "emotional speech and song (RAVDESS)\", PLoS ONE 13(5), 2018")
    label_map = {"Neutral": "Neutral", "Calm": "Calm", "Happy": "Happy", "Sad": "Sad",
                 "Angry": "Angry", "Fearful": "Fear", "Disgust": "Disgust",
                 "Surprised": "Surprise"}
    expected_top_level = ("audio/Audio_Speech_Actors_01-24/Actor_<NN>/ (or the Actor_<NN>/ "
                          "folders themselves) of 03-01-<EE>-<II>-<SS>-<RR>-<NN>.wav files")
    markers = ("audio/Audio_Speech_Actors_01-24", "Audio_Speech_Actors_01-24", "Actor_[0-9]*")
    patterns = (r"(?:.*/)?\d\d-(?P<channel>\d\d)-(?P<code>\d\d)-\d\d-\d\d-\d\d-(?P<spk>\d\d)"
                r"\.wav",)
    key = "ravdess-{stem}"

    @classmethod
    def fields(cls, g):
        if g["channel"] == "02":
            return "song (vocal channel 02): EmoBox's RAVDESS is the speech part only"
        g["emo"] = EMOTIONS.get(g["code"], g["code"])
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Ravdess)]
