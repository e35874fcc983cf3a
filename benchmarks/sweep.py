"""Training the EmoBox 2x2 sweep on one fold: emobox's grid trainer against a standard loop.

A synthetic task sized like a mid-size corpus (default 1,500 utterances x 100-400 frames x 768
dims, 6 classes whose utterance-level clusters overlap, so accuracy stays well below 100%) is split
like an EmoBox fold (test 20%, validation a stratified 20% of the rest). The full protocol
(lr {1e-3, 1e-4} x hidden {128, 256}, Adam, batch 32, gradient norm clipped at 5.0 per
config, warm-up, per-epoch validation UA, best
epoch per config, selection by validation, test scored once) runs three ways, interleaved and
repeated:

  reference  four separate runs, each a standard PyTorch loop: a DataLoader of padded sequences
             (pad_sequence collate), the head's padded forward (masked mean),
             clip_grad_norm_, torch.optim.Adam, a padded validation loop every epoch. Float32.
  exact      emobox.train_sweep, float32: all four configs fused, packed frames, one read
             of each frame per step for every config, vectorised validation.
  bf16       the same with --train-precision bf16 (bfloat16 frames and frame-level matmuls).

All three start from the same initial weights and see the same batches in the same order, so the
reference and exact runs compute the same thing up to float rounding: the selected config and the
test UA must agree. A sweep-epoch's FLOPs are counted over real frames (no padding) for all four
configs: forward and weight-gradient matmuls on training frames plus the forward on validation
frames. A large float32 matmul is timed in every repetition; peak_fraction = FLOPs / exact epoch
time / that matmul rate. Times are medians over repetitions of seconds per epoch.

    python benchmarks/sweep.py [--utterances 1500] [--epochs 3] [--repeats 3]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

# the thread setting the emobox command uses (before torch loads OpenMP); both ways run under it
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from emobox import (DEFAULT_GRAD_CLIP, FrameSource, Split, TrainConfig, config_id,  # noqa: E402
                    expand_grid, get_registry, lr_at, scores, seed_for, stratified_split, train_sweep)

GRID = {"lr": [1e-3, 1e-4], "hidden": [128, 256]}
DESCRIPTION = "bench fold 1"


# -- the synthetic task ---------------------------------------------------------------------
def make_lengths(n_utts: int, min_len: int, max_len: int, shape: str, g: torch.Generator):
    """Utterance lengths: uniform in [min, max], or skewed like real corpora (log-normal with
    the median at 45% of max, sigma 0.4, clipped to [min, max])."""
    if shape == "uniform":
        return torch.randint(min_len, max_len + 1, (n_utts,), generator=g)
    z = torch.randn(n_utts, generator=g)
    raw = torch.exp(math.log(0.45 * max_len) + 0.4 * z)
    return raw.round().clamp(min_len, max_len).long()


def make_task(n_utts: int, dim: int, n_classes: int, min_len: int, max_len: int, seed: int,
              shape: str = "uniform"):
    """Packed frames [N, D] (layer-normalised, as emobox feeds them), lengths, labels, splits."""
    g = torch.Generator().manual_seed(seed)
    latent = 16
    labels = torch.arange(n_utts) % n_classes
    labels = labels[torch.randperm(n_utts, generator=g)]
    lengths = make_lengths(n_utts, min_len, max_len, shape, g)
    centres = torch.randn(n_classes, latent, generator=g) * 0.55
    z = centres[labels] + torch.randn(n_utts, latent, generator=g)  # overlapping classes
    speaker = torch.randn(n_utts, dim, generator=g) * 0.5  # utterance-level nuisance
    mix = torch.randn(latent, dim, generator=g) / math.sqrt(latent)
    base = z @ mix + speaker  # [U, D]
    frames = torch.empty(int(lengths.sum()), dim)
    start = 0
    for u, n in enumerate(lengths.tolist()):  # slow drift + frame noise around the utterance
        t = torch.linspace(0, 1, n).unsqueeze(1)
        drift = torch.randn(2, dim, generator=g) * 0.3
        frames[start:start + n] = (base[u] + t * drift[0] + (1 - t) * drift[1]
                                   + torch.randn(n, dim, generator=g) * 1.5)
        start += n
    frames = F.layer_norm(frames, (dim,))
    keys = [f"u{i:05d}" for i in range(n_utts)]
    label_of = {k: str(int(y)) for k, y in zip(keys, labels)}
    test = [k for i, k in enumerate(keys) if i % 5 == 0]
    rest = [k for i, k in enumerate(keys) if i % 5 != 0]
    train, valid = stratified_split(rest, label_of, 0.2, seed, "bench")
    return frames, lengths, labels, keys, {"train": train, "valid": valid, "test": test}


def split_tensors(frames, lengths, labels, keys, role_keys):
    pos = {k: i for i, k in enumerate(keys)}
    offsets = torch.cumsum(lengths, 0) - lengths
    out = {}
    for role, ks in role_keys.items():
        rows = torch.tensor([pos[k] for k in ks])
        items = [frames[int(offsets[r]):int(offsets[r]) + int(lengths[r])] for r in rows]
        out[role] = (items, lengths[rows], labels[rows], ks)
    return out


# -- (a) the reference: one standard loop per config ------------------------------------------
class Utterances(Dataset):
    def __init__(self, items, labels):
        self.items, self.labels = items, labels

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i], self.labels[i]


def collate(batch):
    xs, ys = zip(*batch)
    lengths = torch.tensor([len(x) for x in xs])
    return pad_sequence(list(xs), batch_first=True), lengths, torch.stack(list(ys))


class SameBatches:
    """The trainer's batch order: one seeded permutation per epoch, cut into batches."""

    def __init__(self, n, batch_size, epochs, seed):
        self.n, self.batch_size, self.epochs, self.seed = n, batch_size, epochs, seed
        self.gen = torch.Generator().manual_seed(seed_for(seed, DESCRIPTION, "batches"))

    def epoch(self):
        perm = torch.randperm(self.n, generator=self.gen)
        return [perm[b:b + self.batch_size].tolist() for b in range(0, self.n, self.batch_size)]


