"""``emobox cross run``: the cross-corpus track (EmoBox's Tables 3 and 5, Figure 1).

The library twin of the CLI command: ``emobox.cross.cross_run(CrossOptions(...))``. For n corpora
(by default IEMOCAP, MELD, RAVDESS and SAVEE) and a shared class set (by default angry, happy,
neutral and sad, through the canonical vocabulary):

1. every corpus is scanned and its balanced test set resolved to keys of the scan: the set a
   corpus plugin publishes (``CorpusSpec.balanced_test_set``; EmoBox's for the four), or one
   made by ``emobox cross build`` (``--sets DIR``); a test key missing from the scan, or with
   another label, is an error;
2. features are extracted once per (upstream, corpus) for the whole corpus, into the same
   feature store ``emobox run`` and ``emobox bench`` use;
3. for each source corpus one model is trained, with the same trainer, grid and selection as
   the intra-corpus track, on every utterance of the shared classes except its own balanced set
   (and the keys a set marks ``also_excluded``); validation is a seeded stratified 20% of that
   training side (``--valid stratified``, the default: the same rule for every source, since the
   balanced sets are drawn across official splits), or the corpus's official dev split where
   it has one (``--valid official``, the intra-corpus rule); test data never selects a model;
4. the selected model of each source is tested on every corpus's balanced set: an n x n matrix
   of accuracy (= WA), UA and macro-F1, the per-source and overall average off-diagonal
   accuracy ``1/(n^2-n) sum_{i!=j} Acc_ij`` (EmoBox Eq. 1), with the paper's Table 5 for the same
   upstream beside it where the paper has it.

A run directory (``--out``, default ``$EMOBOX_HOME/cross/<upstream>__<downstream>__<fp>``) holds
``config.json``, ``test_sets/<corpus>.tsv`` (the sets used, by key), ``results.jsonl`` (one row
per source x configuration x target, the selected ones flagged), ``predictions/<source>__<target>
.tsv`` (key, gold, predicted), ``matrix.tsv`` and ``matrix.json``, ``summary.md`` and
``heatmap.png`` (plus ``heatmap_paper.png`` where the paper has the upstream). Re-running the
same command resumes: sources already trained are kept, unless the audio of a corpus changed
since (``config.json`` records each corpus's audio digest): that directory is then refused.
``--layer`` with several layers (:func:`cross_run_layers`) makes one track per layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from emobox import __version__, paths
from emobox.datasets.balanced import BalancedSet
from emobox.errors import DataError, EmoboxUsageError
from emobox.io import atomic_write_text, file_lock, jsonl_text, read_jsonl
from emobox.datasets.labels import CROSS_CORPUS_CLASSES, canonical_classes
from emobox.reporting.cross_report import (CrossResult, column_averages, cross_average, finish_cross,
                                           row_averages)
from emobox.reporting.paper import CROSS_CORPORA
from emobox.reporting.results import epochs_from_one
from emobox.plugin.registry import Registry, distributions_of, get_registry
from emobox.progress import Reporter
from emobox.datasets.splits import VALID_FRACTION, random_split, stratified_split
from emobox.training.sweep import config_id, expand_grid
from emobox.tracks.options import (SharedOptions, check_corpus_options, check_owners,
                                   check_upstream_options, fingerprint, head_grid,
                                   warmup_warning)
from emobox.tracks.runner import (RunOptions, extract_features, features_for, same_code,
                                  sweep_layers)
from emobox.tracks.rundirs import (CROSS_KIND, RESUME_HINT, check_cross_dir, check_resumable,
                                   read_cross_config, start_run_dir, write_results)
from emobox.extraction.extract import FrameSource, resolve_device
from emobox.training.metrics import scores
from emobox.extraction.store import FeatureStore

VALID_RULES = ("stratified", "official")
KIND = "emobox.cross_result"


@dataclass(frozen=True)
class CrossOptions(SharedOptions):
    """The cross-corpus track: the shared options (:class:`emobox.tracks.options.SharedOptions`;
    its ``corpus_options`` are by corpus) and the track's corpora, classes and sets."""

    upstream: str
    downstream: str = "linear_probe"
    corpora: tuple[str, ...] = CROSS_CORPORA
    root_map: Mapping[str, str] = field(default_factory=dict)  # corpus -> root folder
    sets: str | None = None  # folder of <corpus>.tsv balanced sets; others: the published ones
    classes: tuple[str, ...] = CROSS_CORPUS_CLASSES
    valid: str = "stratified"  # stratified | official

    def check(self) -> None:
        super().check()
        if self.valid not in VALID_RULES:
            raise EmoboxUsageError(f"--valid must be one of {', '.join(VALID_RULES)}")

    def check_plugins(self, registry: Registry) -> tuple[Any, Any, dict]:
        """The upstream and downstream specs and the grid, with ``-U``/``-C`` options checked
        against what the plugins declare and the grid against the head's hyper-parameters
        (before anything is scanned or extracted)."""
        up_spec = registry.upstream(self.upstream)
        down_spec = registry.downstream(self.downstream)
        check_upstream_options(up_spec, self.upstream_options)
        names = list(dict.fromkeys(self.corpora))
        check_owners(self.corpus_options, names, "--corpus-option", "track's corpora")
        for name in names:
            if name in self.corpus_options:
                check_corpus_options(registry.corpus(name), self.corpus_options[name])
        return up_spec, down_spec, head_grid(self, down_spec)

    def run_options(self, corpus: str) -> Any:
        """The ``emobox run`` options of one corpus (its extraction shares their store)."""
        return RunOptions.from_shared(self, corpus=corpus, root=self.root_map.get(corpus),
                                      out=None,
                                      corpus_options=dict(self.corpus_options.get(corpus, {})))


