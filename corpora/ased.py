"""ASED: Amharic Speech Emotion Dataset.

Acted Amharic speech by 65 speakers in five emotions (Retta et al., ACM TALLIP 2023). Get it from
https://github.com/Ethio2021/ASED_V1 (research use; see the repository for terms).

Layout (16 kHz WAV)::

    <NN><Emotion>/<e><N>-<sentence>-<repetition>-<gender>-<speaker>.wav
                                          e.g. 04Sad/S4-04-02-01-29.wav, 03Happy/h3-05-02-02-55.wav

with the folders 01Neutral 02Fearful 03Happy 04Sad 05Angry.

Label: the first character of the file name (n, f, h, s, a -> Neutral, Fear, Happy, Sad, Angry);
one file is upper case (``04Sad/S4-04-02-01-29.wav``: ``S`` -> Sad). Speaker: the 5th dash field.
The 4th field is the gender code; five speaker ids (09, 15, 21, 23, 25) occur with both codes,
one file apiece, so either the id or the code is wrong there: the id is kept as EmoBox kept it.
Key: ``ased-<name>``.

EmoBox split: one speaker-dependent fold (616 test / 1858 train).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Ased(FileNameCorpus):
    """ASED: acted Amharic emotional speech, 65 speakers, 5 emotions"""

    name = "ased"
    languages = ("Amharic",)
    homepage = "https://github.com/Ethio2021/ASED_V1"
    license = "research use (see homepage)"
    citation = ("E. A. Retta, E. Almekhlafi, R. Sutcliffe, M. Mhamed, H. Ali, J. Feng, \"A new "
                "Amharic speech emotion dataset and classification benchmark\", ACM TALLIP, 2023")
    label_map = {"n": "Neutral", "f": "Fear", "h": "Happy", "s": "Sad", "S": "Sad", "a": "Angry"}
    expected_top_level = ("the folders 01Neutral/ 02Fearful/ 03Happy/ 04Sad/ 05Angry/ holding "
                          "'<e><N>-<sent>-<rep>-<gender>-<speaker>.wav' files")
    markers = ("0[1-5][A-Z]*",)
    patterns = (r"(?:.*/)?(?P<emo>[A-Za-z])\d+-\d+-\d+-(?P<gender>\d+)-(?P<spk>\d+)\.wav",)
    key = "ased-{stem_dashed}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(Ased)]
