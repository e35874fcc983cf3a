"""``emobox bench``: the whole grid (upstreams x corpora x downstreams x folds) as tasks.

The library twin of the CLI command: ``emobox.bench.bench(BenchOptions(...))``. Planning happens
on the driver: every corpus is scanned once, and the grid becomes tasks:

- one **extraction** per (upstream, corpus): builds the upstream and fills its feature store;
- one **training** per (upstream, corpus, downstream, fold): trains the fold's grid on the store.

A task already finished is skipped: a fold is finished when its run directory holds one result
row per configuration of the grid, made with the same request (triple, options, manifest), seed
and code version (emobox and plugin versions), and its predictions, from the audio its
``config.json`` records (the feature store tells whether it changed since; a store that is gone
is extracted again to tell). An (upstream, corpus) whose
folds are all finished is not extracted again. The executor (``local``: in this process;
``ray``: on a Ray cluster) runs the rest; every finished training is written to the driver's
bench directory as soon as it comes back, so an interrupted bench resumes where it stopped.

A bench directory holds ``bench.json`` (the options), ``tasks.jsonl`` (one line per task run:
kind, seconds, node, error), ``summary.md`` (one line per triple) and ``runs/<u>__<c>__<d>/``,
one run directory per triple in the format of ``emobox run`` (so ``emobox report`` and
``emobox submit pack`` read either). One bench writes a bench directory at a time: a second one
waits for its lock, then plans again and runs only what is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import inspect
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from emobox import __version__, escape, paths
from emobox.errors import DataError, EmoboxError, EmoboxUsageError
from emobox.io import (MAX_CONFIG_BYTES, append_jsonl, atomic_write_json, atomic_write_text,
                 file_lock, read_json_file)
from emobox.plugin.registry import Registry, get_registry
from emobox.progress import Reporter
from emobox.tracks.rundirs import (check_bench_dir, check_run_dir, read_rows, read_run_config,
                                   run_lock)
from emobox.training.sweep import config_id
from emobox.tracks.options import (FoldOptions, check_corpus_options, check_heads_grid,
                                   check_owners, check_positive, check_upstream_options,
                                   fingerprint)
from emobox.tracks.runner import (RunOptions, _prepare_out, check_out, code_versions,
                                  features_for, finished_folds, fold_jobs, is_sweep,
                                  plan_options, plan_triple, recipe_dropped, run_config,
                                  same_audio, sweep_layers, write_fold, write_skipped)
from emobox.extraction.upstream import resolve_layers
from emobox.tracks.executors import make_executor
from emobox.datasets.splits import leakage
from emobox.training.metrics import mean_std
from emobox.reporting.markdown import table

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class BenchOptions(FoldOptions):
    """The grid: the shared options (:class:`emobox.tracks.options.FoldOptions`; its
    ``upstream_options`` are by upstream, its ``corpus_options`` by corpus) and what the bench
    runs where."""

    upstreams: tuple[str, ...]
    corpora: tuple[str, ...] = ("all",)  # "all": every registered corpus but embedded demos
    # and readers of user-described data (the imported corpus)
    downstreams: tuple[str, ...] = ("linear_probe",)
    root_map: Mapping[str, str] = field(default_factory=dict)  # corpus -> root folder
    executor: str = "local"
    address: str | None = None  # Ray cluster address (None: a running or a new local instance)
    dry_run: bool = False
    extract_gpus: float = 1.0  # per extraction task, where the cluster has GPUs
    train_cpus: float = 1.0  # per training task
    train_gpus: float = 0.25  # per training task, where the cluster has GPUs

    def check(self) -> None:
        super().check()
        if self.executor not in EXECUTORS:
            raise EmoboxUsageError(f"--executor must be one of {', '.join(EXECUTORS)}")
        if not self.upstreams:
            raise EmoboxUsageError("no upstream given (-u U1,U2)")
        for value, flag in ((self.extract_gpus, "--extract-gpus"),
                            (self.train_cpus, "--train-cpus"), (self.train_gpus, "--train-gpus")):
            check_positive(value, flag)
        if self.upstream_ckpt and len(self.upstreams) != 1:
            raise EmoboxUsageError(f"--upstream-ckpt is the checkpoint of one upstream; this "
                                   f"bench has {len(self.upstreams)} "
                                   f"({', '.join(self.upstreams)}): run one bench per "
                                   f"checkpoint")

    def check_plugins(self, registry: Registry) -> tuple[list[Any], list[str]]:
        """The upstream specs and the corpus names, with ``-U``/``-C`` options checked against
        what each plugin declares, for plugins of this bench only, and the grid against every
        head's hyper-parameters (before anything is scanned or extracted)."""
        up_specs = [registry.upstream(u) for u in self.upstreams]
        for up in up_specs:
            check_upstream_options(up, self.upstream_options.get(up.name, {}))
        check_owners(self.upstream_options, self.upstreams, "--upstream-option",
                     "upstreams of this bench")
        check_heads_grid(self, [registry.downstream(d) for d in self.downstreams])
        names = corpus_names(self.corpora, registry)
        check_owners(self.corpus_options, names, "--corpus-option", "corpora of this bench")
        for name in names:
            check_corpus_options(registry.corpus(name), self.corpus_options.get(name, {}))
        unknown_roots = sorted(set(self.root_map) - set(registry.names("corpus")))
        if unknown_roots:
            registry.corpus(unknown_roots[0])  # raises, naming close names
        return up_specs, names

    def training_options(self) -> dict:
        """What changes the numbers (the bench directory is tied to it)."""
        return {"scheme": self.scheme, "seed": self.seed, "layer": self.layer,
                "layer_norm": self.layer_norm, "feature_norm": self.feature_norm,
                "grad_clip": self.grad_clip, "recipe": self.recipe,
                "grid": self.grid, "epochs": self.epochs,
                "warmup_epochs": self.warmup_epochs, "batch_size": self.batch_size,
                "select": self.select, "class_weights": self.class_weights,
                "precision": self.precision, "train_precision": self.train_precision,
                "schedule": self.schedule, "on_bad_audio": self.on_bad_audio,
                "folds": list(self.folds),
                **({"upstream_options": {u: dict(o) for u, o in self.upstream_options.items()}}
                   if self.upstream_options else {}),
                **({"upstream_ckpt": self.upstream_ckpt} if self.upstream_ckpt else {}),
                **({"corpus_options": {c: dict(o) for c, o in self.corpus_options.items()}}
                   if self.corpus_options else {})}

    def run_options(self, upstream: str, corpus: str, downstream: str, root: str | None,
                    out: Path, features_dir: str) -> Any:
        return RunOptions.from_shared(self, upstream=upstream, corpus=corpus,
                                      downstream=downstream, root=root, out=str(out),
                                      device="cpu", features_dir=features_dir,
                                      upstream_options=dict(self.upstream_options.get(upstream,
                                                                                      {})),
                                      corpus_options=dict(self.corpus_options.get(corpus, {})))