@dataclass
class TrackCorpus:
    """One corpus of the track: its scan, its balanced test set and its training side."""

    name: str
    spec: Any
    corpus: Any
    manifest: Any
    test_set: BalancedSet
    test: list[str]
    train: list[str]
    valid: list[str]
    valid_rule: str
    harmonised: dict[str, list[str]]  # class -> raw labels of the corpus mapped to it
    notes: list[str] = field(default_factory=list)


@dataclass
class CrossPlan:
    opts: CrossOptions
    up_spec: Any
    down_spec: Any
    device: str
    classes: tuple[str, ...]
    corpora: list[TrackCorpus]
    grid: dict
    configs: list[dict]
    notes: list[str]
    dropped: dict[str, dict[str, str]] = field(default_factory=dict)  # corpus -> key -> why


# -- planning ----------------------------------------------------------------------------------

def plan_cross(opts: CrossOptions, registry: Registry | None = None,
               corpora: Mapping[str, Any] | None = None) -> CrossPlan:
    """Resolve the specs and classes, scan every corpus (unless ``corpora`` holds it, already
    built), resolve its balanced set and build its training side (nothing heavy: no upstream
    is built)."""
    registry = registry or get_registry()
    up_spec, down_spec, grid = opts.check_plugins(registry)
    device = resolve_device(opts.device)
    classes = canonical_classes(opts.classes)
    names = list(dict.fromkeys(opts.corpora))
    if len(names) < 2:
        raise EmoboxUsageError("the cross-corpus track needs at least two corpora (-c A,B,...)")
    for name in list(opts.root_map):
        if name not in names:
            registry.corpus(name)  # an unknown name fails here, with suggestions
            raise EmoboxUsageError(f"--root-map {name}=...: {name} is not among the track's "
                                   f"corpora ({', '.join(names)})")
    sets_dir = Path(opts.sets).expanduser() if opts.sets else None
    if sets_dir is not None and not sets_dir.is_dir():
        raise EmoboxUsageError(f"--sets {sets_dir}: not a folder (expected <corpus>.tsv files "
                               f"written by `emobox cross build`)")
    notes: list[str] = []
    warmup_note = warmup_warning(opts.epochs, opts.warmup_epochs)
    if warmup_note:
        notes.append(warmup_note)
    if opts.recipe == "paper":
        notes.append("EMOBOX'S CODE, BUGS INCLUDED (--recipe paper): each source's epochs and "
                     "configuration were picked on the union of all targets' test sets, with "
                     "EmoBox's learning-rate schedule (epoch 2 at 0), utterances over 30 s "
                     "dropped and random instead of stratified 20% validation; only for "
                     "comparing with the published tables; these numbers are optimistic")
    elif opts.select == "test":
        notes.append("SELECTION BY TEST (--select test): each source's epochs and configuration "
                     "were picked on the union of all targets' test sets; only for comparing "
                     "with the published tables; these numbers are optimistic")
    track, problems = [], []
    for name in names:  # every corpus that is not here (or has no set) is named at once
        try:
            track.append(_track_corpus(registry.corpus(name), opts, classes, sets_dir,
                                       (corpora or {}).get(name)))
        except EmoboxUsageError as exc:
            problems.append(str(exc))
    if problems:
        also = up_spec.missing_checkpoint(opts.upstream_ckpt)  # and missing weights too
        raise EmoboxUsageError("\nerror: ".join(problems + ([str(also)] if also else [])))
    for tc in track:
        if tc.name in up_spec.trained_on:
            notes.append(f"{opts.upstream} was trained on {tc.name}: cells with {tc.name} as "
                         f"source or target are contaminated and marked §")
    return CrossPlan(opts, up_spec, down_spec, device, classes, track, grid, expand_grid(grid),
                     notes)


