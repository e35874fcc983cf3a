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


def test_emobox_lhotse_extra_installs_lhotse():
    import importlib.metadata

    assert "lhotse" in importlib.metadata.metadata("emobox").get_all("Provides-Extra")
    assert any(r.startswith("lhotse") and 'extra == "lhotse"' in r
               for r in importlib.metadata.requires("emobox"))


def test_unknown_format_is_a_usage_error(cli, tmp_path):
    res = cli("corpora", "manifest", "-c", "demo", "--format", "kaldi", "-o", tmp_path / "x")
    assert res.code == 2 and "error: --format 'kaldi': use tsv or lhotse" in res.err


def test_readme_lhotse_command_writes_the_files_it_names(cli, tmp_path):
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Lhotse manifests", 1)[1].split("\n## ", 1)[0]
    cmds = [ln.strip() for ln in section.splitlines() if ln.startswith("    emobox ")]
    assert cmds[0] == "emobox corpora manifest -c demo --format lhotse -o lhotse_demo"
    assert cmds[1] == "emobox run -u fbank -c lhotse --root lhotse_demo -d linear_probe"
    args = shlex.split(cmds[0])[1:]
    args[args.index("lhotse_demo")] = str(tmp_path / "lhotse_demo")
    assert cli(*args).code == 0
    for name in ("demo_recordings_all", "demo_supervisions_all", "demo_cuts_all"):
        assert (tmp_path / "lhotse_demo" / f"{name}.jsonl.gz").is_file()
        assert f"{name}.jsonl.gz" in section


# -- Lhotse manifests in: -c lhotse ---------------------------------------------------------------
def _mean_row(text: str) -> str:
    return next(ln for ln in text.splitlines() if "mean" in ln and "±" in ln)


def test_round_trip_demo_same_manifest_and_same_ua(cli, tmp_path):
    from emobox.datasets.corpus_tools import open_corpus

    out = tmp_path / "exported"
    assert cli("corpora", "manifest", "-c", "demo", "--format", "lhotse", "-o", out).code == 0
    demo, back = open_corpus("demo", None, {}, None), open_corpus("lhotse", str(out), {}, None)
    a, b = demo.manifest_for("emobox"), back.manifest_for("emobox")
    assert a.keys == b.keys
    assert [(u.speaker, u.label, u.raw_label) for u in a] == [(u.speaker, u.label, u.raw_label)
                                                             for u in b]
    fa, fb = demo.folds("emobox", 0), back.folds("emobox", 0)
    assert [(sorted(f.train), sorted(f.valid), sorted(f.test)) for f in fa] == \
        [(sorted(f.train), sorted(f.valid), sorted(f.test)) for f in fb]
    r1 = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "--seed", "0", "-q",
             "-o", tmp_path / "r1")
    r2 = cli("run", "-u", "fbank", "-c", "lhotse", "--root", out, "-d", "linear_probe",
             "--seed", "0", "-q", "-o", tmp_path / "r2")
    assert r1.code == 0 and r2.code == 0, r1.err + r2.err
    assert _mean_row(r1.out) == _mean_row(r2.out)


def _tones(tmp_path, lhotse):
    import numpy as np
    import soundfile as sf

    recs, sups = [], []
    for i, (spk, emo, f0) in enumerate([("a", "happy", 220), ("a", "sad", 330),
                                        ("b", "happy", 440), ("b", "sad", 550)]):
        t = np.arange(16000) / 16000
        path = tmp_path / "wav" / f"r{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype("float32"), 16000)
        rec = lhotse.Recording.from_file(path, recording_id=f"r{i}")
        recs.append(rec)
        for j in range(2):  # two segments per recording
            sups.append(lhotse.SupervisionSegment(
                id=f"r{i}-s{j}", recording_id=f"r{i}", start=0.5 * j, duration=0.4, channel=0,
                speaker=spk, custom={"mood": emo}))
    return lhotse.RecordingSet.from_recordings(recs), lhotse.SupervisionSet.from_segments(sups)


def test_lhotse_written_cutset_with_segments_reads_offsets_and_fields(tmp_path):
    from emobox.datasets.corpus_tools import open_corpus

    recs, sups = _tones(tmp_path, lhotse)
    cuts = lhotse.CutSet.from_manifests(recordings=recs, supervisions=sups).trim_to_supervisions()
    cuts.to_file(tmp_path / "x_cuts_train.jsonl.gz")
    c = open_corpus("lhotse", str(tmp_path / "x_cuts_train.jsonl.gz"), {"label_field": "mood"},
                    None)
    m = c.manifest
    assert m.keys == [f"r{i}-s{j}" for i in range(4) for j in range(2)]
    u = m["r1-s1"]
    assert (u.label, u.speaker, u.start, u.end) == ("sad", "a", 0.5, 0.9)
    assert m.labels == ("happy", "sad")
    # recordings + supervisions, written by Lhotse, read the same
    d = tmp_path / "rs"
    d.mkdir()
    recs.to_file(d / "x_recordings_all.jsonl.gz")
    sups.to_file(d / "x_supervisions_all.jsonl.gz")
    m2 = open_corpus("lhotse", str(d), {"label_field": "mood"}, None).manifest
    assert [(u.key, u.label, u.start, u.end) for u in m2] == \
        [(u.key, u.label, u.start, u.end) for u in m]


