"""JL-Corpus: New Zealand English emotional speech for human-robot interaction.

Sentences acted by four actors (female1, female2, male1, male2) in five primary emotions and
five secondary ones (James, Tian, Watson 2018). Get it from
https://www.kaggle.com/datasets/tli725/jl-corpus (open; cite the paper).

Layout (44.1 kHz WAV, transcripts as .txt beside them)::

    Raw JL corpus (unchecked and unannotated)/JL(wav+txt)/<spk>_<emotion>_<sentence><session>_<take>.wav
        e.g. .../JL(wav+txt)/female1_angry_10a_1.wav

EmoBox used only this "Raw" part; audio elsewhere in the download (the checked and annotated
part repeats the same recordings) is recorded as skipped.

Label: the 2nd field, capitalised: angry, anxious, apologetic, assertive, concerned,
encouraging, excited, happy, neutral, sad (EmoBox keeps all 10; the paper says 5). Key:
``jlcorpus-<name>`` with ``_`` turned into ``-``.

Speaker: the 1st field (female1 ... male2). EmoBox parsed the whole path instead of the file
name, so its speaker is ``downloads/jlcorpus/Raw JL corpus (unchecked and unannotated)/
JL(wav+txt)/female1``; that value is kept in ``custom["emobox_speaker"]`` (one per real
speaker, so EmoBox's folds are still leave-one-speaker-out).

EmoBox split: leave one speaker out, 4 folds (male2, female1, male1, female2).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus

RAW = "Raw JL corpus (unchecked and unannotated)"
EMOTIONS = ("angry", "anxious", "apologetic", "assertive", "concerned", "encouraging", "excited",
            "happy", "neutral", "sad")


class JlCorpus(FileNameCorpus):
    """JL-Corpus: acted New Zealand English, 4 actors, 10 emotions"""

    name = "jlcorpus"
    languages = ("English",)
    homepage = "https://www.kaggle.com/datasets/tli725/jl-corpus"
    license = "open (see homepage)"
    citation = ("J. James, L. Tian, C. Watson, \"An open source emotional speech corpus for human "
                "robot interaction applications\", Proc. Interspeech, 2018")
    label_map = {e: e.capitalize() for e in EMOTIONS}
    expected_top_level = f"'{RAW}/JL(wav+txt)/<speaker>_<emotion>_<sentence>_<take>.wav'"
    markers = (RAW,)
    only_under = RAW
    patterns = (r"(?:.*/)?(?P<spk>[a-z]+\d+)_(?P<emo>[A-Za-z]+)_[^/]*\.wav",)
    key = "jlcorpus-{stem_dashed}"
    emobox_speaker = "downloads/jlcorpus/{dir}/{spk}"


@hookimpl
def emobox_corpora():
    return [corpus_spec(JlCorpus)]
