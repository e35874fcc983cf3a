"""SUPERB-style submissions: test predictions per corpus and fold, checked and scored.

A submission is a zip::

    metadata.json                       kind "emobox.submission": the upstream (name, checkpoint
                                        id, parameter count, options, layer, precision), emobox
                                        version, and per corpus the downstream, grid, partition
                                        scheme, seed, folds, selection rule and class set
    predictions/<corpus>/fold<k>.tsv    header ``key<TAB>predicted``, one line per test item

``pack`` writes it from run directories (one upstream). ``validate`` checks it against the
corpus's folds: the published fold table the corpus plugin ships (``CorpusSpec.reference_table``) for
scheme ``emobox``, else the folds of a scan (embedded corpora, or ``--root-map``). Every test key
must be there exactly once, in its own fold, with a label of the corpus's class set, and no
training key. ``score`` recomputes UA, WA and macro-F1 per fold from gold labels (the published
table, else the scan).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__, paths
from .errors import DataError, EmoboxError, EmoboxUsageError
from .io import naming
from .metrics import mean_std, scores
from .plugins import Registry, get_registry
from .rundirs import collect_runs, read_predictions

KIND = "emobox.submission"
SCHEMA_VERSION = 1
MAX_PROBLEMS_PER_FILE = 5
REQUIRED_UPSTREAM = ("name", "checkpoint_id", "parameters")
REQUIRED_CORPUS = ("downstream", "grid", "scheme", "seed", "folds", "n_folds", "select",
                   "labels")


@dataclass
class PackResult:
    path: Path
    metadata: dict
    files: list[str]


def pack(run_paths: Iterable[str | Path], out: str | Path, upstream: str | None = None,
         registry: Registry | None = None) -> PackResult:
    """Zip the test predictions of finished runs (one upstream) into a submission."""
    runs = collect_runs(run_paths)
    if upstream:
        runs = [r for r in runs if r.triple[0] == upstream]
        if not runs:
            raise EmoboxUsageError(f"no run of upstream {upstream!r} in the given directories")
    ups = sorted({(r.triple[0], r.config.get("checkpoint_id", "")) for r in runs})
    if len(ups) > 1:
        raise EmoboxUsageError(
            "a submission holds one upstream checkpoint; the runs have " + ", ".join(
                f"{u} ({c})" for u, c in ups) + " (choose one with --upstream)")
    registry = registry or get_registry()
    by_corpus: dict[str, Any] = {}
    for run in runs:
        corpus = run.triple[1]
        if corpus in by_corpus:
            raise EmoboxUsageError(f"two runs for corpus {corpus}: {by_corpus[corpus].path} and "
                                   f"{run.path}; pass only one")
        by_corpus[corpus] = run
    first = runs[0].config
    parameters = first.get("upstream_parameters")
    if parameters is None:
        try:
            parameters = registry.upstream(first["upstream"]).parameters
        except EmoboxError:
            parameters = None
    meta = {
        "kind": KIND, "schema_version": SCHEMA_VERSION, "emobox_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "upstream": {"name": first["upstream"], "checkpoint_id": first.get("checkpoint_id", ""),
                     "parameters": parameters, "options": first.get("upstream_options", {}),
                     "layer": first.get("layer"), "precision": first.get("precision")},
        "corpora": {},
    }
    files: dict[str, str] = {}
    for corpus, run in sorted(by_corpus.items()):
        c = run.config
        folds = sorted(int(f) for f in c["folds"])
        for fold in folds:
            pred = run.path / "predictions" / f"fold{fold}.tsv"
            if not pred.exists() or fold not in {r["fold"] for r in run.selected}:
                raise EmoboxUsageError(f"{run.path}: fold {fold} is not finished (no "
                                       f"{pred.name}); finish the run before packing it")
            files[f"predictions/{corpus}/fold{fold}.tsv"] = "key\tpredicted\n" + "".join(
                f"{key}\t{predicted}\n" for key, _, predicted in read_predictions(run, fold))
        meta["corpora"][corpus] = {
            "downstream": c["downstream"], "grid": c["grid"], "scheme": c["scheme"],
            "seed": c["seed"], "folds": folds, "n_folds": c["n_folds"], "select": c["select"],
            "labels": c["labels"], "epochs": c.get("epochs"),
            "contaminated": any(r.get("contaminated") for r in run.rows),
            "run_fingerprint": c.get("fingerprint", "")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with naming(out), zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps(meta, indent=2, sort_keys=True,
                                                allow_nan=False) + "\n")
        for name, text in sorted(files.items()):
            zf.writestr(name, text)
    tmp.replace(out)
    return PackResult(out, meta, sorted(files))


# -- reading and checking ---------------------------------------------------------------------

@dataclass
class Submission:
    path: Path
    metadata: dict | None
    files: dict[str, str]  # name -> text


def read_submission(path: str | Path) -> Submission:
    path = Path(path)
    if not path.exists():
        raise EmoboxUsageError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            files = {n: zf.read(n).decode("utf-8") for n in zf.namelist() if not n.endswith("/")}
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a submission zip ({exc})", path=str(path))
    meta = None
    if "metadata.json" in files:
        try:
            meta = json.loads(files["metadata.json"])
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: metadata.json is not valid JSON ({exc.msg})",
                            path=str(path))
    return Submission(path, meta, files)


@dataclass
class Gold:
    """The truth a submission is checked against, for one corpus."""

    corpus: str
    labels: tuple[str, ...]
    test: dict[int, list[str]]  # fold -> test keys
    train: dict[int, set[str]]  # fold -> keys on the training side
    label: Mapping[str, str]  # key -> gold class
    source: str  # "published fold table" | "scan of <root>"


def gold_for(corpus: str, entry: Mapping[str, Any], registry: Registry,
             root_map: Mapping[str, str]) -> Gold:
    spec = registry.corpus(corpus)
    scheme, seed = entry.get("scheme", "emobox"), int(entry.get("seed", 0))
    if scheme == "emobox" and spec.reference_table is not None and corpus not in root_map:
        ref = spec.reference_table()
        n = ref.n_folds
        return Gold(corpus, tuple(ref.labels), {k: ref.test_keys(k) for k in range(1, n + 1)},
                    {k: set(ref.train_keys(k)) for k in range(1, n + 1)}, dict(ref.label),
                    "published fold table")
    root = root_map.get(corpus)
    if not spec.embedded and not root and spec.reference_table is None:
        raise EmoboxUsageError(f"{corpus}: no published fold table ships with its plugin; pass "
                               f"--root-map {corpus}=DIR so its folds can be built from a scan")
    c = spec.build(None if spec.embedded and not root else paths.corpus_root(corpus, root))
    folds = c.folds(scheme=scheme, seed=seed)
    return Gold(corpus, tuple(c.manifest.labels), {f.index: list(f.test) for f in folds},
                {f.index: set(f.train) | set(f.valid) for f in folds},
                {u.key: u.label for u in c.manifest}, f"scan of {c.root}")


@dataclass
class Validation:
    path: Path
    problems: list[str] = field(default_factory=list)
    predictions: dict[str, dict[int, dict[str, str]]] = field(default_factory=dict)
    gold: dict[str, Gold] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(path: str | Path, root_map: Mapping[str, str] | None = None,
             registry: Registry | None = None) -> Validation:
    """Every problem of a submission, each naming the file, key or field at fault."""
    registry = registry or get_registry()
    sub = read_submission(path)
    result = Validation(sub.path)
    problems = result.problems
    meta = sub.metadata
    if meta is None:
        problems.append("metadata.json is missing")
        return result
    problems += _check_metadata(meta)
    if problems:
        return result
    corpora = meta["corpora"]
    for name in sorted(sub.files):
        if name == "metadata.json":
            continue
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != "predictions" or not (
                parts[2].startswith("fold") and parts[2].endswith(".tsv")
                and parts[2][4:-4].isdigit()):
            problems.append(f"{name}: unexpected file (predictions go in "
                            f"predictions/<corpus>/fold<k>.tsv)")
        elif parts[1] not in corpora:
            problems.append(f"{name}: corpus {parts[1]!r} is not listed in metadata.json")
    for corpus, entry in sorted(corpora.items()):
        try:
            gold = gold_for(corpus, entry, registry, root_map or {})
        except EmoboxError as exc:
            problems.append(f"{corpus}: cannot get its folds: {exc}")
            continue
        result.gold[corpus] = gold
        result.predictions[corpus] = {}
        n_folds = len(gold.test)
        for fold in sorted(int(f) for f in entry["folds"]):
            if not 1 <= fold <= n_folds:
                problems.append(f"{corpus}: metadata.json lists fold {fold}, but {corpus} has "
                                f"folds 1..{n_folds} in scheme {entry['scheme']}")
        listed = {int(f) for f in entry["folds"]}
        for fold in range(1, n_folds + 1):
            name = f"predictions/{corpus}/fold{fold}.tsv"
            if name not in sub.files:
                problems.append(f"{name}: missing ({corpus} has folds 1..{n_folds}; every "
                                f"fold's test predictions are needed)")
                continue
            if fold not in listed:
                problems.append(f"{name}: fold {fold} is not listed in metadata.json")
            preds, file_problems = _check_fold(name, sub.files[name], fold, gold)
            problems += file_problems
            result.predictions[corpus][fold] = preds
        for name in sub.files:
            if name.startswith(f"predictions/{corpus}/fold") and name.endswith(".tsv"):
                digits = name[len(f"predictions/{corpus}/fold"):-4]
                if digits.isdigit() and not 1 <= int(digits) <= n_folds:
                    problems.append(f"{name}: wrong fold: {corpus} has folds 1..{n_folds} in "
                                    f"scheme {entry['scheme']}")
    return result


def _check_metadata(meta: Any) -> list[str]:
    if not isinstance(meta, dict):
        return ["metadata.json: expected a JSON object"]
    out = []
    if meta.get("kind") != KIND:
        out.append(f"metadata.json: kind is {meta.get('kind')!r}, expected {KIND!r}")
    up = meta.get("upstream")
    if not isinstance(up, dict):
        out.append("metadata.json: field 'upstream' is missing")
    else:
        out += [f"metadata.json: field 'upstream.{k}' is missing" for k in REQUIRED_UPSTREAM
                if k not in up]
    if "emobox_version" not in meta:
        out.append("metadata.json: field 'emobox_version' is missing")
    corpora = meta.get("corpora")
    if not isinstance(corpora, dict) or not corpora:
        out.append("metadata.json: field 'corpora' is missing or empty")
    else:
        for c, entry in sorted(corpora.items()):
            if not isinstance(entry, dict):
                out.append(f"metadata.json: corpora.{c} is not an object")
                continue
            out += [f"metadata.json: field 'corpora.{c}.{k}' is missing" for k in REQUIRED_CORPUS
                    if k not in entry]
    return out


def _check_fold(name: str, text: str, fold: int, gold: Gold) -> tuple[dict[str, str], list[str]]:
    problems: list[str] = []

    def add(msg: str) -> None:
        if len(problems) < MAX_PROBLEMS_PER_FILE:
            problems.append(f"{name}: {msg}")
        elif len(problems) == MAX_PROBLEMS_PER_FILE:
            problems.append(f"{name}: ... (more problems not shown)")

    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or rows[0] != ["key", "predicted"]:
        return {}, [f"{name}: first line must be the header 'key<TAB>predicted'"]
    test = gold.test[fold]
    test_set = set(test)
    other_fold = {k: f for f, ks in gold.test.items() if f != fold for k in ks}
    classes = set(gold.labels)
    preds: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            add(f"line {lineno}: expected 2 tab-separated columns (key, predicted), got "
                f"{len(row)}")
            continue
        key, label = row
        if key in first_line:
            add(f"line {lineno}: duplicate key {key!r} (first on line {first_line[key]})")
            continue
        first_line[key] = lineno
        if key not in test_set:
            if key in other_fold:
                add(f"line {lineno}: {key!r} is a test key of fold {other_fold[key]}, not of "
                    f"fold {fold} (wrong fold)")
            elif key in gold.train[fold]:
                add(f"line {lineno}: {key!r} is a training key of fold {fold}, not a test key")
            else:
                add(f"line {lineno}: unknown key {key!r} (not in {gold.corpus})")
            continue
        if label not in classes:
            add(f"line {lineno}: unknown label {label!r} for {key!r} (classes of "
                f"{gold.corpus}: {', '.join(gold.labels)})")
            continue
        preds[key] = label
    missing = [k for k in test if k not in first_line]
    if missing:
        add(f"missing {len(missing)} of {len(test)} test keys of fold {fold}, e.g. "
            f"{missing[0]!r}")
    return preds, problems


# -- scoring ----------------------------------------------------------------------------------

def score(path: str | Path, root_map: Mapping[str, str] | None = None,
          registry: Registry | None = None) -> dict:
    """Validate, then recompute UA/WA/F1 per corpus and fold from gold labels."""
    result = validate(path, root_map, registry)
    if not result.ok:
        raise DataError(f"{result.path}: not a valid submission: " + "; ".join(
            result.problems[:3]) + (f" (and {len(result.problems) - 3} more; run `emobox "
                                    f"submit validate`)" if len(result.problems) > 3 else ""),
            path=str(result.path))
    meta = read_submission(path).metadata
    card = {"kind": "emobox.score", "schema_version": 1, "submission": str(result.path),
            "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "upstream": meta["upstream"], "emobox_version": __version__,
            "submission_emobox_version": meta["emobox_version"], "corpora": {}}
    for corpus, folds in sorted(result.predictions.items()):
        gold = result.gold[corpus]
        index = {lab: i for i, lab in enumerate(gold.labels)}
        per_fold = []
        for fold, preds in sorted(folds.items()):
            keys = gold.test[fold]
            s = scores([index[gold.label[k]] for k in keys], [index[preds[k]] for k in keys],
                       len(gold.labels))
            per_fold.append({"fold": fold, "ua": s["ua"], "wa": s["wa"], "f1": s["f1"],
                             "n_test": len(keys), "confusion": s["confusion"]})
        entry = dict(meta["corpora"][corpus])
        entry.update({"gold": gold.source, "folds": per_fold})
        for m in ("ua", "wa", "f1"):
            mu, sd = mean_std([f[m] for f in per_fold])
            entry[m], entry[f"{m}_std"] = mu, sd
        card["corpora"][corpus] = entry
    return card