@dataclass
class ExtractTask:
    id: str
    upstream: str
    corpus: str
    utterances: int
    audio_hours: float | None
    flops: float | None  # estimated encoder FLOPs for the whole corpus
    flops_source: str  # "plugin" | "model" | "estimate from spec" | ""
    status: str = "todo"  # todo | done (every training of the pair is finished)


@dataclass
class TrainTask:
    id: str
    upstream: str
    corpus: str
    downstream: str
    fold: int
    n_train: int
    n_valid: int
    n_test: int
    configs: int
    status: str = "todo"  # todo | done
    layer: int | None = None  # the variant's layer in a layer sweep (--layer 0-4, all, ...)


@dataclass
class MissingCorpus:
    corpus: str
    reason: str
    utterances: int | None = None  # published size, where the plugin knows it
    audio_hours: float | None = None


@dataclass
class MissingCheckpoint:
    upstream: str
    reason: str  # where the upstream looked and how to obtain its weights


@dataclass
class BenchPlan:
    out: Path
    options: BenchOptions
    extractions: list[ExtractTask]
    trainings: list[TrainTask]
    missing: list[MissingCorpus]
    # upstreams whose weights are not on this machine: their tasks are left out of the plan
    missing_checkpoints: list[MissingCheckpoint] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)  # the requested corpora on this machine
    # (upstream, corpus, downstream, layer of a layer sweep or None) -> TriplePlan, run dir
    triples: dict[tuple[str, str, str, int | None], Any] = field(default_factory=dict)
    run_dirs: dict[tuple[str, str, str, int | None], Path] = field(default_factory=dict)

    @property
    def todo(self) -> list[Any]:
        return [t for t in self.extractions + self.trainings if t.status == "todo"]

    @property
    def finished(self) -> list[Any]:
        return [t for t in self.extractions + self.trainings if t.status == "done"]


