"""Catalogue, run and bench directories: results say exactly how they were made, are never
mixed with results made otherwise, are read back only as emobox wrote them, and survive two
processes at once, a full disk and Ctrl-C.

- Every result row carries the fingerprint of every run option; a fold counts as finished only
  when its rows were made with the options asked for now (even when ``config.json`` is lost).
- A configuration whose training gives non-finite numbers is marked failed, never selected,
  shown as failed; nothing emobox writes holds NaN or Infinity.
- A link, fifo or folder where a run or bench directory keeps a file is refused, never followed.
- One process writes a run or bench directory at a time: a second one waits, then resumes.
- Rows that are JSON but not rows, random bytes, edited fields: one line naming the file, from
  ``run``, ``report``, ``submit pack`` and ``bench`` alike.
- OS errors (a full disk, a file-size limit, a read-only disk) end in exit 6 naming the path;
  Ctrl-C in exit 130 with one line saying how to resume.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from torch import nn

from emobox.training.downstream import Downstream, masked_mean, segment_mean
from emobox.io import atomic_write_json, read_jsonl
from emobox.plugin.registry import set_registry
from emobox.tracks.runner import RunOptions
from emobox.plugin.specs import DownstreamSpec
from emobox.testing import InProcessPlugin, registry_with

from reliability_support import assert_user_error, run_args

TWO_FOLDS = ("--fold", "2")  # with RUN's --fold 1: folds 1 and 2


@pytest.fixture
def finished(cli, tree, tmp_path):
    """A finished two-fold run: (its command, its directory, its results.jsonl text)."""
    out = tmp_path / "run"
    args = run_args(tree, out, *TWO_FOLDS)
    res = cli(*args)
    assert res.code == 0, res
    return args, out, (out / "results.jsonl").read_text()


def _no_training(monkeypatch):
    """Make any training fail loudly: a resumed run must not train."""
    import emobox.tracks.runner

    def refuse(*a, **k):
        raise AssertionError("a fold was trained again")

    monkeypatch.setattr(emobox.tracks.runner, "train_fold", refuse)


def _strict_json(text: str):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


# -- every row carries the options fingerprint ------------------------------------------------

def test_a_lost_config_does_not_let_old_results_pass_for_new_options(cli, finished):
    """config.json deleted, the command run again with --epochs 2: the epochs=1 rows are not
    taken as finished (before, they were, and summary.md claimed 2 epochs)."""
    args, out, text = finished
    summary = (out / "summary.md").read_text()
    (out / "config.json").unlink()
    res = cli(*args, "--epochs", "2")
    assert_user_error(res, 2, f"{out} holds results made with other options",
                      "epochs: 1 there, 2 now", "choose another --out")
    assert (out / "results.jsonl").read_text() == text  # nothing lost, nothing mixed in
    assert (out / "summary.md").read_text() == summary
    assert "1 epochs" in summary


def test_a_lost_config_with_the_same_options_resumes_without_training(cli, finished,
                                                                       monkeypatch):
    args, out, text = finished
    (out / "config.json").unlink()
    _no_training(monkeypatch)
    res = cli(*args)
    assert res.code == 0, res
    assert (out / "results.jsonl").read_text() == text
    assert json.loads((out / "config.json").read_text())["epochs"] == 1


def test_every_row_carries_every_run_option(finished):
    from emobox.tracks.runner import NOT_FINGERPRINTED, hash_options

    _, out, _ = finished
    rows = read_jsonl(out / "results.jsonl")
    fields = {f.name for f in dataclasses.fields(RunOptions)} - set(NOT_FINGERPRINTED)
    for row in rows:
        assert set(row["options"]) == fields | {"manifest_hash"}
        assert row["options"]["epochs"] == 1 and row["options"]["seed"] == 0
        assert row["options"]["grid"] == {"lr": [0.001], "hidden": [8]}
        assert row["options_fingerprint"] == hash_options(row["options"])


def test_an_option_added_later_is_in_the_fingerprint_without_an_edit():
    from emobox.tracks.runner import fingerprinted_options, hash_options

    @dataclasses.dataclass(frozen=True)
    class Later(RunOptions):
        later_option: float | None = None

    base = dict(upstream="fbank", corpus="demo", downstream="linear_probe")
    one = fingerprinted_options(Later(**base), {"lr": [1e-3]}, "m")
    two = fingerprinted_options(Later(**base, later_option=1.0), {"lr": [1e-3]}, "m")
    assert one["later_option"] is None and two["later_option"] == 1.0
    assert hash_options(one) != hash_options(two)


def test_rows_of_an_earlier_emobox_are_reported_then_redone_with_a_note(cli, finished,
                                                                         tmp_path):
    """Rows written before rows carried the options (no fingerprint) are still read by
    `report` and `submit pack`; a rerun says it redoes their folds and keeps them aside."""
    args, out, text = finished
    old = []
    for line in text.splitlines():
        row = json.loads(line)
        del row["options"], row["options_fingerprint"], row["failed"]
        old.append(json.dumps(row, sort_keys=True) + "\n")
    (out / "results.jsonl").write_text("".join(old))
    assert cli("report", out, "--out", tmp_path / "rep", "--no-plots").code == 0
    assert cli("submit", "pack", out, "-o", tmp_path / "s.zip").code == 0
    res = cli(*args)
    assert res.code == 0, res
    assert "2 result rows of an earlier emobox carry no options fingerprint" in res.err
    assert "folds 1, 2 redone" in res.err
    assert (out / "results.superseded.jsonl").read_text() == "".join(old)
    assert sorted(r["fold"] for r in read_jsonl(out / "results.jsonl")) == [1, 2]


# -- non-finite training ----------------------------------------------------------------------

class Poisoned(Downstream):
    """Mean pooling and a linear layer; ``poison=True`` turns every logit into NaN (training
    that diverged)."""

    def __init__(self, in_dim: int, n_classes: int, poison: bool = False):
        super().__init__()
        self.out = nn.Linear(in_dim, n_classes)
        self.factor = math.nan if poison else 1.0

    def forward(self, features, lengths):
        return self.out(masked_mean(features, lengths)) * self.factor

    def forward_packed(self, frames, segments, lengths):
        return self.out(segment_mean(frames, segments, lengths)) * self.factor


@pytest.fixture
def poisoned():
    from emobox.plugin.specs import HParam

    spec = DownstreamSpec(name="poisoned", build=Poisoned, grid={"poison": [False, True]},
                          hparams={"poison": HParam(bool)})
    set_registry(registry_with(InProcessPlugin(downstreams=[spec])))


def test_a_diverging_configuration_is_marked_failed_and_never_selected(cli, tree, tmp_path,
                                                                      poisoned):
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "poisoned", "-q", "--epochs", "2",
              "--warmup", "0", "--fold", "1", "--root", tree, "--out", out,
              "--grid", "poison=False,True")
    assert res.code == 0, res
    assert "configuration poison=True FAILED in fold 1" in res.err
    rows = {r["config_id"]: r for r in read_jsonl(out / "results.jsonl")}
    bad, good = rows["poison=True"], rows["poison=False"]
    assert bad["failed"].startswith("training diverged: non-finite training loss in epoch 1")
    assert not bad["selected"] and bad["ua"] is None and bad["valid_loss"] is None
    assert good["selected"] and not good["failed"] and 0 <= good["ua"] <= 1
    for name in ("results.jsonl", "config.json"):  # no NaN or Infinity anywhere
        for line in (out / name).read_text().splitlines() if name.endswith("l") else [
                (out / name).read_text()]:
            _strict_json(line)
    summary = (out / "summary.md").read_text()
    assert "| poison=True | failed | failed | failed | failed | - (FAILED in fold 1) |" in summary
    report = cli("report", out, "--out", tmp_path / "rep", "--no-plots")
    assert report.code == 0, report
    table = (tmp_path / "rep" / "table.md").read_text()
    assert "configuration poison=True FAILED in fold 1 (training diverged)" in table
    assert f"{100 * good['ua']:.2f}" in table


def test_when_every_configuration_diverges_the_error_names_them(cli, tree, tmp_path, poisoned):
    out = tmp_path / "run"
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "poisoned", "-q", "--epochs", "2",
              "--fold", "1", "--root", tree, "--out", out, "--grid", "poison=True")
    assert_user_error(res, 2, "poisoned fold 1/4: training diverged in every configuration",
                      "poison=True: non-finite training loss in epoch 1", "--grid lr=")
    assert not (out / "results.jsonl").exists()


def test_emobox_writes_no_nan_into_json(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"ua": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_rows_with_nan_from_an_earlier_release_are_failed_not_results(cli, finished, tmp_path):
    """An earlier emobox wrote NaN for a diverged configuration and could select it: the
    report leaves that fold out (partial) and says the configuration failed."""
    args, out, text = finished
    lines = text.splitlines()
    row = json.loads(lines[0])
    row["valid_loss"] = float("nan")
    (out / "results.jsonl").write_text(json.dumps(row) + "\n" + lines[1] + "\n")
    assert "NaN" in (out / "results.jsonl").read_text()
    res = cli("report", out, "--out", tmp_path / "rep", "--no-plots")
    assert res.code == 0, res
    table = (tmp_path / "rep" / "table.md").read_text()
    assert "*(1/4)" in table
    assert "FAILED in fold 1" in table


# -- links and other non-regular files --------------------------------------------------------

def _link_results(out: Path, tmp_path: Path) -> Path:
    victim = tmp_path / "victim.jsonl"
    victim.write_text((out / "results.jsonl").read_text() + '{"cut')  # a tail to "repair"
    (out / "results.jsonl").unlink()
    (out / "results.jsonl").symlink_to(victim)
    return victim


@pytest.mark.parametrize("command", ["run", "report", "submit pack"])
def test_a_linked_results_file_is_refused_and_its_target_untouched(cli, finished, tmp_path,
                                                                   command):
    args, out, _ = finished
    victim = _link_results(out, tmp_path)
    before = victim.read_text()
    argv = {"run": args, "report": ["report", out, "--out", tmp_path / "rep"],
            "submit pack": ["submit", "pack", out, "-o", tmp_path / "s.zip"]}[command]
    res = cli(*argv)
    assert_user_error(res, 3, f"{out / 'results.jsonl'}: is a symbolic link",
                      "does not follow links")
    assert victim.read_text() == before


def test_a_linked_predictions_folder_is_refused(cli, finished, tmp_path):
    args, out, _ = finished
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "predictions", elsewhere)
    (out / "predictions").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    for argv in (args, ["submit", "pack", out, "-o", tmp_path / "s.zip"]):
        res = cli(*argv)
        assert_user_error(res, 3, f"{out / 'predictions'}: is a symbolic link")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_a_fifo_or_folder_for_config_is_refused_without_hanging(cli, finished, tmp_path, what):
    args, out, _ = finished
    (out / "config.json").unlink()
    if what == "fifo":
        os.mkfifo(out / "config.json")
    else:
        (out / "config.json").mkdir()
    kind = "a fifo" if what == "fifo" else "a folder"
    for argv in (args, ["report", out, "--out", tmp_path / "rep"]):
        assert_user_error(cli(*argv), 3, f"{out / 'config.json'}: is {kind}")


def test_a_linked_lock_file_is_refused(cli, finished, tmp_path):
    args, out, _ = finished
    target = tmp_path / "target"
    (out / ".lock").unlink()
    (out / ".lock").symlink_to(target)
    assert_user_error(cli(*args), 3, f"{out / '.lock'}: is a symbolic link")
    assert not target.exists()


# -- rows that are not rows -------------------------------------------------------------------

NOT_ROWS = {
    "a number": b"42\n",
    "a list": b"[1, 2]\n",
    "a dict missing fields": b'{"fold": 1, "ua": 0.5}\n',
    "a fold of the wrong type": None,  # built from a real row below
    "a score out of range": None,
    "a confusion matrix of the wrong size": None,
    "random bytes": bytes(range(128, 256)) * 3 + b"\n",
}


def _bad_results(kind: str, good_line: str) -> bytes:
    if NOT_ROWS[kind] is not None:
        return NOT_ROWS[kind]
    row = json.loads(good_line)
    if kind == "a fold of the wrong type":
        row["fold"] = "1"
    elif kind == "a score out of range":
        row["ua"] = 7.5
    else:
        row["confusion"] = [[1, 2], [3]]
    return (json.dumps(row) + "\n").encode()


EXPECTED = {"a number": "not a JSON object (a JSON number)",
            "a list": "not a JSON object (a JSON list)",
            "a dict missing fields": "not a result row (no upstream, corpus, downstream, scheme",
            "a fold of the wrong type": "field 'fold' is '1', not an integer",
            "a score out of range": "field 'ua' is 7.5, not a number from 0 to 1",
            "a confusion matrix of the wrong size": "field 'confusion' is not a 4 x 4 matrix",
            "random bytes": "not UTF-8 text"}


@pytest.mark.parametrize("kind", list(NOT_ROWS))
@pytest.mark.parametrize("command", ["run", "report", "submit pack"])
def test_results_that_are_not_rows_are_one_line(cli, finished, tmp_path, kind, command):
    args, out, text = finished
    (out / "results.jsonl").write_bytes(_bad_results(kind, text.splitlines()[0]))
    before = (out / "results.jsonl").read_bytes()
    argv = {"run": args, "report": ["report", out, "--out", tmp_path / "rep"],
            "submit pack": ["submit", "pack", out, "-o", tmp_path / "s.zip"]}[command]
    res = cli(*argv)
    assert_user_error(res, 3, f"{out / 'results.jsonl'}:1: ", EXPECTED[kind], "corrupt")
    assert (out / "results.jsonl").read_bytes() == before


def test_config_fields_of_the_wrong_type_are_one_line(cli, finished, tmp_path):
    args, out, _ = finished
    config = json.loads((out / "config.json").read_text())
    config["folds"] = "1,2"
    (out / "config.json").write_text(json.dumps(config))
    for argv in (args, ["report", out, "--out", tmp_path / "rep"],
                 ["submit", "pack", out, "-o", tmp_path / "s.zip"]):
        assert_user_error(cli(*argv), 3, f"{out / 'config.json'}: field 'folds' is '1,2', "
                                         f"not a list")


def test_a_huge_config_is_refused_without_reading_it(cli, finished, tmp_path):
    args, out, _ = finished
    with open(out / "config.json", "r+") as fh:
        fh.seek(0, os.SEEK_END)
        fh.truncate(64 << 20)  # 64 MiB (sparse)
    for argv in (args, ["report", out, "--out", tmp_path / "rep"]):
        assert_user_error(cli(*argv), 3, f"{out / 'config.json'}: larger than 16 MiB")


def test_a_fold_written_twice_is_redone_once_and_refused_by_the_report(cli, finished, tmp_path):
    """What two runs into one --out left before runs were locked: every fold twice."""
    args, out, text = finished
    (out / "results.jsonl").write_text(text + text)
    res = cli("report", out, "--out", tmp_path / "rep")
    assert_user_error(res, 3, "fold 1 holds configuration hidden=8,lr=0.001 twice",
                      "rerunning the same command redoes that fold")
    assert cli(*args).code == 0
    rows = read_jsonl(out / "results.jsonl")
    assert sorted(r["fold"] for r in rows) == [1, 2]


# -- bench directories --------------------------------------------------------------------------

BENCH = ("bench", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--epochs", "1",
         "--warmup", "0", "--grid", "lr=1e-3 hidden=8", "--fold", "1", "--device", "cpu")


@pytest.fixture
def bench_dir(cli, tree, tmp_path):
    out = tmp_path / "bench"
    res = cli(*BENCH, "--root-map", f"demo={tree}", "--out", out)
    assert res.code == 0, res
    return out


def bench_args(tree: Path, out: Path, *extra: str) -> list:
    return [*BENCH, "--root-map", f"demo={tree}", "--out", out, *extra]


@pytest.mark.parametrize("kind", ["a number", "random bytes", "a score out of range"])
def test_a_bench_with_rows_that_are_not_rows_names_the_file(cli, tree, bench_dir, kind):
    results = bench_dir / "runs" / "fbank__demo__linear_probe" / "results.jsonl"
    results.write_bytes(_bad_results(kind, results.read_text().splitlines()[0]))
    res = cli(*bench_args(tree, bench_dir))
    assert res.code == 3, res
    assert "Traceback" not in res.err
    assert f"{results}:1: {EXPECTED[kind]}" in res.err
    report = cli("report", bench_dir, "--out", bench_dir.parent / "rep")
    assert_user_error(report, 3, f"{results}:1: {EXPECTED[kind]}")


def test_an_edited_bench_json_is_one_line(cli, tree, bench_dir):
    path = bench_dir / "bench.json"
    meta = json.loads(path.read_text())
    meta["upstreams"] = "fbank"
    path.write_text(json.dumps(meta))
    assert_user_error(cli(*bench_args(tree, bench_dir)), 3, f"{path}: field 'upstreams' is "
                                                            f"not a list of names")
    path.write_text("[" * 100000)
    assert_user_error(cli(*bench_args(tree, bench_dir)), 3, f"{path}: not valid JSON "
                                                            f"(nested deeper than 64 levels)")


def test_junk_in_tasks_jsonl_is_left_alone_and_a_link_refused(cli, tree, bench_dir, tmp_path):
    log = bench_dir / "tasks.jsonl"
    predictions = bench_dir / "runs" / "fbank__demo__linear_probe" / "predictions" / "fold1.tsv"
    log.write_bytes(log.read_bytes() + b"\x00\xff junk\n")
    predictions.unlink()  # the fold runs again and is logged
    res = cli(*bench_args(tree, bench_dir))
    assert res.code == 0, res
    assert b"\x00\xff junk\n" in log.read_bytes()
    assert log.read_bytes().endswith(b"\n") and b"train:fbank:demo" in log.read_bytes()[-400:]
    victim = tmp_path / "victim"
    victim.write_text("mine\n")
    log.unlink()
    log.symlink_to(victim)
    predictions.unlink()
    assert_user_error(cli(*bench_args(tree, bench_dir)), 3, f"{log}: is a symbolic link")
    assert victim.read_text() == "mine\n"


def test_a_linked_run_inside_a_bench_is_refused(cli, tree, bench_dir, tmp_path):
    run = bench_dir / "runs" / "fbank__demo__linear_probe"
    shutil.move(run, tmp_path / "moved")
    run.symlink_to(tmp_path / "moved")
    assert_user_error(cli(*bench_args(tree, bench_dir)), 3, f"{run}: is a symbolic link")


def test_two_benches_with_other_options_into_one_out_say_which_differ(cli, tree, bench_dir):
    res = cli(*bench_args(tree, bench_dir, "--epochs", "2"))
    assert_user_error(res, 2, f"{bench_dir} holds a bench made with other training options",
                      "epochs: 1 there, 2 now")


# -- where --out may point ------------------------------------------------------------------------

def test_out_inside_the_feature_stores_is_refused(cli, tree, tmp_path, _isolated_home):
    out = _isolated_home / "features" / "mine"
    res = cli(*run_args(tree, out))
    assert_user_error(res, 2, f"--out {out}: inside the feature stores' folder")
    assert not out.exists()


def test_out_inside_a_feature_store_is_refused(cli, tree, tmp_path):
    """A store kept in another --features-dir: a run written into it would be deleted with
    the store, and its files taken for the store's."""
    first = tmp_path / "first"
    assert cli(*run_args(tree, first), "--features-dir", tmp_path / "stores").code == 0
    store = Path(json.loads((first / "config.json").read_text())["features"])
    inside = store / "run"
    res = cli(*run_args(tree, inside))
    assert_user_error(res, 2, f"--out {inside}: inside the feature store {store}")
    assert not inside.exists()


