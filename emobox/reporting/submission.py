"""SUPERB-style submissions: test predictions per corpus and fold, checked and scored.

A submission is a zip::

    metadata.json                       kind "emobox.submission": the upstream (name, checkpoint
                                        id, parameter count, options, layer, precision), emobox
                                        version, and per corpus the downstream, grid, partition
                                        scheme, seed, folds, selection rule and class set
    predictions/<corpus>/fold<k>.tsv    header ``key<TAB>predicted``, one line per test item

``pack`` writes it from run directories (one upstream), refusing a run directory whose
``config.json`` or predictions no longer agree with its results, and anything ``validate`` would
refuse in what it writes. ``validate`` checks it against the corpus's folds: the published fold
table the corpus plugin ships (``CorpusSpec.reference_table``) for scheme ``emobox``, else the
folds of a scan (embedded corpora, or ``--root-map``). Every test key must be there exactly
once, in its own fold, with a label of the corpus's class set, and no training key. ``score``
recomputes UA, WA and macro-F1 per fold from gold labels (the published table, else the scan).

A submission comes from someone else, so it is read defensively (:mod:`emobox.submission_io`):
the zip's directory is sized and counted (through its ZIP64 end record where it has one) before
:mod:`zipfile` parses it; only ``metadata.json`` and the fold files its corpora call for are
read, each capped in size; ``metadata.json`` must match a schema, and only its known fields go
into a score card.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from emobox import __version__, escape, paths
from emobox.errors import DataError, EmoboxError, EmoboxUsageError
from emobox.extraction.upstream_catalog import parameter_count
from emobox.io import naming, read_text_capped
from emobox.training.metrics import mean_std, scores
from emobox.plugin.registry import Registry, get_registry
from emobox.reporting.results import feature_norm_of
from emobox.tracks.options import RUN_CONFIG_UNFINGERPRINTED, config_fingerprint
from emobox.tracks.rundirs import DAMAGED, collect_runs, read_predictions
from emobox.tracks.rundirs import MAX_PREDICTIONS_BYTES as MAX_RUN_PREDICTIONS_BYTES
from emobox.reporting.submission_io import FOLD_FILE as _FOLD_FILE
from emobox.reporting.submission_io import (MAX_METADATA_BYTES, MAX_PREDICTIONS_BYTES,
                                            CorpusMeta, SubmissionMeta, SubmissionZip,
                                            UpstreamMeta, shorten, parse_json, schema_problems)
from emobox.reporting.submission_io import Submission, read_submission  # noqa: F401  (public here too)

KIND = "emobox.submission"
SCHEMA_VERSION = 1
MAX_PROBLEMS_PER_FILE = 5

@dataclass
class PackResult:
    path: Path
    metadata: dict
    files: list[str]
    # what the run left out and `submit validate` will refuse (test keys a run skipped)
    notes: list[str] = field(default_factory=list)


def pack(run_paths: Iterable[str | Path], out: str | Path, upstream: str | None = None,
         registry: Registry | None = None,
         root_map: Mapping[str, str] | None = None) -> PackResult:
    """Zip the test predictions of finished runs (one upstream) into a submission.

    Each run directory is checked first: ``config.json`` must still give its fingerprint and
    agree with the rows of ``results.jsonl``, and every fold's predictions must give the
    confusion matrix its selected row records. What would be written is checked as ``submit
    validate`` checks a submission (:func:`_validate`); a problem refuses the pack, naming the
    run directory's file."""
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
    try:
        for run in runs:
            check_run_config(run)
        return _pack(runs, out, registry, dict(root_map or {}))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an edited config.json
        raise DataError(f"{runs[0].path / 'config.json'} (or another run's): cannot pack it: "
                        f"{type(exc).__name__}: {shorten(exc, 120)}; the run directory was "
                        f"edited or damaged", path=str(runs[0].path)) from None


# fields a result row's options hold with another meaning than config.json's
_NOT_COMPARED = frozenset({"layer"})


def _json(value: Any, n: int = 40) -> str:
    return shorten(json.dumps(value, sort_keys=True, default=str), n)


