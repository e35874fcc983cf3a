"""TurEV-DB: Turkish Emotion Voice Database.

Single words acted by six amateur actors in four emotions (Canpolat, Ormanoğlu, Zeyrek 2020).
Get it from https://github.com/Xeonen/TurEV-DB (see the repository for its terms).

Layout (44.1 kHz WAV)::

    Sound Source/<Emotion>/<speaker>_<code>_<word>.wav    e.g. Sound Source/Sad/1157_hl_acik.wav

Label: the emotion folder: Angry Calm Happy Sad (the 2nd file-name field agrees: kz, sk, mt,
hl). Speaker: the 1st file-name field (1157, 1234, 1358, 1984, 6783, 7895; 1157 has only Angry
and Sad, 7895 only 29 Happy files). Key: ``turevdb-<file name>`` (EmoBox's keys keep ``.wav``).

EmoBox split: one speaker-dependent fold (432 test / 1303 train): 6 speakers, unbalanced.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class TurevDb(FileNameCorpus):
    """TurEV-DB: acted Turkish words, 6 speakers, 4 emotions"""

    name = "turevdb"
    languages = ("Turkish",)
    homepage = "https://github.com/Xeonen/TurEV-DB"
    license = "research use (see homepage)"
    citation = ("S. F. Canpolat, Z. Ormanoğlu, D. Zeyrek, \"Turkish Emotion Voice Database "
                "(TurEV-DB)\", Proc. SLTU Workshop, 2020")
    label_map = {"Angry": "Angry", "Calm": "Calm", "Happy": "Happy", "Sad": "Sad"}
    expected_top_level = "'Sound Source/<Emotion>/<speaker>_<code>_<word>.wav'"
    markers = ("Sound Source",)
    patterns = (r"(?:.*/)?(?P<emo>[^/]+)/(?P<spk>[^_/]+)_[^_/]+_[^/]+\.wav",)
    key = "turevdb-{name}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(TurevDb)]
