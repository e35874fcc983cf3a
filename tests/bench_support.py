"""Shared by the bench, report and submission tests: a small grid (fbank and mfcc x the demo,
an EmoDB fixture tree and the in-process ``tones`` corpus), run once per session."""

from __future__ import annotations

import json
from pathlib import Path

import emobox
from emobox import Corpus, CorpusSpec, FoldTableRow, ReferenceTable, Utterance, UpstreamSpec
from emobox.io import read_jsonl
from emobox.plugin.registry import Registry
from emobox.testing import write_audio
from corpus_writers import write_fixture

TONE_LABELS = ("high", "low", "mid")
TONE_FREQ = {"low": 180.0, "mid": 420.0, "high": 900.0}
TONE_SPEAKERS = ("s1", "s2", "s3", "s4")
TONE_SECONDS = 0.3
GRID = {"lr": [1e-2, 1e-3], "hidden": [16]}
EPOCHS, WARMUP = 3, 1


def tone_rows() -> list[tuple[str, str, str, str]]:
    """(key, relative path, speaker, label) of every tones utterance."""
    return [(f"tones-{s}_{lab}_{n}", f"{s}/{s}_{lab}_{n}.wav", s, lab)
            for s in TONE_SPEAKERS for lab in TONE_LABELS for n in range(3)]


FOLD_OF = {"s1": 1, "s2": 2, "s3": 3, "s4": 0}  # s4 trains in every fold


class TonesCorpus(Corpus):
    """4 speakers x 3 pitch classes x 3 takes of 0.3 s tones; folds: s1, s2, s3 in turn are
    test, s4 is always on the training side."""

    name = "tones"
    languages = ("Tonal",)
    labels = TONE_LABELS
    markers = ("s1",)

    def scan(self):
        utts = []
        for rel in self.iter_files((".wav",)):
            spk, name = rel.split("/")
            lab = name.split("_")[1]
            utts.append(Utterance(key=f"tones-{name[:-4]}", path=rel, label=lab, speaker=spk))
        return self.make_manifest(utts)

    def fold_table(self):
        return tones_reference().folds


def tones_reference() -> ReferenceTable:
    rows = tone_rows()
    return ReferenceTable(
        corpus="tones", labels=TONE_LABELS, label={k: lab for k, _, _, lab in rows},
        folds={k: FoldTableRow(FOLD_OF[s], False) for k, _, s, _ in rows},
        duration={k: TONE_SECONDS for k, *_ in rows})


def make_tones(root: Path) -> Path:
    for i, (key, rel, spk, lab) in enumerate(tone_rows()):
        freq = TONE_FREQ[lab] * (1 + 0.04 * TONE_SPEAKERS.index(spk)) + 9 * (i % 3)
        write_audio(root / rel, seconds=TONE_SECONDS, freq=freq)
    return root


class TestPlugin:
    """In-process plugin: the tones corpus and ``fbank_seen`` (fbank that 'saw' tones)."""

    @emobox.hookimpl
    def emobox_corpora(self):
        return [CorpusSpec(name="tones", build=TonesCorpus, languages=("Tonal",),
                           reference_table=tones_reference)]

    @emobox.hookimpl
    def emobox_upstreams(self):
        def build(ckpt=None, device="cpu", **options):
            from emobox.upstreams.kaldi import Fbank

            return Fbank(**options).to(device)

        return [UpstreamSpec(name="fbank_seen", build=build, num_layers=0, hidden_size=80,
                             frame_rate=100.0, trained_on=("tones",))]


def make_registry() -> Registry:
    reg = Registry()
    reg.register(TestPlugin(), name="bench-tests")
    return reg


def make_emodb(root: Path) -> Path:
    from emobox.corpora._emobox import reference_rows
    from emobox.corpora.emodb import EmoDB

    rows = [r for r in reference_rows("emodb") if r["speaker"] in ("male_03", "female_16")]
    write_fixture(EmoDB, root, rows[::2])
    return root


def grid_options(out: Path, roots: dict, **kw) -> "emobox.bench.BenchOptions":
    from emobox.tracks.bench import BenchOptions

    base = dict(upstreams=("fbank", "mfcc"), corpora=("demo", "emodb", "tones"),
                root_map={k: str(v) for k, v in roots.items()}, out=str(out),
                features_dir=str(out.parent / "features"), grid=GRID, epochs=EPOCHS,
                warmup_epochs=WARMUP, device="cpu")
    base.update(kw)
    return BenchOptions(**base)


_CACHE: dict = {}


def local_grid(tmp_path_factory) -> dict:
    """The grid run once with the local executor: {"dir", "roots", "result", "registry"}."""
    if "grid" not in _CACHE:
        from emobox.tracks.bench import bench

        base = tmp_path_factory.mktemp("grid")
        roots = {"emodb": make_emodb(base / "emodb"), "tones": make_tones(base / "tones")}
        registry = make_registry()
        result = bench(grid_options(base / "local", roots), registry=registry)
        _CACHE["grid"] = {"dir": base / "local", "roots": roots, "result": result,
                          "registry": registry, "base": base}
    return _CACHE["grid"]


# engine settings that say how a machine ran the extraction (they differ between executors),
# not how the features were computed
EXECUTION_KEYS = ("threads", "interop_threads", "decode_workers", "batch_seconds", "allocator")


def _result_part(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k != "valid_loss"}
    if "engine" in out:
        out["engine"] = {k: v for k, v in out["engine"].items() if k not in EXECUTION_KEYS}
    return out


def comparable(bench_dir: Path) -> dict:
    """Everything a run directory of the bench says about results, keyed by triple."""
    out = {}
    for run in sorted((bench_dir / "runs").iterdir()):
        rows = read_jsonl(run / "results.jsonl")
        config = json.loads((run / "config.json").read_text())
        out[run.name] = {
            "rows": sorted((_result_part(r) for r in rows),
                           key=lambda r: (r["fold"], r["config_id"])),
            "valid_loss": sorted((r["fold"], r["config_id"], r["valid_loss"]) for r in rows),
            "predictions": {p.name: p.read_text() for p in sorted((run / "predictions").iterdir())},
            "fingerprint": config["fingerprint"]}
    return out
