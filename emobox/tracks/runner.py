"""``emobox run``: compose one upstream x corpus x downstream triple and evaluate it fold by fold.

The library twin of the CLI command: ``emobox.run(RunOptions(...))``. A run directory holds

    config.json        the triple, every option, versions, the fingerprint of what changes results
    results.jsonl      one row per fold x configuration (all configurations; the selected flagged)
    predictions/       fold<k>.tsv: key, gold, predicted of the selected configuration on test
    summary.md         the per-fold table and the mean, every configuration's mean, readable as it is
    confusion.png      the selected configurations' test confusion matrix, summed over folds
    skipped.tsv        what was left out, if anything: files the corpus scan skipped and
                       utterances with unreadable audio (--on-bad-audio skip)

Re-running the same command resumes: finished folds are kept, the rest is done; a run directory
made with other options is refused rather than mixed. Every result row carries the fingerprint of
every run option (:func:`fingerprinted_options`), so a fold counts as finished only when it was
made with the options asked for now, even when ``config.json`` is gone. One process writes a run
directory at a time (a second one waits for the lock, then resumes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from emobox import __version__, escape, paths
from emobox.errors import DataError, EmoboxUsageError
from emobox.extraction.extract import FrameSource, extract, resolve_device
from emobox.extraction.upstream import resolve_layers
from emobox.io import append_jsonl, atomic_write_text, dumps_json, jsonl_text
from emobox.training.metrics import mean_std
from emobox.plugin.registry import Registry, distributions_of, get_registry
from emobox.progress import Prefixed, Reporter
from emobox.reporting.markdown import Markdown, table
from emobox.reporting.results import NORM_WORDS, ResultRow, RowError, check_row, feature_norm_of
from emobox.tracks.rundirs import (RESUME_HINT, check_resumable, check_run_dir, load_run,
                                   read_rows, read_run_config, run_lock, start_run_dir,
                                   write_results)
from emobox.datasets.splits import class_warnings, leakage, select_folds, with_random_valid
from emobox.extraction.store import FeatureStore, check_audio
from emobox.extraction.upstream_catalog import parameter_count
from emobox.training.sweep import (Split, TrainConfig, config_id, expand_grid, train_sweep,
                                   used_hparams)
from emobox.tracks.options import (CORPUS_BUILD_ARGS, ON_BAD_AUDIO, UPSTREAM_BUILD_ARGS,  # noqa: F401
                                   FoldOptions, check_corpus_options, check_options,
                                   config_fingerprint,
                                   check_plugin_options, check_positive, check_upstream_options,
                                   declared_options, fingerprint, hash_options, head_grid,
                                   warmup_warning)
from emobox.tracks.options import plain as _plain


PAPER_RECIPE_NOTE = ("EMOBOX'S CODE, BUGS INCLUDED (--recipe paper): epochs and configurations "
                     "selected by TEST, EmoBox's learning-rate schedule (epoch 2 at 0), utterances "
                     "over 30 s dropped, random instead of stratified 20% validation; only for "
                     "comparing with the published tables, these numbers are optimistic")

# run options that do not change a result (where things are, how fast they run, which folds of
# the run this invocation does): left out of the options fingerprint. Every other field of
# RunOptions, present and future, is in it.
NOT_FINGERPRINTED = ("out", "folds", "device", "root", "features_dir", "batch_seconds",
                     "runtime")


@dataclass(frozen=True)
class RunOptions(FoldOptions):
    """One triple: the shared options (:class:`emobox.tracks.options.FoldOptions`) and what
    the triple is."""

    upstream: str
    corpus: str
    downstream: str
    root: str | None = None

    @classmethod
    def from_shared(cls, options: Any, **overrides: Any) -> "RunOptions":
        """The run options of one triple of a larger job (``emobox bench``, ``emobox cross``):
        every field ``options`` has under a run option's name, then ``overrides``. An option
        added to both reaches the runs without being copied by hand."""
        names = {f.name for f in dataclasses.fields(cls)}
        shared = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
                  if f.name in names}
        return cls(**{**shared, **overrides})

    def check_plugins(self, registry: Registry | None = None) -> tuple[Any, Any, Any, dict]:
        """The upstream, corpus and downstream specs and the grid, with ``-U``/``-C`` options
        checked against what the plugins declare and the grid against the head's
        hyper-parameters (before anything is scanned or extracted)."""
        registry = registry or get_registry()
        up_spec = registry.upstream(self.upstream)
        corpus_spec = registry.corpus(self.corpus)
        down_spec = registry.downstream(self.downstream)
        check_upstream_options(up_spec, self.upstream_options)
        check_corpus_options(corpus_spec, self.corpus_options)
        return up_spec, corpus_spec, down_spec, head_grid(self, down_spec)


def fingerprinted_options(opts: RunOptions, grid: Mapping[str, Any],
                          manifest_hash: str) -> dict:
    """Everything that changes a run's numbers: every field of :class:`RunOptions` but
    :data:`NOT_FINGERPRINTED` (found by ``dataclasses.fields``, so an option added later is in
    it without an edit here), the grid as resolved and the corpus manifest's hash."""
    values = {f.name: _plain(getattr(opts, f.name)) for f in dataclasses.fields(opts)
              if f.name not in NOT_FINGERPRINTED}
    values["grid"] = _plain(grid)
    values["manifest_hash"] = manifest_hash
    return values


def _option_defaults() -> dict:
    out = {}
    for f in dataclasses.fields(RunOptions):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = _plain(f.default_factory())  # type: ignore[misc]
    return out


def options_differ(row: Mapping[str, Any], options: Mapping[str, Any]) -> list[str] | None:
    """The options whose values differ between ``row`` and ``options`` (empty: the same);
    None when the row carries no options (written by an earlier emobox). An option a row does
    not name (added to emobox after it was written) counts as its default."""
    if row.get("options_fingerprint") == hash_options(options):
        return []
    theirs = row.get("options")
    if not isinstance(theirs, dict) or not theirs:
        return None
    defaults = _option_defaults()
    keys = sorted(set(theirs) | set(options))
    return [k for k in keys if theirs.get(k, defaults.get(k)) != options.get(k, defaults.get(k))]


@dataclass
class FoldSummary:
    fold: int
    ua: float
    wa: float
    f1: float
    config_id: str
    best_epoch: int
    valid_ua: float


@dataclass
class RunResult:
    out: Path
    folds: list[FoldSummary]
    rows: list[dict]
    config: dict
    notes: list[str]
    already_complete: bool = False  # every fold was finished before: nothing was trained

    def mean(self, metric: str) -> tuple[float, float]:
        return mean_std([getattr(f, metric) for f in self.folds])