def _test_set(spec: Any, sets_dir: Path | None) -> BalancedSet:
    if sets_dir is not None and (sets_dir / f"{spec.name}.tsv").is_file():
        return BalancedSet.from_tsv(sets_dir / f"{spec.name}.tsv", spec.name)
    if spec.balanced_test_set is not None:
        return spec.balanced_test_set()
    where = f" (none in --sets {sets_dir})" if sets_dir is not None else ""
    raise EmoboxUsageError(
        f"{spec.name} has no balanced test set{where}: its plugin publishes none. Make one with "
        f"`emobox cross build -c {spec.name} --quota {spec.name}=SPEAKERSxPER_CLASS --root-map "
        f"{spec.name}=DIR --out SETS` and pass --sets SETS")


def _track_corpus(spec: Any, opts: CrossOptions, classes: tuple[str, ...],
                  sets_dir: Path | None, corpus: Any = None) -> TrackCorpus:
    if corpus is None:
        root = opts.root_map.get(spec.name)
        corpus = spec.build(None if spec.embedded and not root
                            else paths.corpus_root(spec.name, root),
                            **dict(opts.corpus_options.get(spec.name, {})))
    manifest = corpus.manifest_for("emobox")  # EmoBox's track: the channels EmoBox read
    unused = corpus.out_of_scheme()  # files EmoBox's table does not list: in no split
    if unused:
        manifest = manifest.subset([u.key for u in manifest if u.key not in unused])
    test_set = _test_set(spec, sets_dir)
    extra = sorted(set(test_set.classes) - set(classes))
    if extra:
        raise EmoboxUsageError(f"the balanced test set of {spec.name} ({test_set.origin}) holds "
                               f"classes outside the track's {', '.join(classes)}: "
                               f"{', '.join(extra)}")
    missing = [k for k in test_set.keys if k not in manifest]
    if missing:
        raise DataError(f"{spec.name}: {len(missing)} of the {len(test_set)} utterances of its "
                        f"balanced test set are not in the corpus scanned at {corpus.root}, e.g. "
                        f"{', '.join(missing[:3])}; the track needs every one of them "
                        f"({test_set.origin})", path=str(corpus.root))
    wrong = [(i.key, i.label, manifest[i.key].label) for i in test_set.items
             if manifest[i.key].label != i.label]
    if wrong:
        k, want, got = wrong[0]
        raise DataError(f"{spec.name}: {len(wrong)} utterances of its balanced test set carry "
                        f"another label in the scan, e.g. {k}: {want} in the set, {got} in the "
                        f"corpus ({test_set.origin})", path=str(corpus.root))
    notes = []
    if unused:
        key = next(iter(unused))
        notes.append(f"{spec.name}: {len(unused)} utterances of the scan are left out, neither "
                     f"extracted nor trained on (e.g. {key}: {unused[key]})")
    absent = [c for c in classes if c not in manifest.labels]
    if absent:
        notes.append(f"{spec.name} has no class {', '.join(absent)}: trained on it, the model "
                     f"never learns {'it' if len(absent) == 1 else 'them'}")
    excluded = test_set.excluded_from_training()
    side = [u.key for u in manifest if u.label in classes and u.key not in excluded]
    labels = {u.key: u.label for u in manifest}
    official = None
    if opts.valid == "official" and getattr(corpus, "official_valid", False):
        table = corpus.fold_table() or {}
        official = {k for k, row in table.items() if row.valid}
    if official:
        valid = [k for k in side if k in official]
        train = [k for k in side if k not in official]
        rule = "official"
    elif opts.recipe == "paper":  # EmoBox's dataset_prepare: a random, not stratified, 20%
        train, valid = random_split(side, opts.seed)
        rule = "random-20%"
    else:
        train, valid = stratified_split(side, labels, VALID_FRACTION, opts.seed,
                                        f"{spec.name}/cross-valid")
        rule = "stratified-20%"
        if opts.valid == "official":
            notes.append(f"{spec.name} has no official dev split: validation is a seeded "
                         f"stratified 20% of its training side")
    harmonised = {c: sorted({str(u.raw_label if u.raw_label is not None else u.label)
                             for u in manifest if u.label == c}) for c in classes}
    return TrackCorpus(spec.name, spec, corpus, manifest, test_set, list(test_set.keys), train,
                       valid, rule, harmonised, notes)


