"""Peak memory of extracting one long file: fbank and whisper_tiny_en, 10 minutes and 2 hours.

    python benchmarks/long_audio.py [--minutes 10 120] [--memory-gb 2 0.2] [--rate 16000]

A synthetic file (a gliding tone with noise, 16-bit WAV at ``--rate``) of each length is
extracted by each upstream, each run in a fresh process (``emobox.extract`` with
``memory_budget`` = ``--memory-gb``), and the process's peak resident memory (``ru_maxrss``) is
reported with the time taken and the frames stored. Long files are decoded, resampled and
encoded window by window, so the peak should not depend on the file's length; the import of
torch and the encoder's weights are the floor. ``whisper_tiny_en`` uses its real weights when
installed with them, else a Whisper-tiny-sized encoder with random weights (same memory).

The last line is one JSON object: ``runs`` (upstream, minutes, memory_gb, peak_rss_mb, seconds,
frames), ``baseline_rss_mb`` (a process that imports emobox and builds each upstream, extracting
nothing) and the host's measured fp32 and bf16 matmul peaks (GFLOP/s, as in extraction.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from extraction import matmul_peak  # noqa: E402

UPSTREAMS = ("fbank", "whisper_tiny_en")

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    sys.path.insert(0, {here!r})
    name, root, minutes, gb = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    from emobox import Manifest, Utterance, extract_stats, get_registry

    def build(name):
        try:
            return get_registry().upstream(name).build(), "real weights"
        except Exception:
            from extraction import WhisperLocal
            return WhisperLocal(), "random weights"

    up, weights = build(name) if name != "fbank" else (get_registry().upstream(name).build(), "")
    if minutes == "0":  # the floor: imports and weights, nothing extracted
        print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                           / 1024, "weights": weights}}))
        sys.exit(0)
    m = Manifest("long", root, [Utterance(key="x", path=f"long_{{minutes}}.wav", label="a")])
    t0 = time.perf_counter()
    stats = extract_stats(up, m, [up.num_layers], store_dir=root / f"f_{{name}}_{{gb}}",
                          memory_budget=int(gb * (1 << 30)))
    print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - t0, "frames": stats.store.n_frames,
                      "weights": weights}}))
""").format(here=str(HERE))


def write_long(path: Path, minutes: float, rate: int) -> None:
    """A gliding tone with noise, written a minute at a time (the writer holds one minute)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as fh:
        for i in range(int(np.ceil(minutes))):
            n = int(rate * 60 * min(1.0, minutes - i))
            t = i * 60 + np.arange(n) / rate
            x = 0.3 * np.sin(2 * np.pi * (200 + 50 * np.sin(t / 5)) * t) \
                + 0.03 * rng.standard_normal(n)
            fh.write(x.astype(np.float32))


def child(name: str, root: Path, minutes: float, gb: float) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(root), f"{minutes:g}", str(gb)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{name} {minutes} min failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 120])
    ap.add_argument("--memory-gb", type=float, nargs="+", default=[2.0, 0.2])
    ap.add_argument("--rate", type=int, default=16000, help="sample rate of the files")
    ap.add_argument("--upstreams", nargs="+", default=list(UPSTREAMS))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="emobox-long-"))
    try:
        for minutes in args.minutes:
            write_long(work / f"long_{minutes:g}.wav", minutes, args.rate)
        baseline = {name: child(name, work, 0, 1.0) for name in args.upstreams}
        runs = []
        for name in args.upstreams:
            for minutes in args.minutes:
                for gb in args.memory_gb:
                    got = child(name, work, minutes, gb)
                    runs.append({"upstream": name, "minutes": minutes, "memory_gb": gb,
                                 "peak_rss_mb": round(got["peak_rss_mb"], 1),
                                 "seconds": round(got["seconds"], 1), "frames": got["frames"]})
                    print(f"  {name} {minutes:g} min --memory-gb {gb:g}: "
                          f"{got['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"peak resident memory of one extraction process ({args.rate} Hz 16-bit WAV, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'upstream':<16} {'minutes':>7} {'memory-gb':>9} {'peak RSS MB':>11} "
          f"{'over floor':>10} {'seconds':>8} {'frames':>9}")
    for r in runs:
        floor = baseline[r["upstream"]]["peak_rss_mb"]
        print(f"{r['upstream']:<16} {r['minutes']:>7g} {r['memory_gb']:>9g} "
              f"{r['peak_rss_mb']:>11.0f} {r['peak_rss_mb'] - floor:>10.0f} "
              f"{r['seconds']:>8.1f} {r['frames']:>9}")
    for name, b in baseline.items():
        what = f" ({b['weights']})" if b.get("weights") else ""
        print(f"floor {name}{what}: {b['peak_rss_mb']:.0f} MB (imports and weights only)")
    print(f"matmul peak (2048^3): fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} "
          f"GFLOP/s")
    print(json.dumps({"runs": runs,
                      "baseline_rss_mb": {k: round(v["peak_rss_mb"], 1)
                                          for k, v in baseline.items()},
                      "whisper_weights": baseline.get("whisper_tiny_en", {}).get("weights"),
                      "fp32_peak_gflops": round(peaks["fp32"], 1),
                      "bf16_peak_gflops": round(peaks["bf16"], 1)}))


if __name__ == "__main__":
    main()