@dataclass
class TriplePlan:
    """One triple resolved on the driver: specs, scanned corpus, folds and grid; nothing heavy
    (the upstream is not built)."""

    opts: RunOptions
    up_spec: Any
    corpus_spec: Any
    down_spec: Any
    device: str
    corpus: Any
    manifest: Any
    all_folds: list
    folds: list
    grid: dict
    configs: list[dict]
    notes: list[str]
    left_out: dict[str, str] = field(default_factory=dict)  # key -> why no fold holds it
    dropped: dict[str, str] | None = None  # key -> why --recipe paper drops it (once known)


@dataclass
class Features:
    """What an extraction task hands back: where the features are and what made them."""

    store_path: str
    layer: Any  # an index, or "all" for heads that read every layer
    layers: list[int]
    checkpoint_id: str
    skipped: dict[str, str]
    parameters: int | None = None
    store_options: dict = field(default_factory=dict)  # the upstream's feature-changing options
    audio_sha256: str = ""  # digest of the audio content the features were extracted from
    upstream_layers: int = 0  # the upstream's num_layers (resolves each variant's layer)
    engine: dict = field(default_factory=dict)  # how the features were computed (not hashed)


@dataclass
class FoldJob:
    """Plain data for one training task (one triple x fold): picklable, no open objects."""

    fold: int
    n_folds: int
    keys: dict[str, list[str]]  # role -> keys
    targets: dict[str, list[int]]  # role -> class indices
    labels: list[str]
    store_path: str
    layer: Any
    layers: list[int]
    feature_norm: str
    downstream: str
    configs: list[dict]
    train: TrainConfig
    row_meta: dict  # ResultRow fields shared by every row of the fold
    valid_rule: str


@dataclass
class FoldOutput:
    fold: int
    rows: list[dict]
    predictions: str  # predictions/fold<k>.tsv content


def plan_triple(opts: RunOptions, registry: Registry | None = None,
                corpus: Any = None) -> TriplePlan:
    """Resolve the specs, scan the corpus (unless ``corpus`` is given, already built) and build
    its folds (cheap; no upstream is built)."""
    registry = registry or get_registry()
    up_spec, corpus_spec, down_spec, grid = opts.check_plugins(registry)
    device = resolve_device(opts.device)
    notes: list[str] = []
    for problem in registry.all_problems():  # broken plugins are left out, never silently
        warnings.warn(f"{problem.line()}; it is left out (`emobox plugins` shows the details)")

    if corpus is None:
        try:
            corpus = corpus_spec.build(None if corpus_spec.embedded and not opts.root
                                       else paths.corpus_root(opts.corpus, opts.root),
                                       **dict(opts.corpus_options))
        except EmoboxUsageError as exc:  # a missing checkpoint too: say both at once
            also = up_spec.missing_checkpoint(opts.upstream_ckpt)
            if also is None:
                raise
            raise EmoboxUsageError(f"{exc}\nerror: {also}") from exc
    all_folds = corpus.folds(scheme=opts.scheme, seed=opts.seed)
    if opts.recipe == "paper":  # EmoBox's dataset_prepare: a random, not stratified, 20%
        position = {u.key: i for i, u in enumerate(corpus.manifest)}
        all_folds = [with_random_valid(f, position, opts.seed) for f in all_folds]
    manifest, left_out = in_folds(corpus, all_folds, opts.scheme)
    if left_out:
        notes.append(f"{len(left_out)} utterances of the scan are in no fold of scheme "
                     f"{opts.scheme} (e.g. {next(iter(left_out))}: {next(iter(left_out.values()))}"
                     f"): they are not extracted and are listed in skipped.tsv")
    folds = select_folds(all_folds, list(opts.folds))
    if opts.corpus in up_spec.trained_on:
        msg = (f"{opts.upstream} was trained on {opts.corpus}: these results are contaminated "
               f"and marked so")
        warnings.warn(msg)
        notes.append(msg)
    for msg in class_warnings(manifest, folds):  # on stderr now, in summary.md at the end
        warnings.warn(f"{opts.corpus}: {msg}")
        notes.append(msg)
    if opts.recipe == "paper":
        notes.append(PAPER_RECIPE_NOTE)
    elif opts.select == "test":
        notes.append("SELECTION BY TEST (EmoBox recipe, --select test): only for comparing with "
                     "the published tables; these numbers are optimistic")
    warmup_note = warmup_warning(opts.epochs, opts.warmup_epochs)
    if warmup_note:
        warnings.warn(warmup_note)
        notes.append(warmup_note)
    if opts.precision != "fp32":
        notes.append(f"features extracted in {opts.precision} (a fast mode, not exact fp32)")

    configs = expand_grid(grid)
    return TriplePlan(opts, up_spec, corpus_spec, down_spec, device, corpus, manifest,
                      all_folds, folds, grid, configs, notes, left_out)


MAX_SECONDS = 30.0  # EmoBox's speech_feature_extraction.py skips longer utterances


def long_utterances(corpus_spec: Any, manifest: Any, store_path: str | None = None,
                    frame_rate: float | None = None, limit: float = MAX_SECONDS
                    ) -> dict[str, str]:
    """Utterances of ``manifest`` longer than ``limit`` seconds, with the reason: EmoBox's
    extraction skipped them (``if dur > 30.``), so ``--recipe paper`` drops them from train,
    validation and test. The duration is EmoBox's own recorded length where the corpus's
    published table has the key (what EmoBox compared), else the manifest's segment, else the
    audio file's header, else the feature store's frame count over the upstream's frame rate."""
    from emobox.datasets.audio import CONTAINER_SUFFIXES

    published = {}
    if getattr(corpus_spec, "reference_table", None) is not None:
        published = corpus_spec.reference_table().duration
    frames: dict[str, int] | None = None
    out = {}
    for u in manifest:
        if u.key in published:
            seconds, source = float(published[u.key]), "EmoBox's recorded length"
        elif u.start is not None and u.end is not None:
            seconds, source = u.end - u.start, "segment"
        elif u.duration is not None:
            seconds, source = float(u.duration), "manifest"
        else:
            seconds, source = _header_seconds(manifest, u, CONTAINER_SUFFIXES), "audio header"
            if seconds is None:
                if frames is None:
                    frames = _store_frames(store_path)
                if u.key not in frames or not frame_rate:
                    continue  # not extracted (unreadable audio): already left out
                seconds, source = frames[u.key] / float(frame_rate), "feature frames"
        if seconds > limit:
            out[u.key] = (f"{seconds:.2f} s is over {limit:g} s ({source}): EmoBox's extraction "
                          f"skipped it (--recipe paper)")
    return out


