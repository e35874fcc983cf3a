"""``emobox run``: compose one upstream x corpus x downstream triple and evaluate it fold by fold.

The library twin of the CLI command: ``emobox.run(RunOptions(...))``. A run directory holds

    config.json        the triple, every option, versions, the fingerprint of what changes results
    results.jsonl      one row per fold x configuration (all configurations; the selected flagged)
    predictions/       fold<k>.tsv: key, gold, predicted of the selected configuration on test
    summary.md         the per-fold table and the mean, every configuration's mean, readable as it is
    confusion.png      the selected configurations' test confusion matrix, summed over folds
    skipped.tsv        utterances left out (unreadable audio with --on-bad-audio skip), if any

Re-running the same command resumes: finished folds are kept, the rest is done; a run directory
made with other options is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from . import __version__, paths
from .errors import EmoboxUsageError
from .extract import FrameSource, extract
from .io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from .metrics import mean_std
from .plugins import Registry, distributions_of, get_registry
from .progress import Reporter
from .results import ResultRow
from .splits import leakage, select_folds
from .sweep import Split, TrainConfig, expand_grid, train_sweep


@dataclass(frozen=True)
class RunOptions:
    upstream: str
    corpus: str
    downstream: str
    root: str | None = None
    out: str | None = None
    folds: tuple[int, ...] = ()
    scheme: str = "emobox"
    seed: int = 0
    device: str = "cpu"
    layer: int | str | None = None  # None = last layer
    layer_norm: bool = True
    grid: Mapping[str, Sequence[Any]] | None = None  # None = the head's own grid
    epochs: int = 100
    warmup_epochs: int = 10
    batch_size: int = 32
    select: str = "valid"
    class_weights: bool = False
    precision: str = "fp32"  # of the extracted features
    train_precision: str = "fp32"  # of the head's training: fp32 (exact) | bf16
    schedule: str = "linear"  # learning rate after warm-up: linear decay | constant
    upstream_ckpt: str | None = None
    upstream_options: Mapping[str, Any] = field(default_factory=dict)
    corpus_options: Mapping[str, Any] = field(default_factory=dict)
    on_bad_audio: str = "fail"
    features_dir: str | None = None


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

    def mean(self, metric: str) -> tuple[float, float]:
        return mean_std([getattr(f, metric) for f in self.folds])


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmoboxUsageError(f"--device {device}: no CUDA device is available on this machine")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise EmoboxUsageError(f"--device {device!r}: use cpu, cuda, cuda:N or auto")
    return device


def run(opts: RunOptions, reporter: Reporter | None = None,
        registry: Registry | None = None) -> RunResult:
    reporter = reporter or Reporter()
    registry = registry or get_registry()
    up_spec = registry.upstream(opts.upstream)
    corpus_spec = registry.corpus(opts.corpus)
    down_spec = registry.downstream(opts.downstream)
    device = resolve_device(opts.device)
    notes: list[str] = []

    corpus = corpus_spec.build(None if corpus_spec.embedded and not opts.root
                               else paths.corpus_root(opts.corpus, opts.root),
                               **dict(opts.corpus_options))
    manifest = corpus.manifest
    all_folds = corpus.folds(scheme=opts.scheme, seed=opts.seed)
    folds = select_folds(all_folds, list(opts.folds))
    if corpus.skipped:
        notes.append(f"{len(corpus.skipped)} files skipped while scanning (see `emobox corpora "
                     f"check`)")
    if opts.corpus in up_spec.trained_on:
        msg = (f"{opts.upstream} was trained on {opts.corpus}: these results are contaminated "
               f"and marked so")
        warnings.warn(msg)
        notes.append(msg)
    if opts.select == "test":
        notes.append("SELECTION BY TEST (EmoBox recipe, --select test): only for comparing with "
                     "the published tables; these numbers are optimistic")

    grid = dict(opts.grid) if opts.grid is not None else {k: list(v)
                                                          for k, v in down_spec.grid.items()}
    configs = expand_grid(grid)
    upstream = up_spec.build(ckpt=opts.upstream_ckpt, device=device,
                             **dict(opts.upstream_options))
    if down_spec.layers == "all":
        if opts.layer is not None:
            raise EmoboxUsageError(f"downstream {opts.downstream!r} reads every layer of the "
                                   f"upstream; drop --layer")
        layers = upstream.resolve_layers("all")
        layer: Any = "all"
    else:
        layers = upstream.resolve_layers(opts.layer)[:1]
        layer = layers[0]
    store = extract(upstream, manifest, layers, precision=opts.precision,
                    store_dir=Path(opts.features_dir) if opts.features_dir else None,
                    on_bad_audio=opts.on_bad_audio, reporter=reporter)
    skipped = store.skipped()
    cfg = TrainConfig(epochs=opts.epochs, warmup_epochs=opts.warmup_epochs,
                      batch_size=opts.batch_size, select=opts.select, seed=opts.seed,
                      device=device, class_weights=opts.class_weights,
                      precision=opts.train_precision, schedule=opts.schedule)

    config = {
        "kind": "emobox.run", "schema_version": 1,
        "upstream": opts.upstream, "corpus": opts.corpus, "downstream": opts.downstream,
        "checkpoint_id": upstream.checkpoint_id, "upstream_ckpt": opts.upstream_ckpt,
        "upstream_options": dict(opts.upstream_options),
        "corpus_options": dict(opts.corpus_options),
        "layer": layer, "layers": layers, "layer_norm": opts.layer_norm,
        "precision": opts.precision, "train_precision": opts.train_precision,
        "scheme": opts.scheme, "folds": [f.index for f in folds], "n_folds": len(all_folds),
        "grid": grid, "epochs": opts.epochs, "warmup_epochs": opts.warmup_epochs,
        "schedule": opts.schedule, "batch_size": opts.batch_size, "select": opts.select,
        "selected_by_test": opts.select == "test", "optimizer": "Adam",
        "class_weights": opts.class_weights, "seed": opts.seed,
        "manifest_hash": manifest.content_hash(), "labels": list(manifest.labels),
        "on_bad_audio": opts.on_bad_audio,
    }
    fingerprint = hashlib.sha256(json.dumps(config, sort_keys=True, default=str)
                                 .encode()).hexdigest()[:12]
    versions = {"emobox": __version__, "torch": torch.__version__,
                "plugins": distributions_of([up_spec, corpus_spec, down_spec])}
    out = Path(opts.out) if opts.out else paths.runs_dir() / (
        f"{opts.upstream}__{opts.corpus}__{opts.downstream}__{fingerprint}")
    full_config = dict(config, fingerprint=fingerprint, versions=versions, device=device,
                       root=str(corpus.root), features=str(store.path), notes=notes)
    done_rows = _prepare_out(out, full_config, len(configs))
    if skipped:
        atomic_write_text(out / "skipped.tsv", "key\treason\n" + "".join(
            f"{k}\t{v}\n" for k, v in sorted(skipped.items())))
        notes.append(f"{len(skipped)} utterances skipped for unreadable audio (skipped.tsv)")

    labels = list(manifest.labels)
    label_index = {lab: i for i, lab in enumerate(labels)}
    leaks = leakage(manifest, folds)
    for fold in folds:
        if fold.index in done_rows:
            continue
        keys = {role: [k for k in getattr(fold, role) if k not in skipped]
                for role in ("train", "valid", "test")}
        dtype = torch.bfloat16 if opts.train_precision == "bf16" else torch.float32
        source_layer = layers if layer == "all" else layer
        splits = {role: Split(FrameSource(store, source_layer, ks, layer_norm=opts.layer_norm,
                                          dtype=dtype),
                              torch.tensor([label_index[manifest[k].label] for k in ks]), ks)
                  for role, ks in keys.items()}
        sweep = train_sweep(down_spec, configs, store.dim(layers[0]), len(labels),
                            splits["train"], splits["valid"], splits["test"], cfg, reporter,
                            description=f"{opts.downstream} fold {fold.index}/{len(all_folds)}",
                            build_options={"n_layers": len(layers)} if layer == "all" else None)
        sel = sweep.configs[sweep.selected]
        pred_lines = "".join(f"{k}\t{labels[int(g)]}\t{labels[int(p)]}\n" for k, g, p in zip(
            keys["test"], splits["test"].labels.tolist(), sel.test_pred))
        atomic_write_text(out / "predictions" / f"fold{fold.index}.tsv",
                          "key\tgold\tpredicted\n" + pred_lines)
        rows = []
        for k, res in enumerate(sweep.configs):
            rows.append(ResultRow(
                run_id=fingerprint, upstream=opts.upstream, checkpoint_id=upstream.checkpoint_id,
                layer=layer, layer_norm=opts.layer_norm, precision=opts.precision,
                train_precision=opts.train_precision,
                corpus=opts.corpus, scheme=opts.scheme, fold=fold.index,
                downstream=opts.downstream, config_id=res.config_id, config=res.hp,
                selected=(k == sweep.selected), selection=sweep.selection,
                best_epoch=res.best_epoch, epochs=opts.epochs, valid_ua=res.valid_ua,
                valid_loss=res.valid_loss, ua=res.test["ua"], wa=res.test["wa"],
                f1=res.test["f1"], confusion=res.test["confusion"],
                per_class_recall=res.test["per_class_recall"], labels=labels,
                n_train=len(keys["train"]), n_valid=len(keys["valid"]),
                n_test=len(keys["test"]), valid_rule=fold.valid_rule, seed=opts.seed,
                emobox_version=__version__, plugins=versions["plugins"],
                contaminated=opts.corpus in up_spec.trained_on).to_dict())
        append_jsonl(out / "results.jsonl", rows)
        done_rows[fold.index] = rows
        if leaks.get(fold.index):
            notes.append(f"fold {fold.index}: {len(leaks[fold.index])} speakers are in both "
                         f"train and test (speaker-dependent fold)")
    all_rows = [r for f in sorted(done_rows) for r in done_rows[f]]
    summaries = [_fold_summary(done_rows[f]) for f in sorted(done_rows)]
    result = RunResult(out, summaries, all_rows, full_config, notes)
    atomic_write_text(out / "summary.md", summary_markdown(result))
    if all_rows:
        from .plots import confusion_png

        selected = [r for r in all_rows if r["selected"]]
        title = (f"{opts.upstream} x {opts.corpus} x {opts.downstream}: test, "
                 f"{len(selected)} fold{'s' if len(selected) != 1 else ''}")
        if opts.select == "test":
            title += "\nSELECTED BY TEST (EmoBox recipe)"
        confusion_png(out / "confusion.png", _summed_confusion(selected), labels, title)
    return result


def _summed_confusion(rows: list[dict]) -> list[list[int]]:
    n = len(rows[0]["confusion"])
    total = [[0] * n for _ in range(n)]
    for r in rows:
        for i, line in enumerate(r["confusion"]):
            for j, v in enumerate(line):
                total[i][j] += int(v)
    return total


def _prepare_out(out: Path, config: dict, n_configs: int) -> dict[int, list[dict]]:
    """Create or resume a run directory; returns the rows of folds already finished."""
    cfg_path = out / "config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") != config["fingerprint"]:
            raise EmoboxUsageError(
                f"{out} holds a run made with other options (fingerprint "
                f"{old.get('fingerprint')} vs {config['fingerprint']}); choose another --out or "
                f"delete that folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, config)
    rows = read_jsonl(out / "results.jsonl", repair=True)
    by_fold: dict[int, list[dict]] = {}
    for r in rows:
        by_fold.setdefault(int(r["fold"]), []).append(r)
    done = {f: rs for f, rs in by_fold.items()
            if len({r["config_id"] for r in rs}) == n_configs and len(rs) == n_configs
            and (out / "predictions" / f"fold{f}.tsv").exists()}
    if len(done) != len(by_fold):  # drop rows of folds that were cut short, then redo them
        keep = [r for f in sorted(done) for r in done[f]]
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in keep)
        atomic_write_text(out / "results.jsonl", text)
    wanted = set(config["folds"])
    return {f: rs for f, rs in done.items() if f in wanted}


def _fold_summary(rows: list[dict]) -> FoldSummary:
    sel = next(r for r in rows if r["selected"])
    return FoldSummary(sel["fold"], sel["ua"], sel["wa"], sel["f1"], sel["config_id"],
                       sel["best_epoch"], sel["valid_ua"])


def summary_markdown(result: RunResult) -> str:
    c = result.config
    by_test = c["select"] == "test"
    lines = [f"# {c['upstream']} x {c['corpus']} x {c['downstream']}", ""]
    if by_test:
        lines += ["**SELECTED BY TEST (EmoBox recipe, `--select test`): epochs and configurations "
                  "were picked on the test set; these numbers are optimistic and only for "
                  "comparing with the published tables.**", ""]
    train_prec = c.get("train_precision", "fp32")
    lines += [f"- scheme: {c['scheme']}, folds {c['folds']} of {c['n_folds']}, seed {c['seed']}",
              f"- layer {c['layer']} ({'layer-normalised' if c['layer_norm'] else 'raw'}), "
              f"features {c['precision']}, checkpoint {c['checkpoint_id']}",
              f"- grid {json.dumps(c['grid'])}, Adam, batch {c['batch_size']}, {c['epochs']} "
              f"epochs ({c['warmup_epochs']} warm-up, then "
              f"{'linear decay' if c.get('schedule', 'linear') == 'linear' else 'constant'}), "
              f"class weights {'on' if c['class_weights'] else 'off'}",
              f"- training precision: {train_prec}"
              f"{' (exact)' if train_prec == 'fp32' else ' (bfloat16 frame-level matmuls)'}",
              f"- selection: {'TEST (EmoBox recipe; optimistic)' if by_test else 'validation UA'}",
              ""]
    lines += ["| fold | UA | WA | F1 | selected config | epoch | valid UA |",
              "|---|---|---|---|---|---|---|"]
    for f in result.folds:
        lines.append(f"| {f.fold} | {100 * f.ua:.2f} | {100 * f.wa:.2f} | {100 * f.f1:.2f} | "
                     f"{f.config_id} | {f.best_epoch + 1} | {100 * f.valid_ua:.2f} |")
    if result.folds:
        cells = []
        for m in ("ua", "wa", "f1"):
            mu, sd = result.mean(m)
            cells.append(f"{100 * mu:.2f} ± {100 * sd:.2f}")
        lines.append(f"| **mean** | {' | '.join(cells)} | | | |")
        lines += ["", "Every configuration (test scores of its best epoch; mean ± std over folds):",
                  "", "| config | UA | WA | F1 | valid UA | selected in folds |",
                  "|---|---|---|---|---|---|"]
        by_config: dict[str, list[dict]] = {}
        for r in result.rows:
            by_config.setdefault(r["config_id"], []).append(r)
        for cid, rows in by_config.items():
            cells = []
            for m in ("ua", "wa", "f1", "valid_ua"):
                mu, sd = mean_std([r[m] for r in rows])
                cells.append(f"{100 * mu:.2f} ± {100 * sd:.2f}")
            chosen = [str(r["fold"]) for r in rows if r["selected"]]
            lines.append(f"| {cid} | {' | '.join(cells)} | {', '.join(chosen) or '-'} |")
        selected = [r for r in result.rows if r["selected"]]
        labels = selected[0].get("labels") or []
        if labels:
            lines += ["", "Per-class test recall of the selected configurations (mean over folds "
                      "with that class):", "", "| class | recall |", "|---|---|"]
            for i, lab in enumerate(labels):
                vals = [r["per_class_recall"][i] for r in selected
                        if r["per_class_recall"][i] is not None]
                cell = f"{100 * sum(vals) / len(vals):.2f}" if vals else "-"
                lines.append(f"| {lab} | {cell} |")
            lines += ["", "Confusion matrix of the selected configurations, summed over folds: "
                      "`confusion.png`."]
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
