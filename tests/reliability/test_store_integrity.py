"""Catalogue, the feature store under attack and under a tired user: replaced audio, edited
store files, `features rm` on folders that are not stores, a kill while a store is finished,
names that break tab-separated files, edited meta.json fields, and a shared cluster (two
extractions at once, a read-only store, a store copied from another machine, a damaged journal,
a huge index line, links out of the store, a full disk). Every case is driven as a user would:
the CLI where there is one, else the library call the CLI makes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import emobox.extraction.store as store_mod
from emobox.errors import DataError
from emobox.extraction.extract import extract, extract_stats
from emobox.io import read_jsonl
from emobox.extraction.store import FeatureStore, meta_checksum

from reliability_support import (RUN, SR, assert_user_error, key, make_tree, rel, run_args,
                                 store_of, tone)

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from extract_fakes import FrameUpstream, Interrupt, store_files, tone_corpus  # noqa: E402


@pytest.fixture
def finished(cli, tree, tmp_path):
    """A finished one-fold run of the small corpus: (its command, its directory, its store)."""
    out = tmp_path / "run"
    args = run_args(tree, out)
    res = cli(*args)
    assert res.code == 0, res
    return args, out, store_of(out)


def sessions(store: FeatureStore) -> int:
    """How many extractions wrote into the store (one line each)."""
    return len(read_jsonl(store.path / "sessions.jsonl"))


def again(args: list, tmp_path: Path, name: str = "again") -> list:
    """The same run into a fresh run directory (so only the store is shared)."""
    return [*args[:-2], "--out", tmp_path / name]


# -- replaced audio -----------------------------------------------------------------------------

def test_replaced_audio_is_refused_not_trained_on(cli, finished, tree, tmp_path):
    """Another recording saved under the same name: the run and `features verify` both say the
    features are stale, name the file and what to do; nothing is trained on the old frames."""
    args, out, store = finished
    wav = tree / rel("s1", "sad", 1)
    sf.write(wav, tone(freq=987.0, amp=0.5), SR, subtype="PCM_16")
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(wav), "changed since these features were extracted",
                      f"emobox features rm {store.path}")
    assert not (tmp_path / "again" / "results.jsonl").exists()
    res = cli("features", "verify", store.path)
    assert res.code == 5 and str(wav) in res.err and "stale" in res.err, res


def test_same_size_edit_of_the_audio_is_found_by_its_hash(cli, finished, tree, tmp_path):
    args, _, store = finished
    wav = tree / rel("s2", "happy", 0)
    data = bytearray(wav.read_bytes())
    data[-40:] = bytes(b ^ 0x5A for b in data[-40:])  # same size, other content
    wav.write_bytes(bytes(data))
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(wav), "content changed (SHA-256 differs)")


def test_a_file_missing_from_a_fixed_manifest_makes_the_store_stale(cli, tree, tmp_path):
    """A manifest that still lists a file now gone (a scanned corpus would list it as skipped
    and make another store): the features extracted from it are not used."""
    manifest = tmp_path / "m.tsv"
    assert cli("corpora", "manifest", "-c", "demo", "--root", tree, "-o", manifest).code == 0
    args = ["run", "-u", "fbank", "-c", "imported", "--root", manifest, "-d", "linear_probe",
            "-q", "--epochs", "1", "--warmup", "0", "--grid", "lr=1e-3 hidden=8", "--fold", "1",
            "--on-bad-audio", "skip"]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    (tree / rel("s3", "angry", 0)).unlink()
    res = cli(*args, "--out", tmp_path / "b")
    assert_user_error(res, 3, str(tree / rel("s3", "angry", 0)), "is missing now")


def test_touched_or_copied_audio_keeps_its_store(cli, finished, tree, tmp_path):
    """A corpus copied without its times (or touched): same content, so the store is reused,
    the files are hashed once and their new times recorded (no second hashing)."""
    args, _, store = finished
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, copy_function=shutil.copyfile)  # new modification times
    for f in copy.rglob("*.flac"):
        os.utime(f, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    res = cli(*run_args(copy, tmp_path / "copied"))
    assert res.code == 0, res
    assert sessions(FeatureStore(store.path)) == 1  # not extracted again
    records = FeatureStore(store.path).audio_records()
    f = rel("s0", "angry", 0)
    assert records[f].mtime_ns == (copy / f).stat().st_mtime_ns == 1_700_000_000_000_000_000
    res = cli("features", "verify", store.path, "--root", copy)
    assert res.code == 0 and "audio unchanged" in res.out and "0 hashed again" in res.out, res


def test_new_audio_under_old_names_is_a_new_run_not_old_results(cli, tree, tmp_path):
    """After the stale store is removed and extracted anew, the run's old folds (trained on the
    old audio) are not taken as finished: the default run directory is another one."""
    args = [*RUN, "--root", tree]
    res = cli(*args)
    assert res.code == 0, res
    first = res.out.strip().splitlines()[-1]
    sf.write(tree / rel("s0", "happy", 1), tone(freq=700.0, amp=0.6), SR, subtype="PCM_16")
    res = cli(*args)
    assert res.code == 3, res
    store = res.err.split("emobox features rm ")[1].split("`")[0]
    assert cli("features", "rm", store).code == 0
    res = cli(*args)
    assert res.code == 0, res
    assert res.out.strip().splitlines()[-1] != first


# -- edited store files --------------------------------------------------------------------------

def test_nans_written_into_a_layer_file_stop_the_run(cli, finished, tmp_path):
    args, _, store = finished
    layer = store.path / "layer_0.f16"
    data = bytearray(layer.read_bytes())
    data[1000:1200] = np.full(100, np.nan, np.float16).tobytes()
    layer.write_bytes(bytes(data))
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(layer), "does not match its SHA-256", "emobox features rm")


def test_a_reversed_layer_file_stops_the_run(cli, finished, tmp_path):
    args, _, store = finished
    layer = store.path / "layer_0.f16"
    frames = np.fromfile(layer, np.float16).reshape(-1, 80)
    frames[::-1].tofile(layer)
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(layer), "does not match its SHA-256")


def test_two_keys_swapped_in_the_index_stop_the_run(cli, finished, tmp_path):
    args, _, store = finished
    index = store.path / "index.tsv"
    text = index.read_text()
    a, b = key("s1", "angry", 0), key("s2", "sad", 1)
    index.write_text(text.replace(a, "\0").replace(b, a).replace("\0", b))
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(index), "does not match its checksum")


def test_large_layer_files_are_checked_by_samples_and_nans_by_value(cli, finished, tmp_path,
                                                                    monkeypatch):
    """Past FULL_CHECK_BYTES a layer file is checked by sampled blocks: a reversed file fails
    them, and NaNs between the samples are still refused when the frames are read."""
    args, _, store = finished
    monkeypatch.setattr(store_mod, "FULL_CHECK_BYTES", 0)
    layer = store.path / "layer_0.f16"
    original = layer.read_bytes()
    frames = np.frombuffer(original, np.float16).reshape(-1, 80)
    frames[::-1].tofile(layer)
    res = cli(*again(args, tmp_path, "reversed"))
    assert_user_error(res, 3, str(layer), "64 sampled blocks")
    # NaNs where no block is sampled: the size and samples pass, the values do not
    monkeypatch.setattr(store_mod, "SAMPLE_BLOCK", 16)
    monkeypatch.setattr(store_mod, "SAMPLE_BLOCKS", 2)
    meta = json.loads((store.path / "meta.json").read_text())
    keys, offsets, lengths = store.index()
    i = keys.index(key("s2", "happy", 1))
    data = bytearray(original)
    at = int(offsets[i]) * 160 + 160 * 3
    data[at:at + 8] = np.full(4, np.nan, np.float16).tobytes()
    layer.write_bytes(bytes(data))
    meta["layers"]["0"]["sample_sha256"] = store_mod.sampled_sha256(layer)
    meta["layers"]["0"]["sha256"] = store_mod.file_sha256(layer)  # a consistent forgery
    meta["meta_sha256"] = meta_checksum(meta)
    (store.path / "meta.json").write_text(json.dumps(meta))
    store_mod._CHECKED.clear()
    res = cli(*again(args, tmp_path, "nans"))
    assert_user_error(res, 3, str(layer), "NaN or infinite features", key("s2", "happy", 1))


class NaNUpstream(FrameUpstream):
    """Gives NaN features for inputs of exactly 0.7 s (an upstream that breaks on one input)."""

    def forward(self, wavs, layers):
        out = super().forward(wavs, layers)
        for i, w in enumerate(wavs):
            if w.shape[0] == 11200:
                for L in layers:
                    out.hidden[L][i, 2] = float("nan")
        return out


def test_non_finite_upstream_features_are_named_or_skipped(tmp_path):
    m = tone_corpus(tmp_path / "audio", [1.0, 0.7, 1.2])
    with pytest.raises(DataError, match=r"utt001: upstream toy_frames produced NaN or infinite"
                                        r".*--on-bad-audio skip"):
        extract(NaNUpstream(), m, [1], store_dir=tmp_path / "f")
    store = extract(NaNUpstream(), m, [1], store_dir=tmp_path / "g", on_bad_audio="skip")
    assert list(store.skipped()) == ["utt001"] and store.index()[0] == ["utt000", "utt002"]
    assert np.isfinite(np.asarray(store.layer(1), np.float32)).all()


# -- features rm ---------------------------------------------------------------------------------

def test_rm_refuses_a_project_folder_holding_a_meta_json(cli, tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('hello')\n")
    (project / "meta.json").write_text('{"format": "emobox.features"}')
    res = cli("features", "rm", project)
    assert_user_error(res, 2, str(project), "src/", "not removed")
    assert (project / "src" / "main.py").read_text() == "print('hello')\n"


def test_rm_refuses_a_folder_without_the_store_marker(cli, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "meta.json").write_text('{"title": "my notes"}')
    (folder / "index.tsv").write_text("my index\n")
    res = cli("features", "rm", folder)
    assert_user_error(res, 2, str(folder), "not marked as an emobox feature store")
    assert (folder / "meta.json").exists()


def test_rm_refuses_links_and_never_follows_them(cli, finished, tmp_path):
    _, _, store = finished
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "link-to-store"
    link.symlink_to(store.path)
    res = cli("features", "rm", link)
    assert_user_error(res, 2, "symbolic link")
    (store.path / "sessions.jsonl").rename(tmp_path / "sessions.jsonl")
    (store.path / "sessions.jsonl").symlink_to(precious)
    res = cli("features", "rm", store.path)
    assert_user_error(res, 2, "sessions.jsonl (a link)")
    assert precious.read_text() == "keep me" and store.path.exists()


def test_rm_never_removes_a_folder_above_the_features_folder(cli, finished, tmp_path):
    """Emptied <upstream>/<corpus> folders inside the features folder go with the store; a
    store elsewhere goes alone, its (then empty) parents stay."""
    _, _, store = finished
    features = Path(os.environ["EMOBOX_HOME"]) / "features"
    project = tmp_path / "elsewhere" / "project"
    project.mkdir(parents=True)
    shutil.copytree(store.path, project / "store-copy")
    res = cli("features", "rm", store.path)
    assert res.code == 0 and not store.path.exists(), res
    assert list(features.iterdir()) == []  # fbank/demo went, the features folder stays
    res = cli("features", "rm", project / "store-copy")
    assert res.code == 0 and not (project / "store-copy").exists(), res
    assert project.is_dir() and (tmp_path / "elsewhere").is_dir()


def test_rm_of_several_stores_asks_first(cli, tree, tmp_path):
    for precision in ("fp32", "bf16"):
        assert cli(*run_args(tree, tmp_path / precision), "--precision", precision).code == 0
    stores = list((Path(os.environ["EMOBOX_HOME"]) / "features").glob("*/*/*"))
    res = cli("features", "rm", "-u", "fbank")  # not a terminal: refuses, removes nothing
    assert_user_error(res, 2, "2 stores match", "--yes")
    assert len(stores) == 2 and all(s.exists() for s in stores)
    res = cli("features", "rm", "-u", "fbank", "--yes")
    assert res.code == 0 and "removed 2 stores" in res.out, res


def test_a_damaged_store_can_still_be_removed(cli, finished):
    _, _, store = finished
    (store.path / "meta.json").write_text('{"format": "emobox.feat')
    res = cli("features", "rm", store.path)
    assert res.code == 0 and not store.path.exists(), res


def test_rm_refuses_a_store_an_extraction_is_writing(cli, finished):
    _, _, store = finished
    with store_mod.store_lock(store.path):
        res = cli("features", "rm", store.path)
    assert_user_error(res, 2, "another process is writing")
    assert store.path.exists()


# -- a kill while a store is finished ------------------------------------------------------------

@pytest.mark.parametrize("where", ["before meta.json", "between two layer files"])
def test_a_kill_while_finishing_is_completed_without_computing_again(tmp_path, monkeypatch,
                                                                     where):
    m = tone_corpus(tmp_path / "audio", [1.0, 0.5, 2.0, 1.5])
    reference = extract(FrameUpstream(), m, [0, 2], store_dir=tmp_path / "ref")
    with monkeypatch.context() as mp:
        if where == "before meta.json":
            import emobox.io

            def no_meta(path, obj):
                raise Interrupt("killed before meta.json")
            mp.setattr(emobox.io, "atomic_write_json", no_meta)
        else:
            real_move = store_mod.StoreWriter._move
            moves = []

            def killed_move(self, name, sha):
                if name.startswith("layer_") and moves:
                    raise Interrupt("killed between two layer files")
                moves.append(name)
                return real_move(self, name, sha)
            mp.setattr(store_mod.StoreWriter, "_move", killed_move)
        with pytest.raises(Interrupt):
            extract(FrameUpstream(), m, [0, 2], store_dir=tmp_path / "out")
    up = FrameUpstream()
    stats = extract_stats(up, m, [0, 2], store_dir=tmp_path / "out")
    assert up.calls == []  # nothing computed again
    assert any("finishing an extraction" in n for n in stats.notes)
    assert store_files(stats.store.path) == store_files(reference.path)
    assert not (stats.store.path / ".partial").exists()


def test_a_kill_after_meta_json_leaves_nothing_behind(tmp_path, monkeypatch):
    m = tone_corpus(tmp_path / "audio", [1.0, 0.5])
    with monkeypatch.context() as mp:
        mp.setattr(store_mod.shutil, "rmtree", lambda *a, **k: None)
        store = extract(FrameUpstream(), m, [1], store_dir=tmp_path)
    assert (store.path / ".partial").exists()
    up = FrameUpstream()
    stats = extract_stats(up, m, [1], store_dir=tmp_path)
    assert stats.reused and up.calls == [] and not (store.path / ".partial").exists()


# -- names that break files -----------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["tab\there", "new\nline"])
def test_a_control_character_in_a_file_name_is_named_at_manifest_time(cli, tmp_path, bad):
    root = tmp_path / "corpus"
    for emo in ("angry", "sad"):
        for n in range(3):
            p = root / emo / f"s{n}_{emo}.flac"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, tone(), SR)
    odd = root / "sad" / f"s9_{bad}.flac"
    sf.write(odd, tone(), SR)
    res = cli("run", "-u", "fbank", "-c", "folder", "--root", root, "-d", "linear_probe", "-q",
              "--out", tmp_path / "run")
    line = assert_user_error(res, 3, "control character", "rename the file")
    assert repr(f"sad/s9_{bad}.flac")[1:-1] in line
    assert not list(Path(os.environ["EMOBOX_HOME"]).glob("features/*/*/*"))


def test_an_empty_key_is_refused_naming_the_file(cli, tree, tmp_path):
    manifest = tmp_path / "m.tsv"
    assert cli("corpora", "manifest", "-c", "demo", "--root", tree, "-o", manifest).code == 0
    lines = manifest.read_text().split("\n")
    lines[3] = "\t".join([""] + lines[3].split("\t")[1:])
    manifest.write_text("\n".join(lines))
    res = cli("run", "-u", "fbank", "-c", "imported", "--root", manifest, "-d", "linear_probe",
              "-q", "--out", tmp_path / "run")
    assert_user_error(res, 3, lines[3].split("\t")[1], "key '' is empty")


def test_every_accepted_key_round_trips_through_the_index(tmp_path):
    keys = ["spaces in key", "ünïcödé-ключ-鍵", 'quote"s\'', "back\\slash", "#hash", "=eq",
            "line\u2028sep", " lead", "trail ", "x" * 1000]
    m = tone_corpus(tmp_path / "audio", [0.3] * len(keys))
    from emobox.datasets.manifest import Manifest

    m = Manifest(m.corpus, m.root, [type(u)(**{**u.__dict__, "key": k})
                                    for u, k in zip(m.utterances, keys)], m.labels)
    store = extract(FrameUpstream(), m, [0], store_dir=tmp_path / "f")
    assert FeatureStore(store.path).index()[0] == keys
    assert FeatureStore(store.path).check_for_training([0]) is None


# -- edited meta.json fields -----------------------------------------------------------------------

def _edit(meta: dict, change: str) -> None:
    if change == "n_frames as text":
        meta["n_frames"] = str(meta["n_frames"])
    elif change == "negative count":
        meta["n_utterances"] = -3
    elif change == "huge count":
        meta["n_frames"] = 10 ** 30
    elif change == "missing layers":
        del meta["layers"]
    elif change == "dim as text":
        meta["layers"]["0"]["dim"] = "80"
    elif change == "layer name":
        meta["layers"]["zero"] = meta["layers"].pop("0")
    elif change == "skipped as a list":
        meta["skipped"] = ["x"]
    elif change == "bool count":
        meta["n_utterances"] = True
    elif change == "no checksum":
        del meta["meta_sha256"]


CHANGES = ["n_frames as text", "negative count", "huge count", "missing layers", "dim as text",
           "layer name", "skipped as a list", "bool count", "no checksum"]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("checksum", ["kept", "recomputed"])
def test_edited_meta_fields_are_one_error_line(cli, finished, tmp_path, change, checksum):
    args, _, store = finished
    path = store.path / "meta.json"
    meta = json.loads(path.read_text())
    _edit(meta, change)
    if checksum == "recomputed" and "meta_sha256" in meta:
        meta["meta_sha256"] = meta_checksum(meta)
    path.write_text(json.dumps(meta))
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(path), "emobox features rm")
    res = cli("features", "info", store.path)
    assert res.code == 0 and "corrupt" in res.out and "Traceback" not in res.err, res


def test_a_field_edited_to_another_valid_value_is_caught_by_the_checksum(cli, finished, tmp_path):
    args, _, store = finished
    path = store.path / "meta.json"
    meta = json.loads(path.read_text())
    meta["skipped"] = {key("s0", "angry", 0): "edited in"}
    path.write_text(json.dumps(meta))
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(path), "does not match its own checksum")


def test_a_deeply_nested_meta_json_is_one_error_line(cli, finished, tmp_path):
    args, _, store = finished
    (store.path / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(store.path / "meta.json"), "corrupt meta.json")


# -- a shared cluster ------------------------------------------------------------------------------

def test_two_extractions_of_one_store_at_once_extract_it_once(tmp_path):
    tree = make_tree(tmp_path / "corpus", sentences=4)
    env = dict(os.environ, EMOBOX_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "emobox", "extract", "-u", "fbank", "-c", "demo", "--root",
           str(tree), "-q"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted("reused" in o for o, _ in outs) == [False, True], outs
    (store,) = (tmp_path / "home" / "features").glob("*/*/*")
    assert sessions(FeatureStore(store)) == 1
    FeatureStore(store).verify()


def test_a_read_only_store_is_used_and_touched_audio_is_rehashed(cli, finished, tree, tmp_path,
                                                                  monkeypatch):
    """A store on a read-only disk: nothing is written to it; a run that needs nothing new
    works, and audio whose times changed is hashed on each use instead of recorded."""
    args, _, store = finished
    import emobox.io

    real = emobox.io.atomic_write_bytes
    attempts = []

    def read_only(path, data):
        if Path(path).is_relative_to(store.path):
            attempts.append(Path(path).name)
            raise OSError(30, "Read-only file system", str(path))
        return real(path, data)
    for f in tree.rglob("*.flac"):
        os.utime(f, ns=(1_600_000_000_000_000_000,) * 2)
    before = store_files(store.path)
    with monkeypatch.context() as mp:
        mp.setattr(emobox.io, "atomic_write_bytes", read_only)
        res = cli(*again(args, tmp_path, "ro"))
    assert res.code == 0, res
    assert attempts == ["audio.tsv"] and store_files(store.path) == before
    res = cli(*again(args, tmp_path, "rw"))  # writable again: the new times are recorded
    assert res.code == 0, res
    f = rel("s0", "sad", 0)
    assert FeatureStore(store.path).audio_records()[f].mtime_ns == 1_600_000_000_000_000_000


def test_extraction_into_a_read_only_features_folder_is_exit_6(cli, tree, tmp_path, monkeypatch):
    real_open = store_mod.open_regular

    def ro_open(path, *a, **k):
        if str(path).endswith(".lock"):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(store_mod, "open_regular", ro_open)
    res = cli(*run_args(tree, tmp_path / "run"))
    assert_user_error(res, 6, ".lock", "read-only")


def test_a_store_copied_from_another_machine_is_reused(cli, finished, tree, tmp_path):
    """Corpus and store copied elsewhere (new times, another root): reused without
    re-extraction; `features verify` says where the recorded root is missing and checks the
    audio given --root."""
    args, _, store = finished
    corpus = tmp_path / "machine2" / "corpus"
    shutil.copytree(tree, corpus, copy_function=shutil.copyfile)
    features = tmp_path / "machine2" / "features"
    target = features / store.path.relative_to(store.path.parents[2])
    shutil.copytree(store.path, target, copy_function=shutil.copyfile)
    shutil.rmtree(tree)
    res = cli(*run_args(corpus, tmp_path / "machine2" / "run"), "--features-dir", features)
    assert res.code == 0, res
    assert sessions(FeatureStore(target)) == 1
    res = cli("features", "verify", target)
    assert res.code == 0 and "audio not checked" in res.out and "--root" in res.out, res
    res = cli("features", "verify", target, "--root", corpus)
    assert res.code == 0 and "audio unchanged" in res.out, res


@pytest.mark.parametrize("damage", ["cut mid-line", "cut in the header", "binary junk",
                                    "negative sizes", "huge dims", "plan of strings",
                                    "not objects"])
def test_a_damaged_journal_resumes_or_restarts_to_the_same_store(tmp_path, damage):
    m = tone_corpus(tmp_path / "audio", [0.6, 1.1, 0.4, 1.5, 0.9, 1.3])
    reference = extract(FrameUpstream(), m, [0], store_dir=tmp_path / "ref",
                        memory_budget=200_000)
    out = tmp_path / "out"
    with pytest.raises(Interrupt):
        extract(FrameUpstream(fail_after=4), m, [0], store_dir=out, memory_budget=200_000)
    (folder,) = out.glob("*/*/*")
    journal = folder / ".partial" / "journal.jsonl"
    text = journal.read_text()
    lines = text.splitlines()
    last = json.loads(lines[-1])
    if damage == "cut mid-line":
        journal.write_text(text[: len(text) - len(lines[-1]) // 2 - 1])
    elif damage == "cut in the header":
        journal.write_text(lines[0][:40])
    elif damage == "binary junk":
        journal.write_bytes(os.urandom(3000))
    elif damage == "negative sizes":
        last["frames"] = -5
        journal.write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
    elif damage == "huge dims":
        last["dims"] = {"0": 10 ** 12}
        journal.write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
    elif damage == "plan of strings":
        head = json.loads(lines[0])
        head["plan"] = {k: "x" for k in head["plan"]}
        journal.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    else:
        journal.write_text("[1]\n\"a\"\n")
    stats = extract_stats(FrameUpstream(), m, [0], store_dir=out, memory_budget=200_000)
    assert store_files(stats.store.path) == store_files(reference.path)


def test_a_huge_index_line_is_refused_without_reading_it(cli, finished, tmp_path):
    args, _, store = finished
    index = store.path / "index.tsv"
    with open(index, "a") as fh:
        fh.write("k" * (20 << 20) + "\t0\t1\n")
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(index), "bytes (at most")


@pytest.mark.parametrize("name", ["meta.json", "index.tsv", "layer_0.f16"])
def test_a_store_file_that_is_a_link_out_of_the_folder_is_refused(cli, finished, tmp_path, name):
    args, _, store = finished
    outside = tmp_path / f"outside-{name}"
    (store.path / name).rename(outside)
    (store.path / name).symlink_to(outside)
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, str(store.path / name), "symbolic link")


def test_a_full_disk_while_writing_a_layer_is_exit_6_naming_it(tmp_path):
    """The file size limit (EFBIG, as a full disk gives ENOSPC) is hit writing the layer file:
    one error line naming it, exit 6; the same command with room again finishes the store."""
    tree = make_tree(tmp_path / "corpus", sentences=4)
    env = dict(os.environ, EMOBOX_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    script = textwrap.dedent("""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
        from emobox.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    cmd = ["extract", "-u", "fbank", "-c", "demo", "--root", str(tree), "-q"]
    proc = subprocess.run([sys.executable, "-c", script, *cmd], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 6, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "layer_0.f16" in errors[0] and "Traceback" not in proc.stderr, \
        proc.stderr
    proc = subprocess.run([sys.executable, "-m", "emobox", *cmd], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (store,) = (tmp_path / "home" / "features").glob("*/*/*")
    FeatureStore(store).verify()


# -- store and run files put in place by hand ---------------------------------------------------

def test_a_fifo_in_place_of_meta_json_is_named_without_waiting(cli, finished, tmp_path):
    args, _, store = finished
    meta = store.path / "meta.json"
    meta.unlink()
    os.mkfifo(meta)
    res = cli("features", "info", store.path)
    unwrapped = "".join((res.out + res.err).split())
    assert f"{meta}:meta.jsonisnotaregularfile" in unwrapped, res
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, f"{meta}: meta.json is not a regular file")


def test_a_number_of_5000_digits_in_meta_json_is_damage_not_a_traceback(cli, finished, tmp_path):
    args, _, store = finished
    meta = store.path / "meta.json"
    meta.write_text(meta.read_text().replace('"format"', '"big": ' + "1" * 5000 + ', "format"', 1))
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, f"{meta}: corrupt meta.json", "Exceeds the limit")
    rm = cli("features", "rm", store.path, "--yes")
    assert rm.code == 0 and not store.path.exists(), rm


