"""EMOVO: an Italian emotional speech database.

14 sentences acted by 6 actors (3 female, 3 male) in neutral and six emotions, recorded at the
Fondazione Ugo Bordoni (Costantini et al. 2014). Research use; get it from
http://voice.fub.it/activities/corpora/emovo/.

Layout (48 kHz WAV)::

    <speaker>/<emo>-<speaker>-<sentence>.wav        e.g. f1/dis-f1-b1.wav, m3/pau-m3-n1.wav

Label: the Italian code in the 1st field: dis disgusto, gio gioia, neu neutro, pau paura,
rab rabbia, sor sorpresa, tri tristezza -> Disgust, Happy, Neutral, Fear, Angry, Surprise, Sad.
Speaker: the 2nd field (f1-f3, m1-m3). Sentence codes: b1-b3, l1-l4, n1-n5, d1-d2. Key:
``emovo-<name>``.

Deviation from EmoBox's tables: EmoBox stored this corpus's label map as ``label_dict.json``
instead of ``label_map.json``, so its published metadata carries the raw Italian codes as
classes. The classes here are the ones that file meant (the map above); the fold membership is
EmoBox's, key by key, and a model's per-class scores are unchanged by the renaming.

EmoBox split: leave one speaker out, 6 folds (f2, m3, m2, f3, f1, m1).
"""

from __future__ import annotations

from emobox import hookimpl

from ._emobox import corpus_spec
from ._filename import FileNameCorpus


class Emovo(FileNameCorpus):
    """EMOVO: acted Italian, 6 actors, 7 classes"""

    name = "emovo"
    languages = ("Italian",)
    homepage = "http://voice.fub.it/activities/corpora/emovo/"
    license = "research use (see homepage)"
    citation = ("G. Costantini, I. Iaderola, A. Paoloni, M. Todisco, \"EMOVO corpus: an Italian "
                "emotional speech database\", Proc. LREC, 2014")
    label_map = {"dis": "Disgust", "gio": "Happy", "neu": "Neutral", "pau": "Fear",
                 "rab": "Angry", "sor": "Surprise", "tri": "Sad"}
    expected_top_level = "one folder per actor (f1/ f2/ f3/ m1/ m2/ m3/) of <emo>-<actor>-<sentence>.wav"
    markers = ("f1", "m1", "[fm][0-9]")
    patterns = (r"(?:.*/)?(?P<emo>[A-Za-z]+)-(?P<spk>[A-Za-z]+\d+)-[A-Za-z]+\d+\.wav",)
    key = "emovo-{stem}"
    reference_label_fixes = label_map  # EmoBox's table keeps the raw codes: its map was unused


@hookimpl
def emobox_corpora():
    return [corpus_spec(Emovo)]