def _header_seconds(manifest: Any, utt: Any, containers: Any) -> float | None:
    try:
        path = manifest.audio_path(utt)
    except DataError:
        return None
    if path.suffix.lower() in containers:
        return None
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else None
    except Exception:  # unreadable: the extraction reports it
        return None


def _store_frames(store_path: str | None) -> dict[str, int]:
    if not store_path:
        return {}
    keys, _, lengths = FeatureStore(Path(store_path)).index()
    return {k: int(n) for k, n in zip(keys, lengths)}


def recipe_dropped(plan: TriplePlan, feats: Features) -> dict[str, str]:
    """What ``--recipe paper`` drops from every split (utterances over 30 s); empty otherwise."""
    if plan.opts.recipe != "paper":
        return {}
    if plan.dropped is None:
        plan.dropped = long_utterances(plan.corpus_spec, plan.manifest, feats.store_path,
                                       plan.up_spec.frame_rate)
    return plan.dropped


def in_folds(corpus: Any, folds: Sequence[Any], scheme: str) -> tuple[Any, dict[str, str]]:
    """The corpus's manifest restricted to the utterances some fold trains, validates or tests
    on (what a run extracts), and those left out with the reason (scheme ``emobox``: a file the
    published table does not list, e.g. a clip EmoBox could not load, is in no split)."""
    manifest = corpus.manifest_for(scheme)  # the channels this scheme reads
    used = {k for f in folds for role in (f.train, f.valid, f.test) for k in role}
    if len(used) == len(manifest) and all(u.key in used for u in manifest):
        return manifest, {}
    why = corpus.out_of_scheme() if scheme == "emobox" else {}
    left_out = {u.key: why.get(u.key, f"in no fold of scheme {scheme}")
                for u in manifest if u.key not in used}
    return manifest.subset([u.key for u in manifest if u.key in used]), left_out


def extract_features(up_spec: Any, manifest: Any, opts: RunOptions, device: str,
                     reporter: Reporter | None = None, down_layers: str = "last") -> Features:
    """The extraction task: build the upstream, extract (or reuse) its store for ``manifest``."""
    upstream = up_spec.load(ckpt=opts.upstream_ckpt, device=device,
                             **dict(opts.upstream_options))
    if down_layers == "all":
        if opts.layer is not None and not isinstance(opts.layer, (list, tuple)):
            raise EmoboxUsageError(f"downstream {opts.downstream!r} reads every layer of the "
                                   f"upstream; drop --layer")
        layers = upstream.resolve_layers("all")  # with a sweep (several heads): all it needs
        layer: Any = "all"
    elif isinstance(opts.layer, (list, tuple)):  # a layer sweep: every layer in one store
        layers = upstream.resolve_layers(list(opts.layer))
        layer = tuple(layers)
    else:
        layers = upstream.resolve_layers(opts.layer)[:1]
        layer = layers[0]
    store = extract(upstream, manifest, layers, precision=opts.precision,
                    store_dir=Path(opts.features_dir) if opts.features_dir else None,
                    on_bad_audio=opts.on_bad_audio, reporter=reporter,
                    batch_seconds=opts.batch_seconds, options=dict(opts.upstream_options),
                    runtime=opts.runtime)
    return Features(str(store.path), layer, list(layers), upstream.checkpoint_id,
                    store.skipped(), parameter_count(up_spec, upstream),
                    dict(getattr(upstream, "store_options", {}) or {}),
                    store.meta["audio"]["sha256"], int(upstream.num_layers),
                    store.engine(layers[0]))


def run_config(plan: TriplePlan, feats: Features) -> tuple[dict, dict]:
    """The run's fingerprinted config and the full config.json (with versions and paths)."""
    opts = plan.opts
    config = {
        "kind": "emobox.run", "schema_version": 1,
        "upstream": opts.upstream, "corpus": corpus_name(plan), "downstream": opts.downstream,
        "checkpoint_id": feats.checkpoint_id, "upstream_ckpt": opts.upstream_ckpt,
        "upstream_options": dict(opts.upstream_options),
        "upstream_store_options": dict(feats.store_options),
        "corpus_options": dict(opts.corpus_options),
        "layer": feats.layer, "layers": feats.layers, "layer_norm": opts.layer_norm,
        "feature_norm": opts.feature_norm, "grad_clip": opts.grad_clip, "recipe": opts.recipe,
        "precision": opts.precision, "train_precision": opts.train_precision,
        "scheme": opts.scheme, "folds": [f.index for f in plan.folds],
        "n_folds": len(plan.all_folds),
        "grid": plan.grid, "epochs": opts.epochs, "warmup_epochs": opts.warmup_epochs,
        "schedule": opts.schedule, "batch_size": opts.batch_size, "select": opts.select,
        "selected_by_test": opts.select == "test", "optimizer": "Adam",
        "class_weights": opts.class_weights, "seed": opts.seed,
        "manifest_hash": plan.manifest.content_hash(), "labels": list(plan.manifest.labels),
        "on_bad_audio": opts.on_bad_audio,
        # a run made from other audio under the same names is another run (its folds redone)
        "audio_sha256": feats.audio_sha256,
    }
    recorded = dict(fingerprint=config_fingerprint(config), versions=code_versions(plan),
                    device=plan.device, root=str(plan.corpus.root), features=feats.store_path,
                    notes=plan.notes, request=request_fingerprint(plan),
                    options=plan_options(plan),
                    upstream_parameters=feats.parameters, engine=feats.engine,
                    # what the grid leaves out, with the value every configuration uses
                    grid_defaults={k: v for k, v in used_hparams(plan.down_spec, {}).items()
                                   if k not in plan.grid})
    return config, dict(config, **recorded)


def code_versions(plan: TriplePlan) -> dict:
    return {"emobox": __version__, "torch": torch.__version__,
            "plugins": distributions_of([plan.up_spec, plan.corpus_spec, plan.down_spec])}


def plan_options(plan: TriplePlan) -> dict:
    """:func:`fingerprinted_options` of a planned triple."""
    return fingerprinted_options(plan.opts, plan.grid, plan.manifest.content_hash())


def request_fingerprint(plan: TriplePlan) -> str:
    """Hash of what the user asked for (known before the upstream is built), carried by every
    result row: with the run's rows it tells whether a fold is finished without building the
    upstream."""
    return hash_options(plan_options(plan))


