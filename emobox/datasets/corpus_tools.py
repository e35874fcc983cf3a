"""The ``emobox corpora`` commands' library twins: list, manifest, check, stats.

Everything here goes through the plugin registry, so it works for any corpus plugin; the facts a
corpus publishes about itself (its reference counts, its fold table) come from its spec and its
adapter, never from a list of names kept here.

- :func:`list_corpora`: name, languages, counts of the published reference, license.
- :func:`corpus_info`: one corpus's card: homepage, licence, layout, reference counts.
- :func:`write_manifest`: scan a local copy and write one TSV row per utterance with its folds.
- :func:`check_corpus`: counts per label, speaker and fold; files the reference lists that are
  missing; files present that it does not list; unreadable audio; skipped files; speaker leakage
  per fold. ``CheckReport.errors`` is empty when the copy is fit for the benchmark.
- :func:`corpus_stats`: the EmoBox paper's Table 1 beside what the shipped tables hold, every
  difference with its explanation.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from emobox import paths
from emobox.datasets.audio import CONTAINER_SUFFIXES, check_wav_length, file_problem
from emobox.errors import AudioError
from emobox.datasets.corpus import Corpus
from emobox.errors import EmoboxUsageError
from emobox.io import atomic_write_json
from emobox.datasets.manifest import Manifest
from emobox.plugin.registry import Registry, get_registry
from emobox.progress import Reporter
from emobox.datasets.splits import Fold, class_warnings, leakage

MANIFEST_COLUMNS = ("key", "path", "speaker", "emotion", "emotion_raw", "channel", "start", "end",
                    "test_fold", "valid")


# -- building a corpus from its name ------------------------------------------------------------
def open_corpus(name: str, root: str | Path | None = None,
                options: Mapping[str, Any] | None = None,
                registry: Registry | None = None) -> Corpus:
    """The adapter of corpus ``name`` over ``root`` (or ``$EMOBOX_DATA/<name>``)."""
    spec = (registry or get_registry()).corpus(name)
    if spec.embedded and not root:
        return spec.build(None, **dict(options or {}))
    return spec.build(paths.corpus_root(name, root), **dict(options or {}))


# -- list -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusListing:
    name: str
    languages: tuple[str, ...]
    license: str
    utterances: int | None
    speakers: int | None
    labels: int | None
    folds: int | None
    description: str
    distribution: str


def list_corpora(registry: Registry | None = None) -> list[CorpusListing]:
    """Every registered corpus with the counts of its published reference (None without one)."""
    out = []
    for spec in (registry or get_registry()).specs("corpus"):
        ref = spec.reference() if spec.reference else {}
        out.append(CorpusListing(
            spec.name, tuple(spec.languages), spec.license, ref.get("utterances"),
            ref.get("speakers"), len(ref["labels"]) if "labels" in ref else None,
            ref.get("folds"), spec.description, spec.distribution))
    return out


# -- info ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusInfo:
    """What ``emobox corpora info NAME`` shows: where to get the corpus, its licence, the layout
    its adapter reads, where emobox looks for it and the counts of its published reference."""

    name: str
    description: str
    languages: tuple[str, ...]
    homepage: str
    license: str
    citation: str
    layout: str
    embedded: bool
    reader: bool
    root: str  # where emobox looks without --root ("" for an embedded corpus)
    root_exists: bool
    reference: Mapping[str, Any] | None
    options: Mapping[str, str]
    distribution: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "emobox.corpus_info", "schema_version": 1,
                "name": self.name, "description": self.description,
                "languages": list(self.languages), "homepage": self.homepage,
                "license": self.license, "citation": self.citation, "layout": self.layout,
                "embedded": self.embedded, "reader": self.reader, "root": self.root,
                "root_exists": self.root_exists,
                "reference": dict(self.reference) if self.reference is not None else None,
                "options": dict(self.options), "distribution": self.distribution}


def corpus_info(name: str, registry: Registry | None = None) -> CorpusInfo:
    """The card of corpus ``name`` from its spec (nothing is scanned)."""
    spec = (registry or get_registry()).corpus(name)
    root = "" if spec.embedded else str(paths.corpus_root(spec.name, None))
    reference = dict(spec.reference()) if spec.reference else None
    return CorpusInfo(
        name=spec.name, description=spec.description, languages=tuple(spec.languages),
        homepage=spec.homepage, license=spec.license, citation=spec.citation,
        layout=spec.layout or spec.expected_top_level, embedded=spec.embedded,
        reader=spec.reader, root=root, root_exists=bool(root) and Path(root).is_dir(),
        reference=reference, options=dict(spec.options), distribution=spec.distribution)


# -- manifest -------------------------------------------------------------------------------------
def fold_columns(manifest: Manifest, folds: Sequence[Fold],
                 corpus: Corpus) -> dict[str, dict[str, Any]]:
    """Per key: ``test_fold`` (fold in which it is a test item; 0 never; -1 in no fold),
    ``valid`` (1 = official validation item) and ``fold<k>`` (train / valid / test / -)."""
    table = corpus.fold_table() if folds and folds[0].scheme == "emobox" else None
    official = {k for f in folds if f.valid_rule == "official" for k in f.valid}
    roles: dict[str, dict[str, Any]] = {}
    for u in manifest:
        row: dict[str, Any] = {"test_fold": 0, "valid": int(u.key in official)}
        placed = False
        for f in folds:
            role = f.role_of(u.key)
            row[f.name] = role or "-"
            placed = placed or role is not None
            if role == "test":
                row["test_fold"] = f.index
        if not placed or (table is not None and u.key not in table):
            row["test_fold"] = -1
        roles[u.key] = row
    return roles


@dataclass
class ManifestResult:
    path: Path
    corpus: str
    scheme: str
    utterances: int
    folds: int
    skipped: list[tuple[str, str]]
    notes: list[str]


def write_manifest(name: str, root: str | Path | None, out: str | Path, scheme: str = "emobox",
                   seed: int = 0, options: Mapping[str, Any] | None = None,
                   registry: Registry | None = None) -> ManifestResult:
    """Scan corpus ``name`` and write its manifest with the folds of ``scheme`` as TSV."""
    corpus = open_corpus(name, root, options, registry)
    manifest = corpus.manifest_for(scheme)  # with the channels the scheme reads
    folds = corpus.folds(scheme=scheme, seed=seed)
    extra = fold_columns(manifest, folds, corpus)
    custom_cols = sorted({k for u in manifest for k in u.custom})
    for u in manifest:
        for k in custom_cols:
            extra[u.key][k] = u.custom.get(k)
    columns = ["test_fold", "valid", *[f.name for f in folds], *custom_cols]
    out = Path(out)
    if out.is_dir():
        raise EmoboxUsageError(f"-o {out} is a folder; give the manifest's file name, e.g. "
                               f"{out / (name + '.tsv')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_tsv(out, extra=extra, extra_columns=columns)
    atomic_write_json(out.with_suffix(".json"), {
        "kind": "emobox.manifest", "schema_version": 1, "corpus": manifest.corpus,
        "audio_root": str(Path(manifest.root).resolve()), "scheme": scheme, "seed": seed,
        "labels": list(manifest.labels), "folds": len(folds),
        "valid_rules": [f.valid_rule for f in folds],
        "official_valid": any(f.valid_rule == "official" for f in folds),
        "has_speaker_ids": corpus.has_speaker_ids, "utterances": len(manifest),
        "skipped": len(corpus.skipped)})
    notes = []
    unlisted = sum(1 for r in extra.values() if r["test_fold"] == -1)
    if unlisted:
        notes.append(f"{unlisted} utterances are in no fold of scheme {scheme} (test_fold -1)")
    if corpus.skipped:
        notes.append(f"{len(corpus.skipped)} files were skipped while scanning "
                     f"(`emobox corpora check` lists them)")
    return ManifestResult(out, name, scheme, len(manifest), len(folds), list(corpus.skipped),
                          notes)


# -- check ----------------------------------------------------------------------------------------
@dataclass
class FoldCheck:
    index: int
    train: int
    valid: int
    test: int
    valid_rule: str
    leaked: list[str]  # speakers in both the train side and test


@dataclass
class CheckReport:
    corpus: str
    root: Path
    scheme: str
    utterances: int = 0
    labels: Counter = field(default_factory=Counter)
    speakers: Counter = field(default_factory=Counter)
    has_speaker_ids: bool = True
    folds: list[FoldCheck] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (key, expected path)
    unlisted: list[tuple[str, str]] = field(default_factory=list)  # (key, path)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    expected: Mapping[str, Any] = field(default_factory=dict)  # the reference's counts
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_corpus(name: str, root: str | Path | None = None, scheme: str = "emobox",
                 seed: int = 0, audio: bool = True, options: Mapping[str, Any] | None = None,
                 registry: Registry | None = None,
                 reporter: Reporter | None = None) -> CheckReport:
    """Scan corpus ``name`` and report everything that keeps it from matching its reference."""
    reporter = reporter or Reporter()
    registry = registry or get_registry()
    spec = registry.corpus(name)
    corpus = open_corpus(name, root, options, registry)
    manifest = corpus.manifest
    rep = CheckReport(name, corpus.root, scheme, len(manifest), manifest.label_counts(),
                      Counter(u.speaker for u in manifest if u.speaker is not None),
                      corpus.has_speaker_ids, skipped=list(corpus.skipped),
                      expected=dict(spec.reference() if spec.reference else {}))
    table = corpus.fold_table() if scheme == "emobox" else None
    if table is not None:
        rep.missing = [(k, row.path) for k, row in table.items() if k not in manifest]
        rep.unlisted = [(u.key, u.path) for u in manifest if u.key not in table]
    try:
        folds = corpus.folds(scheme=scheme, seed=seed)
    except EmoboxUsageError as exc:  # e.g. speaker-independent folds without speaker ids
        rep.errors.append(str(exc))
        folds = []
    if audio:  # the audio a run reads: utterances in no fold (e.g. unlisted) are not read
        used = {k for f in folds for role in (f.train, f.valid, f.test) for k in role}
        rep.unreadable = probe_all(manifest.subset([u.key for u in manifest if u.key in used])
                                   if folds else manifest, reporter)
    leaks = leakage(manifest, folds) if corpus.has_speaker_ids else {}
    for f in folds:
        rep.folds.append(FoldCheck(f.index, len(f.train), len(f.valid), len(f.test),
                                   f.valid_rule, leaks.get(f.index, [])))
    _judge(rep, corpus)
    rep.warnings += class_warnings(manifest, folds)  # warnings: the folds are the corpus's own
    return rep


def _judge(rep: CheckReport, corpus: Corpus) -> None:
    if rep.missing:
        rep.errors.append(f"{len(rep.missing)} utterances listed by the reference are missing "
                          f"from {rep.root} (e.g. {rep.missing[0][1] or rep.missing[0][0]})")
    if rep.unreadable:
        rep.errors.append(f"{len(rep.unreadable)} audio files cannot be read "
                          f"(e.g. {rep.unreadable[0][0]}: {rep.unreadable[0][1]})")
    leaked = [f for f in rep.folds if f.leaked]
    if leaked and rep.scheme == "speaker-independent":
        rep.errors.append(f"speakers leak between train and test in folds "
                          f"{[f.index for f in leaked]}")
    elif leaked:
        rep.warnings.append(f"scheme {rep.scheme} is speaker-dependent for this corpus: "
                            f"{len(leaked)} of {len(rep.folds)} folds share speakers between "
                            f"train and test (as the reference does)")
    if not rep.has_speaker_ids:
        rep.warnings.append("the speaker field of this corpus is not a person (see its card); "
                            "speaker counts and leakage are not meaningful")
    if rep.unlisted:
        rep.warnings.append(f"{len(rep.unlisted)} utterances present are not in the reference, "
                            f"so scheme emobox leaves them out of every split and a run does "
                            f"not read them (e.g. {rep.unlisted[0][1]})")
    if rep.skipped:
        reasons = Counter(why for _, why in rep.skipped)
        top = "; ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
        rep.warnings.append(f"{len(rep.skipped)} files skipped while scanning: {top}")
    expected = rep.expected.get("utterances")
    if expected is not None and expected != rep.utterances and not rep.missing:
        rep.warnings.append(f"{rep.utterances} utterances scanned, the reference has {expected}")


def probe_audio(path: Path) -> str:
    """Why ``path`` cannot serve as audio ("" when its header reads), without decoding it all."""
    problem = file_problem(path)
    if problem:
        return problem
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        import soundfile as sf

        try:
            info = sf.info(str(path))
        except Exception as exc:  # libsndfile cannot: try the container decoder
            sf_error = str(exc).splitlines()[0]
        else:
            if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
                return "no audio frames"
            if info.format in ("WAV", "WAVEX", "RF64"):
                try:  # a header promising more than the file holds (a cut copy)
                    check_wav_length(path, int(info.samplerate), int(info.frames))
                except AudioError as exc:
                    return str(exc).removeprefix(f"{path}: ")
            return ""
    else:
        sf_error = ""
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "no audio stream"
            for _ in container.decode(audio=0):  # the codec opens and gives a first frame
                return ""
            return "no audio frames"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if not sf_error else sf_error


def probe_all(manifest: Manifest, reporter: Reporter) -> list[tuple[str, str]]:
    bad = []
    seen: set[str] = set()
    files = [u.path for u in manifest if not (u.path in seen or seen.add(u.path))]
    with reporter.task(f"reading audio headers of {manifest.corpus}", len(files), "files") as t:
        for rel in files:
            why = probe_audio(manifest.root / rel)
            if why:
                bad.append((rel, why))
            t.advance()
    return bad


# -- stats ----------------------------------------------------------------------------------------
@dataclass
class StatsRow:
    corpus: str
    dataset: str
    paper: Mapping[str, Any]  # utterances, speakers, emotions, hours, lang, source
    shipped: Mapping[str, Any] | None  # utterances, speakers, emotions, hours, folds
    differences: list[str]  # field names that differ
    explanations: list[str]  # one line per difference


def paper_tables() -> dict:
    return json.loads((resources.files("emobox") / "data" / "paper_tables.json")
                      .read_text(encoding="utf-8"))


def corpus_stats(registry: Registry | None = None) -> tuple[list[StatsRow], str]:
    """Table 1 of the EmoBox paper beside the shipped reference tables, and the table's note.

    A difference is a count that is not equal (hours: beyond the paper's rounding, 0.05 h). Each
    gets the explanation recorded with the paper's table, or says that none is recorded.
    """
    registry = registry or get_registry()
    tables = paper_tables()
    known = {}
    for line in tables.get("table1_vs_metadata", []):
        corpus, _, rest = line.partition(": ")
        known.setdefault((corpus, rest.split(" ", 1)[0]), line)
    specs = {s.name: s for s in registry.specs("corpus")}
    rows = []
    for entry in tables["table1"]:
        cid = entry["corpus_id"]
        spec = specs.get(cid)
        ref = spec.reference() if spec is not None and spec.reference else None
        shipped = None
        diffs, notes = [], []
        if ref is not None:
            shipped = {"utterances": ref["utterances"], "speakers": ref["speakers"],
                       "emotions": len(ref["labels"]), "hours": ref["hours"],
                       "folds": ref["folds"]}
            for fld in ("utterances", "speakers", "emotions", "hours"):
                paper_v, ours = entry.get(fld), shipped[fld]
                if fld == "hours":
                    same = isinstance(paper_v, (int, float)) and abs(paper_v - ours) <= 0.05
                else:
                    same = paper_v == ours
                if not same:
                    diffs.append(fld)
                    notes.append(known.get((cid, fld), f"{cid}: {fld} paper {paper_v} vs "
                                           f"shipped {ours} (no explanation recorded)"))
        rows.append(StatsRow(cid, entry["dataset"], dict(entry), shipped, diffs, notes))
    return rows, tables.get("table1_vs_metadata_note", "")


def _fmt_count(v: Any) -> str:
    return "-" if v is None else str(v)


def stats_lines(rows: Iterable[StatsRow]) -> list[str]:
    """The explanation lines of every difference, in table order."""
    return [line for r in rows for line in r.explanations]