@dataclass
class BenchResult:
    out: Path
    plan: BenchPlan
    ran: list[str]  # task ids run by this invocation, in completion order
    skipped: list[str]  # task ids found finished
    failed: dict[str, str]  # task id -> error message
    missing: list[MissingCorpus]


def corpus_names(requested: Sequence[str], registry: Registry) -> list[str]:
    if list(requested) == ["all"]:
        return [s.name for s in registry.specs("corpus") if not (s.embedded or s.reader)]
    names = []
    for name in requested:
        registry.corpus(name)  # unknown names fail here, with suggestions
        if name not in names:
            names.append(name)
    return names


def bench_dir(opts: BenchOptions) -> Path:
    if opts.out:
        return Path(opts.out)
    return (paths.home() / "bench"
            / f"{'+'.join(opts.downstreams)}-{fingerprint(opts.training_options(), 8)}")


def plan_bench(opts: BenchOptions, registry: Registry | None = None) -> BenchPlan:
    """Scan the corpora, build the triples' folds and mark the tasks already finished."""
    registry = registry or get_registry()
    up_specs, names = opts.check_plugins(registry)
    # weights this machine lacks: its tasks would fail one by one (on Ray the workers look
    # for the weights themselves, where the driver cannot tell)
    absent = [MissingCheckpoint(u.name, str(err)) for u in up_specs
              if opts.executor == "local"
              and (err := u.missing_checkpoint(opts.upstream_ckpt)) is not None]
    left_out = {m.upstream for m in absent}
    up_specs = [u for u in up_specs if u.name not in left_out]
    sweeps = {(u.name, d): sweep_layers(opts.layer, u, registry.downstream(d))
              for u in up_specs for d in opts.downstreams}  # a layer list refused here
    out = bench_dir(opts)
    features_dir = opts.features_dir or str(paths.features_dir())
    plan = BenchPlan(out, opts, [], [], [], missing_checkpoints=absent)
    checked: dict = {}  # (store, audio digest) -> whether the audio is unchanged
    for corpus_name in names:
        spec = registry.corpus(corpus_name)
        root = opts.root_map.get(corpus_name)
        root = str(Path(root).expanduser().resolve()) if root else None
        try:
            corpus = spec.build(None if spec.embedded and not root
                                else paths.corpus_root(corpus_name, root),
                                **dict(opts.corpus_options.get(corpus_name, {})))
            manifest = corpus.manifest
        except DataError:  # here but damaged: named, not taken for absent
            raise
        except EmoboxError as exc:
            plan.missing.append(_missing(spec, str(exc)))
            continue
        plan.scanned.append(corpus_name)
        reference = _reference(spec)
        seconds = audio_seconds(manifest, reference)
        for up in up_specs:
            pair_done = True
            extraction = ExtractTask(f"extract:{up.name}:{corpus_name}", up.name, corpus_name,
                                     len(manifest), seconds / 3600 if seconds is not None else None,
                                     *estimate_flops(up, manifest, reference,
                                                     opts.upstream_options.get(up.name)))
            variants = [(d, layer) for d in opts.downstreams
                        for layer in (sweeps[(up.name, d)] or [None])]
            for d, layer in variants:
                key = (up.name, corpus_name, d, layer)
                run_out = out / "runs" / run_dir_name(key)
                ropts = opts.run_options(up.name, corpus_name, d, root, run_out, features_dir)
                if layer is not None or is_sweep(opts.layer):
                    ropts = dataclasses.replace(ropts, layer=layer)  # None: a head of all layers
                try:
                    tp = plan_triple(ropts, registry, corpus=corpus)
                except EmoboxError as exc:
                    plan.missing.append(MissingCorpus(corpus_name, f"{up.name} x {d}: {exc}"))
                    continue
                plan.triples[key] = tp
                plan.run_dirs[key] = run_out
                done = _finished(run_out, tp, code_versions(tp), checked)
                for fold in tp.folds:
                    status = "done" if fold.index in done else "todo"
                    pair_done = pair_done and status == "done"
                    plan.trainings.append(TrainTask(
                        f"{train_prefix(key)}:fold{fold.index}", up.name,
                        corpus_name, d, fold.index, len(fold.train), len(fold.valid),
                        len(fold.test), len(tp.configs), status, layer))
            extraction.status = "done" if pair_done else "todo"
            plan.extractions.append(extraction)
    return plan


