"""``emobox cross build``: balanced test sets for any corpora and class set, from a recipe.

The library twin of the CLI command: ``emobox.cross_build.cross_build(BuildOptions(...))``. Each
corpus is scanned and a :class:`~emobox.balanced.BalancedSet` drawn with
:func:`~emobox.balanced.build_balanced_set` (classes through the canonical vocabulary, a quota of
speakers x utterances per class per speaker, a seed). Optionally only utterances whose
pseudo-label agrees with the gold label are kept, as EmoBox did with emotion2vec; the
pseudo-labels come from

- a file ``key -> label`` (``--pseudo-labels corpus=FILE``: TSV/CSV or JSON, labels in any
  spelling the canonical vocabulary knows),
- an ``emobox run`` directory (``--labeler-run corpus=DIR``): its out-of-fold test predictions,
  i.e. any upstream + trained head, each utterance labelled by the fold that did not train on it,
- or ``--labeler UPSTREAM:DOWNSTREAM``, which makes that run first (all folds of the corpus's
  default scheme, under ``<out>/labeler/<corpus>``) and uses its predictions.

Every set is drawn before anything is written, so a quota that one corpus cannot meet leaves
no half-written folder. The output folder holds ``<corpus>.tsv`` per corpus (the format
``emobox cross run --sets`` reads) and ``recipe.json``: the recipe (readable again by
``--recipe``) and, per corpus, what was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from emobox import __version__, paths
from emobox.datasets.balanced import (BalancedSet, Quota, Recipe, build_balanced_set, read_pseudo_labels,
                       read_recipe, recipe_from, run_pseudo_labels)
from emobox.errors import EmoboxUsageError
from emobox.io import atomic_write_json
from emobox.datasets.labels import CROSS_CORPUS_CLASSES
from emobox.reporting.paper import paper_tables
from emobox.plugin.registry import Registry, get_registry
from emobox.progress import Reporter


@dataclass(frozen=True)
class BuildOptions:
    corpora: tuple[str, ...]
    out: str
    classes: tuple[str, ...] | None = None  # None: the recipe's, else angry/happy/neutral/sad
    quota: Any = None  # "10x6", or {corpus: "10x6", "default": "allx3"}; None: recipe/Table 3
    seed: int | None = None  # None: the recipe's, else 0
    speaker_field: str | None = None  # speaker | emobox; None: the recipe's, else speaker
    speakers: Mapping[str, Sequence[str]] = field(default_factory=dict)  # corpus -> fixed list
    root_map: Mapping[str, str] = field(default_factory=dict)
    pseudo_labels: Mapping[str, str] = field(default_factory=dict)  # corpus -> file
    labeler_runs: Mapping[str, str] = field(default_factory=dict)  # corpus -> run directory
    labeler: str | None = None  # "UPSTREAM:DOWNSTREAM": run it, use its out-of-fold predictions
    labeler_options: Mapping[str, Any] = field(default_factory=dict)  # RunOptions fields
    recipe: str | None = None  # recipe file; the options above override its entries


@dataclass
class BuildResult:
    out: Path
    recipe: Recipe
    sets: dict[str, BalancedSet]
    labelers: dict[str, str]  # corpus -> where its pseudo-labels came from


def table3_quotas() -> dict[str, Quota]:
    """The published sets' structure (EmoBox Table 3) as quotas, by corpus."""
    return {row["corpus_id"]: Quota(int(row["speakers"]), int(row["per_speaker_per_emotion"]))
            for row in paper_tables().get("table3") or []}


def _recipe(opts: BuildOptions) -> tuple[Recipe, dict[str, str], list[str]]:
    data = read_recipe(opts.recipe) if opts.recipe else {}
    corpora = list(dict.fromkeys(opts.corpora or data.get("corpora") or ()))
    if not corpora:
        raise EmoboxUsageError("no corpus given (-c C1,C2 or 'corpora' in the recipe)")
    classes = opts.classes or data.get("classes") or CROSS_CORPUS_CLASSES
    quota = opts.quota if opts.quota is not None else data.get("quota")
    seed = opts.seed if opts.seed is not None else data.get("seed", 0)
    speaker_field = opts.speaker_field or data.get("speaker_field") or "speaker"
    speakers = dict(data.get("speakers") or {})
    speakers.update(opts.speakers)
    pseudo = dict(data.get("pseudo_labels") or {})
    pseudo.update(opts.pseudo_labels)
    if opts.recipe:  # relative files in a recipe are relative to the recipe
        base = Path(opts.recipe).parent
        pseudo = {c: str(base / p) if c not in opts.pseudo_labels and not Path(p).is_absolute()
                  else p for c, p in pseudo.items()}
    recipe = recipe_from(corpora, classes, quota, seed, speaker_field, speakers,
                         default_quotas=table3_quotas())
    return recipe, pseudo, corpora