def fold_jobs(plan: TriplePlan, feats: Features, full_config: dict,
              folds: Sequence[Any] | None = None) -> list[FoldJob]:
    """One training job per fold of ``folds`` (default: the plan's folds)."""
    opts = plan.opts
    labels = list(plan.manifest.labels)
    label_index = {lab: i for i, lab in enumerate(labels)}
    cfg = TrainConfig(epochs=opts.epochs, warmup_epochs=opts.warmup_epochs,
                      batch_size=opts.batch_size, select=opts.select, seed=opts.seed,
                      device=plan.device, class_weights=opts.class_weights,
                      precision=opts.train_precision, schedule=opts.schedule,
                      grad_clip=opts.grad_clip)
    options = plan_options(plan)
    row_meta = dict(
        options_fingerprint=hash_options(options), options=options,
        run_id=full_config["fingerprint"], upstream=opts.upstream,
        checkpoint_id=feats.checkpoint_id, layer=feats.layer, layer_norm=opts.layer_norm,
        feature_norm=opts.feature_norm, grad_clip=opts.grad_clip, recipe=opts.recipe,
        schedule=opts.schedule, precision=opts.precision, train_precision=opts.train_precision,
        corpus=corpus_name(plan),
        scheme=opts.scheme,
        downstream=opts.downstream, epochs=opts.epochs, seed=opts.seed,
        emobox_version=__version__, plugins=full_config["versions"]["plugins"],
        contaminated=opts.corpus in plan.up_spec.trained_on, engine=feats.engine)
    jobs = []
    dropped = recipe_dropped(plan, feats)
    for fold in (plan.folds if folds is None else folds):
        keys = {role: [k for k in getattr(fold, role)
                       if k not in feats.skipped and k not in dropped]
                for role in ("train", "valid", "test")}
        targets = {role: [label_index[plan.manifest[k].label] for k in ks]
                   for role, ks in keys.items()}
        jobs.append(FoldJob(fold.index, len(plan.all_folds), keys, targets, labels,
                            feats.store_path, feats.layer, feats.layers, opts.feature_norm,
                            opts.downstream, plan.configs, cfg, row_meta, fold.valid_rule))
    return jobs


def train_fold(job: FoldJob, down_spec: Any, reporter: Reporter | None = None) -> FoldOutput:
    """The training task: the grid of one fold; returns its result rows and test predictions."""
    store = FeatureStore(Path(job.store_path))
    if not store.complete:
        raise DataError(f"{job.store_path}: feature store not found or incomplete on this "
                        f"machine (on a cluster the feature folder must be shared by every "
                        f"node: set EMOBOX_HOME or --features-dir to a shared folder)",
                        path=job.store_path)
    dtype = torch.bfloat16 if job.train.precision == "bf16" else torch.float32
    every = job.layer == "all"
    source_layer = job.layers if every else job.layer
    splits = {role: Split(FrameSource(store, source_layer, ks, norm=job.feature_norm,
                                      dtype=dtype),
                          torch.tensor(job.targets[role], dtype=torch.long), ks)
              for role, ks in job.keys.items()}
    sweep = train_sweep(down_spec, job.configs, store.dim(job.layers[0]), len(job.labels),
                        splits["train"], splits["valid"], splits["test"], job.train,
                        Prefixed(reporter or Reporter(), f"{job.row_meta.get('upstream')} x "
                                 f"{job.row_meta.get('corpus')} "
                                 f"({'every layer' if every else f'layer {job.layer}'}): "),
                        description=f"{job.downstream} fold {job.fold}/{job.n_folds}",
                        build_options={"n_layers": len(job.layers)} if every else None)
    sel = sweep.configs[sweep.selected]
    labels = job.labels
    pred_lines = "".join(f"{k}\t{labels[int(g)]}\t{labels[int(p)]}\n" for k, g, p in zip(
        job.keys["test"], splits["test"].labels.tolist(), sel.test_pred))
    rows = []
    for k, res in enumerate(sweep.configs):
        rows.append(ResultRow(failed=res.failed,
            **job.row_meta, fold=job.fold, config_id=res.config_id, config=res.hp,
            selected=(k == sweep.selected), selection=sweep.selection,
            best_epoch=res.best_epoch, valid_ua=res.valid_ua, valid_loss=res.valid_loss,
            ua=res.test["ua"], wa=res.test["wa"], f1=res.test["f1"],
            confusion=res.test["confusion"], per_class_recall=res.test["per_class_recall"],
            labels=labels, n_train=len(job.keys["train"]), n_valid=len(job.keys["valid"]),
            n_test=len(job.keys["test"]), valid_rule=job.valid_rule,
            layer_weights=res.layer_weights).to_dict())
    return FoldOutput(job.fold, rows, "key\tgold\tpredicted\n" + pred_lines)


def write_fold(out: Path, output: FoldOutput) -> None:
    """Record a finished fold in a run directory (predictions first, then its rows). Rows are
    checked as every reader checks them: a row no reader would take is a bug, never written."""
    for row in output.rows:
        try:
            check_row(row)
        except RowError as exc:
            raise RuntimeError(f"fold {output.fold}: emobox made a result row it cannot read "
                               f"back ({exc})") from exc
    write_results(out, {f"fold{output.fold}.tsv": output.predictions}, output.rows,
                  check_run_dir)


def write_skipped(out: Path, skipped: Mapping[str, str],
                  scanned: Sequence[tuple[str, str]] = (), manifest: Any = None,
                  left_out: Mapping[str, str] | None = None, corpus_manifest: Any = None,
                  dropped: Mapping[str, str] | None = None) -> list[str]:
    """Write ``skipped.tsv`` (``stage key path reason``) when anything was left out: files the
    corpus scan skipped (stage ``scan``: a listed file that is missing, a file no entry lists, a
    link out of the root, ...), utterances in no fold of the scheme (stage ``folds``: e.g. a
    file EmoBox's table does not list), utterances whose audio could not be read (stage
    ``audio``, ``--on-bad-audio skip``) and utterances a recipe drops (stage ``recipe``:
    ``--recipe paper``'s utterances over 30 s). Returns the notes to show; nothing is written
    when nothing was skipped (a stale file from an earlier attempt is removed)."""
    path = out / "skipped.tsv"
    left_out, dropped = dict(left_out or {}), dict(dropped or {})
    if not skipped and not scanned and not left_out and not dropped:
        path.unlink(missing_ok=True)
        return []
    full = corpus_manifest if corpus_manifest is not None else manifest

    def rel_of(key: str) -> str:
        return full[key].path if full is not None and key in full else ""

    lines = ["stage\tkey\tpath\treason\n"]
    for rel, reason in sorted(scanned):
        lines.append(f"scan\t\t{_tsv(rel)}\t{_tsv(reason)}\n")
    for key, reason in sorted(left_out.items()):
        lines.append(f"folds\t{_tsv(key)}\t{_tsv(rel_of(key))}\t{_tsv(reason)}\n")
    for key, reason in sorted(skipped.items()):
        lines.append(f"audio\t{_tsv(key)}\t{_tsv(rel_of(key))}\t{_tsv(reason)}\n")
    for key, reason in sorted(dropped.items()):
        lines.append(f"recipe\t{_tsv(key)}\t{_tsv(rel_of(key))}\t{_tsv(reason)}\n")
    atomic_write_text(path, "".join(lines))
    notes = []
    if scanned:
        notes.append(f"{len(scanned)} files skipped while scanning the corpus (listed in "
                     f"{path})")
    if skipped:
        notes.append(f"{len(skipped)} utterances left out for unreadable audio (listed in "
                     f"{path})")
    if dropped:
        notes.append(f"{len(dropped)} utterances over 30 s dropped from train, valid and test "
                     f"(--recipe paper: EmoBox's extraction skipped them; listed in {path})")
    return notes