def run_dir_name(key: tuple) -> str:
    """``<upstream>__<corpus>__<downstream>``, and ``__layer<N>`` for a layer sweep's variant."""
    u, c, d, layer = key
    return f"{u}__{c}__{d}" + (f"__layer{layer}" if layer is not None else "")


def train_prefix(key: tuple) -> str:
    u, c, d, layer = key
    return f"train:{u}:{c}:{d}" + (f":layer{layer}" if layer is not None else "")


def extraction_plan(tps: Sequence[Any]) -> Any:
    """The plan whose extraction serves every triple of one (upstream, corpus): a head that
    reads every layer, else one request for every layer the triples read (a layer sweep's)."""
    for tp in tps:
        if tp.down_spec.layers == "all":
            return tp
    first = tps[0]
    n = int(first.up_spec.num_layers)
    layers = sorted({L for tp in tps
                     for L in resolve_layers(tp.opts.layer, n, first.up_spec.name)})
    if len(layers) == 1:
        return first
    return dataclasses.replace(first, opts=dataclasses.replace(first.opts, layer=tuple(layers)))


def _finished(run_out: Path, tp: Any, versions: dict,
              checked: dict | None = None) -> set[int]:
    """Folds of ``run_out`` finished with the options of ``tp`` (by the rows' option
    fingerprints) from the audio there now (by ``config.json``'s audio digest, as ``emobox
    run`` compares it: :func:`same_audio`); a damaged run directory has none: running it
    reports the damage."""
    try:
        check_run_dir(run_out)
        rows = read_rows(run_out)
        config = (read_run_config(run_out) if (run_out / "config.json").exists()
                  else {})  # lost: the rows' fingerprints alone tell
    except EmoboxError:
        return set()
    ids = {config_id(hp) for hp in tp.configs}
    done = set(finished_folds(run_out, rows, ids, plan_options(tp), versions))
    if done and not same_audio(config, tp.manifest, checked):
        return set()  # the extraction checks the audio; the run directory then compares it
    return done


def _reference(spec: Any) -> Any:
    if spec.reference_table is None:
        return None
    try:
        return spec.reference_table()
    except Exception:  # a broken reference only costs the plan its published sizes
        return None


def _missing(spec: Any, reason: str) -> MissingCorpus:
    ref = _reference(spec)
    if ref is None:
        return MissingCorpus(spec.name, reason)
    hours = sum(ref.duration.values()) / 3600 if ref.duration else None
    return MissingCorpus(spec.name, reason, len(ref.label), hours)