def check_run_config(run: Any) -> None:
    """``config.json`` of a run directory is the one its results were made with: the
    fingerprint it records is the one of its fields, and its options, folds and classes are
    those of its ``results.jsonl`` rows; else a :class:`DataError` naming ``config.json``."""
    c = run.config
    cfg, results = run.path / "config.json", run.path / "results.jsonl"

    def edited(msg: str) -> DataError:
        return DataError(f"{cfg}: {msg}; {DAMAGED}", path=str(cfg))

    for row in run.rows:
        options = row.get("options")
        if isinstance(options, dict):
            for k in sorted((set(options) & set(c)) - _NOT_COMPARED - RUN_CONFIG_UNFINGERPRINTED):
                if options[k] != c[k]:
                    raise edited(f"{k} is {_json(c[k])}, but the results in {results} were made "
                                 f"with {_json(options[k])}")
        if row.get("labels") != c["labels"]:
            raise edited(f"labels are {_json(c['labels'], 120)}, but fold {row['fold']} in "
                         f"{results} has {_json(row.get('labels'), 120)}")
    beyond = [f for f in c["folds"] if f > c["n_folds"]]
    if beyond:
        raise edited(f"folds lists fold {beyond[0]}, but n_folds is {c['n_folds']}")
    recorded = c.get("fingerprint")
    if not isinstance(recorded, str) or not recorded:
        raise edited("no fingerprint (emobox records one in every run)")
    if config_fingerprint(c) != recorded:
        raise edited(f"its fields do not give the fingerprint it records ({shorten(recorded)}); "
                     f"it was edited after the run")
    other = sorted({r["run_id"] for r in run.rows if isinstance(r.get("run_id"), str)}
                   - {recorded})
    if other:
        raise DataError(f"{results}: rows of run {shorten(other[0])}, but {cfg} is run "
                        f"{recorded}; {DAMAGED}", path=str(results))


def _fold_file(run: Any, fold: int) -> tuple[str, list[tuple[str, str, str]]]:
    """The fold file a submission holds for ``predictions/fold<k>.tsv`` of a run (its lines
    where the run's file has them, so that a line number names both) and that file's rows."""
    path = run.path / "predictions" / f"fold{fold}.tsv"
    rows = read_predictions(run, fold)
    lines = read_text_capped(path, MAX_RUN_PREDICTIONS_BYTES, "in run directories").split("\n")
    if sum(1 for line in lines[1:] if line) != len(rows):
        raise DataError(f"{path}: changed while it was read; pack again", path=str(path))
    rows_left = iter(rows)
    out = ["key\tpredicted"]
    for line in lines[1:]:
        if line:
            key, _, predicted = next(rows_left)
            out.append(f"{key}\t{predicted}")
        else:
            out.append("")
    return "\n".join(out), rows