def test_lhotse_missing_field_and_unknown_label_name_the_cut(cli, tmp_path):
    recs, sups = _tones(tmp_path, lhotse)
    lhotse.CutSet.from_manifests(recordings=recs, supervisions=sups).trim_to_supervisions() \
        .to_file(tmp_path / "x_cuts_all.jsonl.gz")
    root = tmp_path / "x_cuts_all.jsonl.gz"
    res = cli("corpora", "check", "-c", "lhotse", "--root", root, "--no-audio")
    assert res.code == 3 and "cut 'r0-s0' has no 'emotion'" in res.err
    res = cli("corpora", "check", "-c", "lhotse", "--root", root, "--no-audio",
              "-C", "label_field=mood", "-C", "labels=happy")
    assert res.code == 3 and "cut 'r1-s0' has label 'sad', not one of happy" in res.err


def test_lhotse_gzip_bomb_is_refused(cli, tmp_path):
    import gzip

    bomb = tmp_path / "b_cuts_all.jsonl.gz"
    with gzip.open(bomb, "wb") as fh:
        for _ in range(3):
            fh.write(b" " * (1 << 20) + b"\n")
    res = cli("corpora", "check", "-c", "lhotse", "--root", bomb, "--no-audio", "-C", "max_mb=2")
    assert res.code == 3 and "larger than 2 MiB decompressed" in res.err


# -- a segmented corpus: every utterance a span of a long recording ------------------------------
@pytest.fixture(scope="module")
def pavoque(tmp_path_factory):
    """PAVOQUE's fixture tree (7334 segments of 6 long recordings) and its Lhotse export."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
    try:
        from corpus_fixtures import build_fixture
    finally:
        sys.path.pop(0)
    from emobox.datasets.lhotse_io import export_lhotse

    root = tmp_path_factory.mktemp("pavoque")
    corpus, _ = build_fixture("pavoque", root / "tree")
    export = export_lhotse("pavoque", str(root / "tree"), root / "lx")
    return corpus, root / "tree", export


def test_segmented_corpus_export_has_segment_times_and_validates(pavoque):
    import soundfile as sf

    corpus, tree, export = pavoque
    manifest = corpus.manifest_for("emobox")
    recs = lhotse.load_manifest(export.recordings)
    sups = lhotse.load_manifest(export.supervisions)
    lhotse.validate_recordings_and_supervisions(recs, sups)
    recs2, sups2 = lhotse.fix_manifests(recs, sups)
    assert len(recs2) == len(recs) == 6  # one recording per long file, not per segment
    assert len(sups2) == len(sups) == len(manifest) == 7334
    by_id = {s.id: s for s in sups}
    for u in manifest:
        s = by_id[u.key]
        assert s.recording_id == u.path
        assert s.start == pytest.approx(u.start, abs=1e-6)
        assert s.end == pytest.approx(u.end, abs=1e-6)
        assert (s.speaker, s.language, s.custom["emotion"]) == (u.speaker, "German", u.label)
    # a cut's audio is its span of the long recording
    cuts = lhotse.CutSet.from_file(export.cuts)
    cut = next(c for c in cuts if c.supervisions[0].id == manifest.keys[100])
    u = manifest[manifest.keys[100]]
    audio, sr = sf.read(tree / u.path, dtype="float32")
    span = audio[round(u.start * sr):round(u.end * sr)]
    got = cut.load_audio()[0]
    assert got.shape == span.shape and abs(got - span).max() < 1e-4


def test_segmented_corpus_round_trips_through_lhotse(pavoque):
    from emobox.datasets.corpus_tools import open_corpus

    corpus, _, export = pavoque
    back = open_corpus("lhotse", str(export.cuts), {}, None)
    a, b = corpus.manifest_for("emobox"), back.manifest_for("emobox")
    assert a.keys == b.keys
    assert [(u.speaker, u.label, u.raw_label) for u in a] == [(u.speaker, u.label, u.raw_label)
                                                             for u in b]
    assert [u.start for u in b] == pytest.approx([u.start for u in a], abs=1e-6)
    assert [u.end for u in b] == pytest.approx([u.end for u in a], abs=1e-6)
    fa, fb = corpus.folds("emobox", 0), back.folds("emobox", 0)
    assert [(sorted(f.train), sorted(f.valid), sorted(f.test)) for f in fa] == \
        [(sorted(f.train), sorted(f.valid), sorted(f.test)) for f in fb]
