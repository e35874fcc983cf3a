"""Fixture writers of the EmoBox corpora: a tiny copy of each corpus in its native layout.

``write_fixture(corpus, root, rows, clutter=False)`` writes, under ``root``, the audio files and
the corpus's own metadata files for ``rows`` (reference rows: dicts of the columns of the
adapter's table, ``emobox.corpora._reference``), so that the adapter can scan it. ``corpus`` is a
corpus name or an adapter class. Every row becomes an utterance: a short audio file (hard links to
one encoded file per format) at its path. ``clutter`` puts the corpus inside one extra top folder
and adds what real downloads carry (:func:`emobox.testing.add_clutter`: ``__MACOSX``,
``.DS_Store``, stray files, upper-case extensions, a read-only folder, links leading outside the
root). Returns the fold rows of utterances the fixture adds beyond ``rows`` (MSP-Podcast's Train
part, which the reference lacks); ``{}`` for the other corpora.

Corpora whose labels and speakers are in their file names need only the audio
(:func:`_audio_only`); the others have a writer in ``WRITERS``, keyed by corpus name.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from emobox import FoldTableRow
from emobox.corpora import emodb, esd, meld, mer2023
from emobox.corpora.emns import HEADER as EMNS_HEADER
from emobox.testing import CLUTTER_TOP, add_clutter, populate_tree

Rows = Sequence[Mapping[str, str]]


def write_fixture(corpus: str | type, root: str | Path, rows: Rows,
                  clutter: bool = False) -> dict[str, FoldTableRow]:
    """Write a tiny copy of ``corpus`` in its native layout under ``root`` (see the module)."""
    name = corpus if isinstance(corpus, str) else corpus.name
    writer = WRITERS.get(name, _audio_only)
    return dict(writer(Path(root), rows, clutter) or {})


def fixture_base(root: Path, clutter: bool) -> Path:
    """Where a fixture writes the corpus: ``root``, or the extra top folder inside it."""
    base = Path(root) / CLUTTER_TOP if clutter else Path(root)
    base.mkdir(parents=True, exist_ok=True)
    return base


def finish_fixture(root: Path, base: Path, audio: Sequence[str], clutter: bool,
                   seconds: float = 0.1) -> None:
    """Create the audio files, then (with ``clutter``) make the tree look downloaded."""
    populate_tree(base, audio, seconds=seconds)
    if clutter:
        add_clutter(root, base, audio)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]],
              delimiter: str = ",", encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _audio_only(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    """File-name corpora: each distinct ``path`` of the rows, nothing else."""
    base = root / CLUTTER_TOP if clutter else root
    audio = list(dict.fromkeys(r["path"] for r in rows))
    populate_tree(base, audio)
    if clutter:
        add_clutter(root, base, audio)
    return {}


# -- emns --------------------------------------------------------------------------------
def _emns(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    out, audio = [], []
    for i, r in enumerate(rows):
        name = r["path"].split("/")[-1]
        raw = "Surprised" if r["emotion_raw"] == "Surprise" else r["emotion_raw"]
        out.append((i, "The old man, tired, sat down.", "narrator", raw,
                    "2023-01-15 10:00:00", "done", "Female", 25, 3, f"wavs/{name}"))
        audio.append(r["path"])
    write_csv(base / "metadata.csv", EMNS_HEADER, out, delimiter="|")
    finish_fixture(root, base, audio, clutter)
    return {}


# -- emodb -------------------------------------------------------------------------------
def _emodb(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    by_emotion, by_speaker, by_fold = defaultdict(list), defaultdict(list), defaultdict(list)
    audio = []
    for r in rows:
        name = r["path"].split("/")[-1]
        audio.append(r["path"])
        by_emotion[r["emotion_raw"]].append(name)
        by_speaker[r["speaker"]].append(name)
        if int(r["test_fold"]) > 0:
            by_fold[int(r["test_fold"])].append(name)
    lists = base / "lists"
    for sub, groups, suffix in (("emotions", by_emotion, ".txt"),
                                ("speakers", by_speaker, ".txt")):
        (lists / sub).mkdir(parents=True, exist_ok=True)
        for group in (emodb.EMOTION_LISTS if sub == "emotions" else sorted(groups)):
            (lists / sub / f"{group}{suffix}").write_text(
                "".join(f"{n}\n" for n in groups.get(group, [])))
    for fold in range(1, 6):
        (lists / f"cv_k_fold{fold}").write_text("".join(f"{n}\n" for n in by_fold[fold]))
    (base / "erklaerung.txt").write_text("EmoDB: Erklaerung der Dateinamen\n",
                                         encoding="utf-8")
    finish_fixture(root, base, audio, clutter)
    return {}


# -- emozionalmente ----------------------------------------------------------------------
def _emozionalmente(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    samples, audio, actors = [], [], {}
    for r in rows:
        samples.append((r["path"].split("/")[-1], r["speaker"], "Ciao, come stai?",
                        r["emotion_raw"]))
        actors.setdefault(r["speaker"], len(actors))
        audio.append(r["path"])
    write_csv(base / "metadata" / "samples.csv",
              ("file_name", "actor", "sentence", "emotion_expressed"), samples)
    write_csv(base / "metadata" / "users.csv", ("username", "gender", "age"),
              [(a, "female" if i % 2 else "male", 20 + i % 40) for a, i in actors.items()])
    finish_fixture(root, base, audio, clutter)
    return {}


ESD_ENGLISH_TO_CHINESE = {v: k for k, v in esd.CHINESE.items()}


# -- esd ---------------------------------------------------------------------------------
def _esd(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    lines = defaultdict(list)
    audio = []
    for r in rows:
        spk, emo = r["speaker"], r["emotion_raw"]
        uid = r["path"].split("/")[-1][:-4]
        written = ESD_ENGLISH_TO_CHINESE[emo] if int(spk) <= 10 else emo
        text = "打远一看，它们的确很是美丽，" if int(spk) <= 10 else "The nine the eggs, I keep."
        lines[spk].append(f"{uid}\t{text}\t{written}")
        audio.append(r["path"])
    for spk, spk_lines in lines.items():
        (base / spk).mkdir(parents=True, exist_ok=True)
        (base / spk / f"{spk}.txt").write_text("\n".join(spk_lines) + "\n", encoding="utf-8")
    finish_fixture(root, base, audio, clutter)
    return {}


# -- iemocap -----------------------------------------------------------------------------
def _iemocap(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    dialogs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    audio = []
    for r in rows:
        uid = r["key"][len("iemocap-"):]
        session = r["path"].split("/")[0]
        dialogs[(session, uid[:-5])].append((uid, r["emotion_raw"]))
        audio.append(r["path"])
    for (session, dialog), entries in sorted(dialogs.items()):
        # utterances EmoBox excluded by label have audio and evaluation lines too
        for n, raw in enumerate(("fru", "xxx")):
            uid = f"{dialog}_{dialog[5]}9{n}{len(entries) % 10}"
            entries.append((uid, raw))
            audio.append(f"{session}/sentences/wav/{dialog}/{uid}.wav")
        _write_evaluation(base / session / "dialog" / "EmoEvaluation" / f"{dialog}.txt",
                          entries)
        # per-annotator ratings in subfolders are never read as consensus labels
        cat = base / session / "dialog" / "EmoEvaluation" / "Categorical"
        cat.mkdir(exist_ok=True)
        (cat / f"{dialog}_e1_cat.txt").write_text(
            "".join(f"[0.0 - 1.0]\t{uid}\tzzz\t[1.0, 1.0, 1.0]\n" for uid, _ in entries))
    if clutter:  # whole-dialog recordings live elsewhere and are not utterances
        for session, dialog in list(dialogs)[:2]:
            audio.append(f"{session}/dialog/wav/{dialog}.wav")
    finish_fixture(root, base, audio, clutter)
    return {}


def _write_evaluation(path: Path, entries: Sequence[tuple[str, str]]) -> None:
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for i, (uid, raw) in enumerate(entries):
        start = 2.5 * i + 0.3125
        lines += [f"[{start:.4f} - {start + 2.0:.4f}]\t{uid}\t{raw}\t[2.5000, 3.0000, 2.5000]",
                  "C-E1:\tNeutral;\t()", "C-E3:\tNeutral;\t(calm)",
                  "A-E1:\tval 3; act 2; dom  2;\t()", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


# -- m3ed --------------------------------------------------------------------------------
def _m3ed(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    annotation: dict = defaultdict(dict)
    movies: dict[str, set] = defaultdict(set)
    audio = []
    for r in rows:
        uid = r["key"][len("m3ed-"):]
        letter = r["path"].split("/")[-1].split("_", 1)[0]
        movie = uid.split("_", 1)[0]
        clip_id = uid.rsplit("_", 1)[0]
        clip = annotation[movie].setdefault(clip_id, {"SpeakerInfo": {}, "Dialog": {}})
        clip["SpeakerInfo"][letter] = {"Name": r["speaker"][len(movie) + 1:],
                                       "Gender": "unknown", "Age": "unknown"}
        clip["Dialog"][uid] = {
            "Speaker": letter, "Text": "好的。", "StartTime": "00:00:01.000",
            "EndTime": "00:00:02.000",
            "EmoAnnotation": {"EmoAnnotator1": [r["emotion_raw"]],
                              "EmoAnnotator2": [r["emotion_raw"]],
                              "EmoAnnotator3": ["Neutral"],
                              "final_main_emo": r["emotion_raw"], "final_sub_emo": []}}
        split = "test" if r["test_fold"] == "1" else "val" if r["valid"] == "1" else "train"
        movies[split].add(movie)
        audio.append(r["path"])
    if clutter and annotation:  # annotated utterances without audio, as in the release
        movie = next(iter(annotation))
        clip = next(iter(annotation[movie].values()))
        letter = next(iter(clip["SpeakerInfo"]))
        for n in (901, 902):
            clip["Dialog"][f"{movie}_999_{n}"] = {
                "Speaker": letter, "EmoAnnotation": {"final_main_emo": "Neutral"}}
    base.joinpath("annotation.json").write_text(
        json.dumps(annotation, ensure_ascii=False, indent=1), encoding="utf-8")
    (base / "splitInfo").mkdir(exist_ok=True)
    for split in ("train", "val", "test"):
        (base / "splitInfo" / f"movie_list_{split}.txt").write_text(
            "".join(f"{m}\n" for m in sorted(movies[split])))
    finish_fixture(root, base, audio, clutter)
    return {}


MELD_SENTIMENT = {"anger": "negative", "disgust": "negative", "fear": "negative",
                  "joy": "positive", "neutral": "neutral", "sadness": "negative",
                  "surprise": "positive"}


# -- meld --------------------------------------------------------------------------------
def _meld(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    by_split = defaultdict(list)
    audio = []
    for r in rows:
        clip, split = r["key"][len("meld-"):].rsplit("-", 1)
        by_split[split].append((clip, r))
        audio.append(r["path"])
    for split, csv_candidates, _ in meld.SPLITS:
        out = []
        for n, (clip, r) in enumerate(sorted(by_split[split], key=lambda e: _clip_order(e[0]))):
            dia, utt = _clip_order(clip)
            out.append((n, f"Well, that’s \"{split}\" line {n}, isn't it?",
                        r["speaker"].replace("-", " "), r["emotion_raw"],
                        MELD_SENTIMENT.get(r["emotion_raw"], "neutral"), dia, utt, 3, 14,
                        "00:16:16,059", "00:16:21,731"))
        write_csv(base / csv_candidates[0], meld.CSV_HEADER, out)
    if clutter:  # clips the sheets do not list are reported, not scanned
        audio.append("dev_splits_complete/final_videos_testdia0_utt0.mp4")
    finish_fixture(root, base, audio, clutter)
    return {}


def _clip_order(clip: str) -> tuple[int, int]:
    dia, utt = clip.split("_")
    return int(dia[3:]), int(utt[3:])


# -- mer2023 -----------------------------------------------------------------------------
def _mer2023(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    sheets = defaultdict(list)
    audio = []
    for r in rows:
        folder, file = r["path"].rsplit("/", 1)
        split = next(s for s, _, f, _ in mer2023.PARTS if f == folder)
        sheets[split].append((file.rsplit(".", 1)[0], r["emotion_raw"], 0.0))
        audio.append(r["path"])
    for split, sheet, _, _ in mer2023.PARTS:
        write_csv(base / sheet, ("name", "discrete", "valence"), sheets[split])
    finish_fixture(root, base, audio, clutter)
    return {}


# -- msppodcast --------------------------------------------------------------------------
def _msppodcast(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    labels, audio = {}, []
    for r in rows:
        name = r["path"].split("/")[-1]
        split = "Test1" if r["test_fold"] == "1" else "Validation"
        labels[name] = _fields(name, r["emotion_raw"], split)
        audio.append(r["path"])
    # the Train part (absent from EmoBox's lists) and Test2 (in no split)
    extras = {}
    n_extra = max(6, len(rows) // 200)
    for i in range(n_extra):
        split = "Train" if i % 3 else "Test2"
        name = f"MSP-PODCAST_{9000 + i // 4:04d}_{i:04d}.wav"
        labels[name] = _fields(name, "NHSAX"[i % 5], split)
        audio.append(f"Audio/{name}")
        extras[f"msppodcast-{name[:-4]}"] = FoldTableRow(0 if split == "Train" else -1,
                                                         False)
    (base / "label").mkdir(exist_ok=True)
    (base / "label" / "labels_concensus.json").write_text(json.dumps(labels, indent=1))
    finish_fixture(root, base, audio, clutter)
    return extras


def _fields(name: str, emo: str, split: str) -> dict:
    podcast, turn = int(name.split("_")[1]), int(name.split("_")[2].split(".")[0])
    speaker = "Unknown" if turn % 11 == 0 else str(podcast % 300 + 1)
    return {"EmoClass": emo, "EmoAct": 3.8, "EmoVal": 4.2, "EmoDom": 4.0, "SpkrID": speaker,
            "Gender": "Female" if podcast % 2 else "Male", "Split_Set": split}


# -- pavoque -----------------------------------------------------------------------------
def _pavoque(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    import yaml

    base = fixture_base(root, clutter)
    tables = defaultdict(list)
    for r in rows:
        prompt, style = r["key"][len("pavoque-"):].rsplit("-", 1)
        tables[r["path"]].append({"prompt": prompt, "style": style, "start": float(r["start"]),
                                  "end": float(r["end"]), "text": "Guten Tag."})
    for flac, segments in sorted(tables.items()):
        (base / f"{flac[:-len('.flac')]}.yaml").write_text(
            yaml.safe_dump(segments, allow_unicode=True, sort_keys=False), encoding="utf-8")
        write_long_flac(base / flac, max(s["end"] for s in segments) + 0.5)
    if clutter:
        (base / "doc").mkdir()
        (base / "doc" / "README.md").write_text("# PAVOQUE\n")
        add_clutter(root, base, sorted(tables), every=2)
    return {}


def write_long_flac(path: Path, seconds: float, sample_rate: int = 1000) -> None:
    """A long, near-silent FLAC recording that costs a few kilobytes (fixtures)."""
    import numpy as np
    import soundfile as sf

    frames = int(np.ceil(seconds * sample_rate))
    block = np.zeros(sample_rate * 600, dtype=np.int16)
    with sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=1, format="FLAC",
                      subtype="PCM_16") as fh:
        while frames > 0:
            n = min(frames, len(block))
            fh.write(block[:n])
            frames -= n


# -- resd --------------------------------------------------------------------------------
def _resd(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    sheets = defaultdict(list)
    audio = []
    for r in rows:
        split, rel = r["path"].split("/", 1)
        sheets[split].append((Path(rel).stem, rel, r["emotion_raw"]))
        audio.append(r["path"])
    for split in ("train", "test"):
        write_csv(base / f"{split}.csv", ("name", "path", "emotion"), sheets[split])
    finish_fixture(root, base, audio, clutter)
    return {}


# -- shemo -------------------------------------------------------------------------------
def _shemo(root: Path, rows: Rows, clutter: bool) -> dict[str, FoldTableRow]:
    base = fixture_base(root, clutter)
    data, audio = {}, []
    for r in rows:
        gender, name = r["path"].split("/")
        data[name[:-4]] = {"speaker_id": r["speaker"], "gender": gender,
                           "emotion": r["emotion_raw"], "transcript": "سلام",
                           "ipa": "sælɒm"}
        audio.append(r["path"])
    (base / "shemo.json").write_text(json.dumps(data, indent=4), encoding="utf-8")
    if clutter:  # recordings the JSON does not describe, as in the release
        audio += ["female/F99N01.wav", "male/M99S01.wav"]
    finish_fixture(root, base, audio, clutter)
    return {}


WRITERS: dict[str, Callable[[Path, Rows, bool], Mapping[str, FoldTableRow]]] = {
    "emns": _emns,
    "emodb": _emodb,
    "emozionalmente": _emozionalmente,
    "esd": _esd,
    "iemocap": _iemocap,
    "m3ed": _m3ed,
    "meld": _meld,
    "mer2023": _mer2023,
    "msppodcast": _msppodcast,
    "pavoque": _pavoque,
    "resd": _resd,
    "shemo": _shemo,
}