def _check_confusion(run: Any, fold: int, rows: list[tuple[str, str, str]]) -> None:
    """The confusion matrix of a fold's predictions is the one its selected row records."""
    path = run.path / "predictions" / f"fold{fold}.tsv"
    results = run.path / "results.jsonl"
    labels = run.config["labels"]
    index = {lab: i for i, lab in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for key, gold, predicted in rows:
        for what, lab in (("gold", gold), ("predicted", predicted)):
            if lab not in index:
                raise DataError(f"{path}: {what} label {shorten(lab)!r} of {shorten(key)!r} is "
                                f"not a class of the run ({', '.join(labels)}); {DAMAGED}",
                                path=str(path))
        counts[index[gold]][index[predicted]] += 1
    row = next(r for r in run.selected if r["fold"] == fold)
    recorded = row["confusion"]
    if counts == recorded:
        return
    for i, gold in enumerate(labels):
        for j, predicted in enumerate(labels):
            theirs = (recorded[i][j] if i < len(recorded) and isinstance(recorded[i], list)
                      and j < len(recorded[i]) else None)
            if counts[i][j] != theirs:
                raise DataError(
                    f"{path}: {counts[i][j]} items of gold {gold} predicted {predicted}, but "
                    f"fold {fold}'s row in {results} counts {_json(theirs)}: the predictions "
                    f"are not the ones the run scored; {DAMAGED}", path=str(path))
    raise DataError(f"{path}: its confusion matrix is not the one fold {fold}'s row in "
                    f"{results} records ({_json(recorded)}); {DAMAGED}", path=str(path))


def _gold_roots(runs: list, root_map: dict[str, str], registry: Registry) -> dict[str, str]:
    """``root_map`` and, for corpora whose folds come from a scan (no published table for the
    run's scheme), the root each run scanned."""
    out = dict(root_map)
    for run in runs:
        corpus, c = run.triple[1], run.config
        if corpus in out or not isinstance(c.get("root"), str):
            continue
        try:
            spec = registry.corpus(corpus)
        except EmoboxError:
            continue
        published = c["scheme"] == "emobox" and spec.reference_table is not None
        if not published and Path(c["root"]).is_dir():
            out[corpus] = c["root"]
    return out


def _pack(runs: list, out: str | Path, registry: Registry,
          root_map: dict[str, str]) -> PackResult:
    by_corpus: dict[str, Any] = {r.triple[1]: r for r in runs}
    first = runs[0].config
    try:  # the count `upstreams info` shows; else what the run recorded
        parameters = parameter_count(registry.upstream(first["upstream"]))
    except EmoboxError:
        parameters = None
    if parameters is None:
        parameters = first.get("upstream_parameters")
    meta = {
        "kind": KIND, "schema_version": SCHEMA_VERSION, "emobox_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "upstream": {"name": first["upstream"], "checkpoint_id": first.get("checkpoint_id", ""),
                     "parameters": parameters, "options": first.get("upstream_options", {}),
                     "layer": first.get("layer"), "precision": first.get("precision")},
        "corpora": {},
    }
    _, problems = schema_problems(UpstreamMeta, meta["upstream"], str(runs[0].path /
                                                                       "config.json"))
    if problems:
        raise DataError(f"{problems[0]} (as the submission's upstream); {DAMAGED}",
                        path=str(runs[0].path / "config.json"))
    files: dict[str, str] = {}
    sources: dict[str, Path] = {}
    fold_rows: dict[tuple[str, int], list] = {}
    for corpus, run in sorted(by_corpus.items()):
        c = run.config
        folds = sorted(int(f) for f in c["folds"])
        for fold in folds:
            pred = run.path / "predictions" / f"fold{fold}.tsv"
            if not pred.exists() or fold not in {r["fold"] for r in run.selected}:
                raise EmoboxUsageError(f"{run.path}: fold {fold} is not finished (no "
                                       f"{pred.name}); finish the run before packing it")
            name = f"predictions/{corpus}/fold{fold}.tsv"
            files[name], fold_rows[corpus, fold] = _fold_file(run, fold)
            sources[name] = pred
        entry = {
            "downstream": c["downstream"], "grid": c["grid"], "scheme": c["scheme"],
            "seed": c["seed"], "folds": folds, "n_folds": c["n_folds"], "select": c["select"],
            "labels": c["labels"], "epochs": c.get("epochs"),
            "feature_norm": feature_norm_of(c), "grad_clip": c.get("grad_clip", 0),
            "recipe": c.get("recipe", "emobox"), "schedule": c.get("schedule", "linear"),
            "contaminated": any(r.get("contaminated") for r in run.rows),
            "run_fingerprint": c.get("fingerprint", "")}
        _, problems = schema_problems(CorpusMeta, entry, str(run.path / "config.json"))
        if problems:
            raise DataError(f"{problems[0]}; {DAMAGED}", path=str(run.path / "config.json"))
        meta["corpora"][corpus] = entry
    _, problems = schema_problems(SubmissionMeta, meta, "metadata of the runs")
    if problems:  # never write a submission that validate would refuse
        raise DataError(f"{runs[0].path}: cannot pack these runs: {problems[0]}",
                        path=str(runs[0].path))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with naming(out), zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("metadata.json", json.dumps(meta, indent=2, sort_keys=True,
                                                    allow_nan=False) + "\n")
            for name, text in sorted(files.items()):
                zf.writestr(name, text)
        with SubmissionZip(tmp) as sub:
            found = [p for p in _validate(sub, _gold_roots(runs, root_map, registry),
                                          registry).problems
                     if not _FOLD_NOT_RUN.match(p) or p.split(":")[0] in files]
        left_out = [p for p in found if _left_out_by_the_run(p, by_corpus, fold_rows)]
        found = [p for p in found if p not in left_out]
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise DataError(_run_problem(found[0], sources, by_corpus) + more + "; not packed",
                            path=str(runs[0].path))
        for (corpus, fold), rows in sorted(fold_rows.items()):
            _check_confusion(by_corpus[corpus], fold, rows)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    notes = [f"{_run_problem(p, sources, by_corpus)}: the run left them out (skipped audio, "
             f"or --recipe paper's utterances over 30 s); `emobox submit validate` refuses a "
             f"submission without every test key" for p in left_out]
    return PackResult(out, meta, sorted(files), notes)