def audio_seconds(manifest: Any, reference: Any = None) -> float | None:
    """Total audio seconds: the manifest's segments and durations, the published durations,
    else the files' headers."""
    import soundfile as sf

    total = 0.0
    published = reference.duration if reference is not None else {}
    for u in manifest:
        if u.start is not None and u.end is not None:
            total += max(0.0, u.end - u.start)
        elif u.duration is not None:
            total += u.duration
        elif u.key in published:
            total += published[u.key]
        else:
            try:
                info = sf.info(str(manifest.audio_path(u)))
                total += info.frames / info.samplerate
            except Exception:
                return None
    return total


def estimate_flops(spec: Any, manifest: Any, reference: Any = None,
                   options: Mapping[str, Any] | None = None) -> tuple[float | None, str]:
    """Encoder FLOPs of one pass over the corpus, without loading weights where possible:
    the plugin's analytic ``spec.flops`` (given the upstream's ``options`` where it takes
    keywords, e.g. Whisper's ``mode``, which decides whether every clip is padded to 30 s);
    else, for upstreams without weights, the model's own ``flops``; else a transformer
    estimate from the spec's layers, width and frame rate."""
    lengths = _lengths(manifest, reference, spec.sample_rate)
    if lengths is None:
        return None, ""
    options = dict(options or {})
    if spec.flops is not None:
        kw = options if _takes_keywords(spec.flops) else {}
        return float(sum(spec.flops(n, **kw) for n in lengths)), "plugin"
    if not spec.checkpoint:
        try:
            model = spec.load(device="cpu", **options)
            per = [model.flops(n) for n in lengths]
            if all(p is not None for p in per):
                return float(sum(per)), "model"
        except Exception:
            pass
    if spec.num_layers > 0 and spec.hidden_size > 0:
        return float(sum(transformer_flops(n, spec) for n in lengths)), "estimate from spec"
    return None, ""


def _takes_keywords(fn: Any) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD or p.kind is p.KEYWORD_ONLY
                   or (p.kind is p.POSITIONAL_OR_KEYWORD and i > 0)
                   for i, p in enumerate(inspect.signature(fn).parameters.values()))
    except (TypeError, ValueError):
        return False


def transformer_flops(num_samples: int, spec: Any) -> float:
    """Multiply-adds x 2 of ``num_layers`` standard transformer blocks (FFN 4x hidden) over the
    frames of ``num_samples`` samples; the convolutional front end is not counted."""
    t = max(1.0, num_samples * spec.frame_rate / spec.sample_rate)
    d = float(spec.hidden_size)
    per_block = 2 * t * (4 * d * d + 2 * d * 4 * d) + 4 * t * t * d
    return spec.num_layers * per_block


def _lengths(manifest: Any, reference: Any, sample_rate: int) -> list[int] | None:
    out = []
    published = reference.duration if reference is not None else {}
    for u in manifest:
        if u.start is not None and u.end is not None:
            sec = u.end - u.start
        elif u.duration is not None:
            sec = u.duration
        elif u.key in published:
            sec = published[u.key]
        else:
            try:
                import soundfile as sf

                info = sf.info(str(manifest.audio_path(u)))
                sec = info.frames / info.samplerate
            except Exception:
                return None
        out.append(int(round(max(sec, 0.0) * sample_rate)))
    return out


# -- running ---------------------------------------------------------------------------------