def test_a_lock_file_linked_out_of_the_store_is_never_followed(cli, finished, tmp_path):
    """A store folder about to be extracted into, holding a .lock linked elsewhere: the lock
    would create (and lock) a file outside the store."""
    args, _, store = finished
    victim = tmp_path / "victim" / "created_by_emobox"
    victim.parent.mkdir()
    shutil.rmtree(store.path)
    store.path.mkdir()
    lock = store.path / ".lock"
    lock.symlink_to(victim)
    res = cli("extract", "-u", "fbank", "-c", "demo", "--root", args[args.index("--root") + 1],
              "-q", "--features-dir", store.path.parents[2])
    assert_user_error(res, 3, f"{lock}: is a symbolic link")
    assert not victim.exists()


def test_sessions_with_times_that_are_not_numbers_are_named(cli, finished):
    _, _, store = finished
    sessions_file = store.path / "sessions.jsonl"
    sessions_file.write_text('{"audio_s": "x", "seconds": 1}\n')
    res = cli("features", "info", store.path)
    unwrapped = "".join((res.out + res.err).split())
    assert res.code == 0 and "Traceback" not in res.err, res
    assert (f"warning:{sessions_file}:1:audio_sis\"x\",notanumberofseconds" in unwrapped), res


def test_an_edited_score_in_results_is_found_by_its_confusion_matrix(cli, finished, tmp_path):
    """A result row's UA raised by hand no longer matches the counts it was computed from: the
    resume, the report and the submission refuse it, naming the file and the line."""
    args, out, _ = finished
    results = out / "results.jsonl"
    rows = read_jsonl(results)
    line = next(i for i, r in enumerate(rows, start=1) if r["selected"])
    rows[line - 1]["ua"] = 0.99
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = cli(*args)
    assert_user_error(res, 3, f"{results}:{line}: field 'ua' is 0.99, but the row's confusion "
                      "matrix gives")
    rep = cli("report", out, "--out", tmp_path / "rep")
    assert_user_error(rep, 3, f"{results}:{line}: field 'ua' is 0.99")


def test_extract_does_not_call_an_edited_store_reused(cli, finished, tree):
    _, _, store = finished
    layer = store.path / "layer_0.f16"
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    res = cli("extract", "-u", "fbank", "-c", "demo", "--root", tree, "-q")
    assert_user_error(res, 3, f"{layer}: feature file does not match its SHA-256 in meta.json")
    assert "features reused" not in res.out


def test_a_folder_in_place_of_a_layer_file_is_named_for_what_it_is(cli, finished, tmp_path):
    args, _, store = finished
    layer = store.path / "layer_0.f16"
    layer.unlink()
    layer.mkdir()
    res = cli(*again(args, tmp_path))
    assert_user_error(res, 3, f"{layer}: feature file is not a regular file")