# a fold a partial run did not do: not packed (``submit validate`` names it)
_FOLD_NOT_RUN = re.compile(r"^predictions/[^/]+/fold\d+\.tsv: missing \(")
# test keys a run left out (skipped audio, --recipe paper): packed, with a note
_KEYS_NOT_RUN = re.compile(r"^predictions/([^/]+)/fold(\d+)\.tsv: missing \d+ of \d+ test keys ")


def _left_out_by_the_run(problem: str, runs: Mapping[str, Any],
                         fold_rows: Mapping[tuple[str, int], list]) -> bool:
    """Whether ``problem`` is test keys missing from a fold's predictions that the run itself
    left out: its selected row counts exactly the predictions there are (a key deleted from
    the file afterwards is counted by the row, and refused)."""
    m = _KEYS_NOT_RUN.match(problem)
    if not m or m.group(1) not in runs:
        return False
    fold = int(m.group(2))
    row = next((r for r in runs[m.group(1)].selected if r["fold"] == fold), None)
    rows = fold_rows.get((m.group(1), fold))
    return row is not None and rows is not None and sum(map(sum, row["confusion"])) == len(rows)


def _run_problem(problem: str, sources: Mapping[str, Path], runs: Mapping[str, Any]) -> str:
    """A problem :func:`_validate` found in a zip being packed, said of the run directory's
    file it comes from."""
    for name, source in sources.items():
        if problem.startswith(name + ":"):
            return str(source) + problem[len(name):]
    for corpus, run in runs.items():
        cfg = str(run.path / "config.json")
        for theirs, ours in ((f"metadata.json: corpora.{corpus}.", f"{cfg}: "),
                             (f"{corpus}: metadata.json lists", f"{cfg} lists"),
                             (f"{corpus}: cannot get its folds:",
                              f"{run.path}: cannot check its predictions against {corpus}'s "
                              f"folds:")):
            if problem.startswith(theirs):
                return ours + problem[len(theirs):]
    return f"{next(iter(runs.values())).path}: cannot pack these runs: {problem}"


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
    metadata: dict | None = None  # the known fields of metadata.json, once it passed its schema
    sha256: str = ""  # of the zip file
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def content_sha256(self) -> str:
        """Hash of what the submission says (metadata without its creation time, and every
        prediction): the same predictions packed twice hash alike."""
        h = hashlib.sha256()
        meta = dict(self.metadata or {})
        meta.pop("created", None)
        h.update(json.dumps(meta, sort_keys=True).encode())
        for corpus, folds in sorted(self.predictions.items()):
            for fold, preds in sorted(folds.items()):
                h.update(f"\n{corpus}\t{fold}\n".encode())
                h.update("".join(f"{k}\t{v}\n" for k, v in sorted(preds.items())).encode())
        return h.hexdigest()


def validate(path: str | Path, root_map: Mapping[str, str] | None = None,
             registry: Registry | None = None) -> Validation:
    """Every problem of a submission, each naming the file, key or field at fault."""
    registry = registry or get_registry()
    with SubmissionZip(path) as sub:
        return _validate(sub, root_map or {}, registry)