def _tsv(text: str) -> str:
    return str(text).replace("\t", " ").replace("\n", " ")


def finish_run(out: Path, done_rows: dict[int, list[dict]], full_config: dict,
               notes: list[str]) -> RunResult:
    """Write summary.md and confusion.png of a run directory from its finished folds."""
    all_rows = [r for f in sorted(done_rows) for r in done_rows[f]]
    summaries = [_fold_summary(done_rows[f]) for f in sorted(done_rows)]
    notes = list(notes) + [n for n in failure_notes(all_rows) if n not in notes]
    result = RunResult(out, summaries, all_rows, full_config, notes)
    atomic_write_text(out / "summary.md", summary_markdown(result))
    if all_rows:
        from emobox.reporting.plots import confusion_png

        c = full_config
        selected = [r for r in all_rows if r["selected"]]
        title = (f"{c['upstream']} x {c['corpus']} x {c['downstream']}: test, "
                 f"{len(selected)} fold{'s' if len(selected) != 1 else ''}")
        if c["select"] == "test":
            title += "\nSELECTED BY TEST (EmoBox recipe)"
        confusion_png(out / "confusion.png", _summed_confusion(selected), c["labels"], title)
        weights = mean_layer_weights(c, selected)
        if weights:
            from emobox.reporting.layers import weights_png

            weights_png(out / "layer_weights.png", {(c["upstream"], c["corpus"]): weights},
                        f"{c['downstream']}: learned layer weights (softmax), mean over "
                        f"{len(selected)} fold{'s' if len(selected) != 1 else ''} ± std")
    return result


def mean_layer_weights(config: Mapping[str, Any], selected: Sequence[dict]
                       ) -> list[tuple[int, float, float]]:
    """(layer, mean, std over folds) of the learned layer weights of the selected rows of a run
    whose head learns them (weighted_sum); empty otherwise."""
    layers = config.get("layers") or []
    found = [r["layer_weights"] for r in selected if isinstance(r.get("layer_weights"), list)
             and len(r["layer_weights"]) == len(layers)]
    if not found or not layers:
        return []
    return [(layer, *mean_std([w[i] for w in found])) for i, layer in enumerate(layers)]


def failure_notes(rows: Sequence[dict]) -> list[str]:
    """One note per configuration whose training failed: where and why."""
    by_config: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("failed"):
            by_config.setdefault(r["config_id"], []).append(r)
    out = []
    for cid, bad in by_config.items():
        folds = ", ".join(str(r["fold"]) for r in bad)
        out.append(f"configuration {cid} FAILED in fold{'s' if len(bad) > 1 else ''} {folds} "
                   f"({bad[0]['failed']}); it was never selected")
    return out


def corpus_name(plan: TriplePlan) -> str:
    """The corpus's name in run folders and results: the one the user asked for, or the one given
    with ``-C name=...`` to a corpus that takes it (the ``folder`` corpus does)."""
    name = getattr(plan.corpus, "name", None)
    if "name" in dict(plan.opts.corpus_options) and isinstance(name, str) and name:
        return name
    return plan.opts.corpus


def default_out(opts: RunOptions, fingerprint: str, corpus: str | None = None) -> Path:
    return paths.runs_dir() / (f"{opts.upstream}__{corpus or opts.corpus}__{opts.downstream}__"
                               f"{fingerprint}")


def run(opts: RunOptions, reporter: Reporter | None = None,
        registry: Registry | None = None) -> RunResult:
    """``emobox run``: extract (or reuse) the features, train every fold and write the run
    folder; returns the per-fold results."""
    reporter = reporter or Reporter()
    plan = plan_triple(opts, registry)
    if is_sweep(opts.layer):  # a list for a head of every layer is refused here
        if sweep_layers(opts.layer, plan.up_spec, plan.down_spec) is not None:
            raise EmoboxUsageError(f"layer {opts.layer!r} asks for several layers (a layer "
                                   f"sweep): run them with run_layers")
    if opts.out:
        check_out(Path(opts.out), opts.features_dir)
    feats = extract_features(plan.up_spec, plan.manifest, opts, plan.device, reporter,
                             plan.down_spec.layers)
    return run_planned(plan, feats, reporter)


def is_sweep(layer: Any) -> bool:
    """Whether a ``layer`` option may name several layers: a list, or ``"all"``."""
    return isinstance(layer, (list, tuple)) or layer == "all"


def sweep_layers(layer: Any, up_spec: Any, down_spec: Any) -> list[int] | None:
    """The layers of a layer sweep (``layer`` a list, or ``"all"``: every layer of the
    upstream), resolved against the upstream's layers; None when ``layer`` names one layer, or
    the head reads every layer itself (``weighted_sum``: ``"all"`` is what it does anyway; a
    list is refused)."""
    if getattr(down_spec, "layers", "last") == "all":
        if isinstance(layer, (list, tuple)):
            raise EmoboxUsageError(
                f"downstream {down_spec.name!r} learns a weighting of every layer of the "
                f"upstream; a list of layers ({layer_text(layer)}) trains one head "
                f"per layer: use a one-layer head (e.g. -d linear_probe) or drop --layer")
        return None
    if layer == "all":
        return list(range(int(up_spec.num_layers) + 1))
    if isinstance(layer, (list, tuple)):
        try:
            return resolve_layers(list(layer), int(up_spec.num_layers), up_spec.name)
        except EmoboxUsageError as exc:
            raise EmoboxUsageError(f"--layer {layer_text(layer)}: {exc}") from None
    return None


