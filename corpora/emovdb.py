"""EmoV-DB: the Emotional Voices Database (English).

CMU-Arctic sentences read by four actors (bea and jenie female, sam and josh male) in neutral and
four emotional styles, made for expressive speech synthesis (Adigwe et al. 2018). Get it from
https://github.com/numediart/EmoV-DB (the "sorted" archives; research use, see the repository).

Layout (WAV; bea's files are 44.1 kHz, the others 16 kHz)::

    <speaker>_<Emotion>/<style>_<a>-<b>_<NNNN>.wav    e.g. bea_Amused/amused_1-15_0001.wav

Some files use ``_`` instead of ``-`` in the range, some start with a capitalised style word.

Label: the folder name after the underscore (Amused Angry Disgusted Neutral Sleepy), with
Disgusted -> Disgust. Speaker: the folder name before it. josh has only Amused, Neutral and
Sleepy. Key: ``emovdb-<speaker>-<Emotion>-<NNNN>`` (the emotion after the rename, the trailing
number of the file name).

EmoBox split: one speaker-dependent fold (1719 test / 5168 train): 4 speakers, unbalanced.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class EmovDb(FileNameCorpus):
    """EmoV-DB: read English in 5 styles, 4 speakers"""

    name = "emovdb"
    languages = ("English",)
    homepage = "https://github.com/numediart/EmoV-DB"
    license = "research use (see homepage)"
    citation = ("A. Adigwe, N. Tits, K. El Haddad, S. Ostadabbas, T. Dutoit, \"The emotional "
                "voices database: Towards controlling the emotion dimension in voice generation "
                "systems\", arXiv:1806.09514, 2018")
    label_map = {"Amused": "Amused", "Angry": "Angry", "Disgusted": "Disgust",
                 "Neutral": "Neutral", "Sleepy": "Sleepy"}
    expected_top_level = "one folder per speaker and style, <speaker>_<Emotion>/ (e.g. bea_Amused/)"
    markers = ("*_Amused", "*_Neutral", "*_Sleepy")
    patterns = (r"(?:.*/)?(?P<spk>[A-Za-z]+)_(?P<emo>[A-Za-z]+)/[^/]*_(?P<num>[^_/]+)\.wav",)
    key = "emovdb-{spk}-{cls}-{num}"

    @classmethod
    def fields(cls, g):
        g["cls"] = "Disgust" if g["emo"] == "Disgusted" else g["emo"]
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(EmovDb)]