def _validate(sub: SubmissionZip, root_map: Mapping[str, str],
              registry: Registry) -> Validation:
    result = Validation(sub.path, sha256=sub.sha256)
    problems = result.problems
    problems += sub.problems
    if "metadata.json" not in sub.members:
        problems.append("metadata.json is missing")
        return result
    try:
        raw = parse_json(sub.read("metadata.json", MAX_METADATA_BYTES), "metadata.json")
    except DataError as exc:
        problems.append(str(exc))
        return result
    meta_problems = _check_metadata(raw)
    if meta_problems or problems:
        problems += meta_problems
        return result
    meta, _ = schema_problems(SubmissionMeta, raw, "metadata.json")
    result.metadata = meta
    if meta["emobox_version"] != __version__:
        result.notes.append(f"made with emobox {meta['emobox_version']} (this is "
                            f"{__version__}); checked against this version's folds")
    corpora = meta["corpora"]
    for name in sorted(sub.members):
        if name == "metadata.json":
            continue
        m = _FOLD_FILE.match(name)
        if not m:
            problems.append(f"{shorten(name)}: unexpected file (predictions go in "
                            f"predictions/<corpus>/fold<k>.tsv); it is not read")
        elif m.group(2) != str(int(m.group(2))):
            problems.append(f"{name}: unexpected file name (fold numbers are written without "
                            f"leading zeros: fold{int(m.group(2))}.tsv); it is not read")
        elif m.group(1) not in corpora:
            problems.append(f"{name}: corpus {shorten(m.group(1))!r} is not listed in "
                            f"metadata.json; it is not read")
    for corpus, entry in sorted(corpora.items()):
        try:
            gold = gold_for(corpus, entry, registry, root_map)
        except EmoboxError as exc:
            problems.append(f"{corpus}: cannot get its folds: {exc}")
            continue
        result.gold[corpus] = gold
        result.predictions[corpus] = {}
        n_folds = len(gold.test)
        if entry["n_folds"] != n_folds:
            problems.append(f"metadata.json: corpora.{corpus}.n_folds is {entry['n_folds']}, "
                            f"but {corpus} has {n_folds} folds in scheme {entry['scheme']}")
        unknown = [lab for lab in entry["labels"] if lab not in gold.labels]
        if unknown:
            problems.append(f"metadata.json: corpora.{corpus}.labels name {shorten(unknown[0])!r}"
                            f", not a class of {corpus} ({', '.join(gold.labels)})")
        for fold in sorted(entry["folds"]):
            if not 1 <= fold <= n_folds:
                problems.append(f"{corpus}: metadata.json lists fold {fold}, but {corpus} has "
                                f"folds 1..{n_folds} in scheme {entry['scheme']}")
        listed = set(entry["folds"])
        for fold in range(1, n_folds + 1):
            name = f"predictions/{corpus}/fold{fold}.tsv"
            if name not in sub.members:
                problems.append(f"{name}: missing ({corpus} has folds 1..{n_folds}; every "
                                f"fold's test predictions are needed)")
                continue
            if fold not in listed:
                problems.append(f"{name}: fold {fold} is not listed in metadata.json")
            try:
                text = sub.read_text(name, MAX_PREDICTIONS_BYTES)
            except DataError as exc:
                problems.append(str(exc))
                continue
            preds, file_problems = _check_fold(name, text, fold, gold)
            problems += file_problems
            result.predictions[corpus][fold] = preds
        for name in sub.members:
            m = _FOLD_FILE.match(name)
            if m and m.group(1) == corpus and m.group(2) == str(int(m.group(2))) \
                    and not 1 <= int(m.group(2)) <= n_folds:
                problems.append(f"{name}: wrong fold: {corpus} has folds 1..{n_folds} in "
                                f"scheme {entry['scheme']}")
    return result


def _check_metadata(meta: Any) -> list[str]:
    if not isinstance(meta, dict):
        return ["metadata.json: expected a JSON object"]
    if meta.get("kind") != KIND:
        return [f"metadata.json: kind is {shorten(meta.get('kind'))!r}, expected {KIND!r}"]
    version = meta.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        return [f"metadata.json: format version {version} is newer than this emobox reads "
                f"({SCHEMA_VERSION}); upgrade emobox to check it"]
    out = []
    up = meta.get("upstream")
    if not isinstance(up, dict):
        out.append("metadata.json: field 'upstream' is missing or not an object")
    else:
        out += [f"metadata.json: field 'upstream.{k}' is missing"
                for k in ("name", "checkpoint_id", "parameters") if k not in up]
    if "emobox_version" not in meta:
        out.append("metadata.json: field 'emobox_version' is missing")
    corpora = meta.get("corpora")
    if not isinstance(corpora, dict) or not corpora:
        out.append("metadata.json: field 'corpora' is missing or empty")
    else:
        for c, entry in sorted(corpora.items()):
            if not isinstance(entry, dict):
                out.append(f"metadata.json: corpora.{shorten(c)} is not an object")
                continue
            out += [f"metadata.json: field 'corpora.{shorten(c)}.{k}' is missing"
                    for k in CorpusMeta.model_fields
                    if CorpusMeta.model_fields[k].is_required() and k not in entry]
    if out:
        return out
    return schema_problems(SubmissionMeta, meta, "metadata.json")[1]