# -- running -------------------------------------------------------------------------------------

def cross_run(opts: CrossOptions, reporter: Reporter | None = None,
              registry: Registry | None = None) -> CrossResult:
    """Run the whole track for one layer (or a head's every layer); see the module docstring.
    Several layers (a list, or ``"all"`` for a one-layer head) are :func:`cross_run_layers`'."""
    reporter = reporter or Reporter()
    plan = plan_cross(opts, registry)
    if sweep_layers(opts.layer, plan.up_spec, plan.down_spec) is not None:
        raise EmoboxUsageError(f"layer {opts.layer!r} asks for several layers (a layer sweep): "
                               f"run them with cross_run_layers")
    feats = {}
    for tc in plan.corpora:
        feats[tc.name] = extract_features(plan.up_spec, tc.manifest, opts.run_options(tc.name),
                                          plan.device, reporter, plan.down_spec.layers)
    return _cross_planned(plan, feats, reporter)


def cross_run_layers(opts: CrossOptions, reporter: Reporter | None = None,
                     registry: Registry | None = None) -> list[CrossResult]:
    """:func:`cross_run` over every layer ``opts.layer`` names (one layer, a list, or
    ``"all"``): one scan and one extraction per corpus storing every layer, then one track per
    layer, each exactly the track ``layer=N`` alone would make (its fingerprint, its directory,
    resumed the same way). With ``out`` set, layer N goes to ``out/layerN`` and ``out`` gets
    the per-layer view (``layers.tsv``, ``layers.md``, ``layers.png``: each layer's
    off-diagonal averages side by side). For a head that reads every layer (``weighted_sum``),
    ``"all"`` is what it does anyway and a list is refused, as in ``emobox run``."""
    reporter = reporter or Reporter()
    registry = registry or get_registry()
    up_spec, down_spec = registry.upstream(opts.upstream), registry.downstream(opts.downstream)
    layers = sweep_layers(opts.layer, up_spec, down_spec)
    if layers is None:
        if opts.layer == "all":  # a head that reads every layer: what it does without --layer
            opts = replace(opts, layer=None)
        return [cross_run(opts, reporter, registry)]
    if len(layers) == 1:  # e.g. "all" of an upstream with one output: that layer's track
        return [cross_run(replace(opts, layer=layers[0]), reporter, registry)]
    outs = {n: str(Path(opts.out) / f"layer{n}") if opts.out else None for n in layers}
    if opts.out and (Path(opts.out) / "config.json").exists():
        raise EmoboxUsageError(f"--out {opts.out}: a cross-corpus run directory; a layer sweep "
                               f"writes one folder per layer inside --out: give a new folder")
    base = plan_cross(replace(opts, layer=layers[0], out=outs[layers[0]]), registry)
    stored = {}
    for tc in base.corpora:
        sweep = replace(opts.run_options(tc.name), layer=tuple(layers))
        stored[tc.name] = extract_features(base.up_spec, tc.manifest, sweep, base.device,
                                           reporter, base.down_spec.layers)
    results = []
    for n in layers:
        lopts = replace(opts, layer=n, out=outs[n])
        plan = replace(base, opts=lopts, notes=list(base.notes), dropped={})
        feats = {name: features_for(f, lopts.run_options(name)) for name, f in stored.items()}
        results.append(_cross_planned(plan, feats, reporter))
    if opts.out:
        from emobox.reporting.cross_report import finish_layers

        finish_layers(Path(opts.out), results)
    return results


