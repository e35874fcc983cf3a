"""Oréau: a French emotional speech database.

Sentences acted by 32 non-professional speakers in neutral and six emotions (Kerkeni, Cleder,
Serrestou, Raoof 2020). Get it from Zenodo (https://zenodo.org/records/4405783; see the record
for its license).

Layout (44.1 kHz WAV)::

    OréauFR_02/<m|f>/sess<x>/<SS>a<NN><E><v>.wav      e.g. OréauFR_02/m/sessj/07a01Ja.wav

The é of ``OréauFR_02`` is decomposed (e + U+0301, NFD) in EmoBox's paths and in copies unzipped
on macOS; names are compared after Unicode NFC normalisation, so both spellings work, and the
manifest keeps the path as it is on disk.

Label: the 6th character of the file name: C colère, D dégoût, J joie, N neutre, P peur,
S surprise, T tristesse -> Angry, Disgust, Happy, Neutral, Fear, Surprise, Sad (the ``sess<x>``
folder letter is the same letter in lower case). Speaker: the first two characters (07-42;
07 and 11 have 37 files each, the others 7-14). Key: ``oreau-<name>``.

EmoBox split: one speaker-dependent fold (104 test / 330 train).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Oreau(FileNameCorpus):
    """Oréau: acted French, 32 speakers, 7 classes"""

    name = "oreau"
    languages = ("French",)
    homepage = "https://zenodo.org/records/4405783"
    license = "see the Zenodo record"
    citation = ("L. Kerkeni, C. Cleder, Y. Serrestou, K. Raoof, \"French emotional speech "
                "database - Oréau\", Zenodo, 2020")
    label_map = {"C": "Angry", "D": "Disgust", "J": "Happy", "N": "Neutral", "P": "Fear",
                 "S": "Surprise", "T": "Sad"}
    expected_top_level = "'OréauFR_02/<m|f>/sess<x>/<SS>a<NN><E><v>.wav'"
    markers = ("Ore*auFR_02", "OréauFR_02", "OreauFR_02", "m/sess*", "f/sess*")
    patterns = (r"(?:.*/)?(?P<spk>\d\d)[A-Za-z]\d\d(?P<emo>[A-Za-z])[^/]*\.wav",)
    key = "oreau-{id}"

    @classmethod
    def fields(cls, g):
        g["id"] = g["stem"].replace(" ", "-")
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Oreau)]
