"""demo: a tiny synthetic acted-emotion corpus embedded in emobox (no download needed).

Twelve synthetic English speakers (espeak-ng voices) each say four short sentences in four
emotions, rendered through pitch, rate, loudness and voice quality (see
``scripts/make_demo_corpus.py``, which regenerates it). 192 utterances, 16 kHz FLAC, ~3.4 MB.

Layout: ``audio/<speaker>/<speaker>_<emotion>_<sentence>.flac`` (``.wav`` too, for a copy given
with ``--root``). Label: the emotion field of the file name (angry, happy, neutral, sad -> Angry,
Happy, Neutral, Sad). Speaker: the folder.
Folds: speaker-independent (3 folds of 4 test speakers; validation = held-out training
speakers). License: MIT, like emobox.
"""

from __future__ import annotations

import re
from pathlib import Path

from emobox import Corpus, CorpusSpec, Utterance, hookimpl

DATA = Path(__file__).resolve().parent
NAME_RE = re.compile(
    r"^audio/(?P<spk>[^/]+)/(?P=spk)_(?P<emo>[a-z]+)_(?P<sent>\d+)\.(?:flac|wav)$", re.IGNORECASE)


class DemoCorpus(Corpus):
    name = "demo"
    languages = ("English",)
    labels = ("Angry", "Happy", "Neutral", "Sad")
    label_map = {"angry": "Angry", "happy": "Happy", "neutral": "Neutral", "sad": "Sad"}
    expected_top_level = "audio/<speaker>/<speaker>_<emotion>_<nn>.flac"
    markers = ("audio",)

    def __init__(self, root: str | Path | None = None):
        super().__init__(DATA if root is None else root)

    def scan(self):
        utts = []
        for rel in self.iter_files((".flac", ".wav")):
            m = NAME_RE.match(rel)
            if not m:
                self.skipped.append((rel, "name does not follow <speaker>_<emotion>_<nn>"))
                continue
            raw = m["emo"].lower()
            utts.append(Utterance(
                key=f"demo-{m['spk']}_{raw}_{m['sent']}", path=rel, speaker=m["spk"],
                raw_label=raw, label=self.map_label(raw, rel)))
        return self.make_manifest(utts)


@hookimpl
def emobox_corpora():
    return [CorpusSpec(
        name="demo", build=DemoCorpus, embedded=True, languages=("English",), license="MIT",
        description="embedded synthetic acted speech: 12 speakers x 4 emotions x 4 sentences",
        expected_top_level=DemoCorpus.expected_top_level)]