def bench(opts: BenchOptions, reporter: Reporter | None = None,
          registry: Registry | None = None) -> BenchResult:
    """Plan the grid, skip what is finished, run the rest with the chosen executor."""
    reporter = reporter or Reporter()
    plan = plan_bench(opts, registry)
    if opts.dry_run:
        return BenchResult(plan.out, plan, [], [t.id for t in plan.finished], {}, plan.missing)
    if not plan.triples:
        problems = [m.reason for m in plan.missing_checkpoints]
        if not plan.scanned or not problems:
            names = ", ".join(m.corpus for m in plan.missing) or "none"
            problems.insert(0, f"no requested corpus is on this machine (missing: {names}); pass "
                               f"--root-map corpus=DIR or put them under $EMOBOX_DATA/<corpus>")
        raise EmoboxUsageError("nothing to run: " + "\nerror: ".join(problems))
    check_out(plan.out, opts.features_dir, kind="bench")
    check_bench_dir(plan.out)
    waited: list[str] = []

    def on_wait(message: str) -> None:
        waited.append(message)
        warnings.warn(message)

    with file_lock(plan.out, on_wait, what=f"bench directory {plan.out}"):
        if waited:  # the other bench may have finished some of the tasks: plan again
            plan = plan_bench(opts, registry)
        check_bench_dir(plan.out)
        _prepare_bench_dir(plan)
        executor = make_executor(opts, registry, reporter)
        driver = _Driver(plan, executor, reporter, registry or get_registry())
        try:
            driver.run()
        finally:
            executor.close()
            driver.locks.close()
            _write_summary(plan)
    return BenchResult(plan.out, plan, driver.ran, [t.id for t in plan.finished],
                       driver.failed, plan.missing)


BENCH_DAMAGED = ("the bench directory was edited or damaged: choose another --out or delete "
                 "that folder")


def read_bench_json(out: Path) -> dict:
    """``bench.json`` of a bench directory, checked (kind, options, name lists)."""
    path = out / "bench.json"
    try:
        old = read_json_file(path, MAX_CONFIG_BYTES, "in bench directories")
    except DataError as exc:
        raise DataError(f"{exc}; {BENCH_DAMAGED}", path=str(path))
    problem = ""
    if not isinstance(old, dict) or old.get("kind") != "emobox.bench":
        problem = "not an emobox bench file (no kind emobox.bench)"
    elif not isinstance(old.get("training_options"), dict):
        problem = "field 'training_options' is not an object"
    else:
        for name in ("upstreams", "corpora", "downstreams"):
            value = old.get(name, [])
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                problem = f"field {name!r} is not a list of names"
                break
    if problem:
        raise DataError(f"{path}: {problem}; {BENCH_DAMAGED}", path=str(path))
    return old


def _options_diff(old: dict, new: dict, limit: int = 4) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    parts = [f"{k}: {json.dumps(old.get(k), default=str)[:40]} there, "
             f"{json.dumps(new.get(k), default=str)[:40]} now" for k in keys[:limit]]
    more = f", and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more


def _prepare_bench_dir(plan: BenchPlan) -> None:
    path = plan.out / "bench.json"
    wanted = plan.options.training_options()
    if path.exists() or path.is_symlink():
        old = read_bench_json(plan.out)
        plain = json.loads(json.dumps(wanted, default=str))
        if old["training_options"] != plain:
            raise EmoboxUsageError(
                f"{plan.out} holds a bench made with other training options "
                f"({_options_diff(old['training_options'], plain)}); choose another --out or "
                f"delete that folder")
        upstreams = list(dict.fromkeys(old.get("upstreams", []) + list(plan.options.upstreams)))
        corpora = list(dict.fromkeys(old.get("corpora", []) + [t.corpus for t in
                                                               plan.extractions]))
        downstreams = list(dict.fromkeys(old.get("downstreams", [])
                                         + list(plan.options.downstreams)))
    else:
        upstreams, downstreams = list(plan.options.upstreams), list(plan.options.downstreams)
        corpora = list(dict.fromkeys(t.corpus for t in plan.extractions))
    atomic_write_json(path, {"kind": "emobox.bench", "schema_version": 1,
                             "emobox_version": __version__, "training_options": wanted,
                             "upstreams": upstreams, "corpora": corpora,
                             "downstreams": downstreams})


