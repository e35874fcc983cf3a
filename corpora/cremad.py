"""CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset (English).

12 sentences acted by 91 actors (48 male, 43 female, ages 20-74, several ethnicities) in six
emotions, one sentence at four intensity levels (Cao et al. 2014). License: Open Database
License (ODbL); get it from https://github.com/CheyneyComputerScience/CREMA-D (Git LFS).

Layout (16 kHz WAV)::

    AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav        e.g. AudioWAV/1001_DFA_ANG_XX.wav

(``AudioMP3/`` holds the same recordings as MP3 and is not read; ``VideoDemographics.csv`` at
the root gives age, sex and race per actor.)

Label: the 3rd field (ANG DIS FEA HAP NEU SAD -> Angry Disgust Fear Happy Neutral Sad). The 4th
field is the intensity (LO, MD, HI, or XX unspecified), the 2nd the sentence code. Speaker: the
1st field (1001-1091). Key: ``cremad-<name>`` with ``_`` turned into ``-``.

EmoBox split: one speaker-dependent fold (1856 test / 5586 train): NEU has fewer files than the
other emotions, so EmoBox's balance test failed despite 91 speakers.
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class CremaD(FileNameCorpus):
    """CREMA-D: acted English, 91 actors, 6 emotions"""

    name = "cremad"
    languages = ("English",)
    homepage = "https://github.com/CheyneyComputerScience/CREMA-D"
    license = "ODbL 1.0"
    citation = ("H. Cao, D. G. Cooper, M. K. Keutmann, R. C. Gur, A. Nenkova, R. Verma, "
                "\"CREMA-D: Crowd-sourced emotional multimodal actors dataset\", IEEE Trans. "
                "Affective Computing, 2014")
    label_map = {"ANG": "Angry", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy",
                 "NEU": "Neutral", "SAD": "Sad"}
    expected_top_level = "AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav"
    markers = ("AudioWAV",)
    patterns = (r"(?:.*/)?(?P<spk>\d+)_[A-Za-z]+_(?P<emo>[A-Za-z]+)_[A-Za-z0-9]+\.wav",)
    key = "cremad-{stem_dashed}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(CremaD)]
