"""eNTERFACE'05: an audio-visual emotion database (English).

Subjects of 14 nationalities read five English sentences per emotion after listening to a short
story, recorded on video at the eNTERFACE'05 workshop (Martin et al. 2006). Free for research;
get it from http://www.enterface.net/enterface05/ (AVI files; the audio track is 48 kHz).

Layout::

    subject <n>/<emotion>/sentence <k>/s<n>_<xx>_<k>.avi     e.g. subject 10/anger/sentence 1/s10_an_1.avi

with the emotion folders anger disgust fear happiness sadness surprise.

Label: the 2-letter code of the file name (an di fe ha sa su -> Angry Disgust Fear Happy Sad
Surprise); in names like ``s_3_fe_5.avi`` it is the 3rd field. Key: ``enterface-<file name>``
(EmoBox's keys keep the ``.avi``).

Speaker: the ``subject <n>`` folder, as ``s<n>``. EmoBox took the 1st field of the file name,
which is wrong twice: subject 3's files named ``s_3_...`` (16 of 30) get the bogus speaker ``s``,
and the folder ``subject 11`` holds files named ``s12_*`` (there is no ``subject 12``). EmoBox's
value is kept in ``custom["emobox_speaker"]``; the real ids are s1..s44 without s12 and the
speaker-independent folds use them. (Without a ``subject <n>`` folder, the file name's id is
used, ``s`` + the 2nd field for ``s_<n>_...`` names.)

Oddities kept as EmoBox kept them: subject 6 has one long file per emotion instead of sentence
clips (``subject 6/anger/s6_an.avi``, 56-107 s); subject 23 lacks happiness sentences 1-3;
``subject 16/surprise/sentence 3/s16_su_3avi.avi`` has a malformed name.

EmoBox split: one speaker-dependent fold (312 test / 951 train).
"""

from __future__ import annotations

import re

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus

SUBJECT = re.compile(r"(?:^|/)subject (\d+)/", re.IGNORECASE)


class Enterface(FileNameCorpus):
    """eNTERFACE'05: induced English emotional speech (video), 43 subjects, 6 emotions"""

    name = "enterface"
    languages = ("English",)
    homepage = "http://www.enterface.net/enterface05/"
    license = "free for research (see homepage)"
    citation = ("O. Martin, I. Kotsia, B. Macq, I. Pitas, \"The eNTERFACE'05 audio-visual "
                "emotion database\", Proc. ICDE Workshops, 2006")
    label_map = {"an": "Angry", "di": "Disgust", "fe": "Fear", "ha": "Happy", "sa": "Sad",
                 "su": "Surprise"}
    suffixes = (".avi",)
    expected_top_level = ("the folders 'subject <n>/' with <emotion>/sentence <k>/"
                          "s<n>_<xx>_<k>.avi inside")
    markers = ("subject *",)
    patterns = (r"(?:.*/)?s[^/]*\.avi",)
    key = "enterface-{name}"
    speaker = "{real}"
    emobox_speaker = "{field}"

    @classmethod
    def fields(cls, g):
        parts = g["stem"].split("_")
        if len(parts) < 2:
            return "name does not follow s<n>_<xx>_<k>.avi"
        g["field"] = parts[0]
        g["emo"] = parts[2] if parts[1].isdigit() and len(parts) > 2 else parts[1]
        subject = SUBJECT.search(g["path"])
        if subject:
            g["real"] = f"s{int(subject.group(1))}"
        else:
            g["real"] = f"s{parts[1]}" if parts[0] == "s" else parts[0]
        return g


@hookimpl
def emobox_corpora():
    return [corpus_spec(Enterface)]