def _check_fold(name: str, text: str, fold: int, gold: Gold) -> tuple[dict[str, str], list[str]]:
    problems: list[str] = []

    def add(msg: str) -> bool:
        """Record a problem; False once the file has shown enough of them."""
        if len(problems) < MAX_PROBLEMS_PER_FILE:
            problems.append(f"{name}: {msg}")
            return True
        problems.append(f"{name}: ... (more problems not shown)")
        return False

    reader = csv.reader(io.StringIO(text), delimiter="\t")
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return {}, [f"{name}: line 1: {exc}"]
    if header != ["key", "predicted"]:
        return {}, [f"{name}: first line must be the header 'key<TAB>predicted'"]
    test = gold.test[fold]
    test_set = set(test)
    other_fold = {k: f for f, ks in gold.test.items() if f != fold for k in ks}
    classes = set(gold.labels)
    preds: dict[str, str] = {}
    first_line: dict[str, int] = {}
    lineno = 1
    try:
        for lineno, row in enumerate(reader, start=2):  # lazily: a huge file stops early
            if not row:
                continue
            if len(row) != 2:
                ok = add(f"line {lineno}: expected 2 tab-separated columns (key, predicted), "
                         f"got {len(row)}")
            else:
                ok = _check_row(row[0], row[1], lineno, fold, gold, test_set, other_fold,
                                classes, preds, first_line, add)
            if not ok:
                return preds, problems
    except csv.Error as exc:
        add(f"line {lineno + 1}: {exc}")
        return preds, problems
    missing = [k for k in test if k not in first_line]
    if missing:
        add(f"missing {len(missing)} of {len(test)} test keys of fold {fold}, e.g. "
            f"{missing[0]!r}")
    return preds, problems


def _check_row(key: str, label: str, lineno: int, fold: int, gold: Gold, test_set: set,
               other_fold: dict, classes: set, preds: dict, first_line: dict, add) -> bool:
    if key in first_line:
        return add(f"line {lineno}: duplicate key {shorten(key)!r} (first on line "
                   f"{first_line[key]})")
    if key not in test_set:
        if key in other_fold:
            return add(f"line {lineno}: {key!r} is a test key of fold {other_fold[key]}, not "
                       f"of fold {fold} (wrong fold)")
        if key in gold.train[fold]:
            return add(f"line {lineno}: {key!r} is a training key of fold {fold}, not a test "
                       f"key")
        return add(f"line {lineno}: unknown key {shorten(key)!r} (not in {gold.corpus})")
    first_line[key] = lineno
    if label not in classes:
        return add(f"line {lineno}: unknown label {shorten(label)!r} for {key!r} (classes of "
                   f"{gold.corpus}: {', '.join(gold.labels)})")
    preds[key] = label
    return True


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
    meta = result.metadata
    card = {"kind": "emobox.score", "schema_version": 1,
            "submission": escape.one_line(result.path)[:1000],
            "sha256": result.sha256, "content_sha256": result.content_sha256,
            "upstream": meta["upstream"], "emobox_version": __version__,
            "submission_emobox_version": meta["emobox_version"], "corpora": {}}
    for corpus, folds in sorted(result.predictions.items()):
        gold = result.gold[corpus]
        index = {lab: i for i, lab in enumerate(gold.labels)}
        per_fold = []
        for fold, preds in sorted(folds.items()):
            keys = gold.test[fold]
            if not keys:
                raise DataError(f"{corpus}: fold {fold} has no test item ({gold.source}); it "
                                f"cannot be scored", path=str(result.path))
            s = scores([index[gold.label[k]] for k in keys], [index[preds[k]] for k in keys],
                       len(gold.labels))
            per_fold.append({"fold": fold, "ua": s["ua"], "wa": s["wa"], "f1": s["f1"],
                             "n_test": len(keys), "confusion": s["confusion"]})
        entry = dict(meta["corpora"][corpus])
        entry.update({"gold": escape.one_line(gold.source)[:1000], "folds": per_fold})
        for m in ("ua", "wa", "f1"):
            mu, sd = mean_std([f[m] for f in per_fold])
            entry[m], entry[f"{m}_std"] = mu, sd
        card["corpora"][corpus] = entry
    return card
