"""esd: ESD (Emotional Speech Dataset), Mandarin and English parallel acted speech.

What it is
    10 Mandarin (0001-0010) and 10 English (0011-0020) speakers each read the same 350
    sentences in 5 emotions: 35,000 utterances, 16 kHz WAV, 29.1 h.
License and source
    Research use (licence agreement): https://hltsingapore.github.io/ESD/. Zhou et al., "Seen
    and unseen emotional style transfer for voice conversion with a new emotional speech
    dataset", ICASSP 2021.
Layout expected
    ``<spk>/<spk>.txt`` and ``<spk>/<Emotion>/<spk>_<NNNNNN>.wav`` for each speaker folder
    0001-0020, often inside ``Emotion Speech Dataset/`` (found automatically). Copies that add
    ``train/``, ``evaluation/`` and ``test/`` under each emotion folder are read too.
Labels
    ``<spk>/<spk>.txt``: one line per utterance, ``id<TAB>transcript<TAB>emotion``. The
    Mandarin speakers write the emotion in Chinese, translated as EmoBox did: 中立 -> Neutral,
    快乐 -> Happy, 伤心 -> Sad, 生气 -> Angry, 惊喜 -> Surprise; English speakers write Angry,
    Happy, Neutral, Sad, Surprise. Lines that are not three tab-separated fields are reported.
Speakers
    The speaker folder (1,750 utterances each, 350 per emotion).
How EmoBox split it
    Groups of 4 speakers: 5 folds of 7,000 test utterances (fold 1 = 0005, 0011, 0016, 0018;
    2 = 0012, 0014, 0015, 0019, all English; 3 = 0003, 0004, 0006, 0009, all Mandarin;
    4 = 0007, 0008, 0013, 0020; 5 = 0001, 0002, 0010, 0017). Every utterance is a test item in
    its speaker's fold and trains in the others; an utterance EmoBox did not list is in no
    split (``emobox corpora check`` lists it). Validation: a seeded stratified 20% of each
    fold's training part.
"""

from __future__ import annotations

import re

from emobox import Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

CHINESE = {"中立": "Neutral", "快乐": "Happy", "伤心": "Sad", "生气": "Angry", "惊喜": "Surprise"}
class ESD(MetadataCorpus):
    name = "esd"
    description = "ESD: 10 Mandarin + 10 English speakers, 5 emotions, parallel (35000 utterances)"
    languages = ("Mandarin", "English")
    license = "research use (ESD licence agreement)"
    homepage = "https://hltsingapore.github.io/ESD/"
    citation = ("K. Zhou, B. Sisman, R. Liu, H. Li: Seen and unseen emotional style transfer for "
                "voice conversion with a new emotional speech dataset. ICASSP 2021")
    labels = ("Angry", "Happy", "Neutral", "Sad", "Surprise")
    label_map = {**CHINESE, **{c: c for c in CHINESE.values()}}
    audio_suffixes = (".wav",)
    expected_top_level = ("one folder per speaker, 0001 ... 0020, each with <spk>.txt and "
                          "emotion folders (Angry/ Happy/ Neutral/ Sad/ Surprise/)")
    markers = ("[0-9][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9].txt",)

    def scan(self):
        speakers = sorted(d.name for d in self.root.iterdir()
                          if d.is_dir() and re.fullmatch(r"\d{4}", d.name))
        utts = []
        for spk in speakers:
            txt = self.metadata_file(f"{spk}/{spk}.txt", what=f"label file of speaker {spk}")
            source = self.rel(txt)
            index = self.audio_index(spk)
            files = {}
            for rel in index.paths:
                files.setdefault(rel.rsplit("/", 1)[-1].casefold(), []).append(rel)
            for lineno, line in enumerate(self.read_text(txt, ("utf-8-sig", "gb18030"))
                                          .splitlines(), start=1):
                if not line.strip():
                    continue
                parts = line.strip().split("\t")
                if len(parts) != 3:
                    self.skipped.append((f"{source}:{lineno}", "not three tab-separated fields "
                                         "(id, transcript, emotion)"))
                    continue
                uid, raw = parts[0].strip(), parts[2].strip()
                label = self.map_label(raw, source)
                expected = f"{spk}/{label}/{uid}.wav"
                rel = index.find(expected) or self._elsewhere(files, uid, label, index)
                if rel is None:
                    self.report_missing(expected, source)
                    continue
                utts.append(Utterance(key=f"esd-{uid.replace('_', '-')}", path=rel,
                                      label=label, raw_label=raw, speaker=spk))
            self.report_unused(index, source)
        return self.make_manifest(utts)

    @staticmethod
    def _elsewhere(files, uid: str, label: str, index) -> str | None:
        """The file in another layout: ``<spk>/<Emotion>/<train|evaluation|test>/<id>.wav``."""
        for rel in files.get(f"{uid}.wav".casefold(), ()):
            if f"/{label.casefold()}/" in f"/{rel.casefold()}":
                index.mark_used(rel)
                return rel
        return None


@hookimpl
def emobox_corpora():
    return [corpus_spec(ESD)]
