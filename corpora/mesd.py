"""MESD: the Mexican Emotional Speech Database (Spanish).

Single words spoken by adult and child voices in six emotions (Duville, Alonso-Valerdi,
Ibarra-Zarate 2021). License CC BY 4.0; get it from Mendeley Data
(https://data.mendeley.com/datasets/cy34mh68j9).

Layout (48 kHz WAV)::

    Mexican Emotional Speech Database (MESD)/<Emotion>_<C|F|M>_<A|B>_<word...>.wav
        e.g. .../Anger_C_A_abajo.wav

Label: the 1st field: Anger Disgust Fear Happiness Neutral Sadness -> Angry Disgust Fear Happy
Neutral Sad. The 3rd field names the word corpus (A/B); multi-word items add underscores.

Speaker: the file names code only the voice type (C child, F female, M male), which EmoBox
used as the speaker: 3 "speakers" for the paper's 11 people. The speaker field here is that
voice type (Child, Female, Male), so this corpus has **no real speaker ids** and no
speaker-independent folds.

EmoBox split: one speaker-dependent fold (214 test / 648 train). 862 files; the corpus has 864
(child, corpus A lacks one Anger and one Neutral item in EmoBox's copy).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus

VOICES = {"C": "Child", "F": "Female", "M": "Male"}
TOP = "Mexican Emotional Speech Database (MESD)"


class Mesd(FileNameCorpus):
    """MESD: Mexican Spanish words, adult and child voices, 6 emotions"""

    name = "mesd"
    languages = ("Spanish",)
    homepage = "https://data.mendeley.com/datasets/cy34mh68j9"
    license = "CC BY 4.0"
    citation = ("M. M. Duville, L. M. Alonso-Valerdi, D. I. Ibarra-Zarate, \"The Mexican "
                "emotional speech database (MESD): elaboration and assessment based on machine "
                "learning\", Proc. EMBC, 2021")
    label_map = {"Anger": "Angry", "Disgust": "Disgust", "Fear": "Fear", "Happiness": "Happy",
                 "Neutral": "Neutral", "Sadness": "Sad"}
    has_speaker_ids = False
    expected_top_level = f"'{TOP}/<Emotion>_<C|F|M>_<A|B>_<word>.wav'"
    markers = (TOP, "*_[CFM]_[AB]_*.wav")
    patterns = (r"(?:.*/)?(?P<emo>[A-Za-z]+)_(?P<voice>[A-Za-z])_[A-Za-z]_[^/]+\.wav",)
    key = "mesd-{stem}"

    @classmethod
    def fields(cls, g):
        if g["voice"] not in VOICES:
            return f"unknown voice type {g['voice']!r} (C, F or M)"
        g["spk"] = VOICES[g["voice"]]
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Mesd)]
