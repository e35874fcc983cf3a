"""pavoque: PAVOQUE (Prosody And Voice Quality), German single-speaker expressive speech.

What it is
    One male German speaker (Stefan Röttig) reading the same prompts in a neutral style and in
    four expressive styles (angry, happy, sad, poker face), recorded as long sessions with
    segment tables: 7,334 segments of 1.2-20.7 s, FLAC 44.1 kHz, 12.2 h. The only segmented
    corpus of EmoBox: every utterance is a (start, end) span of a long file.
License and source
    CC BY-NC-SA 3.0; https://github.com/marytts/pavoque-data (release files). Steiner,
    Schröder and Klepp, "The PAVOQUE corpus as a resource for analysis and synthesis of
    expressive speech", Phonetik & Phonologie 9, 2013.
Layout expected
    Six pairs at the top level: ``pavoque-<angry|happy|neutral|poker|sad|outtakes>.flac`` and
    the matching ``.yaml``.
Labels
    Each YAML file is a list of segments with ``prompt``, ``style``, ``start``, ``end``
    (seconds) and ``text``. The label is ``style``, lower-cased: angry -> Angry, happy -> Happy,
    neutral -> Neutral, poker -> Poker (poker face), sad -> Sad. ``pavoque-outtakes`` mixes all
    five styles, so the label is never taken from the file name.
Speakers
    One: ``STEFAN-RÖTTIG`` (EmoBox's spelling). No speaker-independent split exists.
Keys
    ``pavoque-<prompt>-<style>``; outtake prompts carry a suffix letter (``a0014a``), so keys are
    unique. Segments that end after their recording (more than 50 ms) are reported in
    ``skipped``.
How EmoBox split it
    One speaker-dependent fold: 25% of each style in test (1,832 / 5,502), drawn at random over
    segments, so neighbouring segments of one session can fall on both sides. Validation: a
    seeded stratified 20% of the training part.
"""

from __future__ import annotations

from pathlib import Path

from emobox import DataError, Utterance, hookimpl

from ._emobox import corpus_spec
from ._metadata import MetadataCorpus

SPEAKER = "STEFAN-RÖTTIG"
FIELDS = ("prompt", "style", "start", "end")
END_TOLERANCE = 0.05  # seconds a segment may run past the end of its recording


class PAVOQUE(MetadataCorpus):
    name = "pavoque"
    description = "PAVOQUE: one German speaker, 4 expressive styles + neutral, segmented (7334)"
    languages = ("German",)
    license = "CC BY-NC-SA 3.0"
    homepage = "https://github.com/marytts/pavoque-data"
    citation = ("I. Steiner, M. Schröder, A. Klepp: The PAVOQUE corpus as a resource for "
                "analysis and synthesis of expressive speech. Phonetik & Phonologie 9, 2013")
    labels = ("Angry", "Happy", "Neutral", "Poker", "Sad")
    label_map = {"angry": "Angry", "happy": "Happy", "neutral": "Neutral", "poker": "Poker",
                 "sad": "Sad"}
    audio_suffixes = (".flac",)
    expected_top_level = "pavoque-<style>.flac with pavoque-<style>.yaml (angry, happy, ...)"
    markers = ("pavoque-*.yaml", "pavoque-*.YAML")

    def scan(self):
        index = self.audio_index()
        tables = sorted(p for p in self.root.iterdir() if p.is_file()
                        and p.suffix.lower() == ".yaml" and not p.name.startswith("."))
        if not tables:
            raise DataError(f"{self.name}: no segment tables (*.yaml) in {self.root}; its top "
                            f"level should contain {self.expected_top_level}",
                            path=str(self.root))
        utts = []
        for table in tables:
            source = self.rel(table)
            segments = self._segments(table)
            audio = index.find(f"{table.stem}.flac")
            if audio is None:
                for seg in segments:
                    self.report_missing(f"{table.stem}.flac [{seg['start']}-{seg['end']} s]",
                                        source)
                continue
            duration = self._duration(audio)
            for seg in segments:
                raw = str(seg["style"])
                label = self.map_label(raw.lower(), source)
                start, end = float(seg["start"]), float(seg["end"])
                if end > duration + END_TOLERANCE:
                    self.skipped.append((f"{audio} [{start}-{end} s]", f"segment of {source} "
                                         f"ends after the recording ({duration:.2f} s)"))
                    continue
                utts.append(Utterance(
                    key=f"pavoque-{seg['prompt']}-{raw}", path=audio, label=label,
                    raw_label=raw, speaker=SPEAKER, start=start, end=end))
        self.report_unused(index, "a *.yaml segment table")
        return self.make_manifest(utts)

    def _segments(self, path: Path) -> list[dict]:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(self.read_text(path), Loader=loader)
        except yaml.YAMLError as exc:
            raise DataError(f"{self.name}: {path} is not valid YAML: {exc}", path=str(path))
        if not isinstance(data, list):
            raise DataError(f"{self.name}: {path} should be a list of segments", path=str(path))
        for i, seg in enumerate(data):
            missing = [f for f in FIELDS if not isinstance(seg, dict) or seg.get(f) is None]
            if missing:
                raise DataError(f"{self.name}: {path}: segment {i + 1} lacks "
                                f"{', '.join(missing)}", path=str(path))
            try:
                float(seg["start"]), float(seg["end"])
            except (TypeError, ValueError):
                raise DataError(f"{self.name}: {path}: segment {i + 1} ({seg['prompt']}) has a "
                                f"non-numeric start or end", path=str(path))
        return data

    def _duration(self, rel: str) -> float:
        from emobox.datasets.audio import audio_info

        return audio_info(self.root / rel).duration


@hookimpl
def emobox_corpora():
    return [corpus_spec(PAVOQUE)]