def test_out_that_is_a_bench_directory_is_refused(cli, tree, bench_dir):
    res = cli(*run_args(tree, bench_dir))
    assert_user_error(res, 2, f"--out {bench_dir}: a bench directory")


def test_a_run_directory_copied_from_another_machine_resumes_and_reports(cli, finished,
                                                                         tmp_path, monkeypatch):
    args, out, text = finished
    copy = tmp_path / "copied"
    shutil.copytree(out, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(root="/nfs/other/corpus", features="/scratch/other/features/x")
    (copy / "config.json").write_text(json.dumps(config))
    _no_training(monkeypatch)
    res = cli(*args[:args.index("--out")], "--out", copy, *args[args.index("--out") + 2:])
    assert res.code == 0, res
    assert (copy / "results.jsonl").read_text() == text
    assert cli("report", copy, "--out", tmp_path / "rep", "--no-plots").code == 0


# -- OS errors ------------------------------------------------------------------------------------

def test_a_full_disk_is_one_line_naming_the_file(cli, tree, tmp_path, monkeypatch):
    """ENOSPC when the fold's rows are flushed (write and fsync name no file)."""
    out = tmp_path / "full"
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("results.jsonl"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    res = cli(*run_args(tree, out))
    assert_user_error(res, 6, f"{out / 'results.jsonl'}: No space left on device",
                      "the disk is full", "run the same command to resume")


def test_a_file_size_limit_is_one_line_naming_the_file(finished, tree, tmp_path):
    """EFBIG from a real write past RLIMIT_FSIZE (the store is already extracted)."""
    out = tmp_path / "limited"
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500)); "
            "from emobox.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, run_args(tree, out))],
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 6, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and f"{out / 'config.json'}: File too large" in lines[0], lines
    assert "ulimit -f" in lines[0]