def _cross_planned(plan: CrossPlan, feats: dict, reporter: Reporter) -> CrossResult:
    """Train and record the track of a plan whose features are extracted."""
    opts = plan.opts
    if opts.recipe == "paper":  # EmoBox's extraction skipped utterances over 30 s
        from emobox.tracks.runner import long_utterances

        for tc in plan.corpora:
            plan.dropped[tc.name] = long_utterances(tc.spec, tc.manifest,
                                                    feats[tc.name].store_path,
                                                    plan.up_spec.frame_rate)
    config = cross_config(plan, feats)
    out = Path(opts.out) if opts.out else default_out(opts, config["fingerprint"])
    with file_lock(out, what=f"cross-corpus run directory {out}"):
        return _run_sources(plan, feats, config, out, reporter)


def _run_sources(plan: CrossPlan, feats: dict, config: dict, out: Path,
                 reporter: Reporter) -> CrossResult:
    done = _prepare_out(out, config, plan)
    notes = list(plan.notes) + [n for tc in plan.corpora for n in tc.notes]
    for tc in plan.corpora:
        gone = plan.dropped.get(tc.name, {})
        if gone:
            in_test = [k for k in tc.test if k in gone]
            notes.append(f"{tc.name}: {len(gone)} utterances over 30 s dropped (--recipe paper: "
                         f"EmoBox's extraction skipped them; {len(in_test)} of its balanced test "
                         f"set), e.g. {', '.join(sorted(gone)[:3])}")
    for tc in plan.corpora:
        if feats[tc.name].skipped:
            lost = [k for k in tc.test if k in feats[tc.name].skipped]
            notes.append(f"{tc.name}: {len(feats[tc.name].skipped)} utterances skipped for "
                         f"unreadable audio ({len(lost)} of its balanced test set)")
    for tc in plan.corpora:
        if tc.name in done:
            continue
        rows, predictions = train_source(plan, tc, feats, config, reporter)
        write_results(out, {f"{tc.name}__{target}.tsv": text
                            for target, text in predictions.items()}, rows, check_cross_dir)
        done[tc.name] = rows
    return finish_cross(out, plan, done, config, notes)


def default_out(opts: CrossOptions, fingerprint: str) -> Path:
    return paths.home() / "cross" / f"{opts.upstream}__{opts.downstream}__{fingerprint}"


