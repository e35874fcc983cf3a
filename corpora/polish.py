"""Polish emotional speech: "Emotions in Polish speech recordings" (word level).

Six command words (nie, oddaj, podaj, stop, tak, trzymaj) spoken by five male speakers in three
states (Miesikowska, Swisulski 2020). Get it from https://doi.org/10.34808/h46c-hb44 (see the
record for its license).

Layout (44.1 kHz WAV, flat)::

    <speaker>.<code>_<word>_<repetition>.wav        e.g. m1.a_nie_1.wav, m2.s_stop_1.wav

Label: the code between the dot and the first underscore: a (anger) -> Angry, n -> Neutral,
s -> Fear (s read as "strach", fear, as EmoBox mapped it). Speaker: the part before the dot
(m1-m5, 90 files each). Key: ``polish-<name>``.

EmoBox split: leave one speaker out, 5 folds (m3, m2, m4, m5, m1).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Polish(FileNameCorpus):
    """Polish emotional speech: command words, 5 speakers, 3 classes"""

    name = "polish"
    languages = ("Polish",)
    homepage = "https://doi.org/10.34808/h46c-hb44"
    license = "see the record"
    citation = ("M. Miesikowska, D. Swisulski, \"Emotions in Polish speech recordings\", "
                "https://doi.org/10.34808/h46c-hb44, 2020")
    label_map = {"a": "Angry", "n": "Neutral", "s": "Fear"}
    expected_top_level = "the files '<speaker>.<code>_<word>_<repetition>.wav' (e.g. m1.a_nie_1.wav)"
    markers = ("*.?_*_*.wav",)
    patterns = (r"(?:.*/)?(?P<spk>[^/.]+)\.(?P<emo>[A-Za-z]+)_[^/]+_[^/]+\.wav",)
    key = "polish-{stem}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(Polish)]