def test_a_read_only_disk_is_one_line(cli, tree, tmp_path, monkeypatch):
    import tempfile

    def read_only(*a, dir=None, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), dir)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    out = tmp_path / "ro"
    res = cli(*run_args(tree, out))
    assert_user_error(res, 6, "Read-only file system", "set EMOBOX_HOME or --out elsewhere")


def test_an_os_error_without_a_file_name_is_still_one_line(cli, tree, tmp_path, monkeypatch):
    import emobox.tracks.runner

    def broken(*a, **k):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(emobox.tracks.runner, "finish_run", broken)
    res = cli(*run_args(tree, tmp_path / "eio"))
    assert_user_error(res, 6, "Input/output error (the operating system did not say which "
                              "file)", "the disk or network file system failed")


# -- two processes at once ------------------------------------------------------------------------

def _emobox(args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "emobox", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_two_identical_runs_at_once_write_every_fold_once(tree, tmp_path):
    out = tmp_path / "run"
    args = [*run_args(tree, out, *TWO_FOLDS)]
    args[args.index("--epochs") + 1] = "30"
    procs = [_emobox(args) for _ in range(2)]
    ends = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], ends
    rows = read_jsonl(out / "results.jsonl")
    assert sorted((r["fold"], r["config_id"]) for r in rows) == [
        (1, "hidden=8,lr=0.001"), (2, "hidden=8,lr=0.001")]


