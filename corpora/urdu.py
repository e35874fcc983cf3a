"""URDU: Urdu emotional speech from talk shows.

Spontaneous Urdu speech cut from Urdu TV talk shows, 400 utterances of 29 speakers in four
emotions (Latif, Qayyum, Usman, Qadir 2018). Get it from
https://github.com/siddiquelatif/URDU-Dataset (see the repository for its terms).

Layout (44.1 kHz WAV)::

    <Emotion>/S<G><id>_F<n>_<E><nnn>.wav      e.g. Sad/SF10_F1_S01.wav, Happy/SM7_F9_H081.wav

Label: the first letter of the 3rd field: A, H, N, S -> Angry, Happy, Neutral, Sad (the folder
agrees). Speaker: the 1st field (SM* male, SF* female: 29 ids, 2 to 80 files each). Key:
``urdu-<name>``.

EmoBox split: one speaker-dependent fold (100 test / 300 train).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Urdu(FileNameCorpus):
    """URDU: spontaneous Urdu from talk shows, 29 speakers, 4 emotions"""

    name = "urdu"
    languages = ("Urdu",)
    homepage = "https://github.com/siddiquelatif/URDU-Dataset"
    license = "research use (see homepage)"
    citation = ("S. Latif, A. Qayyum, M. Usman, J. Qadir, \"Cross lingual speech emotion "
                "recognition: Urdu vs. western languages\", Proc. FIT, 2018")
    label_map = {"A": "Angry", "H": "Happy", "N": "Neutral", "S": "Sad"}
    expected_top_level = "the folders Angry/ Happy/ Neutral/ Sad/ of S<G><id>_F<n>_<E><nnn>.wav"
    markers = ("Angry", "Neutral")
    patterns = (r"(?:.*/)?(?P<spk>[^_/]+)_[^_/]+_(?P<emo>[A-Za-z])[^_/]*\.wav",)
    key = "urdu-{stem}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(Urdu)]
