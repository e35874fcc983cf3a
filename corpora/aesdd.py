"""AESDD: Acted Emotional Speech Dynamic Database (Greek).

Acted Greek speech by professional actors, recorded in 2017 at the Laboratory of Electronic Media,
Aristotle University of Thessaloniki (M3C group): 19 ambiguous sentences plus one improvised
utterance per actor and emotion, five emotions. License: free for research (CC BY 4.0 copies
circulate); get it from http://m3c.web.auth.gr/research/aesdd-speech-emotion-recognition/.

Layout (44.1 kHz WAV)::

    <emotion folder>/<e><NN> (<speaker>)[a|b].wav     e.g. anger/a01 (1).wav, sadness/s01 (5)a.wav

with the folders anger, disgust, fear, happiness, sadness.

Label: the first letter of the file name (a, d, f, h, s -> Angry, Disgust, Fear, Happy, Sad);
the folder agrees. Speaker: the number in parentheses (1-6). Extra takes with an ``a``/``b``
suffix (nine, all speaker 5) are separate utterances. Key: ``aesdd-<name>`` with spaces turned
into ``-`` and the parentheses dropped (``aesdd-a01-1``).

Quirks: the paper counts 5 speakers, EmoBox's metadata 6 (the parenthesised numbers 1-6).
EmoBox strips every "0" from the speaker number, which would corrupt a two-digit id; none
occurs, and this adapter reads the number as an integer.

EmoBox split: one speaker-dependent fold (25% of each emotion in test: 149 test, 455 train).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Aesdd(FileNameCorpus):
    """AESDD: acted Greek emotional speech, 5 emotions"""

    name = "aesdd"
    languages = ("Greek",)
    homepage = "http://m3c.web.auth.gr/research/aesdd-speech-emotion-recognition/"
    license = "research use (see homepage)"
    citation = ("N. Vryzas, R. Kotsakis, A. Liatsou, C. A. Dimoulas, G. Kalliris, \"Speech "
                "emotion recognition for performance interaction\", J. Audio Eng. Soc., 2018")
    label_map = {"a": "Angry", "d": "Disgust", "f": "Fear", "h": "Happy", "s": "Sad"}
    expected_top_level = ("the emotion folders anger/ disgust/ fear/ happiness/ sadness/ holding "
                          "'<e><NN> (<speaker>).wav' files")
    markers = ("anger", "sadness", "happiness")
    patterns = (r"(?:.*/)?(?P<emo>[A-Za-z])\d+ \((?P<spk>\d+)\)[A-Za-z]?\.wav",)
    key = "aesdd-{id}"
    speaker = "{speaker}"

    @classmethod
    def fields(cls, g):
        g["id"] = g["stem"].replace(" ", "-").replace("(", "").replace(")", "")
        g["speaker"] = str(int(g["spk"]))
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Aesdd)]