def test_a_second_run_waits_for_the_lock_then_resumes(tree, tmp_path):
    """The lock held (as a running emobox holds it): the second process says it waits, and
    once the lock is free it runs to the end."""
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    proc = _emobox(run_args(tree, out))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not any("waiting for it to finish" in ln for ln in lines):
        assert proc.poll() is None, lines
        assert time.monotonic() < deadline, lines
        time.sleep(0.1)
    assert not (out / "results.jsonl").exists()
    os.close(fd)
    assert proc.wait(timeout=300) == 0, lines
    reader.join(timeout=10)
    assert f"another emobox process is writing run directory {out}" in "".join(lines)
    assert len(read_jsonl(out / "results.jsonl")) == 1


def test_two_benches_at_once_count_every_fold_once(tree, tmp_path):
    out = tmp_path / "bench"
    args = bench_args(tree, out, "--fold", "2")
    args[args.index("--epochs") + 1] = "30"
    procs = [_emobox(args) for _ in range(2)]
    ends = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], ends
    rows = read_jsonl(out / "runs" / "fbank__demo__linear_probe" / "results.jsonl")
    assert sorted(r["fold"] for r in rows) == [1, 2]
    summary = (out / "summary.md").read_text()
    assert "| fbank | demo | linear_probe | 2/2 |" in summary
    for stdout, _ in ends:
        assert "| 2/2 |" in stdout