def cross_config(plan: CrossPlan, feats: Mapping[str, Any]) -> dict:
    """config.json: what changes the numbers (fingerprinted), then versions, roots and sets."""
    opts = plan.opts
    first = feats[plan.corpora[0].name]
    config = {
        "kind": CROSS_KIND, "schema_version": 1,
        "upstream": opts.upstream, "downstream": opts.downstream,
        "checkpoint_id": first.checkpoint_id, "upstream_ckpt": opts.upstream_ckpt,
        "upstream_options": dict(opts.upstream_options),
        "layer": first.layer, "layers": first.layers, "layer_norm": opts.layer_norm,
        "feature_norm": opts.feature_norm, "grad_clip": opts.grad_clip, "recipe": opts.recipe,
        "precision": opts.precision, "train_precision": opts.train_precision,
        "corpora": [tc.name for tc in plan.corpora], "classes": list(plan.classes),
        "valid": opts.valid, "grid": plan.grid, "epochs": opts.epochs,
        "warmup_epochs": opts.warmup_epochs, "schedule": opts.schedule,
        "batch_size": opts.batch_size, "select": opts.select,
        "selected_by_test": opts.select == "test", "optimizer": "Adam",
        "class_weights": opts.class_weights, "seed": opts.seed, "on_bad_audio": opts.on_bad_audio,
        "test_sets": {tc.name: {"origin": tc.test_set.origin, "hash": tc.test_set.content_hash(),
                                "utterances": len(tc.test_set)} for tc in plan.corpora},
        "manifest_hashes": {tc.name: tc.manifest.content_hash() for tc in plan.corpora},
    }
    if opts.corpus_options:  # only when given: the fingerprints of earlier runs stay the same
        config["corpus_options"] = {c: dict(o) for c, o in sorted(opts.corpus_options.items())}
    specs = [plan.up_spec, plan.down_spec] + [tc.spec for tc in plan.corpora]
    return dict(config, fingerprint=fingerprint(config, 12), device=plan.device,
                versions={"emobox": __version__, "plugins": distributions_of(specs)},
                roots={tc.name: str(tc.corpus.root) for tc in plan.corpora},
                features={k: f.store_path for k, f in feats.items()},
                splits={tc.name: {"train": len(tc.train), "valid": len(tc.valid),
                                  "test": len(tc.test), "valid_rule": tc.valid_rule}
                        for tc in plan.corpora},
                upstream_parameters=first.parameters,
                engine={k: f.engine for k, f in feats.items()},
                # a track resumed over other audio under the same names is refused (not in the
                # fingerprint: the directories of earlier emobox versions keep theirs)
                audio_sha256={k: f.audio_sha256 for k, f in feats.items()})


def _prepare_out(out: Path, config: dict, plan: CrossPlan) -> dict[str, list[dict]]:
    """Create or resume a run directory; returns the rows of the sources already finished."""
    if out.exists() and not out.is_dir():
        raise EmoboxUsageError(f"run directory {out} is a file; give --out a folder")
    check_cross_dir(out)
    old = check_resumable(out, config, read_cross_config, "cross-corpus run")
    if old is not None:
        check_same_audio(out, old, config)
    start_run_dir(out, config)
    for tc in plan.corpora:
        tc.test_set.to_tsv(out / "test_sets" / f"{tc.name}.tsv")
    rows = read_jsonl(out / "results.jsonl", repair=True, what="in run directories",
                      check=_check_cross_row, hint=RESUME_HINT)

    wanted = {(config_id(hp), t) for hp in plan.configs for t in config["corpora"]}
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    done = {source: rs for source, rs in by_source.items()
            if source_finished(out, source, rs, wanted, config)}
    kept = [r for r in rows if r["source"] in done]
    if len(kept) != len(rows):  # rows of a source cut short (or of older code) are redone
        atomic_write_text(out / "results.jsonl", jsonl_text(kept))
    return done


def source_finished(out: Path, source: str, rows: Sequence[dict], wanted: set[tuple[str, str]],
                    config: Mapping[str, Any]) -> bool:
    """Whether the rows of ``source`` are a finished source: one row per configuration and
    target of the grid, each made by this code (emobox and plugin versions), one configuration
    selected for every target (the same one, never a failed one), and every target's
    predictions written. Anything else (a source cut short, rows of older code, a selection
    edited or lost) is trained again."""
    if ({(r["config_id"], r["target"]) for r in rows} != wanted or len(rows) != len(wanted)
            or not all(same_code(r, config["versions"]) for r in rows)):
        return False
    chosen = [r for r in rows if r["selected"]]
    if (len(chosen) != len(config["corpora"]) or any(r.get("failed") for r in chosen)
            or len({r["config_id"] for r in chosen}) != 1
            or {r["target"] for r in chosen} != set(config["corpora"])):
        return False
    return all((out / "predictions" / f"{source}__{t}.tsv").is_file() for t in config["corpora"])


