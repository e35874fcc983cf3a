"""iemocap: IEMOCAP (Interactive Emotional Dyadic Motion Capture), English dyadic sessions.

What it is
    Five sessions of one actress and one actor each, in scripted and improvised dialogs,
    segmented into utterances rated by several annotators; 16 kHz WAV. EmoBox keeps the 5531
    utterances whose consensus category is one of neu, hap, exc, ang, sad (7.0 h).
License and source
    Research licence from USC SAIL (request form): https://sail.usc.edu/iemocap/. Busso et al.,
    "IEMOCAP: interactive emotional dyadic motion capture database", LRE 42(4), 2008.
Layout expected
    ``Session<s>/sentences/wav/<dialog>/<utterance>.wav`` and
    ``Session<s>/dialog/EmoEvaluation/<dialog>.txt`` for s = 1..5, usually inside
    ``IEMOCAP_full_release/`` (found automatically). Only the top-level ``.txt`` files of
    ``EmoEvaluation/`` are read; its ``Categorical/``, ``Attribute/`` and ``Self-evaluation/``
    subfolders hold per-annotator ratings.
Labels
    Each evaluation line ``[start - end]<TAB><utterance><TAB><cat><TAB>[V, A, D]`` gives the
    consensus category: neu -> Neutral, hap and exc -> Happy (EmoBox's merge), ang -> Angry,
    sad -> Sad. Excluded on purpose (recorded in ``skipped``): fru, sur, fea, dis, oth and xxx
    (no agreement). Any other category is an error naming the file.
Speakers
    The utterance id names the dialog (``Ses01F_impro01``) and then the talking actor's letter
    and turn (``_M015``). EmoBox used the dialog prefix (``Ses01F``) as the speaker, which is the
    other actor for about half the utterances (2750 of 5531). Here ``speaker`` is the actor who
    talks (session + letter, e.g. ``Ses01M``); EmoBox's value is kept in
    ``custom["emobox_speaker"]``.
Quirks
    Two utterances are longer than 30 s. Scripted and improvised dialogs are both kept.
How EmoBox split it
    5 folds, leaving one session out (fold k tests Session k: 1085, 1023, 1151, 1031, 1241
    utterances), so the two test speakers never train. Validation: a seeded stratified 20% of
    each fold's training sessions.
"""

from __future__ import annotations

import re
from pathlib import Path

from emobox import DataError, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

LINE_RE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]")
UTT_RE = re.compile(r"^(Ses(\d\d)[FM])_\w+_([FM])\d+$", re.IGNORECASE)


class IEMOCAP(MetadataCorpus):
    name = "iemocap"
    description = "IEMOCAP: 10 English actors in dyadic sessions, 4 classes (5531 utterances)"
    languages = ("English",)
    license = "research licence (USC SAIL release form)"
    homepage = "https://sail.usc.edu/iemocap/"
    citation = ("C. Busso et al.: IEMOCAP: interactive emotional dyadic motion capture database. "
                "Language Resources and Evaluation 42(4), 2008")
    labels = ("Angry", "Happy", "Neutral", "Sad")
    label_map = {"neu": "Neutral", "hap": "Happy", "exc": "Happy", "ang": "Angry", "sad": "Sad"}
    dropped_labels = frozenset({"fru", "sur", "fea", "dis", "oth", "xxx"})
    audio_suffixes = (".wav",)
    expected_top_level = ("Session1 ... Session5, each with sentences/wav/ and "
                          "dialog/EmoEvaluation/")
    markers = ("Session[1-5]/dialog/EmoEvaluation",)

    def scan(self):
        sessions = sorted(d.name for d in self.root.iterdir()
                          if d.is_dir() and re.fullmatch(r"Session[1-5]", d.name))
        utts: dict[str, Utterance] = {}
        for session in sessions:
            index = self.audio_index(f"{session}/sentences/wav")
            eval_dir = self.root / session / "dialog" / "EmoEvaluation"
            if not eval_dir.is_dir():
                raise DataError(f"{self.name}: evaluation folder not found: looked for "
                                f"{eval_dir}", path=str(eval_dir))
            for path in sorted(eval_dir.iterdir()):
                if path.is_file() and path.suffix.lower() == ".txt" \
                        and not path.name.startswith("."):
                    self._read_evaluation(path, session, index, utts)
            self.report_unused(index, f"{session}/dialog/EmoEvaluation")
        return self.make_manifest(list(utts.values()))

    def _read_evaluation(self, path: Path, session: str, index, utts: dict) -> None:
        source = self.rel(path)
        for lineno, line in enumerate(self.read_text(path).splitlines(), start=1):
            m = LINE_RE.match(line)
            if not m:
                continue
            uid, raw = m[3], m[4]
            expected = f"{session}/sentences/wav/{uid[:-5]}/{uid}.wav"
            label = self.map_label(raw, source)
            if label is None:
                self.skipped.append((expected, f"label {raw!r} is not one of EmoBox's classes "
                                               f"(excluded)"))
                index.find(expected)
                continue
            ids = UTT_RE.match(uid)
            if not ids:
                raise DataError(f"{self.name}: {source}:{lineno}: utterance id {uid!r} does not "
                                f"follow Ses<NN><F|M>_<dialog>_<F|M><turn>", path=str(path))
            key = f"iemocap-{uid}"
            if key in utts:
                if utts[key].raw_label != raw:
                    raise DataError(f"{self.name}: {uid} has two labels, {utts[key].raw_label!r} "
                                    f"and {raw!r} ({source}:{lineno})", path=str(path))
                continue
            rel = index.find(expected)
            if rel is None:
                self.report_missing(expected, source)
                continue
            utts[key] = Utterance(
                key=key, path=rel, label=label, raw_label=raw,
                speaker=f"Ses{ids[2]}{ids[3].upper()}",
                custom={"emobox_speaker": ids[1]})


@hookimpl
def emobox_corpora():
    return [corpus_spec(IEMOCAP)]