def layer_text(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 8]`` -> ``"0-3,8"``: a layer list as ``--layer`` spells it."""
    parts: list[str] = []
    values = sorted(set(int(x) for x in layers))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if j == i else
                     f"{values[i]},{values[j]}" if j == i + 1 else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


def features_for(feats: Features, opts: RunOptions, down_layers: str = "last") -> Features:
    """The features of one triple (one variant of a layer sweep) out of an extraction that
    stored more layers: what :func:`extract_features` returns for ``opts`` alone."""
    if down_layers == "all":
        every = list(range(feats.upstream_layers + 1))
        return dataclasses.replace(feats, layer="all", layers=every)
    layer = resolve_layers(opts.layer, feats.upstream_layers, opts.upstream)[0]
    if layer not in feats.layers:
        raise RuntimeError(f"layer {layer} of {opts.upstream} was not extracted "
                           f"(stored: {feats.layers})")
    return dataclasses.replace(feats, layer=layer, layers=[layer])


def run_layers(opts: RunOptions, reporter: Reporter | None = None,
               registry: Registry | None = None) -> list[RunResult]:
    """:func:`run` over every layer ``opts.layer`` names (one layer, a list, or ``"all"``):
    one scan and one extraction storing every layer, then one run per layer, each exactly the
    run ``layer=N`` alone would make (its fingerprint, its run directory, resumed the same way).
    With ``out`` set, layer N goes to ``out/layerN`` and ``out`` gets the per-layer view that
    ``emobox report`` makes of them (``layers.md``, ``plots/layers.png``)."""
    reporter = reporter or Reporter()
    registry = registry or get_registry()
    up_spec, _, down_spec, _ = opts.check_plugins(registry)  # names and options, in order
    layers = sweep_layers(opts.layer, up_spec, down_spec)
    if layers is None:
        if opts.layer == "all":  # a head that reads every layer: what it does without --layer
            opts = dataclasses.replace(opts, layer=None)
        return [run(opts, reporter, registry)]
    if len(layers) == 1:  # e.g. "all" of an upstream with one output: that layer's run
        return [run(dataclasses.replace(opts, layer=layers[0]), reporter, registry)]
    outs = {n: str(Path(opts.out) / f"layer{n}") if opts.out else None for n in layers}
    if opts.out:
        check_out(Path(opts.out), opts.features_dir)
        if (Path(opts.out) / "config.json").exists():
            raise EmoboxUsageError(f"--out {opts.out}: a run directory; a layer sweep writes "
                                   f"one folder per layer inside --out: give a new folder")
    base = plan_triple(dataclasses.replace(opts, layer=layers[0], out=outs[layers[0]]),
                       registry)
    feats = extract_features(base.up_spec, base.manifest,
                             dataclasses.replace(opts, layer=tuple(layers)), base.device,
                             reporter, base.down_spec.layers)
    results = []
    for n in layers:
        lopts = dataclasses.replace(opts, layer=n, out=outs[n])
        plan = dataclasses.replace(base, opts=lopts, notes=list(base.notes), dropped=None)
        results.append(run_planned(plan, features_for(feats, lopts), reporter))
    if opts.out:
        from emobox.reporting import layers as by_layer

        by_layer.write([load_run(Path(r.out)) for r in results], Path(opts.out), plots=True)
    return results


def run_planned(plan: TriplePlan, feats: Features, reporter: Reporter) -> RunResult:
    """Train and record the folds of a planned triple whose features are extracted."""
    opts = plan.opts
    notes = plan.notes
    skipped = feats.skipped
    config, full_config = run_config(plan, feats)
    out = (Path(opts.out) if opts.out
           else default_out(opts, full_config["fingerprint"], full_config["corpus"]))
    check_out(out, opts.features_dir)
    with run_lock(out):
        done_rows = _prepare_out(out, full_config, len(plan.configs), notes)
        notes.extend(write_skipped(out, skipped, plan.corpus.skipped, plan.manifest,
                                   plan.left_out, plan.corpus.manifest,
                                   recipe_dropped(plan, feats)))
        leaks = leakage(plan.manifest, plan.folds)
        todo = [f for f in plan.folds if f.index not in done_rows]
        for job in fold_jobs(plan, feats, full_config, todo):
            output = train_fold(job, plan.down_spec, reporter)
            write_fold(out, output)
            done_rows[job.fold] = output.rows
            if leaks.get(job.fold):
                notes.append(f"fold {job.fold}: {len(leaks[job.fold])} speakers are in both "
                             f"train and test (speaker-dependent fold)")
        result = finish_run(out, done_rows, full_config, notes)
        result.already_complete = not todo
        return result


def check_out(out: Path, features_dir: str | None = None, kind: str = "run") -> None:
    """Refuse an ``--out`` that is a file, or that is, or is inside, the feature stores'
    folder, a feature store, or a folder of the other kind (a bench directory for a run, a run
    directory for a bench)."""
    flag = "--out" if kind == "run" else "bench --out"
    if out.is_symlink() and not out.exists():
        raise EmoboxUsageError(f"{flag} {out}: a symbolic link to nothing; give a folder")
    if out.exists() and not out.is_dir():
        what = "run directory" if kind == "run" else "bench directory"
        raise EmoboxUsageError(f"{what} {out} is a file; give --out a folder")
    real = Path(os.path.realpath(out))
    stores = Path(os.path.realpath(features_dir or paths.features_dir()))
    if real == stores or stores in real.parents:
        raise EmoboxUsageError(f"{flag} {out}: inside the feature stores' folder {stores}; "
                               f"choose a folder outside it")
    for folder in (real, *real.parents):
        if (folder / "meta.json").is_file() and (folder / "index.tsv").is_file():
            raise EmoboxUsageError(f"{flag} {out}: inside the feature store {folder}; choose "
                                   f"another folder")
    if kind == "run" and (real / "bench.json").exists():
        raise EmoboxUsageError(f"--out {out}: a bench directory (it has bench.json); give "
                               f"`emobox run` a folder of its own")
    if kind == "bench" and (real / "config.json").exists():
        raise EmoboxUsageError(f"--out {out}: a run directory (it has config.json); give "
                               f"`emobox bench` a folder of its own")


def _summed_confusion(rows: list[dict]) -> list[list[int]]:
    n = len(rows[0]["confusion"])
    total = [[0] * n for _ in range(n)]
    for r in rows:
        for i, line in enumerate(r["confusion"]):
            for j, v in enumerate(line):
                total[i][j] += int(v)
    return total


def _prepare_out(out: Path, config: dict, n_configs: int,
                 notes: list[str] | None = None) -> dict[int, list[dict]]:
    """Create or resume a run directory (its lock held); returns the rows of folds finished.

    A run directory made with other options (its ``config.json``, or, when that is gone, its
    rows' option fingerprints) is refused. Rows of folds cut short, or made by another emobox
    or plugin version, or by an emobox that did not record the options, are dropped from
    ``results.jsonl`` (those of other code kept in ``results.superseded.jsonl``) and those
    folds redone.
    """
    if out.exists() and not out.is_dir():
        raise EmoboxUsageError(f"run directory {out} is a file; give --out a folder")
    check_run_dir(out)
    check_resumable(out, config, read_run_config, "run")
    rows = read_rows(out, repair=True, hint=RESUME_HINT)
    options = config["options"]
    unmarked = 0
    for r in rows:
        differ = options_differ(r, options)
        if differ is None:
            unmarked += 1
        elif differ:
            raise EmoboxUsageError(
                f"{out} holds results made with other options "
                f"({_options_diff(r['options'], options, differ)}); choose another --out or "
                f"delete that folder")
    start_run_dir(out, config)
    config_ids = {config_id(hp) for hp in expand_grid(config["grid"])}
    done = finished_folds(out, rows, config_ids, options, config["versions"])
    _check_selection(out, rows, done, config_ids)
    kept = [r for r in rows if int(r["fold"]) in done]
    if len(kept) != len(rows):  # drop rows of folds that were cut short, then redo them
        stale = [r for r in rows if int(r["fold"]) not in done and (
            not same_code(r, config["versions"]) or not r.get("options_fingerprint"))]
        if stale:
            append_jsonl(out / "results.superseded.jsonl", stale)
        atomic_write_text(out / "results.jsonl", jsonl_text(kept))
    if unmarked and notes is not None:
        folds = sorted({int(r["fold"]) for r in rows if not r.get("options_fingerprint")})
        notes.append(f"{unmarked} result rows of an earlier emobox carry no options "
                     f"fingerprint: fold{'s' if len(folds) > 1 else ''} "
                     f"{', '.join(map(str, folds))} redone (the old rows are kept in "
                     f"{out / 'results.superseded.jsonl'})")
    wanted = set(config["folds"])
    return {f: rs for f, rs in done.items() if f in wanted}


def _check_selection(out: Path, rows: Sequence[dict], done: Mapping[int, Any],
                     config_ids: set[str]) -> None:
    """A fold whose rows were all written (every configuration, its predictions beside them)
    yet with no selected configuration, or several, was edited, not cut short: training it
    again would silently replace what the file says; it is an error naming the file."""
    by_fold: dict[int, list[dict]] = {}
    for r in rows:
        by_fold.setdefault(int(r["fold"]), []).append(r)
    for fold, rs in sorted(by_fold.items()):
        if fold in done or {r["config_id"] for r in rs} != config_ids:
            continue
        if not (out / "predictions" / f"fold{fold}.tsv").is_file():
            continue
        chosen = sum(1 for r in rs if r["selected"] and not r.get("failed"))
        if chosen != 1 and len(rs) == len(config_ids):
            raise DataError(f"{out / 'results.jsonl'}: fold {fold} has all its rows and "
                            f"predictions but {chosen} selected configurations (one is "
                            f"written); the file was edited: restore it, or delete fold "
                            f"{fold}'s rows to train it again", path=str(out / "results.jsonl"))


def _options_diff(theirs: Mapping[str, Any], ours: Mapping[str, Any], keys: Sequence[str],
                  limit: int = 4) -> str:
    defaults = _option_defaults()
    parts = [f"{k}: {dumps_json(theirs.get(k, defaults.get(k)), default=str)[:40]} there, "
             f"{dumps_json(ours.get(k, defaults.get(k)), default=str)[:40]} now"
             for k in keys[:limit]]
    more = f", and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more


def same_code(row: Mapping[str, Any], versions: Mapping[str, Any]) -> bool:
    """Whether result row ``row`` was made by this code: the emobox and plugin versions of
    ``versions`` (:func:`code_versions`)."""
    return (row.get("emobox_version") == versions["emobox"]
            and row.get("plugins") == versions["plugins"])


def finished_folds(out: Path, rows: Sequence[dict], config_ids: set[str],
                   options: Mapping[str, Any], versions: Mapping[str, Any]
                   ) -> dict[int, list[dict]]:
    """Folds of ``rows`` that are finished: one row per configuration of the grid, each made
    with ``options`` (:func:`plan_options`: every run option, the grid, the seed and the
    manifest; compared by :func:`options_differ`) and by this code (emobox and plugin
    versions), one of them selected, and their predictions written."""
    by_fold: dict[int, list[dict]] = {}
    for r in rows:
        by_fold.setdefault(int(r["fold"]), []).append(r)
    return {f: rs for f, rs in by_fold.items()
            if {r["config_id"] for r in rs} == config_ids and len(rs) == len(config_ids)
            and all(options_differ(r, options) == [] and same_code(r, versions) for r in rs)
            and sum(1 for r in rs if r["selected"] and not r.get("failed")) == 1
            and (out / "predictions" / f"fold{f}.tsv").is_file()}


def same_audio(config: Mapping[str, Any], manifest: Any,
               checked: dict[tuple[str, str], bool] | None = None) -> bool:
    """Whether the audio of ``manifest`` is still the audio run directory config ``config``
    was made from, known without extracting: its ``audio_sha256`` is the digest of the feature
    store it names, that store is here and none of its audio files changed (size and time,
    else the SHA-256 of the file). False when the audio changed, or when the store is gone or
    damaged (extracting again tells). A ``config`` of an earlier emobox records no digest: the
    audio is unknown and taken as the same. ``checked`` caches answers by store and digest."""
    recorded, store_path = config.get("audio_sha256"), config.get("features")
    if not isinstance(recorded, str) or not recorded:
        return True
    if not isinstance(store_path, str) or not store_path:
        return False
    key = (store_path, recorded)
    if checked is not None and key in checked:
        return checked[key]
    try:
        store = FeatureStore(Path(store_path))
        same = (store.complete and store.meta["audio"]["sha256"] == recorded
                and not check_audio(store, manifest.root, (u.path for u in manifest)).changed)
    except (DataError, OSError, KeyError, TypeError):
        same = False
    if checked is not None:
        checked[key] = same
    return same


def _fold_summary(rows: list[dict]) -> FoldSummary:
    sel = next(r for r in rows if r["selected"] and not r.get("failed"))
    return FoldSummary(sel["fold"], sel["ua"], sel["wa"], sel["f1"], sel["config_id"],
                       sel["best_epoch"], sel["valid_ua"])


SCHEDULE_WORDS = {"linear": "linear decay", "constant": "constant",
                  "paper": "EmoBox's script: epoch 1 at the peak, epoch 2 at 0, then the warm-up "
                           "and linear decay"}


def _not_in_grid(config: Mapping[str, Any]) -> str:
    """`` (not in the grid: hidden=256,lr=0.001)``: the values used for what the grid omits."""
    fixed = config.get("grid_defaults")
    if not isinstance(fixed, dict) or not fixed:
        return ""
    return f" (not in the grid: {escape.markdown(config_id(fixed))})"


def engine_words(engine: Any) -> str:
    """One line for a store's engine settings: ``fp32, eager attention, sorted by length, ...,
    torch 2.13.0, 2 threads``; empty when none were recorded."""
    if not isinstance(engine, dict) or not engine:
        return ""
    parts = [str(engine.get("precision", "?"))
             + (f" autocast{' + low-precision weight cache' if engine.get('lowp_weight_cache') else ''}"
                if engine.get("autocast") else "")]
    if engine.get("runtime"):
        parts.append(f"computed by {engine['runtime']}")
    if engine.get("attention"):
        parts.append(f"{engine['attention']} attention")
    if engine.get("batching"):
        parts.append(str(engine["batching"]))
    if engine.get("device"):
        parts.append(f"on {engine['device']}")
    if engine.get("torch"):
        parts.append(f"torch {engine['torch']}")
    if engine.get("threads"):
        parts.append(f"{engine['threads']} threads")
    return ", ".join(parts)


def summary_markdown(result: RunResult) -> str:
    c = result.config
    md = escape.markdown  # names, paths and labels come from files: never Markdown or HTML
    by_test = c["select"] == "test"
    paper_recipe = c.get("recipe") == "paper"
    lines = [f"# {md(c['upstream'])} x {md(c['corpus'])} x {md(c['downstream'])}", ""]
    if paper_recipe:
        lines += [f"**{PAPER_RECIPE_NOTE}.**", ""]
    elif by_test:
        lines += ["**SELECTED BY TEST (EmoBox recipe, `--select test`): epochs and configurations "
                  "were picked on the test set; these numbers are optimistic and only for "
                  "comparing with the published tables.**", ""]
    train_prec = c.get("train_precision", "fp32")
    engine = engine_words(c.get("engine"))
    clip = c.get("grad_clip", 0)
    lines += [f"- scheme: {md(c['scheme'])}, folds {c['folds']} of {c['n_folds']}, seed "
              f"{c['seed']}",
              f"- layer {md(c['layer'])} ({NORM_WORDS[feature_norm_of(c)]}), "
              f"features {md(c['precision'])}, checkpoint {md(c['checkpoint_id'])}",
              f"- grid {md(json.dumps(c['grid']))}{_not_in_grid(c)}, Adam, batch "
              f"{c['batch_size']}, {c['epochs']} epochs ({c['warmup_epochs']} warm-up, then "
              f"{SCHEDULE_WORDS.get(c.get('schedule', 'linear'), c.get('schedule'))}), "
              f"gradient norm {f'clipped at {clip:g}' if clip else 'not clipped'}, "
              f"class weights {'on' if c['class_weights'] else 'off'}",
              *([f"- feature engine: {md(engine)}"] if engine else []),
              f"- training precision: {train_prec}"
              f"{' (exact)' if train_prec == 'fp32' else ' (bfloat16 frame-level matmuls)'}",
              f"- selection: {'TEST (EmoBox recipe; optimistic)' if by_test else 'validation UA'}",
              ""]
    per_fold = [[f.fold, f"{100 * f.ua:.2f}", f"{100 * f.wa:.2f}", f"{100 * f.f1:.2f}", f.config_id,
              f.best_epoch, f"{100 * f.valid_ua:.2f}"] for f in result.folds]
    if result.folds:
        per_fold.append([Markdown("**mean**"), *(f"{100 * mu:.2f} ± {100 * sd:.2f}"
                                             for mu, sd in map(result.mean, ("ua", "wa", "f1")))])
    lines += table(["fold", "UA", "WA", "F1", "selected config", "epoch", "valid UA"], per_fold)
    if result.folds:
        lines += ["", "Every configuration (test scores of its best epoch; mean ± std over folds):",
                  ""]
        configs = []
        by_config: dict[str, list[dict]] = {}
        for r in result.rows:
            by_config.setdefault(r["config_id"], []).append(r)
        for cid, rows in by_config.items():
            ok = [r for r in rows if not r.get("failed")]
            bad = [r for r in rows if r.get("failed")]
            cells = []
            for m in ("ua", "wa", "f1", "valid_ua"):
                if ok:
                    mu, sd = mean_std([r[m] for r in ok])
                    cells.append(f"{100 * mu:.2f} ± {100 * sd:.2f}")
                else:
                    cells.append("failed")
            chosen = [str(r["fold"]) for r in rows if r["selected"] and not r.get("failed")]
            chosen_text = ", ".join(chosen) or "-"
            if bad:
                folds = ", ".join(str(r["fold"]) for r in bad)
                chosen_text += f" (FAILED in fold{'s' if len(bad) > 1 else ''} {folds})"
            configs.append([cid, *cells, chosen_text])
        lines += table(["config", "UA", "WA", "F1", "valid UA", "selected in folds"], configs)
        selected = [r for r in result.rows if r["selected"]]
        labels = selected[0].get("labels") or []
        if labels:
            lines += ["", "Per-class test recall of the selected configurations (mean over folds "
                      "with that class):", ""]
            recall = []
            for i, lab in enumerate(labels):
                vals = [r["per_class_recall"][i] for r in selected
                        if r["per_class_recall"][i] is not None]
                recall.append([lab, f"{100 * sum(vals) / len(vals):.2f}" if vals else "-"])
            lines += table(["class", "recall"], recall)
            lines += ["", "Confusion matrix of the selected configurations, summed over folds: "
                      "`confusion.png`."]
        weights = mean_layer_weights(result.config, selected)
        if weights:
            lines += ["", "Learned layer weights (softmax) of the selected configurations, mean "
                      "± std over folds (`layer_weights.png`):", "", "| layer | weight |",
                      "|---:|---:|"]
            lines += [f"| {layer} | {m:.4f} ± {sd:.4f} |" for layer, m, sd in weights]
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {md(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"
