"""Crash safety: ``emobox run`` on the demo, killed with SIGKILL at seeded random points of its
extraction and its training, over and over, resumes to exactly what an uninterrupted run
writes: the same result rows (nothing lost, nothing twice), the same predictions, the same
summary, and a byte-identical feature store.

The runs are forked from a warm process (``fork_runner.py``) so that the kill points fall in
the work itself rather than in importing torch: each child is a whole ``emobox run`` command.
A chain is one run directory (with its own feature folder, so that its extraction is killed
too) started again after every kill until a start finishes; chains follow each other until at
least ``MIN_KILLS`` kills were made, two or more of them in the extraction and in the training
(where the kill points fall depends on the host's speed: on a loaded host most fall in the
finishing writes, so more chains may be needed, up to ``MAX_CHAINS``).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from emobox.io import read_jsonl
from emobox.extraction.store import FeatureStore

from reliability_support import run_args

SEED = 20240611
MIN_KILLS = 20
MAX_STARTS = 200  # a chain that never finishes is a resume that does not resume
MAX_CHAINS = 15
HERE = Path(__file__).resolve().parent

# the demo, 3 speaker-independent folds, two configurations, a few epochs: about half a second
# per uninterrupted child, a third of it extraction
COMMAND = ("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "-q", "--epochs", "4",
           "--warmup", "1", "--grid", "lr=1e-3,1e-2 hidden=8")


@dataclass
class Ended:
    status: int  # exit code, or minus the signal that ended the child
    seconds: float
    killed_at: float | None = None


class ForkRunner:
    """``fork_runner.py`` as a subprocess: start commands, kill them."""

    def __init__(self, workdir: Path, warm_args: list[str]):
        self.log = workdir / "children.log"
        env = dict(os.environ, KILL_TEST_LOG=str(self.log), OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fork_runner.py"), json.dumps(warm_args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.pending = b""  # read from the runner, not yet a whole line
        first = self.line()
        if first != "ready":
            self.close()
            pytest.fail(f"warm-up run failed ({first!r}):\n{self.log_tail()}")

    def line(self, timeout: float | None = None) -> str | None:
        """The runner's next line, or None when none came within ``timeout`` seconds."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(fd, 4096)
            if not data:
                pytest.fail(f"the fork runner ended:\n{self.log_tail()}")
            self.pending += data
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode().strip()

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def start(self, args: list[str], kill_after: float | None = None) -> Ended:
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        pid = int(self.line().split()[1])
        killed_at = None
        ended = self.line(kill_after) if kill_after is not None else None
        if ended is None and kill_after is not None:  # still running: kill it where it is
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended in the meantime
                pass
            killed_at = kill_after
        _, status, seconds = (ended if ended is not None else self.line()).split()
        if int(status) != -signal.SIGKILL:  # it ended before the signal came
            killed_at = None
        return Ended(int(status), float(seconds), killed_at)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def command(out: Path, features: Path) -> list[str]:
    return [*COMMAND, "--out", str(out), "--features-dir", str(features)]


def phase(out: Path, features: Path) -> str:
    """Where a killed run stood, from what it left on disk."""
    stores = list(features.glob("fbank/demo/*"))
    if not stores:
        return "start"
    if not FeatureStore(stores[0]).complete:
        return "extraction"
    rows = read_jsonl(out / "results.jsonl") if (out / "results.jsonl").exists() else []
    return "training" if len({r["fold"] for r in rows}) < 3 else "finishing"


def store_files(features: Path) -> dict[str, bytes]:
    (store,) = features.glob("fbank/demo/*")
    return {name: (store / name).read_bytes()
            for name in ("meta.json", "index.tsv", "layer_0.f16", "pooled_0.npy")}


def assert_same_run(out: Path, ref: Path) -> None:
    rows, ref_rows = read_jsonl(out / "results.jsonl"), read_jsonl(ref / "results.jsonl")
    assert [(r["fold"], r["config_id"]) for r in rows] == [
        (r["fold"], r["config_id"]) for r in ref_rows]  # each row once, none lost
    assert rows == ref_rows  # the rows carry no timings: every field must match
    assert (out / "results.jsonl").read_bytes() == (ref / "results.jsonl").read_bytes()
    preds = sorted(p.name for p in (out / "predictions").iterdir())
    assert preds == sorted(p.name for p in (ref / "predictions").iterdir()) == [
        "fold1.tsv", "fold2.tsv", "fold3.tsv"]
    for name in preds:
        assert (out / "predictions" / name).read_text() == (
            ref / "predictions" / name).read_text(), name
    assert (out / "summary.md").read_text() == (ref / "summary.md").read_text()
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "results.superseded.jsonl").exists()
    assert not (out / "skipped.tsv").exists()
    assert not list(out.rglob(".*.tmp"))  # no temporary file left behind


@pytest.mark.slow
def test_runs_killed_at_random_points_resume_to_the_uninterrupted_results(tmp_path):
    runner = ForkRunner(tmp_path, command(tmp_path / "warm", tmp_path / "warm-features"))
    try:
        ref = runner.start(command(tmp_path / "ref", tmp_path / "ref-features"))
        assert ref.status == 0, runner.log_tail()
        ref_store = store_files(tmp_path / "ref-features")
        rng = random.Random(SEED)
        kills: list[tuple[int, str, float]] = []  # (chain, phase, delay)
        chain = 0

        def enough() -> bool:
            phases = [p for _, p, _ in kills]
            return (len(kills) >= MIN_KILLS and phases.count("extraction") >= 2
                    and phases.count("training") >= 2)

        while not enough() and chain < MAX_CHAINS:
            out, features = tmp_path / f"chain{chain}", tmp_path / f"chain{chain}-features"
            for _ in range(MAX_STARTS):
                ended = runner.start(command(out, features),
                                     kill_after=rng.uniform(0.0, ref.seconds))
                if ended.killed_at is None:
                    break
                kills.append((chain, phase(out, features), ended.killed_at))
            else:
                pytest.fail(f"chain {chain} did not finish in {MAX_STARTS} starts")
            assert ended.status == 0, runner.log_tail()
            assert_same_run(out, tmp_path / "ref")
            assert store_files(features) == ref_store
            assert not list(features.rglob(".*.tmp"))
            chain += 1
    finally:
        runner.close()
    phases = [p for _, p, _ in kills]
    print(f"{len(kills)} kills in {chain} chains, reference run {ref.seconds:.2f} s: "
          + ", ".join(f"{p} {phases.count(p)}" for p in ("start", "extraction", "training",
                                                            "finishing")))
    assert len(kills) >= MIN_KILLS
    assert phases.count("extraction") >= 2 and phases.count("training") >= 2, kills
    # a resumed run was killed again, not only first starts
    assert any(a[0] == b[0] for a, b in zip(kills, kills[1:])), kills


def test_a_rerun_removes_what_killed_writes_left_behind(cli, tree, tmp_path):
    """A kill inside an atomic write leaves its hidden temporary file; the next run of the
    directory removes those and nothing else."""
    out = tmp_path / "run"
    assert cli(*run_args(tree, out)).code == 0
    litter = [out / ".summary.md.k2j4_x9a.tmp", out / "predictions" / ".fold1.tsv.0ab1cd2e.tmp"]
    kept = [out / "notes.tmp", out / ".mine.tmp", out / "predictions" / "fold1.tsv"]
    for path in litter + kept[:2]:
        path.write_text("partial")
    before = (out / "results.jsonl").read_text()
    res = cli(*run_args(tree, out))
    assert res.code == 0, res
    assert [p for p in litter if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert (out / "results.jsonl").read_text() == before
