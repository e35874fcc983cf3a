"""CASIA: Chinese emotional speech from the Institute of Automation, CAS (public subset).

Mandarin sentences acted by 4 professional speakers in six emotions (Tao et al. 2008). The full
corpus is licensed by the Chinese Academy of Sciences; the 1,200-utterance public subset EmoBox
used (50 sentences x 6 emotions x 4 speakers) circulates for research.

Layout (16 kHz WAV)::

    <speaker>/<emotion>/<NNN>.wav        e.g. liuchanhg/angry/201.wav, zhaoquanyin/neutral/228.wav

Label: the emotion folder (angry fear happy neutral sad surprise -> capitalised). Speaker: the
folder above it (liuchanhg, as the download spells it, wangzhe, zhaoquanyin, zhaozuoxiang).
File names repeat across speakers and emotions, so the key holds both folders:
``casia-<NNN>-<speaker>-<emotion>``.

EmoBox split: leave one speaker out, 4 folds (fold 1 wangzhe, 2 zhaozuoxiang, 3 liuchanhg,
4 zhaoquanyin: the order EmoBox's directory listing gave).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Casia(FileNameCorpus):
    """CASIA (public subset): acted Mandarin, 4 speakers, 6 emotions"""

    name = "casia"
    languages = ("Mandarin",)
    homepage = "http://www.chineseldc.org/"
    license = "CASIA licence; the public subset circulates for research"
    citation = ("J. Tao, F. Liu, M. Zhang, H. Jia, \"Design of speech corpus for Mandarin text "
                "to speech\", Blizzard Challenge Workshop, 2008")
    label_map = {e: e.capitalize() for e in
                 ("angry", "fear", "happy", "neutral", "sad", "surprise")}
    expected_top_level = ("one folder per speaker (liuchanhg/ wangzhe/ zhaoquanyin/ "
                          "zhaozuoxiang/), each with the emotion folders angry/ ... surprise/")
    markers = ("liuchanhg", "wangzhe", "zhaoquanyin", "zhaozuoxiang", "*/angry", "*/neutral")
    patterns = (r"(?:.*/)?(?P<spk>[^/]+)/(?P<emo>[^/]+)/(?P<num>[^/]+)\.wav",)
    key = "casia-{num}-{spk}-{emo}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(Casia)]
