"""MEAD: a large-scale audio-visual dataset for emotional talking faces (audio part, English).

60 actors (EmoBox's copy: 48) read sentences in neutral and seven emotions at three intensity
levels, filmed from seven views (Wang et al. 2020). Research use only, non-commercial; get it
from https://wywu.github.io/projects/MEAD/MEAD.html (one ``audio.tar`` per actor).

Layout (AAC in M4A, 48 kHz)::

    <speaker>/audio/<emotion>/level_<1|2|3>/<NNN>.m4a      e.g. M003/audio/angry/level_1/001.m4a

Label: the emotion folder: angry contempt disgusted fear happy neutral sad surprised ->
Angry Contempt Disgust Fear Happy Neutral Sad Surprise (neutral exists only at level_1).
Speaker: the folder four levels above the file (M003-M042 men, W009-W040 women). Only ``.m4a``
files are read, so video in the same tree is ignored. Key:
``mead-<speaker>-<emotion>-level-<n>-<NNN>``.

EmoBox split: one speaker-dependent fold (7929 test / 23800 train). EmoBox's train list is not
published, but its test list is complete, so every other utterance is train.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Mead(FileNameCorpus):
    """MEAD (audio): acted English, 48 speakers, 8 classes, 3 intensities"""

    name = "mead"
    languages = ("English",)
    homepage = "https://wywu.github.io/projects/MEAD/MEAD.html"
    license = "research use only, non-commercial (see homepage)"
    citation = ("K. Wang, Q. Wu, L. Song, Z. Yang, W. Wu, C. Qian, R. He, Y. Qiao, C. C. Loy, "
                "\"MEAD: A large-scale audio-visual dataset for emotional talking-face "
                "generation\", Proc. ECCV, 2020")
    label_map = {"angry": "Angry", "contempt": "Contempt", "disgusted": "Disgust",
                 "fear": "Fear", "happy": "Happy", "neutral": "Neutral", "sad": "Sad",
                 "surprised": "Surprise"}
    suffixes = (".m4a",)
    expected_top_level = "one folder per actor, <speaker>/audio/<emotion>/level_<n>/<NNN>.m4a"
    markers = ("*/audio",)
    patterns = (r"(?:.*/)?(?P<spk>[^/]+)/audio/(?P<emo>[^/]+)/(?P<level>[^/]+)/(?P<num>[^/]+)"
                r"\.m4a",)
    key = "mead-{spk}-{emo}-{lvl}-{id}"

    @classmethod
    def fields(cls, g):
        g["lvl"] = g["level"].replace("_", "-")
        g["id"] = g["num"].replace("_", "-")
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Mead)]