# -- Ctrl-C -----------------------------------------------------------------------------------

def test_ctrl_c_exits_130_saying_how_to_resume(tree, tmp_path):
    out = tmp_path / "run"
    args = run_args(tree, out)
    args[args.index("--epochs") + 1] = "100000"
    proc = _emobox(args)
    deadline = time.monotonic() + 300
    while not (out / "config.json").exists():  # training has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("interrupted; finished work is kept: run the same "
                                            "command again to resume")


def test_a_damaged_run_inside_a_bench_is_named_not_left_out_of_the_report(cli, bench_dir,
                                                                         tmp_path):
    config = bench_dir / "runs" / "fbank__demo__linear_probe" / "config.json"
    config.write_text('{"kind": "emobox.run", ')
    res = cli("report", bench_dir, "--out", tmp_path / "rep")
    assert_user_error(res, 3, f"{config}: not valid JSON", "corrupt")
    other = tmp_path / "project"
    (other / "tool").mkdir(parents=True)
    (other / "tool" / "config.json").write_text("not ours")  # another tool's folder: passed over
    res = cli("report", other, "--out", tmp_path / "rep2")
    assert_user_error(res, 2, f"{other} holds no emobox run directory")


def test_out_as_a_link_to_a_folder_is_used_and_a_dangling_link_refused(cli, tree, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)  # the user's own choice of place: followed
    assert cli(*run_args(tree, tmp_path / "link")).code == 0
    assert (real / "results.jsonl").is_file()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    res = cli(*run_args(tree, tmp_path / "dangling"))
    assert_user_error(res, 2, f"--out {tmp_path / 'dangling'}: a symbolic link to nothing")
    assert not (tmp_path / "nowhere").exists()