class _Driver:
    """Submits tasks, writes each finished one to the bench directory, never loses a result."""

    def __init__(self, plan: BenchPlan, executor: Any, reporter: Reporter, registry: Registry):
        self.plan, self.executor, self.reporter, self.registry = plan, executor, reporter, registry
        self.ran: list[str] = []
        self.failed: dict[str, str] = {}
        self.open_runs: dict[tuple, dict] = {}  # triple -> {config, done rows, notes, todo}
        self.locks = contextlib.ExitStack()  # of the run directories being written

    def run(self) -> None:
        todo_trainings = {(t.upstream, t.corpus, t.downstream, t.layer, t.fold)
                          for t in self.plan.trainings if t.status == "todo"}
        for ext in self.plan.extractions:
            if ext.status != "todo":
                continue
            triples = [k for k in self.plan.triples if k[:2] == (ext.upstream, ext.corpus)]
            tp = extraction_plan([self.plan.triples[k] for k in triples])
            self.executor.submit_extract(ext.id, tp, {"triples": triples,
                                                      "todo": todo_trainings})
        # the local executor shows each task's own progress bar (one live display at a time)
        overall = Reporter() if getattr(self.executor, "shows_progress", False) else self.reporter
        with overall.task("bench", len(self.plan.todo), "task") as bar:
            while self.executor.pending():
                task_id, meta, result, error, info = self.executor.next_done()
                bar.advance(1)
                bar.note(f"last: {task_id}")  # names the upstream and corpus
                if error is not None:
                    self._failed(task_id, error, info)
                    continue
                self._log(task_id, "done", info)
                self.ran.append(task_id)
                if task_id.startswith("extract:"):
                    self._extracted(result, meta)
                else:
                    self._trained(result, meta)

    def _extracted(self, stored: Any, meta: dict) -> None:
        for key in meta["triples"]:
            tp = self.plan.triples[key]
            run_out = self.plan.run_dirs[key]
            feats = features_for(stored, tp.opts, tp.down_spec.layers)
            _, full_config = run_config(tp, feats)
            task_prefix = train_prefix(key)
            try:
                self.locks.enter_context(run_lock(run_out))
                done = _prepare_out(run_out, full_config, len(tp.configs))
            except EmoboxError as exc:
                for fold in tp.folds:
                    self._failed(f"{task_prefix}:fold{fold.index}", exc, {})
                continue
            for t in self.plan.trainings:  # finished from this audio: checked, not trained
                if (t.upstream, t.corpus, t.downstream, t.layer) == key and t.fold in done:
                    t.status = "done"
            notes = list(tp.notes)
            notes.extend(write_skipped(run_out, feats.skipped, tp.corpus.skipped, tp.manifest,
                                       tp.left_out, tp.corpus.manifest,
                                       recipe_dropped(tp, feats)))
            todo = [f for f in tp.folds if f.index not in done
                    and key + (f.index,) in meta["todo"]]
            self.open_runs[key] = {"config": full_config, "done": done, "notes": notes,
                                   "leaks": leakage(tp.manifest, tp.folds), "left": len(todo)}
            for job in fold_jobs(tp, feats, full_config, todo):
                self.executor.submit_train(f"{task_prefix}:fold{job.fold}", job, key[2],
                                           {"triple": key})
            if not todo:
                self._close_run(key)

    def _trained(self, output: Any, meta: dict) -> None:
        key = meta["triple"]
        state = self.open_runs[key]
        write_fold(self.plan.run_dirs[key], output)
        state["done"][output.fold] = output.rows
        if state["leaks"].get(output.fold):
            state["notes"].append(f"fold {output.fold}: {len(state['leaks'][output.fold])} "
                                  f"speakers are in both train and test (speaker-dependent fold)")
        state["left"] -= 1
        if state["left"] == 0:
            self._close_run(key)

    def _close_run(self, key: tuple) -> None:
        from emobox.tracks.runner import finish_run

        state = self.open_runs[key]
        finish_run(self.plan.run_dirs[key], state["done"], state["config"], state["notes"])

    def _failed(self, task_id: str, error: BaseException, info: dict) -> None:
        msg = f"{type(error).__name__}: {error}" if not isinstance(error, EmoboxError) else str(
            error)
        self.failed[task_id] = msg
        self._log(task_id, "failed", dict(info, error=msg))
        self.reporter.log(f"task {task_id} failed: {msg}")
        if task_id.startswith("extract:"):
            _, up, corpus = task_id.split(":")
            for t in self.plan.trainings:
                if (t.upstream, t.corpus) == (up, corpus) and t.status == "todo":
                    self.failed[t.id] = f"not run: its extraction failed ({msg})"

    def _log(self, task_id: str, status: str, info: dict) -> None:
        append_jsonl(self.plan.out / "tasks.jsonl", [{
            "task": task_id, "kind": task_id.split(":")[0], "status": status,
            "seconds": round(float(info.get("seconds", 0.0)), 3),
            "node": info.get("node", socket.gethostname()), "device": info.get("device", ""),
            "error": info.get("error", ""), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "emobox_version": __version__}])


