"""CaFE: Canadian French Emotional speech dataset.

Six sentences acted by 12 Québécois actors (6 female, 6 male) in neutral and six emotions, the
emotions at two intensities (Gournay, Lahaie, Lefebvre 2018). License CC BY-NC-SA 4.0; get it
from Zenodo (https://zenodo.org/records/1478765). It comes at 48 kHz (``CaFE_48k``, the copy
EmoBox used) and 192 kHz (``CaFE_192k``).

Layout (48 kHz WAV)::

    CaFE_48k/<emotion folder>/<Faible|Fort>/<AA>-<E>-<I>-<S>.wav    e.g. .../Colère/Faible/01-C-1-1.wav
    CaFE_48k/Neutre/<AA>-N-1-<S>.wav

Folder names: Colère Dégoût Joie Neutre Peur Surprise Tristesse. Unzip tools that decode the
archive as CP437 write them as mojibake (``ColŠre``, ``D‚go–t``; EmoBox's paths have these):
the folder names are not read, so either spelling works.

Label: the 2nd field, lower-cased: c colère, d dégoût, j joie, n neutre, p peur, s surprise,
t tristesse -> Angry, Disgust, Happy, Neutral, Fear, Surprise, Sad. Fields 3 and 4 are the
intensity (1 faible, 2 fort) and the sentence (1-6). Speaker: the 1st field (01-12; odd = male).
Key: ``cafe-<name>``. When both copies are present, the 48 kHz one is used and the 192 kHz
files are recorded as skipped copies.

EmoBox split: 3 folds of 4 test speakers (312 test utterances each): 01 07 08 10 | 02 04 09 12 |
03 05 06 11.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Cafe(FileNameCorpus):
    """CaFE: acted Canadian French, 12 speakers, 7 classes, 2 intensities"""

    name = "cafe"
    languages = ("French",)
    homepage = "https://zenodo.org/records/1478765"
    license = "CC BY-NC-SA 4.0"
    citation = ("P. Gournay, O. Lahaie, R. Lefebvre, \"A Canadian French emotional speech "
                "dataset\", Proc. ACM Multimedia Systems, 2018")
    label_map = {"c": "Angry", "d": "Disgust", "j": "Happy", "n": "Neutral", "p": "Fear",
                 "s": "Surprise", "t": "Sad"}
    expected_top_level = ("CaFE_48k/<emotion>/<Faible|Fort>/<AA>-<E>-<I>-<S>.wav "
                          "(CaFE_48k/Neutre/<AA>-N-1-<S>.wav)")
    markers = ("CaFE_48k", "CaFE_192k", "Neutre")
    patterns = (r"(?:.*/)?(?P<spk>\d+)-(?P<emo>[A-Za-z])-\d+-\d+\.wav",)
    key = "cafe-{stem}"
    raw_label = "{code}"
    keep_first_copy = True
    prefer = ("48k",)

    @classmethod
    def fields(cls, g):
        g["code"] = g["emo"].lower()
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Cafe)]