def cross_build(opts: BuildOptions, reporter: Reporter | None = None,
                registry: Registry | None = None) -> BuildResult:
    """Draw a balanced set for every corpus, then write them all; see the module docstring."""
    registry = registry or get_registry()
    recipe, pseudo_files, corpora = _recipe(opts)
    for mapping, flag in ((pseudo_files, "--pseudo-labels"), (opts.labeler_runs, "--labeler-run"),
                          (opts.root_map, "--root-map"), (recipe.speakers, "speakers")):
        for name in mapping:
            if name not in corpora:
                registry.corpus(name)
                raise EmoboxUsageError(f"{flag} names {name}, which is not among the corpora "
                                       f"{', '.join(corpora)}")
    if opts.labeler and ":" not in opts.labeler:
        raise EmoboxUsageError(f"--labeler {opts.labeler!r}: expected UPSTREAM:DOWNSTREAM, e.g. "
                               f"emotion2vec_base:linear_probe")
    out = Path(opts.out).expanduser()
    sets: dict[str, BalancedSet] = {}
    labelers: dict[str, str] = {}
    manifests = {}
    for name in corpora:
        spec = registry.corpus(name)
        root = opts.root_map.get(name)
        corpus = spec.build(None if spec.embedded and not root else paths.corpus_root(name, root))
        manifest = corpus.manifest
        manifests[name] = (manifest, corpus.root)
        absent = [c for c in recipe.classes if c not in manifest.labels]
        if absent:
            raise EmoboxUsageError(f"{name} has no class {', '.join(absent)} (its classes: "
                                   f"{', '.join(manifest.labels)}); choose --classes it shares")
        pseudo, source = _pseudo_labels(name, manifest, pseudo_files, opts, out, reporter,
                                        registry)
        if source:
            labelers[name] = source
        origin = (f"emobox cross build: quota {recipe.quotas[name]}, seed {recipe.seed}, "
                  f"speakers by {recipe.speaker_field}"
                  + (f", pseudo-labels from {source}" if source else ""))
        sets[name] = build_balanced_set(manifest, recipe.classes, recipe.quotas[name],
                                        recipe.seed, recipe.speaker_field,
                                        recipe.speakers.get(name, ()), pseudo, origin)
    out.mkdir(parents=True, exist_ok=True)
    for name, bset in sets.items():
        bset.to_tsv(out / f"{name}.tsv")
    described = {}
    for name, bset in sets.items():
        manifest, root = manifests[name]
        described[name] = {"utterances": len(bset), "structure": bset.structure(),
                           "quota": str(recipe.quotas[name]), "hash": bset.content_hash(),
                           "pseudo_labels": labelers.get(name), "notes": list(bset.notes),
                           "root": str(root), "manifest_hash": manifest.content_hash()}
    atomic_write_json(out / "recipe.json", dict(
        recipe.to_json(), kind="emobox.balanced_sets", schema_version=1,
        emobox_version=__version__, corpora=corpora,
        pseudo_labels={c: str(Path(p).resolve()) for c, p in pseudo_files.items()},
        sets=described))
    return BuildResult(out, recipe, sets, labelers)


def _pseudo_labels(name: str, manifest: Any, files: Mapping[str, str], opts: BuildOptions,
                   out: Path, reporter: Reporter | None, registry: Registry
                   ) -> tuple[dict[str, str | None] | None, str]:
    """The pseudo-labels of one corpus (None: no filter) and where they came from."""
    if name in files:
        labels, source = read_pseudo_labels(files[name]), f"file {files[name]}"
    elif name in opts.labeler_runs:
        labels, source = run_pseudo_labels(opts.labeler_runs[name]), \
            f"run {opts.labeler_runs[name]}"
    elif opts.labeler:
        from emobox.tracks.runner import RunOptions, run

        upstream, downstream = opts.labeler.split(":", 1)
        run_out = out / "labeler" / name
        result = run(RunOptions(upstream=upstream, corpus=name, downstream=downstream,
                                root=opts.root_map.get(name), out=str(run_out),
                                **dict(opts.labeler_options)), reporter, registry)
        labels, source = run_pseudo_labels(result.out), \
            f"{upstream} + {downstream} (out-of-fold, run {result.out})"
    else:
        return None, ""
    known = sum(1 for k in labels if k in manifest)
    if known == 0:
        example = next(iter(labels), "none")
        raise EmoboxUsageError(f"{name}: none of the {len(labels)} keys of the pseudo-labels "
                               f"({source}) is an utterance of the corpus (e.g. {example!r}; its "
                               f"keys look like {manifest.keys[0]!r})")
    return labels, source
