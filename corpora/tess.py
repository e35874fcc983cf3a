"""TESS: the Toronto Emotional Speech Set (Canadian English).

200 target words in the carrier phrase "Say the word ..." spoken by two actresses, aged 26 (YAF)
and 64 (OAF), in neutral and six emotions (Dupuis, Pichora-Fuller 2010). License
CC BY-NC-ND 4.0; get it from the University of Toronto Dataverse
(https://doi.org/10.5683/SP2/E8H2MF).

Layout (24.4 kHz WAV), flat as EmoBox had it, or nested as the official and Kaggle copies are::

    <OAF|YAF>_<word>_<emotion>.wav                e.g. OAF_back_angry.wav
    <OAF|YAF>_<emotion folder>/<...>.wav          e.g. OAF_angry/OAF_back_angry.wav

The Kaggle copy holds the whole tree twice (``TESS Toronto emotional speech set data/`` inside a
folder of the same name): the key comes from the file name, so the copies collapse; the copy
nearest the root is kept and the other is recorded as skipped.

Label: the last field: angry disgust fear happy neutral ps sad (ps = pleasant surprise ->
Surprise, the others capitalised). Speaker: the prefix (OAF, YAF). Key: ``tess-<name>`` with
``_`` turned into ``-``.

EmoBox split: one speaker-dependent fold (700 test / 2100 train): 2 speakers.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Tess(FileNameCorpus):
    """TESS: Canadian English words, 2 actresses, 7 classes"""

    name = "tess"
    languages = ("English",)
    homepage = "https://doi.org/10.5683/SP2/E8H2MF"
    license = "CC BY-NC-ND 4.0"
    citation = ("K. Dupuis, M. K. Pichora-Fuller, \"Toronto emotional speech set (TESS)\", "
                "University of Toronto, 2010")
    label_map = {"angry": "Angry", "disgust": "Disgust", "fear": "Fear", "happy": "Happy",
                 "neutral": "Neutral", "ps": "Surprise", "sad": "Sad"}
    expected_top_level = ("the files <OAF|YAF>_<word>_<emotion>.wav (or the folders "
                          "OAF_<emotion>/ YAF_<emotion>/ holding them)")
    markers = ("[OY]AF_*", "TESS Toronto emotional speech set data",
               "tess toronto emotional speech set data")
    patterns = (r"(?:.*/)?(?P<spk>[A-Za-z]AF)_[^_/]+_(?P<emo>[^_/]+)\.wav",)
    key = "tess-{stem_dashed}"
    keep_first_copy = True


@hookimpl
def emobox_corpora():
    return [corpus_spec(Tess)]
