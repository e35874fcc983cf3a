"""ASVP-ESD: Audio, Speech and Vision Processing Lab Emotional Sound Database.

Speech and non-speech emotional sounds (laughs, cries, sighs, screams...) collected from films,
TV, YouTube and other web sources, in several languages, by the ASVP lab of the South China
University of Technology (Landry et al. 2020). Get it from Zenodo
(https://zenodo.org/records/5573185 and its newer versions; cite the database when you
use it).

Layout (16 kHz WAV)::

    Audio/actor_<n>/<id>.wav      e.g. Audio/actor_106/03-01-01-01-01-106-02-02-04-11.wav
    Bonus/actor_<n>/<id>.wav      (actor_150, actor_50, actor_200)

The id is ``modality-vocalchannel-emotion-intensity-statement-actor-age-source[-language]...``
(8 to 12 dash fields; a few bonus names carry a space, as in ``...-00-14 -01.wav``).

Label: the 3rd field, a numeric code. EmoBox keeps all 14 codes found as classes: 01 Boredom,
02 Neutral, 03 Happy, 04 Sad, 05 Angry, 06 Fear, 07 Disgust, 08 Surprise, 09 Excited, and the
raw names 10 "pleasure", 11 "pain, groan", 12 "disappointment, disapproval", 13 "breath", 17
"UnKnown" (one file). The paper counts 12 emotions. Non-speech (vocal channel 02, 8,824 files)
and the ``Bonus/`` part are kept, as EmoBox kept them.

Speaker: the 6th field (the actor), not the folder: some folders are named bare ``actor_``
and ``actor_119`` holds 10 files of actor 109. 131 values, including ``00`` (136 files).

Key: ``asvpesd-<name>``. EmoBox split: one speaker-dependent fold (3487 test / 10477 train).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus

CODES = {"01": "Boredom", "02": "Neutral", "03": "Happy", "04": "Sad", "05": "Angry",
         "06": "Fear", "07": "Disgust", "08": "Surprise", "09": "Excited", "10": "pleasure",
         "11": "pain, groan", "12": "disappointment, disapproval", "13": "breath",
         "17": "UnKnown"}


class AsvpEsd(FileNameCorpus):
    """ASVP-ESD: speech and non-speech emotional sounds from media, many languages"""

    name = "asvpesd"
    languages = ("mixed",)
    homepage = "https://zenodo.org/records/5573185"
    license = "open (Zenodo; cite the database)"
    citation = ("T. Landry Dejoli, Q. He, H. Yan, Y. Li, \"ASVP-ESD: A dataset and its "
                "benchmark for emotion recognition using both speech and non-speech "
                "utterances\", Global Scientific Journals, 2020")
    label_map = CODES
    expected_top_level = "Audio/actor_<n>/<id>.wav (and Bonus/actor_<n>/<id>.wav)"
    markers = ("Audio", "Bonus", "actor_*")
    patterns = (r"(?:.*/)?\d+-\d+-(?P<emo>\d+)-\d+-\d+-(?P<spk>\d+)-[^/]*\.wav",)
    key = "asvpesd-{stem_dashed}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(AsvpEsd)]
