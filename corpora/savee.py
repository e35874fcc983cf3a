"""SAVEE: Surrey Audio-Visual Expressed Emotion (British English).

15 TIMIT sentences per emotion read by four male speakers (DC, JE, JK, KL), 120 utterances each
(Haq, Jackson 2009). Free for research on registration; get it from
http://kahlan.eps.surrey.ac.uk/savee/.

Layout (44.1 kHz WAV), either as EmoBox had it or as the official ``AudioData`` release has it::

    <SPK>_<code><NN>.wav                  e.g. DC_a01.wav, JE_sa15.wav
    AudioData/<SPK>/<code><NN>.wav        e.g. AudioData/DC/a01.wav

Label: the letters before the 2-digit number: a anger, d disgust, f fear, h happiness,
n neutral, sa sadness, su surprise -> Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise.
Speaker: the prefix or folder. Key: ``savee-<SPK>-<code><NN>`` (the same for both layouts).

EmoBox split: leave one speaker out, 4 folds (JE, KL, DC, JK).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Savee(FileNameCorpus):
    """SAVEE: read British English, 4 male speakers, 7 classes"""

    name = "savee"
    languages = ("English",)
    homepage = "http://kahlan.eps.surrey.ac.uk/savee/"
    license = "free for research (registration; see homepage)"
    citation = ("P. Jackson, S. Haq, \"Surrey audio-visual expressed emotion (SAVEE) "
                "database\", University of Surrey, 2014")
    label_map = {"a": "Angry", "d": "Disgust", "f": "Fear", "h": "Happy", "n": "Neutral",
                 "sa": "Sad", "su": "Surprise"}
    expected_top_level = "the files <SPK>_<code><NN>.wav (or AudioData/<SPK>/<code><NN>.wav)"
    markers = ("AudioData", "[A-Z][A-Z]_*.wav")
    patterns = (r"(?:.*/)?(?P<spk>[A-Z]{2})_(?P<emo>[a-z]+)(?P<num>\d+)\.wav",
                r"(?:.*/)?(?P<spk>[A-Z]{2})/(?P<emo>[a-z]+)(?P<num>\d+)\.wav")
    key = "savee-{spk}-{emo}{num}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(Savee)]
