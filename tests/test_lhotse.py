"""Lhotse manifests out: `emobox corpora manifest --format lhotse`, read back by Lhotse itself."""

from __future__ import annotations

import csv

import pytest

lhotse = pytest.importorskip("lhotse")


def test_demo_export_loads_and_validates_with_lhotse(cli, tmp_path):
    out = tmp_path / "lx"
    res = cli("corpora", "manifest", "-c", "demo", "--format", "lhotse", "-o", out)
    assert res.code == 0, res.err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["demo_cuts_all.jsonl.gz", "demo_recordings_all.jsonl.gz",
                     "demo_supervisions_all.jsonl.gz"]
    recs = lhotse.load_manifest(out / "demo_recordings_all.jsonl.gz")
    sups = lhotse.load_manifest(out / "demo_supervisions_all.jsonl.gz")
    cuts = lhotse.CutSet.from_file(out / "demo_cuts_all.jsonl.gz").to_eager()
    assert isinstance(recs, lhotse.RecordingSet) and isinstance(sups, lhotse.SupervisionSet)
    lhotse.validate_recordings_and_supervisions(recs, sups)
    recs2, sups2 = lhotse.fix_manifests(recs, sups)
    assert len(recs2) == len(recs) == 192 and len(sups2) == len(sups) == 192
    assert len(cuts) == 192

    # the same keys, speakers, labels and fold roles as emobox's own TSV manifest
    tsv = tmp_path / "demo.tsv"
    assert cli("corpora", "manifest", "-c", "demo", "-o", tsv).code == 0
    rows = {r["key"]: r for r in csv.DictReader(open(tsv), delimiter="\t")}
    assert set(rows) == {s.id for s in sups}
    for s in sups:
        r = rows[s.id]
        assert s.speaker == r["speaker"]
        assert s.custom["emotion"] == r["emotion"] and s.custom["emotion_raw"] == r["emotion_raw"]
        assert s.custom["folds"] == {k: r[f"fold{k}"] for k in ("1", "2", "3")}
    one = cuts["demo-spk01_angry_01"]
    assert one.supervisions[0].custom["folds"]["1"] == "test"
    assert one.load_audio().shape[-1] == one.num_samples


def test_unknown_format_is_a_usage_error(cli, tmp_path):
    res = cli("corpora", "manifest", "-c", "demo", "--format", "kaldi", "-o", tmp_path / "x")
    assert res.code == 2 and "error: --format 'kaldi': use tsv or lhotse" in res.err


def test_readme_lhotse_command_writes_the_files_it_names(cli, tmp_path):
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Lhotse manifests", 1)[1].split("\n## ", 1)[0]
    cmds = [ln.strip() for ln in section.splitlines() if ln.startswith("    emobox ")]
    assert cmds == ["emobox corpora manifest -c demo --format lhotse -o lhotse_demo"]
    args = shlex.split(cmds[0])[1:]
    args[args.index("lhotse_demo")] = str(tmp_path / "lhotse_demo")
    assert cli(*args).code == 0
    for name in ("demo_recordings_all", "demo_supervisions_all", "demo_cuts_all"):
        assert (tmp_path / "lhotse_demo" / f"{name}.jsonl.gz").is_file()
        assert f"{name}.jsonl.gz" in section