def test_ctrl_c_inside_code_run_from_a_string_still_exits_130(tree, tmp_path):
    """`python -m emobox`: CPython turns a handled KeyboardInterrupt raised in exec'd code (as
    dataclasses' generated methods are) into death by SIGINT unless emobox clears its record."""
    package = tmp_path / "interrupting"
    package.mkdir()
    (package / "__main__.py").write_text(
        "import emobox.tracks.runner\n"
        "from emobox.cli import entrypoint\n\n"
        "def run(*args, **kwargs):\n"
        "    exec('raise KeyboardInterrupt', {})\n\n"
        "emobox.tracks.runner.run = run\n"
        "entrypoint()\n")
    proc = subprocess.run([sys.executable, "-m", "interrupting", *map(str, run_args(
        tree, tmp_path / "run"))], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1].startswith("interrupted; finished work is kept")


def test_a_finished_fold_whose_selection_was_edited_is_named_not_retrained(cli, finished,
                                                                          monkeypatch):
    """All of fold 1's rows and its predictions are there, but no configuration is selected:
    an edit, not an interruption. The run names the file instead of silently training the fold
    again over what the file says."""
    args, out, text = finished
    rows = [json.loads(line) for line in text.splitlines()]
    for r in rows:
        if r["fold"] == 1:
            r["selected"] = False
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _no_training(monkeypatch)
    res = cli(*args)
    assert_user_error(res, 3, f"{out / 'results.jsonl'}: fold 1 has all its rows and "
                      "predictions but 0 selected configurations")
    assert (out / "results.jsonl").read_text().count('"fold": 1') == 1


def test_a_row_of_a_fold_the_corpus_lacks_is_not_averaged_into_the_report(cli, finished,
                                                                         tmp_path):
    args, out, text = finished
    row = json.loads(text.splitlines()[0])
    row.update(fold=7)
    with open(out / "results.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    res = cli("report", out, "--out", tmp_path / "rep")
    assert_user_error(res, 3, f"{out / 'results.jsonl'}: a row of fold 7, but the corpus has 4 "
                      "folds (config.json)")


def test_a_run_folder_whose_name_is_not_utf8_is_reported(cli, finished, tmp_path):
    _, out, _ = finished
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/run\xff"))
    shutil.copytree(out, odd)
    res = cli("report", odd, "--out", tmp_path / "rep", "--no-plots")
    assert res.code == 0 and "Traceback" not in res.err, res
    assert "run\\udcff" in (tmp_path / "rep" / "cells.csv").read_text()
