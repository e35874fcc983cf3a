"""Lhotse manifests out: a corpus as Lhotse RecordingSet, SupervisionSet and CutSet (jsonl.gz)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import EmoboxUsageError

PART = "all"  # every utterance in one part: the folds live in each supervision's ``custom``


@dataclass
class LhotseExport:
    recordings: Path
    supervisions: Path
    cuts: Path
    utterances: int
    folds: int


def _lhotse():
    try:
        import lhotse
    except ImportError as exc:
        raise EmoboxUsageError('--format lhotse needs Lhotse: pip install "emobox[lhotse]"') from exc
    return lhotse


def export_lhotse(name: str, root, out, scheme: str = "emobox", seed: int = 0,
                  options: Mapping[str, Any] | None = None) -> LhotseExport:
    """Write ``<corpus>_{recordings,supervisions,cuts}_all.jsonl.gz`` under folder ``out``."""
    from .corpus_tools import fold_columns, open_corpus

    lhotse = _lhotse()
    corpus = open_corpus(name, root, options, None)
    manifest = corpus.manifest_for(scheme)
    folds = corpus.folds(scheme=scheme, seed=seed)
    roles = fold_columns(manifest, folds, corpus)
    language = corpus.languages[0] if len(corpus.languages) == 1 else None
    recordings: dict[str, Any] = {}
    sups = []
    for u in manifest:
        path = manifest.audio_path(u)
        rid = u.path
        if rid not in recordings:
            recordings[rid] = lhotse.Recording.from_file(path.resolve(), recording_id=rid)
        rec = recordings[rid]
        start = u.start or 0.0
        end = u.end if u.end is not None else rec.duration
        channel = (u.channel - 1) if u.channel is not None else (
            0 if rec.num_channels == 1 else list(range(rec.num_channels)))
        custom = {"emotion": u.label, "emotion_raw": u.raw_label,
                  "folds": {str(f.index): roles[u.key][f.name] for f in folds},
                  "scheme": scheme}
        if u.channel is None and rec.num_channels > 1:
            custom["channel_mix"] = True
        sups.append(lhotse.SupervisionSegment(
            id=u.key, recording_id=rid, start=start,
            duration=min(end, rec.duration) - start, channel=channel,
            speaker=u.speaker, language=language, custom=custom))
    rset = lhotse.RecordingSet.from_recordings(recordings.values())
    sset = lhotse.SupervisionSet.from_segments(sups)
    cuts = lhotse.CutSet.from_manifests(recordings=rset, supervisions=sset).trim_to_supervisions(
        keep_overlapping=False)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EmoboxUsageError(f"-o {out} is a file; --format lhotse writes a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{manifest.corpus}_{what}_{PART}.jsonl.gz"
             for what in ("recordings", "supervisions", "cuts")]
    rset.to_file(paths[0])
    sset.to_file(paths[1])
    cuts.to_file(paths[2])
    return LhotseExport(*paths, len(manifest), len(folds))
