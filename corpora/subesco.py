"""SUBESCO: SUST Bangla Emotional Speech Corpus.

Ten sentences acted by 20 native Bangla speakers (10 female, 10 male) in neutral and six
emotions, five takes each (Sultana, Rahman, Selim, Iqbal 2021). License CC BY 4.0; get it from
Zenodo (https://zenodo.org/records/4526477).

Layout (44.1 or 48 kHz WAV, flat)::

    <F|M>_<NN>_<NAME>_S_<sentence>_<EMOTION>_<take>.wav      e.g. F_01_OISHI_S_10_ANGRY_1.wav

One name is malformed (``F_02_MONIKA_S_2_SURPRISE_3].wav``) and kept.

Label: the 6th field, lower-cased: angry disgust fear happy neutral sad surprise ->
capitalised. Speaker: ``Female-NN`` / ``Male-NN`` from the 1st and 2nd fields (20 values, 350
files each). Key: ``subesco-<name>``.

EmoBox split: 5 folds of 4 test speakers (1400 each): F03 M03 M08 M09 | F01 F04 F10 M07 |
F06 F08 M05 M06 | F05 F07 F09 M04 | F02 M01 M02 M10 (not gender-balanced).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


class Subesco(FileNameCorpus):
    """SUBESCO: acted Bangla, 20 speakers, 7 classes"""

    name = "subesco"
    languages = ("Bangla",)
    homepage = "https://zenodo.org/records/4526477"
    license = "CC BY 4.0"
    citation = ("S. Sultana, M. S. Rahman, M. R. Selim, M. Z. Iqbal, \"SUST Bangla emotional "
                "speech corpus (SUBESCO): An audio-only emotional speech corpus for Bangla\", "
                "PLoS ONE 16(4), 2021")
    label_map = {e: e.capitalize() for e in EMOTIONS}
    expected_top_level = "the files <F|M>_<NN>_<NAME>_S_<sentence>_<EMOTION>_<take>.wav"
    markers = ("[FM]_[0-9]*_S_*.wav",)
    patterns = (r"(?:.*/)?(?P<g>[FMfm])_(?P<num>[^_/]+)_[^_/]+_[Ss]_[^_/]+_(?P<emo>[^_/]+)_"
                r"[^/]+\.wav",)
    key = "subesco-{stem}"
    speaker = "{gender}-{num}"
    raw_label = "{code}"

    @classmethod
    def fields(cls, g):
        g["gender"] = "Female" if g["g"].lower() == "f" else "Male"
        g["code"] = g["emo"].lower()
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Subesco)]