def _write_summary(plan: BenchPlan) -> None:
    o = plan.options
    head = ["# emobox bench", ""]
    if o.recipe == "paper":
        from emobox.tracks.runner import PAPER_RECIPE_NOTE

        head += [f"**{PAPER_RECIPE_NOTE}.**", ""]
    lines = head + [f"- downstreams: {', '.join(o.downstreams)}",
             f"- scheme {o.scheme}, seed {o.seed}, epochs {o.epochs}, features normalised "
             f"{'per ' + o.feature_norm if o.feature_norm != 'none' else 'not at all'}, "
             f"gradient norm {f'clipped at {o.grad_clip:g}' if o.grad_clip else 'not clipped'}, "
             f"selection "
             f"{'TEST (EmoBox recipe; optimistic)' if o.select == 'test' else 'validation UA'}",
             ""]
    swept = any(k[3] is not None for k in plan.run_dirs)
    results = []
    for (u, c, d, layer), run_out in sorted(plan.run_dirs.items(),
                                            key=lambda kv: (kv[0][:3], kv[0][3] or 0)):
        try:
            check_run_dir(run_out)
            by_fold = {r["fold"]: r for r in read_rows(run_out)
                       if r["selected"] and not r.get("failed")}
            rows = [by_fold[f] for f in sorted(by_fold)]
        except EmoboxError:
            rows = []
        n = len(plan.triples[(u, c, d, layer)].folds)
        cells = []
        for m in ("ua", "wa", "f1"):
            if rows:
                mu, sd = mean_std([r[m] for r in rows])
                cells.append(f"{100 * mu:.2f} ± {100 * sd:.2f}")
            else:
                cells.append("–")
        variant = (["all" if layer is None else layer] if swept else [])
        results.append([u, c, d, *variant, f"{len(rows)}/{n}", *cells])
    lines += table(["upstream", "corpus", "downstream", *(["layer"] if swept else []), "folds",
                    "UA %", "WA %", "F1 %"], results)
    if plan.missing or plan.missing_checkpoints:
        lines += ["", "Not run:", ""] + [f"- {escape.markdown(m.corpus)}: "
                                         f"{escape.markdown(m.reason)}" for m in plan.missing]
        lines += [f"- {escape.markdown(m.upstream)}: {escape.markdown(m.reason)}"
                  for m in plan.missing_checkpoints]
    atomic_write_text(plan.out / "summary.md", "\n".join(lines) + "\n")


def plan_rows(plan: BenchPlan) -> list[dict]:
    """The plan as plain rows (for printing and JSON)."""
    return [asdict(t) for t in plan.extractions] + [asdict(t) for t in plan.trainings]


__all__ = ["BenchOptions", "BenchPlan", "BenchResult", "bench", "plan_bench"]