def evaluate(model, loader, n_classes):
    model.eval()
    logits, golds = [], []
    with torch.no_grad():
        for x, lengths, y in loader:
            logits.append(model(x, lengths))
            golds.append(y)
    logits, gold = torch.cat(logits), torch.cat(golds)
    pred = logits.argmax(-1)
    cm = torch.bincount(gold * n_classes + pred, minlength=n_classes ** 2).reshape(n_classes, -1)
    support = cm.sum(1)
    ua = float((cm.diagonal()[support > 0] / support[support > 0]).mean())
    return ua, float(F.cross_entropy(logits, gold)), pred


def reference(spec, data, in_dim, n_classes, epochs, warmup, seed, batch_size=32):
    """Four separate standard runs; returns (wall and CPU seconds per sweep-epoch, selected
    config, test UA)."""
    tr_items, _, tr_y, _ = data["train"]
    va_items, _, va_y, _ = data["valid"]
    te_items, _, te_y, _ = data["test"]
    valid_loader = DataLoader(Utterances(va_items, va_y), batch_size=batch_size,
                              collate_fn=collate)
    test_loader = DataLoader(Utterances(te_items, te_y), batch_size=batch_size,
                             collate_fn=collate)
    train_set = Utterances(tr_items, tr_y)
    seconds, cpu, results = 0.0, 0.0, []
    for hp in expand_grid(GRID):
        torch.manual_seed(seed_for(seed, DESCRIPTION, config_id(hp)))
        model = spec.build(in_dim, n_classes, hidden=hp["hidden"])
        optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"])
        order = SameBatches(len(train_set), batch_size, epochs, seed)
        best = (-1.0, math.inf, -1, None)
        started, started_cpu = time.perf_counter(), time.process_time()
        for epoch in range(epochs):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch, hp["lr"], warmup, epochs)
            model.train()
            loader = DataLoader(train_set, batch_sampler=order.epoch(), collate_fn=collate)
            for x, lengths, y in loader:
                loss = F.cross_entropy(model(x, lengths), y)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), DEFAULT_GRAD_CLIP)
                optimizer.step()
            ua, loss, _ = evaluate(model, valid_loader, n_classes)
            if ua > best[0] or (ua == best[0] and loss < best[1]):
                best = (ua, loss, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        seconds += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        model.load_state_dict(best[3])
        _, _, pred = evaluate(model, test_loader, n_classes)
        results.append((best[0], best[1], hp, scores(te_y.numpy(), pred.numpy(), n_classes)))
    sel = max(range(len(results)), key=lambda k: (results[k][0], -results[k][1], -k))
    return seconds / epochs, cpu / epochs, config_id(results[sel][2]), results[sel][3]["ua"]


# -- (b, c) emobox ------------------------------------------------------------------------------
def emobox_run(spec, packed, in_dim, n_classes, epochs, warmup, seed, precision):
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    splits = {}
    for role, (frames, lengths, labels, keys) in packed.items():
        splits[role] = Split(FrameSource.from_frames(frames, lengths, keys, dtype=dtype),
                             labels, list(keys))
    cfg = TrainConfig(epochs=epochs, warmup_epochs=warmup, batch_size=32, seed=seed,
                      precision=precision)
    res = train_sweep(spec, expand_grid(GRID), in_dim, n_classes, splits["train"],
                      splits["valid"], splits["test"], cfg, description=DESCRIPTION)
    sel = res.configs[res.selected]
    return res.seconds / epochs, res.cpu_seconds / epochs, sel.config_id, sel.test["ua"]


def matmul_rate(dtype=torch.float32, n=4096, reps=3):
    """FLOP/s of an n^3 matmul, the better of PyTorch's two CPU GEMM libraries (MKL through
    ``torch.mm``, oneDNN through ``mkldnn._linear_pointwise``, which the trainer uses for its
    forward): (best wall-clock rate, best rate per CPU-second)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    calls = [lambda: a @ b]
    try:
        torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
        calls.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    except (AttributeError, RuntimeError):
        pass
    best, best_cpu = math.inf, math.inf
    for call in calls:
        call()
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            call()
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    return 2 * n ** 3 / best, 2 * n ** 3 / best_cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--utterances", type=int, default=1500)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--min-frames", type=int, default=100)
    ap.add_argument("--max-frames", type=int, default=400)
    ap.add_argument("--lengths", choices=("uniform", "skewed"), default="uniform",
                    help="utterance length distribution (skewed: log-normal, as real corpora)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    frames, lengths, labels, keys, roles = make_task(args.utterances, args.dim, args.classes,
                                                     args.min_frames, args.max_frames, args.seed,
                                                     args.lengths)
    data = split_tensors(frames, lengths, labels, keys, roles)
    packed = {role: (torch.cat(items), lens, ys, ks) for role, (items, lens, ys, ks)
              in data.items()}
    del frames
    spec = get_registry().downstream("linear_probe")
    n_train = int(data["train"][1].sum())
    n_valid = int(data["valid"][1].sum())
    h_total = sum(GRID["hidden"]) * len(GRID["lr"])
    flops = (4 * n_train + 2 * n_valid) * args.dim * h_total
    padded = sum(int(data["train"][1][b].max()) * len(b) for b in
                 SameBatches(len(data["train"][1]), 32, 1, args.seed).epoch())
    print(f"task: {args.utterances} utterances ({len(roles['train'])} train, "
          f"{len(roles['valid'])} valid, {len(roles['test'])} test), {args.lengths} lengths "
          f"{args.min_frames}-{args.max_frames} frames, {n_train} train + {n_valid} valid "
          f"frames, dim {args.dim}, {args.classes} classes; random batches of 32 pad to "
          f"x{padded / n_train:.2f} the real frames")
    print(f"sweep-epoch: {flops / 1e9:.1f} GFLOP (real frames, 4 configs: forward and weight "
          f"gradient on train, forward on valid); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"{args.epochs} epochs ({args.warmup} warm-up) per run, {args.repeats} repetitions, "
          f"interleaved", flush=True)

    names = ["reference", "exact", "bf16"]
    if args.skip_reference:
        names.remove("reference")
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    outcome: dict[str, tuple[str, float]] = {}
    peaks, peaks_cpu, peaks_bf16 = [], [], []
    for rep in range(args.repeats):
        rate, rate_cpu = matmul_rate()
        peaks.append(rate)
        peaks_cpu.append(rate_cpu)
        peaks_bf16.append(matmul_rate(torch.bfloat16)[0])
        print(f"  rep {rep + 1} fp32 matmul {rate / 1e9:.1f} GFLOP/s", flush=True)
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            if name == "reference":
                sec, sec_cpu, cfg_id, ua = reference(spec, data, args.dim, args.classes,
                                                     args.epochs, args.warmup, args.seed)
            else:
                sec, sec_cpu, cfg_id, ua = emobox_run(spec, packed, args.dim, args.classes,
                                                      args.epochs, args.warmup, args.seed,
                                                      "bf16" if name == "bf16" else "fp32")
            wall[name].append(sec)
            cpu[name].append(sec_cpu)
            outcome[name] = (cfg_id, ua)
            print(f"  rep {rep + 1} {name:9s} {sec:8.2f} s/epoch ({sec_cpu:7.2f} CPU-s)  "
                  f"selected {cfg_id:20s} test UA {100 * ua:.2f}", flush=True)

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    peak, peak_cpu = statistics.median(peaks), statistics.median(peaks_cpu)
    peak_bf16 = statistics.median(peaks_bf16)
    has_ref = "reference" in med
    print()
    print(f"{'run':10s} {'s/epoch':>8s} {'GFLOP/s':>8s} {'of peak':>8s} {'speedup':>8s} | "
          f"{'CPU-s/ep':>8s} {'of peak':>8s} {'speedup':>8s} | {'selected':>20s} {'UA %':>6s}")
    for name in names:
        rate = flops / med[name]
        speed = med["reference"] / med[name] if has_ref else float("nan")
        speed_cpu = med_cpu["reference"] / med_cpu[name] if has_ref else float("nan")
        print(f"{name:10s} {med[name]:8.2f} {rate / 1e9:8.1f} {rate / peak:8.2f} {speed:8.2f} | "
              f"{med_cpu[name]:8.2f} {flops / med_cpu[name] / peak_cpu:8.2f} {speed_cpu:8.2f} | "
              f"{outcome[name][0]:>20s} {100 * outcome[name][1]:6.2f}")
    print(f"float32 matmul 4096^3 (best of MKL and oneDNN): {peak / 1e9:.1f} GFLOP/s wall-clock, {peak_cpu / 1e9:.1f} per "
          f"CPU-second (medians of {len(peaks)}); bfloat16 {peak_bf16 / 1e9:.1f} GFLOP/s; fp32 "
          f"floor of a sweep-epoch {flops / peak:.2f} s")
    print("wall-clock columns are what the issue asks for; CPU-second columns (all threads of this "
          "process) show the same runs without the time other processes took from them")
    ref = outcome.get("reference")
    result = {
        "speedup": round(med["reference"] / med["exact"], 3) if has_ref else None,
        "peak_fraction": round(flops / med["exact"] / peak, 3),
        "bf16_speedup": round(med["reference"] / med["bf16"], 3) if has_ref else None,
        "same_selected_config": ref[0] == outcome["exact"][0] if ref else None,
        "ua_diff": round(100 * (outcome["exact"][1] - ref[1]), 3) if ref else None,
        "bf16_same_selected_config": ref[0] == outcome["bf16"][0] if ref else None,
        "bf16_ua_diff": round(100 * (outcome["bf16"][1] - ref[1]), 3) if ref else None,
        "cpu_speedup": (round(med_cpu["reference"] / med_cpu["exact"], 3) if has_ref else None),
        "cpu_peak_fraction": round(flops / med_cpu["exact"] / peak_cpu, 3),
        "cpu_bf16_speedup": (round(med_cpu["reference"] / med_cpu["bf16"], 3) if has_ref
                             else None),
        "seconds_per_epoch": {k: round(v, 3) for k, v in med.items()},
        "cpu_seconds_per_epoch": {k: round(v, 3) for k, v in med_cpu.items()},
        "gflop_per_epoch": round(flops / 1e9, 2),
        "fp32_peak_gflops": round(peak / 1e9, 1),
        "bf16_peak_gflops": round(peak_bf16 / 1e9, 1),
        "padding_factor": round(padded / n_train, 3),
        "lengths": args.lengths, "utterances": args.utterances, "epochs": args.epochs,
        "repeats": args.repeats, "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