def check_same_audio(out: Path, old: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Refuse to resume a cross-corpus directory whose finished sources were trained or tested
    on other audio (another recording under the same name): ``config.json``'s audio digest of
    some corpus differs from the audio extracted now. A ``config.json`` of an earlier emobox
    records none: its audio is unknown and not compared."""
    recorded = old.get("audio_sha256")
    if not isinstance(recorded, dict):
        return
    now = config["audio_sha256"]
    changed = [c for c in config["corpora"] if c in recorded and recorded[c] != now.get(c)]
    if changed:
        c = changed[0]
        more = f", and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise EmoboxUsageError(
            f"{out} holds a cross-corpus run made with other options (audio_sha256 of {c}: "
            f"{json.dumps(recorded[c], default=str)[:40]} there, "
            f"{json.dumps(now.get(c), default=str)[:40]} now{more}); choose another --out or "
            f"delete that folder")


def _check_cross_row(row: dict) -> dict:
    for name in ("source", "target", "config_id"):
        if not isinstance(row.get(name), str):
            raise ValueError(f"not a cross-corpus result row (field {name!r} is "
                             f"{row.get(name)!r:.40})")
    if not isinstance(row.get("selected"), bool):
        raise ValueError("not a cross-corpus result row (no selected flag)")
    return epochs_from_one(row)  # best_epoch counted from 1 (version 1 rows counted from 0)


class ConcatSource:
    """Several frame sources (one per target corpus) read as one, in order, for testing."""

    def __init__(self, parts: Sequence[Any]):
        import torch

        self.parts = list(parts)
        self.dim = self.parts[0].dim
        self.dtype = self.parts[0].dtype
        self.lengths = torch.cat([p.lengths for p in self.parts])
        sizes = torch.tensor([len(p) for p in self.parts])
        self.starts = torch.cumsum(sizes, 0) - sizes

    def __len__(self) -> int:
        return int(self.lengths.numel())

    def to(self, device: Any) -> "ConcatSource":
        for p in self.parts:
            if hasattr(p, "to"):
                p.to(device)
        self.lengths = self.lengths.to(device)
        return self

    def gather(self, idx: Any) -> tuple[Any, Any]:
        import torch

        idx = torch.as_tensor(idx, dtype=torch.long).cpu()
        if len(idx) == 0:
            return self.parts[0].gather(idx)
        part_of = torch.searchsorted(self.starts, idx, right=True) - 1
        # runs of indices that fall in one part, in the order asked
        cuts = (torch.nonzero(part_of[1:] != part_of[:-1]).flatten() + 1).tolist()
        frames, lengths = [], []
        for a, b in zip([0] + cuts, cuts + [len(idx)]):
            p = int(part_of[a])
            f, n = self.parts[p].gather(idx[a:b] - self.starts[p])
            frames.append(f)
            lengths.append(n)
        if len(frames) == 1:
            return frames[0], lengths[0]
        return torch.cat(frames, dim=-2), torch.cat(lengths)


def train_source(plan: CrossPlan, tc: TrackCorpus, feats: Mapping[str, Any], config: dict,
                 reporter: Reporter) -> tuple[list[dict], dict[str, str]]:
    """Train the grid on one source corpus; test the selected model of every configuration on
    every target's balanced set. Returns the result rows and the predictions per target."""
    import torch

    from emobox.training.sweep import Split, TrainConfig, train_sweep

    opts = plan.opts
    label_index = {c: i for i, c in enumerate(plan.classes)}
    dtype = torch.bfloat16 if opts.train_precision == "bf16" else torch.float32
    every = plan.down_spec.layers == "all"

    def source(name: str, keys: list[str]) -> Any:
        f = feats[name]
        store = FeatureStore(Path(f.store_path))
        return FrameSource(store, f.layers if every else f.layer, keys,
                           norm=opts.feature_norm, dtype=dtype)

    def split(name: str, keys: list[str], labels: Mapping[str, str]) -> Any:
        gone = plan.dropped.get(name, {})
        keys = [k for k in keys if k not in feats[name].skipped and k not in gone]
        return Split(source(name, keys), torch.tensor([label_index[labels[k]] for k in keys],
                                                      dtype=torch.long), keys)

    gold = {u.key: u.label for u in tc.manifest}
    train = split(tc.name, tc.train, gold)
    valid = split(tc.name, tc.valid, gold)
    targets = []
    for t in plan.corpora:
        labels = {i.key: i.label for i in t.test_set.items}
        targets.append((t.name, split(t.name, t.test, labels)))
    test = Split(ConcatSource([s.source for _, s in targets]),
                 torch.cat([s.labels for _, s in targets]), [k for _, s in targets for k in s.keys])
    cfg = TrainConfig(epochs=opts.epochs, warmup_epochs=opts.warmup_epochs,
                      batch_size=opts.batch_size, select=opts.select, seed=opts.seed,
                      device=plan.device, class_weights=opts.class_weights,
                      precision=opts.train_precision, schedule=opts.schedule,
                      grad_clip=opts.grad_clip)
    first = feats[tc.name]
    sweep = train_sweep(plan.down_spec, plan.configs, train.source.dim, len(plan.classes), train,
                        valid, test, cfg, reporter,
                        description=f"{opts.downstream} trained on {tc.name}",
                        build_options={"n_layers": len(first.layers)} if every else None)
    trained_on = set(plan.up_spec.trained_on)
    meta = dict(kind=KIND, schema_version=2, run_id=config["fingerprint"],
                upstream=opts.upstream, checkpoint_id=first.checkpoint_id, layer=first.layer,
                layer_norm=opts.layer_norm, feature_norm=opts.feature_norm,
                grad_clip=opts.grad_clip, recipe=opts.recipe, schedule=opts.schedule,
                precision=opts.precision,
                train_precision=opts.train_precision, downstream=opts.downstream,
                source=tc.name, epochs=opts.epochs, seed=opts.seed, selection=sweep.selection,
                labels=list(plan.classes), n_train=len(train.keys), n_valid=len(valid.keys),
                valid_rule=tc.valid_rule, emobox_version=__version__,
                plugins=config["versions"]["plugins"], engine=first.engine)
    rows, predictions = [], {}
    start = 0
    for t_name, t_split in targets:
        n = len(t_split.keys)
        y = t_split.labels.numpy()
        t_set = config["test_sets"][t_name]
        for k, res in enumerate(sweep.configs):
            pred = res.test_pred[start:start + n]
            s = dict(res.test) if res.failed else scores(y, pred, len(plan.classes))
            rows.append(dict(
                meta, target=t_name, config_id=res.config_id, config=res.hp,
                selected=(k == sweep.selected), best_epoch=res.best_epoch,
                valid_ua=res.valid_ua, valid_loss=res.valid_loss, ua=s["ua"], wa=s["wa"],
                f1=s["f1"], confusion=s["confusion"], per_class_recall=s["per_class_recall"],
                n_test=n, in_average=(t_name != tc.name), test_set=t_set["origin"],
                test_set_hash=t_set["hash"],
                contaminated=bool({tc.name, t_name} & trained_on), failed=res.failed))
            if k == sweep.selected:
                predictions[t_name] = "key\tgold\tpredicted\n" + "".join(
                    f"{key}\t{plan.classes[int(g)]}\t{plan.classes[int(p)]}\n"
                    for key, g, p in zip(t_split.keys, y, pred))
        start += n
    return rows, predictions


__all__ = ["CrossOptions", "CrossResult", "cross_run", "cross_run_layers", "plan_cross", "cross_average",
           "row_averages", "column_averages"]
