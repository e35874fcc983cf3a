"""Feature extraction speed: the reference loop vs emobox exact (fp32) vs emobox bf16.

    python benchmarks/extraction.py [--repeats 3] [--quick] [--no-demo] [--demo-seeds 5]
                                    [--threads N] [--memory-gb 2] [--encoders wavlm_base_ln,...]

In one process, on the same synthetic speech (espeak-ng; an "acted" set of 2-5 s clips and a
"conversational" set of 0.5-20 s clips, stored at 22.05 kHz so that every method resamples), for
three encoder families:

- ``wavlm_base_ln``: a WavLM-base-sized encoder (12 x 768, layer-norm convolutions, random
  weights of the transformers class);
- ``whisper_tiny_en``: the registered upstream with its real weights when it is installed with
  them, else a Whisper-tiny-sized transformers encoder with random weights; faithful mode (every
  clip padded to 30 s);
- ``wav2vec2_base_gn``: a wav2vec2-base-sized encoder with a group-norm first convolution
  (random weights), declared padding-sensitive: emobox may
  only batch equal lengths for it.

Threads: torch's intra-op threads are set explicitly (``--threads``, default: the number torch
picked) and are the same for every method.

Methods (interleaved, the order rotated at every repeat, medians reported; wall time, and the
process's CPU time, which other load on a shared host disturbs less; it counts the threads'
spin-waits too, so it is compared between methods only, never with the matmul peak):

- ``reference``: one utterance at a time, fp32, ``torch.no_grad()``, audio decoded in the loop,
  one ``.npy`` per utterance: the loop a user would write around the same upstream;
- ``exact``: ``emobox.extract`` in fp32 (sorted, batched where exact, decoded ahead, fp16 store);
- ``exact_stock``: ``exact`` with the upstream's stock modules (``fast_kernels = False``), for
  the families where emobox swaps in a faster kernel (the layer-norm convolution stack, WavLM's
  fused attention): what those kernels give, measured in the same run;
- ``openvino``: ``exact`` with ``--runtime openvino`` (where OpenVINO is installed and the
  encoder exposes a graph: all three here), timed whole (the first run of an encoder converts
  and compiles it; torch checks batches 1, 2, 4... of every run) and without that ("ov
  steady": what a corpus of many batches converges to);
- ``ov_bf16``: ``openvino`` at ``--precision bf16`` (OpenVINO's bf16 inference precision,
  checked by frame cosine), timed where bf16 is timed, as a fraction of the bf16 peak; OpenVINO
  computes in f32 where the CPU has no bfloat16 (its record says which), and then it is
  measured against the fp32 peak;
- ``bf16``: ``emobox.extract --precision bf16``; timed only on CPUs with AVX512-BF16 or AMX
  (``--bf16 auto``; ``on`` times it anywhere). Elsewhere bfloat16 matmuls run without hardware
  support, tens of times slower than float32 (the bf16 peak line shows it): its accuracy is
  still measured, on the first ``--bf16-clips`` clips of each set, and the demo UA is skipped.

Ceiling: one more emobox run per family (bf16 where bf16 is timed, else fp32) under torch's
profiler gives the seconds its matmuls, convolutions and fused attention take by themselves;
the FLOPs over those seconds, as a fraction of the peak, is what the run would reach if every
other op (casts, layer norms, activations, copies, Python) took no time
(``matmul_only_peak_fraction``), beside those ops' share of all ops' time.

Peak RSS: each method runs once more in a fresh process per family (the encoder built there,
both corpora); its peak resident set is compared with the reference loop's plus the
``--memory-gb`` budget handed to emobox.

FLOPs per utterance come from the upstream's ``flops()`` (checked against torch's FLOP counter
for one clip); a 2048^3 matmul in fp32 and in bf16 is timed at every repeat, so each row reports
its achieved GFLOP/s as a fraction of the machine's measured peak. Accuracy: the exact features
before storage against the reference (max abs diff), and the minimum frame cosine of the stored
bf16 features against the reference. The demo corpus's UA (the protocol's sweep) with exact and
with bf16 features uses the encoder with real weights (Whisper tiny.en where installed, else the
random WavLM-sized one), trained with ``--demo-seeds`` seeds on each (default 5): the demo tests
64 utterances a fold, so one seed's UA moves by whole utterances (1.56 points) when training takes
another path; the goal (within 1 point) is judged on the mean difference over seeds, printed
beside exact's own spread over seeds. ``--no-demo`` skips it.
The last line is one JSON object: headline keys for the WavLM-sized layer-norm encoder,
``whisper_*`` keys for Whisper, and ``families``: per family the speedups over the loop (wall
and CPU time), the fractions of the fp32 and bf16 matmul peaks, the accuracy (max abs diff, min
frame cosine) and the peak RSS of every method; plus the host's peaks and whether it has AMX.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from emobox import (DataError, Manifest, Upstream, UpstreamOutput, Utterance, extract_stats,
                    has_graph, load_audio, pad_batch)

ACTED = [
    "Kids are talking by the door.", "Dogs are sitting by the door.",
    "It's eleven o'clock and the meeting has not even started yet.",
    "I can't believe you would say something like that to me.",
    "The train leaves at seven, so we should hurry up now.",
    "Please put the red box on the table in the kitchen.",
    "That was the best concert I have ever been to in my whole life.",
    "Nobody told me the exam was moved to this morning.",
    "We will meet again next week at the same place.",
    "Why would anyone leave the window open in this weather?",
    "The weather is lovely today, let's go for a long walk.",
    "I lost my keys again and now I am late for work.",
]
CONVERSATIONAL = [
    "Yes.", "Okay, sure.", "No, not really, I don't think so.",
    "Well, I was thinking that maybe we could go to the park later, if the weather holds.",
    "So what happened was, I got to the station and the train had already left, and then I "
    "had to wait almost an hour for the next one, which was of course completely full.",
    "Honestly I don't know what to tell you. We tried everything we could think of, we called "
    "the office twice, we wrote emails, and still nobody has answered. It is really frustrating "
    "and I am starting to think that they simply do not care about their customers at all, "
    "which is a shame because the product itself is actually quite good.",
    "Right.", "Hmm, let me think about it for a second.",
    "Do you remember the summer when we drove all the way to the coast and the car broke down "
    "in that tiny village? We ended up staying three days with that lovely old couple.",
    "I'm so happy for you, that's wonderful news!",
]
VOICES = ["en", "en-us", "en-gb-scotland", "en+f3", "en-us+m4", "en+f5"]


# -- data ---------------------------------------------------------------------------------------
def make_corpus(root: Path, name: str, texts: Sequence[str], lo: float, hi: float) -> Manifest:
    """espeak-ng speech of ``texts`` at 22.05 kHz, clipped into [lo, hi] seconds."""
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for i, text in enumerate(texts):
        path = root / f"{name}_{i:02d}.wav"
        voice = VOICES[i % len(VOICES)]
        speed = 130 + 15 * (i % 4)
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                       check=True, capture_output=True)
        x, sr = sf.read(str(path), dtype="float32")
        n = len(x)
        if n < lo * sr:
            x = np.pad(x, (0, int(lo * sr) - n))
        x = x[: int(hi * sr)]
        sf.write(str(path), x, sr)
        utts.append(Utterance(key=path.stem, path=path.name, label="x"))
    return Manifest(name, root, utts)


def durations(m: Manifest) -> list[float]:
    import soundfile as sf

    return [sf.info(str(m.audio_path(u))).duration for u in m]


# -- encoders -----------------------------------------------------------------------------------
class RandomBase(Upstream):
    """A base-sized transformers speech encoder with random weights (seed 0), 50 frames/s."""

    frame_rate = 50.0
    checkpoint_id = "random-seed0"

    def __init__(self, cfg, model_class):
        super().__init__()
        torch.manual_seed(0)
        self.model = model_class(cfg).eval()
        self.cfg = cfg
        self.num_layers, self.hidden_size = cfg.num_hidden_layers, cfg.hidden_size


class HiddenStates(torch.nn.Module):
    """``model``'s hidden states of ``layers`` as one traceable forward (OpenVINO)."""

    def __init__(self, model, layers):
        super().__init__()
        self.model, self.layers = model, sorted(layers)

    def forward(self, x, mask=None):
        out = self.model(x, attention_mask=mask, output_hidden_states=True)
        return tuple(out.hidden_states[L] for L in self.layers)


class WavLMLN(RandomBase):
    """WavLM-base-sized, layer-norm feature encoder, random weights; exact under padding."""

    name = "wavlm_base_ln"
    padding_sensitive = False

    def __init__(self):
        from transformers import WavLMConfig, WavLMModel

        super().__init__(WavLMConfig(feat_extract_norm="layer", conv_bias=True), WavLMModel)

    def forward(self, wavs, layers):
        wavs = [(w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7) for w in wavs]
        x, lengths = pad_batch(wavs)
        mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None].to(x.device))
        frames = self.model._get_feat_extract_output_lengths(lengths).long()
        if self.runtime is not None:  # --runtime openvino
            return UpstreamOutput(self.runtime(self, sorted(layers), x, mask.long()), frames)
        out = self.model(x, attention_mask=mask.long(), output_hidden_states=True)
        return UpstreamOutput({L: out.hidden_states[L] for L in layers}, frames)

    def graph(self, layers, masked):
        return HiddenStates(self.model, layers)

    def flops(self, num_samples: int) -> float:
        c = self.cfg
        total, n, ch = 0.0, num_samples, 1
        for dim, k, s in zip(c.conv_dim, c.conv_kernel, c.conv_stride):
            n = (n - k) // s + 1
            total += 2.0 * ch * dim * k * n
            ch = dim
        t, d = n, c.hidden_size
        total += 2.0 * ch * d * t  # feature projection
        total += 2.0 * d * (d // c.num_conv_pos_embedding_groups) * c.num_conv_pos_embeddings * t
        per_layer = 2.0 * t * (4 * d * d + 2 * d * c.intermediate_size) + 4.0 * t * t * d
        return total + c.num_hidden_layers * per_layer


class WhisperLocal(Upstream):
    """Whisper-tiny-sized encoder (random weights), faithful 30-s padding, torch log-mel."""

    name = "whisper_tiny_sized"
    frame_rate = 50.0
    max_seconds = 30.0
    checkpoint_id = "random-seed0"

    def __init__(self):
        super().__init__()
        from transformers import WhisperConfig
        from transformers.audio_utils import mel_filter_bank
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        torch.manual_seed(0)
        cfg = WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6,
                            encoder_ffn_dim=1536, num_mel_bins=80)
        self.encoder = WhisperEncoder(cfg).eval()
        self.cfg = cfg
        self.num_layers, self.hidden_size = cfg.encoder_layers, cfg.d_model
        mel = mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0,
                              max_frequency=8000.0, sampling_rate=16000, norm="slaney",
                              mel_scale="slaney")
        self.register_buffer("mel", torch.from_numpy(mel.T).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(400), persistent=False)

    def _log_mel(self, x):
        spec = torch.stft(x, 400, 160, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        logspec = torch.clamp(self.mel @ power, min=1e-10).log10()
        logspec = torch.maximum(logspec, logspec.amax(dim=(-2, -1), keepdim=True) - 8.0)
        return (logspec + 4.0) / 4.0

    def forward(self, wavs, layers):
        window = 480000
        pieces, owner = [], []
        for i, w in enumerate(wavs):
            for s in range(0, max(len(w), 1), window):
                pieces.append(w[s:s + window])
                owner.append(i)
        x = torch.zeros(len(pieces), window, device=pieces[0].device)
        for j, p in enumerate(pieces):
            x[j, : len(p)] = p
        out = self.encoder(self._log_mel(x), output_hidden_states=True)
        keep = [max(1, -(-(len(p) // 160) // 2)) for p in pieces]
        lengths = [sum(k for k, o in zip(keep, owner) if o == i) for i in range(len(wavs))]
        hidden = {}
        for L in layers:
            h = out.hidden_states[L]
            per = [[] for _ in wavs]
            for j, o in enumerate(owner):
                per[o].append(h[j, : keep[j]])
            hidden[L] = torch.nn.utils.rnn.pad_sequence([torch.cat(p) for p in per],
                                                        batch_first=True)
        return UpstreamOutput(hidden, torch.tensor(lengths))

    def flops(self, num_samples: int) -> float:
        d, f = self.hidden_size, self.cfg.encoder_ffn_dim
        windows = max(1, -(-num_samples // 480000))
        t = 1500
        per = 2.0 * 80 * d * 3 * 3000 + 2.0 * d * d * 3 * t
        per += self.num_layers * (2.0 * t * (4 * d * d + 2 * d * f) + 4.0 * t * t * d)
        return windows * per


class Wav2Vec2GN(RandomBase):
    """wav2vec2-base-sized, group-norm first convolution, random weights: an item's features
    change with padding (the group norm spans the padded samples), so it is padding-sensitive."""

    name = "wav2vec2_base_gn"
    padding_sensitive = True

    def __init__(self):
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        super().__init__(Wav2Vec2Config(feat_extract_norm="group", conv_bias=False),
                         Wav2Vec2Model)

    def forward(self, wavs, layers):
        x, lengths = pad_batch(wavs)
        frames = self.model._get_feat_extract_output_lengths(lengths).long()
        if self.runtime is not None:  # --runtime openvino
            return UpstreamOutput(self.runtime(self, sorted(layers), x, None), frames)
        out = self.model(x, output_hidden_states=True)  # base wav2vec2 takes no attention mask
        return UpstreamOutput({L: out.hidden_states[L] for L in layers}, frames)

    def graph(self, layers, masked):
        return HiddenStates(self.model, layers)

    flops = WavLMLN.flops


def wav2vec2_group_norm(device: str) -> Upstream:
    """wav2vec2-base-sized, group-norm first convolution, random weights: padding-sensitive."""
    return Wav2Vec2GN().to(device)


ENCODERS = ("wavlm_base_ln", "whisper", "wav2vec2_base_gn")


def build_encoder(which: str, device: str) -> tuple[Upstream, str]:
    if which == "wavlm_base_ln":
        return WavLMLN().to(device), "WavLM-base-sized, layer norm, random weights"
    if which == "wav2vec2_base_gn":
        return (wav2vec2_group_norm(device),
                "wav2vec2-base-sized, group norm (padding-sensitive), random weights")
    note = "Whisper-tiny-sized config, random weights"
    try:
        from emobox import get_registry

        return (get_registry().upstream("whisper_tiny_en").load(device=device),
                "whisper_tiny_en, real weights")
    except Exception as exc:  # not installed with its weights: a same-sized stand-in
        print(f"whisper_tiny_en not available ({type(exc).__name__}: {str(exc)[:120]}); "
              f"using {note}", file=sys.stderr)
        return WhisperLocal().to(device), note


def build_encoders(device: str, which: Sequence[str] = ENCODERS) -> list[tuple[Upstream, str]]:
    return [build_encoder(name, device) for name in which]


def check_flops(up: Upstream, seconds: float = 3.0) -> tuple[float, float]:
    """Analytic FLOPs vs torch's FLOP counter on one clip (the counter sees matmul/conv only)."""
    from torch.utils.flop_counter import FlopCounterMode

    n = int(seconds * 16000)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        up([torch.randn(n, device=up.device)], [up.num_layers])
    return float(up.flops(n)), float(counter.get_total_flops())


# -- methods ------------------------------------------------------------------------------------
def reference_loop(up: Upstream, m: Manifest, layer: int, out: Path) -> dict[str, np.ndarray]:
    out.mkdir(parents=True, exist_ok=True)
    feats = {}
    with torch.no_grad():
        for utt in m:
            wav = load_audio(m.audio_path(utt), sample_rate=16000)
            res = up([torch.from_numpy(wav).to(up.device)], [layer])
            h = res.hidden[layer][0, : int(res.lengths[0])].float().cpu().numpy()
            np.save(out / f"{utt.key}.npy", h)
            feats[utt.key] = h
    return feats


MEMORY_BUDGET = [2 << 30]  # bytes handed to emobox (--memory-gb)
MAX_PADDING: list[float | None] = [None]  # --max-padding


def emobox_run(up: Upstream, m: Manifest, layer: int, out: Path, precision: str,
               capture: dict | None = None, fast_kernels: bool = True,
               runtime: str = "torch"):
    if capture is not None:  # record the features before storage, by utterance content
        original = up.forward

        def recording(wavs, layers):
            res = original(wavs, layers)
            for i, w in enumerate(wavs):
                key = hashlib.sha1(w.cpu().numpy().tobytes()).hexdigest()
                n = int(res.lengths[i])
                capture[key] = res.hidden[layer][i, :n].float().cpu().numpy()
            return res

        up.forward = recording
    if not fast_kernels:
        up.fast_kernels = False
    try:
        return extract_stats(up, m, [layer], store_dir=out, precision=precision,
                             memory_budget=MEMORY_BUDGET[0], max_padding=MAX_PADDING[0],
                             runtime=runtime)
    finally:
        if capture is not None:
            del up.forward
        up.__dict__.pop("fast_kernels", None)


def openvino_for(up: Upstream) -> bool:
    """Whether the ``openvino`` method runs for ``up``: OpenVINO installed, and the upstream
    exposes a graph (the others run on torch under --runtime openvino)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return has_graph(up, [up.num_layers])


def run_method(up: Upstream, m: Manifest, out: Path, meth: str):
    """One timed method; returns the extraction's stats (None for the reference loop)."""
    if meth == "reference":
        reference_loop(up, m, up.num_layers, out)
        return None
    return emobox_run(up, m, up.num_layers, out,
                      "bf16" if meth in ("bf16", "ov_bf16") else "fp32",
                      fast_kernels=meth != "exact_stock",
                      runtime="openvino" if meth in OPENVINO_METHODS else "torch")


OPENVINO_METHODS = ("openvino", "ov_bf16")

# the ops that do an encoder's arithmetic (matmuls, convolutions, fused attention)
MATMUL_OPS = frozenset((
    "aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
    "aten::_addmm_activation", "aten::mkldnn_convolution", "aten::mkldnn_linear",
    "aten::_mkldnn_linear", "aten::mkldnn_matmul", "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_efficient_attention_forward",
    "aten::_scaled_dot_product_efficient_attention", "aten::slow_conv_dilated2d",
    "aten::thnn_conv2d", "aten::_slow_conv2d_forward"))


def matmul_seconds(up: Upstream, corpora: dict, work: Path, precision: str) -> tuple[float, float]:
    """One emobox extraction of every corpus under torch's profiler: (seconds in the
    arithmetic ops of MATMUL_OPS, seconds in all ops), the ops' own time on the computing
    thread. The flops over the first is what the run would reach if every other op (casts,
    layer norms, activations, copies, Python) took no time: the ceiling of its peak fraction
    at these shapes on this CPU."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for cname, m in corpora.items():
            emobox_run(up, m, up.num_layers, work / "ceiling" / cname, precision)
    shutil.rmtree(work / "ceiling", ignore_errors=True)
    stats = prof.key_averages()
    arith = sum(e.self_cpu_time_total for e in stats if e.key in MATMUL_OPS) / 1e6
    ops = sum(e.self_cpu_time_total for e in stats if e.key.startswith("aten::")) / 1e6
    return arith, ops



def precision_of(meth: str, ov_runtime: str) -> str:
    """The matmul peak a method is measured against: ``bf16`` for torch's bf16 and for OpenVINO
    where it computed in bf16 (its record ends ``bf16)``), else ``fp32`` (OpenVINO computes in
    f32 on a CPU without bfloat16)."""
    if meth == "bf16" or (meth == "ov_bf16" and ov_runtime.endswith("bf16)")):
        return "bf16"
    return "fp32"


def store_features(stats, layer: int) -> dict[str, np.ndarray]:
    store = stats.store
    keys, offsets, lengths = store.index()
    arr = store.layer(layer)
    return {k: np.asarray(arr[o: o + n], np.float32) for k, o, n in zip(keys, offsets, lengths)}


def min_cosine(a: dict, b: dict) -> float:
    worst = 1.0
    for k in a:
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-30)
        worst = min(worst, float(cos.min()))
    return worst


def max_abs(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def cpu_flags() -> list[str]:
    """The matmul-relevant flags this host's CPU reports (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in CPU_FLAGS if f in have]


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 4, budget_s: float = 2.0) -> float:
    """Best GFLOP/s of an ``n x n`` matmul; a smaller one where this one would take longer than
    ``budget_s`` (bfloat16 on a CPU without native support runs at a few GFLOP/s)."""
    probe = torch.randn(256, 256).to(dtype)
    probe @ probe
    t0 = time.perf_counter()
    probe @ probe
    rate = 2.0 * 256 ** 3 / max(time.perf_counter() - t0, 1e-9)
    while n > 256 and 2.0 * n ** 3 / rate > budget_s:
        n //= 2
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


# -- peak RSS -------------------------------------------------------------------------------------
def read_corpus(root: Path, name: str) -> Manifest:
    utts = [Utterance(key=p.stem, path=p.name, label="x") for p in sorted(root.glob("*.wav"))]
    return Manifest(name, root, utts)


def rss_child(which: str, method: str, work: Path) -> None:
    """Run ``method`` of encoder ``which`` over the corpora under ``work``; print peak RSS."""
    import resource

    up, _ = build_encoder(which, "cpu")
    corpora = [read_corpus(work / "acted", "acted"), read_corpus(work / "conv", "conversational")]
    with tempfile.TemporaryDirectory() as tmp:
        for m in corpora:
            run_method(up, m, Path(tmp) / method, method)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (larger) parent
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    hwm = [ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:")]
    kb = int(hwm[0]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"maxrss_mb": kb / 1024}))


def peak_rss_mb(which: str, method: str, work: Path, args) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--rss-child", which, method, str(work),
           "--memory-gb", str(args.memory_gb), "--threads", str(torch.get_num_threads())]
    if args.max_padding is not None:
        cmd += ["--max-padding", str(args.max_padding)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"peak RSS run of {which}/{method} failed: {res.stderr[-2000:]}")
    return float(json.loads(res.stdout.strip().splitlines()[-1])["maxrss_mb"])


# -- GPU ------------------------------------------------------------------------------------------
def gpu_speedup(cpu_up: Upstream, corpora: dict, repeats: int = 3) -> dict:
    """One-at-a-time fp32 loop vs emobox fp16 batches, both on the GPU (medians)."""
    import copy

    up = copy.deepcopy(cpu_up).to("cuda")
    times: dict[str, list[float]] = {"reference": [], "fp16": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats + 1):  # the first round warms up
            for meth in ("reference", "fp16"):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for m in corpora.values():
                    if meth == "reference":
                        reference_loop(up, m, up.num_layers, Path(tmp) / "ref")
                    else:
                        emobox_run(up, m, up.num_layers, Path(tmp) / f"fp16_{r}", "fp16")
                torch.cuda.synchronize()
                if r:
                    times[meth].append(time.perf_counter() - t0)
    ref, fast = statistics.median(times["reference"]), statistics.median(times["fp16"])
    print(f"GPU ({torch.cuda.get_device_name()}), {up.name}: one-at-a-time fp32 {ref:.2f} s, "
          f"emobox fp16 batched {fast:.2f} s: {ref / fast:.1f}x")
    return {"gpu_fp16_speedup": round(ref / fast, 2), "gpu": torch.cuda.get_device_name()}


# -- demo UA ------------------------------------------------------------------------------------
def demo_ua(up: Upstream, precision: str, home: Path, seeds: Sequence[int] = (0,)
            ) -> list[float]:
    """Mean UA over the demo's folds with the protocol's sweep on ``up``'s last layer, one value
    per training seed (the features are extracted once)."""
    from emobox import FrameSource, Split, TrainConfig, expand_grid, extract, get_registry, train_sweep

    registry = get_registry()
    corpus = registry.corpus("demo").build(None)
    manifest = corpus.manifest
    store = extract(up, manifest, [up.num_layers], store_dir=home, precision=precision)
    down = registry.downstream("linear_probe")
    configs = expand_grid({k: list(v) for k, v in down.grid.items()})
    labels = list(manifest.labels)
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for seed in seeds:
        uas = []
        for fold in corpus.folds():
            splits = {role: Split(FrameSource(store, up.num_layers, getattr(fold, role)),
                                  torch.tensor([index[manifest[k].label]
                                                for k in getattr(fold, role)]),
                                  list(getattr(fold, role))) for role in ("train", "valid", "test")}
            res = train_sweep(down, configs, store.dim(up.num_layers), len(labels),
                              splits["train"], splits["valid"], splits["test"],
                              TrainConfig(seed=seed))
            uas.append(res.configs[res.selected].test["ua"])
        out.append(float(np.mean(uas)))
    return out


def rnd(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def family_json(s: dict, memory_gb: float) -> dict:
    """One family's figures for the JSON line (rounded), with the goals it meets."""
    r = s["rss_mb"]
    out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()
           if not k.endswith(("abs_diff", "min_cosine"))}
    out.update({k: rnd(s[k], 6) for k in s if k.endswith("min_cosine")})
    out.update({k: (None if s[k] is None else float(f"{s[k]:.3g}")) for k in s
                if k.endswith("abs_diff")})
    out["goals"] = {
        "exact_not_slower": s["exact_speedup"] >= 1.0,
        "exact_within_1e-4": s["exact_max_abs_diff"] <= 1e-4,
        "bf16_cosine_0.999": s["bf16_min_cosine"] >= 0.999,
        "rss_within_budget": max(v for k, v in r.items() if k != "reference")
        <= r["reference"] + memory_gb * 1024,
    }
    if s["bf16_peak_fraction"] is not None:
        out["goals"]["bf16_half_of_bf16_peak"] = s["bf16_peak_fraction"] >= 0.5
    out["goals"]["exact_0.6_of_fp32_peak"] = s["exact_peak_fraction"] >= 0.6
    if s["openvino_runtime"]:
        out["goals"]["openvino_within_1e-4"] = s["openvino_max_abs_diff"] <= 1e-4
        out["goals"]["openvino_steady_0.6_of_fp32_peak"] = (
            s["openvino_steady_peak_fraction"] >= 0.6)
        out["goals"]["openvino_bf16_cosine_0.999"] = (
            not s.get("openvino_bf16_refused") and s["openvino_bf16_min_cosine"] is not None
            and s["openvino_bf16_min_cosine"] >= 0.999)
    if (s.get("openvino_bf16_steady_peak_fraction") is not None
            and precision_of("ov_bf16", s["openvino_bf16_runtime"] or "") == "bf16"):
        out["goals"]["openvino_bf16_steady_half_of_bf16_peak"] = (
            s["openvino_bf16_steady_peak_fraction"] >= 0.5)
    return out


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer clips (a smoke run)")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo UA comparison")
    ap.add_argument("--demo-seeds", type=int, default=5,
                    help="training seeds for the demo UA comparison (features extracted once; "
                         "the goal is judged on the mean difference over seeds)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads for every method (default: torch's choice)")
    ap.add_argument("--clips", type=int, default=None,
                    help="clips per set (the first N texts of each; default all, --quick 3)")
    ap.add_argument("--max-padding", type=float, default=None,
                    help="emobox's padding allowed in a batch (default: emobox's own)")
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="time bf16 (auto: only on CPUs with AVX512-BF16 or AMX; elsewhere its "
                         "accuracy is still measured, on --bf16-clips clips per set)")
    ap.add_argument("--bf16-clips", type=int, default=2,
                    help="clips per set for bf16's accuracy where bf16 is not timed")
    ap.add_argument("--memory-gb", type=float, default=2.0,
                    help="emobox's memory budget; its peak RSS may exceed the loop's by this much")
    ap.add_argument("--encoders", default=",".join(ENCODERS),
                    help=f"comma-separated families to time (default: all of "
                         f"{','.join(ENCODERS)})")
    ap.add_argument("--rss-child", nargs=3, metavar=("ENCODER", "METHOD", "WORKDIR"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    unknown = set(args.encoders.split(",")) - set(ENCODERS)
    if unknown:
        ap.error(f"--encoders: unknown {', '.join(sorted(unknown))}; use {','.join(ENCODERS)}")
    torch.set_num_threads(args.threads or torch.get_num_threads())
    MEMORY_BUDGET[0] = int(args.memory_gb * (1 << 30))
    MAX_PADDING[0] = args.max_padding
    if args.rss_child:
        which, method, where = args.rss_child
        rss_child(which, method, Path(where))
        return
    if shutil.which("espeak-ng") is None:
        sys.exit("error: espeak-ng not found on PATH: the benchmark synthesises its speech with it "
                 "(Debian: apt-get install espeak-ng)")
    work = Path(tempfile.mkdtemp(prefix="emobox-bench-"))
    device = "cpu"
    try:
        run(args, work, device)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, device: str) -> None:
    acted, conv = ACTED, CONVERSATIONAL
    clips = args.clips or (3 if args.quick else None)
    if clips:
        acted, conv = ACTED[:clips], CONVERSATIONAL[:clips]
    corpora = {"acted": make_corpus(work / "acted", "acted", acted, 2.0, 5.0),
               "conversational": make_corpus(work / "conv", "conversational", conv, 0.5, 20.0)}
    for name, m in corpora.items():
        d = durations(m)
        print(f"{name}: {len(d)} clips, {sum(d):.1f} s of audio ({min(d):.1f}-{max(d):.1f} s)")
    chosen = [e for e in ENCODERS if e in args.encoders.split(",")]
    encoders = build_encoders(device, chosen)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} at start")

    flops = {}
    for up, note in encoders:
        analytic, counted = check_flops(up)
        print(f"{up.name} ({note}): {analytic / 3e9:.2f} GFLOP per audio second for a 3-s clip "
              f"(analytic; torch's counter, which does not count CPU flash attention: "
              f"{counted / 3e9:.2f})")
        for cname, m in corpora.items():
            flops[(up.name, cname)] = sum(
                float(up.flops(len(load_audio(m.audio_path(u), sample_rate=16000)))) for u in m)

    flags = cpu_flags()
    native_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(flags))
    time_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and native_bf16)
    if not time_bf16:
        print(f"bf16: not timed ({'--bf16 off' if args.bf16 == 'off' else 'this CPU has no AVX512-BF16 or AMX, so bfloat16 matmuls run without hardware support; --bf16 on times them anyway'}); "
              f"its accuracy is measured on the first {args.bf16_clips} clips of each set")

    def bf16_clips(m: Manifest) -> Manifest:
        """Where bf16 is not timed, its accuracy is measured on a few clips only."""
        return m if time_bf16 else Manifest(m.corpus, m.root, list(m)[: args.bf16_clips])

    # accuracy (untimed; also the warm-up). torch first: OpenVINO, once loaded and run in a
    # process, slowed emobox's torch extraction in the same process (WavLM-base size on a
    # 2-core AMX CPU: 1.03x the loop instead of 1.31x), so every torch method is timed before
    # OpenVINO is first used, and OpenVINO's methods after
    acc = {}
    runtime: dict[str, str] = {}  # encoder -> what --runtime openvino recorded
    runtime_bf16: dict[str, str] = {}  # the same at --precision bf16
    # encoder -> why emobox refused OpenVINO's bf16 features (its check against torch's)
    ov16_refused: dict[str, str] = {}
    kernel: dict[str, str] = {}  # encoder -> the fast kernel emobox's exact run used, if any
    references: dict[tuple, tuple] = {}  # (encoder, corpus) -> the loop's features, keys
    for up, _ in encoders:
        L = up.num_layers
        for cname, m in corpora.items():
            ref = reference_loop(up, m, L, work / "check" / "ref")
            keyed = {}
            for utt in m:
                wav = load_audio(m.audio_path(utt), sample_rate=16000)
                keyed[hashlib.sha1(wav.tobytes()).hexdigest()] = utt.key
            references[(up.name, cname)] = (ref, keyed)
            cap: dict = {}
            exact = emobox_run(up, m, L, work / "check" / "exact", "fp32", capture=cap)
            exact_fp32 = {keyed[h]: v for h, v in cap.items()}
            engine = exact.store.meta["engine"]
            attention = engine.get("attention")
            kernel[up.name] = ", ".join(k for k in (
                engine.get("conv_feature_encoder"),
                attention if attention == "emobox fused sdpa" else None) if k)
            bf16 = emobox_run(up, bf16_clips(m), L, work / "check" / "bf16", "bf16")
            acc[(up.name, cname)] = {
                "exact_max_abs_diff": max_abs(exact_fp32, ref),
                "exact_store_max_abs_diff": max_abs(store_features(exact, L), ref),
                "bf16_min_cosine": min_cosine(store_features(bf16, L), ref),
                "bf16_max_abs_diff": max_abs(store_features(bf16, L), ref),
            }
            shutil.rmtree(work / "check")

    def methods_for(up: Upstream) -> list[str]:
        """exact_stock: emobox exact with the upstream's stock modules (where emobox swaps in a
        faster kernel for it), to show what the kernel gives in the same run."""
        return (["reference", "exact"] + (["exact_stock"] if kernel[up.name] else [])
                + (["openvino"] if openvino_for(up) else [])
                + (["bf16"] if time_bf16 else [])
                + (["ov_bf16"] if time_bf16 and openvino_for(up)
                   and up.name not in ov16_refused else []))

    times: dict[tuple, list[float]] = {}
    cpu: dict[tuple, list[float]] = {}
    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
    waits: list[float] = []  # seconds the encoder waited for decoded audio, per emobox run
    overhead: dict[tuple, list[float]] = {}  # openvino: set-up and check seconds per run

    def time_phase(openvino: bool) -> None:
        """Every method of the phase (torch's, or OpenVINO's), interleaved, the order rotated
        at every repeat; the matmul peaks are measured in the torch phase."""
        for r in range(args.repeats):
            if not openvino:
                peaks["fp32"].append(matmul_peak(torch.float32))
                peaks["bf16"].append(matmul_peak(torch.bfloat16))
            for up, _ in encoders:
                methods = [meth for meth in methods_for(up)
                           if (meth in OPENVINO_METHODS) == openvino]
                if not methods:
                    continue
                order = methods[r % len(methods):] + methods[: r % len(methods)]
                for cname, m in corpora.items():
                    for meth in order:
                        out = work / "timed" / meth
                        t0, c0 = time.perf_counter(), time.process_time()
                        st = run_method(up, m, out, meth)
                        if st is not None:
                            session = st.store.sessions()[-1]
                            waits.append(session["audio_wait_s"])
                            if meth in OPENVINO_METHODS:  # converting, compiling, checks
                                overhead.setdefault((up.name, cname, meth), []).append(
                                    session["runtime_setup_s"] + session["runtime_check_s"])
                        times.setdefault((up.name, cname, meth), []).append(
                            time.perf_counter() - t0)
                        cpu.setdefault((up.name, cname, meth), []).append(
                            time.process_time() - c0)
                        shutil.rmtree(out, ignore_errors=True)
            print(f"{'openvino' if openvino else 'torch'}: repeat {r + 1}/{args.repeats} done, "
                  f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)

    time_phase(openvino=False)
    peak = {k: statistics.median(v) for k, v in peaks.items()}

    # the ceiling: the time of the arithmetic ops alone, in a profiled bf16 (else fp32) run
    ceiling = {up.name: matmul_seconds(up, corpora, work, "bf16" if time_bf16 else "fp32")
               for up, _ in encoders}

    # OpenVINO: its accuracy (the first use in this process), then its timing
    for up, _ in encoders:
        if not openvino_for(up):
            continue
        L = up.num_layers
        for cname, m in corpora.items():
            ref, keyed = references[(up.name, cname)]
            cap = {}
            ov = emobox_run(up, m, L, work / "check" / "ov", "fp32", capture=cap,
                            runtime="openvino")
            runtime[up.name] = ov.store.engine(L).get("runtime", "")
            acc[(up.name, cname)]["openvino_max_abs_diff"] = max_abs(
                {keyed[h]: v for h, v in cap.items()}, ref)
            try:
                ov16 = emobox_run(up, bf16_clips(m), L, work / "check" / "ov_bf16", "bf16",
                                  runtime="openvino")
            except DataError as exc:  # emobox stopped the run: it is not timed
                ov16_refused[up.name] = f"{cname} clips: {exc}"
                print(f"{up.name}: --runtime openvino --precision bf16 on the {cname} "
                      f"clips: emobox refused its features: {exc}")
            else:
                runtime_bf16[up.name] = ov16.store.engine(L).get("runtime", "")
                acc[(up.name, cname)]["openvino_bf16_min_cosine"] = min_cosine(
                    store_features(ov16, L), ref)
            shutil.rmtree(work / "check")
    time_phase(openvino=True)

    # peak RSS, each method in a fresh process
    rss = {}
    for which, (up, _) in zip(chosen, encoders):
        for meth in methods_for(up):
            if meth != "exact_stock":
                rss[(up.name, meth)] = peak_rss_mb(which, meth, work, args)

    # table
    audio = {c: sum(durations(m)) for c, m in corpora.items()}
    print()
    print(f"matmul peak (median of {args.repeats}, {torch.get_num_threads()} threads): "
          f"fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s; the encoder waited "
          f"for audio {max(waits):.2f} s at most in an emobox run ({sum(waits):.2f} s in all)")
    head = (f"{'encoder':<20} {'clips':<15} {'method':<11} {'median s':>8} {'runs':>18} "
            f"{'speedup':>8} {'cpu s':>7} {'cpu-x':>6} {'audio-s/s':>9} {'GFLOP/s':>8} "
            f"{'of peak':>8}")
    print(head)
    print("-" * len(head))
    summary: dict[str, dict] = {}
    for up, _ in encoders:
        methods = methods_for(up)
        total = {meth: 0.0 for meth in methods}
        total_cpu = {meth: 0.0 for meth in methods}
        steady = {meth: 0.0 for meth in OPENVINO_METHODS}  # without per-run set-up, checks
        gflop_all = 0.0
        for cname in corpora:
            gflop = flops[(up.name, cname)] / 1e9
            gflop_all += gflop
            ref_t = statistics.median(times[(up.name, cname, "reference")])
            ref_c = statistics.median(cpu[(up.name, cname, "reference")])
            for meth in methods:
                ts = times[(up.name, cname, meth)]
                t = statistics.median(ts)
                c = statistics.median(cpu[(up.name, cname, meth)])
                total[meth] += t
                total_cpu[meth] += c
                pk = peak[precision_of(meth, runtime_bf16.get(up.name, ""))]
                print(f"{up.name:<20} {cname:<15} {meth:<11} {t:>8.2f} "
                      f"{'/'.join(f'{x:.1f}' for x in ts):>18} {ref_t / t:>7.2f}x "
                      f"{c:>7.2f} {ref_c / c:>5.2f}x "
                      f"{audio[cname] / t:>9.2f} {gflop / t:>8.1f} {gflop / t / pk:>8.2f}")
                if meth in OPENVINO_METHODS:
                    runs = [x - o for x, o in zip(ts, overhead[(up.name, cname, meth)])]
                    t = statistics.median(runs)
                    steady[meth] += t
                    label = "ov steady" if meth == "openvino" else "ov16 steady"
                    print(f"{up.name:<20} {cname:<15} {label:<11} {t:>8.2f} "
                          f"{'/'.join(f'{x:.1f}' for x in runs):>18} {ref_t / t:>7.2f}x "
                          f"{'':>7} {'':>6} "
                          f"{audio[cname] / t:>9.2f} {gflop / t:>8.1f} {gflop / t / pk:>8.2f}")
        a = {k: max(acc[(up.name, c)][k] for c in corpora) for k in
             ("exact_max_abs_diff", "exact_store_max_abs_diff", "bf16_max_abs_diff")}
        a["bf16_min_cosine"] = min(acc[(up.name, c)]["bf16_min_cosine"] for c in corpora)
        timed_bf16 = "bf16" in total
        ov = "openvino" in total
        if ov:
            a["openvino_max_abs_diff"] = max(acc[(up.name, c)]["openvino_max_abs_diff"]
                                             for c in corpora)
            ov16_cos = [acc[(up.name, c)]["openvino_bf16_min_cosine"] for c in corpora
                        if "openvino_bf16_min_cosine" in acc[(up.name, c)]]
            a["openvino_bf16_min_cosine"] = min(ov16_cos) if ov16_cos else None
            a["openvino_bf16_refused"] = ov16_refused.get(up.name)
        ov16 = "ov_bf16" in total
        summary[up.name] = {
            "exact_speedup": total["reference"] / total["exact"],
            "bf16_speedup": total["reference"] / total["bf16"] if timed_bf16 else None,
            "exact_cpu_speedup": total_cpu["reference"] / total_cpu["exact"],
            "bf16_cpu_speedup": (total_cpu["reference"] / total_cpu["bf16"] if timed_bf16
                                 else None),
            "reference_peak_fraction": gflop_all / total["reference"] / peak["fp32"],
            "exact_peak_fraction": gflop_all / total["exact"] / peak["fp32"],
            "bf16_peak_fraction": (gflop_all / total["bf16"] / peak["bf16"] if timed_bf16
                                   else None),
            # emobox exact with the stock modules / with its kernel (1.0 where none applies)
            "fast_kernel": kernel[up.name] or None,
            "fast_kernel_speedup": (total["exact_stock"] / total["exact"]
                                    if "exact_stock" in total else 1.0),
            # --runtime openvino: whole runs (conversion and checks included), and without
            # the per-run conversion and torch's checks of a few batches (what a long corpus
            # converges to)
            "openvino_runtime": runtime.get(up.name) if ov else None,
            "openvino_speedup": total["reference"] / total["openvino"] if ov else None,
            "openvino_steady_speedup": total["reference"] / steady["openvino"] if ov else None,
            "openvino_steady_over_exact": total["exact"] / steady["openvino"] if ov else None,
            "openvino_steady_peak_fraction": (gflop_all / steady["openvino"] / peak["fp32"]
                                              if ov else None),
            # --runtime openvino --precision bf16, against the bf16 peak
            "openvino_bf16_runtime": runtime_bf16.get(up.name) if ov else None,
            "openvino_bf16_speedup": total["reference"] / total["ov_bf16"] if ov16 else None,
            "openvino_bf16_steady_speedup": (total["reference"] / steady["ov_bf16"] if ov16
                                             else None),
            "openvino_bf16_steady_over_exact": (total["exact"] / steady["ov_bf16"] if ov16
                                                else None),
            "openvino_bf16_steady_peak_fraction": (
                gflop_all / steady["ov_bf16"]
                / peak[precision_of("ov_bf16", runtime_bf16.get(up.name, ""))]
                if ov16 else None),
            # the fraction of the peak the run's matmuls, convolutions and fused attention
            # reach by themselves: what the run would reach if every other op took no time
            "ceiling_precision": "bf16" if timed_bf16 else "fp32",
            "matmul_only_peak_fraction": (
                gflop_all / ceiling[up.name][0] / peak["bf16" if timed_bf16 else "fp32"]),
            "matmul_share_of_op_time": ceiling[up.name][0] / ceiling[up.name][1],
            "rss_mb": {meth: round(rss[(up.name, meth)]) for meth in methods
                       if (up.name, meth) in rss},
            "padding_sensitive": bool(up.padding_sensitive),
            **a}
    print()
    for name, s in summary.items():
        bf16_time = (f"bf16 {s['bf16_speedup']:.2f}x (CPU time {s['bf16_cpu_speedup']:.2f}x; "
                     if s["bf16_speedup"] is not None else "bf16 not timed (")
        print(f"{name}: exact {s['exact_speedup']:.2f}x (CPU time {s['exact_cpu_speedup']:.2f}x; "
              f"max abs diff {s['exact_max_abs_diff']:.2e} before storage, "
              f"{s['exact_store_max_abs_diff']:.2e} in the fp16 store), "
              f"{bf16_time}min frame cosine {s['bf16_min_cosine']:.6f}); peak fraction "
              f"reference {s['reference_peak_fraction']:.2f}, exact "
              f"{s['exact_peak_fraction']:.2f}"
              + (f", bf16 {s['bf16_peak_fraction']:.2f} of the bf16 peak"
                 if s["bf16_peak_fraction"] is not None else ""))
        if s["openvino_runtime"]:
            print(f"{'':<{len(name)}}  --runtime openvino ({s['openvino_runtime']}): "
                  f"{s['openvino_speedup']:.2f}x the loop with its conversion and checks, "
                  f"{s['openvino_steady_speedup']:.2f}x without ("
                  f"{s['openvino_steady_over_exact']:.2f}x exact torch, "
                  f"{s['openvino_steady_peak_fraction']:.2f} of the fp32 peak); max abs diff "
                  f"{s['openvino_max_abs_diff']:.2e}")
            ov16_time = (f"{s['openvino_bf16_speedup']:.2f}x the loop with its conversion and "
                         f"checks, {s['openvino_bf16_steady_speedup']:.2f}x without ("
                         f"{s['openvino_bf16_steady_over_exact']:.2f}x exact torch, "
                         f"{s['openvino_bf16_steady_peak_fraction']:.2f} of the "
                         f"{precision_of('ov_bf16', s['openvino_bf16_runtime'])} peak); "
                         if s["openvino_bf16_speedup"] is not None else "not timed; ")
            if s.get("openvino_bf16_refused"):
                print(f"{'':<{len(name)}}  --runtime openvino --precision bf16: refused by "
                      f"emobox's check, not timed ({s['openvino_bf16_refused']})")
            else:
                print(f"{'':<{len(name)}}  --runtime openvino --precision bf16 "
                      f"({s['openvino_bf16_runtime']}): {ov16_time}min frame cosine "
                      f"{s['openvino_bf16_min_cosine']:.6f}")
        if s["fast_kernel"]:
            print(f"{'':<{len(name)}}  emobox's kernel ({s['fast_kernel']}): exact "
                  f"{s['fast_kernel_speedup']:.2f}x faster than with the stock modules")
        print(f"{'':<{len(name)}}  ceiling ({s['ceiling_precision']}, profiled run): the "
              f"matmuls, convolutions and attention alone run at "
              f"{s['matmul_only_peak_fraction']:.2f} of the {s['ceiling_precision']} peak and "
              f"take {100 * s['matmul_share_of_op_time']:.0f}% of the ops' time; the rest "
              f"(casts, norms, activations, copies) is the other "
              f"{100 * (1 - s['matmul_share_of_op_time']):.0f}%")
        r = s["rss_mb"]
        print(f"{'':<{len(name)}}  peak RSS: "
              + ", ".join(f"{meth} {mb} MB" for meth, mb in r.items())
              + f" (budget: reference + {args.memory_gb:g} GB)")

    gpu = gpu_speedup(encoders[0][0], corpora) if torch.cuda.is_available() else {}

    demo = {}
    if not args.no_demo and not time_bf16:
        print("demo UA: skipped (bf16 is not timed on this CPU: its extraction of the demo would "
              "run without hardware bfloat16; --bf16 on runs it anyway)")
    elif not args.no_demo:
        # a random-weight encoder is chaotic: any perturbation flips which configuration the
        # sweep selects, so the UA comparison uses real weights where they are installed
        up = next((u for u, note in encoders if "real weights" in note), encoders[0][0])
        seeds = list(range(args.demo_seeds))
        ua_exact = demo_ua(up, "fp32", work / "demo", seeds)
        ua_bf16 = demo_ua(up, "bf16", work / "demo", seeds)
        diffs = [b - e for b, e in zip(ua_bf16, ua_exact)]
        mean_diff = float(np.mean(diffs))
        spread = float(np.std(ua_exact, ddof=1)) if len(seeds) > 1 else float("nan")
        demo = {"demo_ua_exact": ua_exact[0], "demo_ua_bf16": ua_bf16[0],
                "demo_ua_bf16_minus_exact": diffs[0], "demo_upstream": up.name,
                "demo_seeds": len(seeds), "demo_ua_exact_mean": float(np.mean(ua_exact)),
                "demo_ua_bf16_mean": float(np.mean(ua_bf16)),
                "demo_ua_bf16_minus_exact_mean": mean_diff,
                "demo_ua_exact_seed_std": spread,
                "demo_ua_within_1_point": abs(mean_diff) <= 0.01}
        print(f"demo UA ({up.name} last layer, protocol sweep, mean of 3 folds):")
        print(f"  {'seed':>4} {'exact':>7} {'bf16':>7} {'diff':>7}")
        for seed, e, b in zip(seeds, ua_exact, ua_bf16):
            print(f"  {seed:>4} {100 * e:>7.2f} {100 * b:>7.2f} {100 * (b - e):>+7.2f}")
        print(f"  mean {100 * np.mean(ua_exact):>7.2f} {100 * np.mean(ua_bf16):>7.2f} "
              f"{100 * mean_diff:>+7.2f}  (exact's own spread over seeds: std "
              f"{100 * spread:.2f} points; one demo test utterance is 1.56 points of a fold)")

    print(f"CPU flags: {' '.join(flags) or 'unknown'}"
          + ("" if "amx_bf16" in flags else " (no AMX: the bf16 peak is the AVX512-BF16/AVX2 one)"))
    by_family = dict(zip(chosen, encoders))
    headline: dict = {}
    if "wavlm_base_ln" in by_family:  # headline keys: the WavLM-sized encoder
        wl = summary[by_family["wavlm_base_ln"][0].name]
        headline.update({
            "exact_speedup": round(wl["exact_speedup"], 3),
            "exact_max_abs_diff": float(f"{wl['exact_max_abs_diff']:.3g}"),
            "bf16_speedup": rnd(wl["bf16_speedup"], 3),
            "bf16_min_cosine": round(min(summary[by_family[f][0].name]["bf16_min_cosine"]
                                         for f in ("wavlm_base_ln", "whisper")
                                         if f in by_family), 6),
            "exact_peak_fraction": round(wl["exact_peak_fraction"], 3),
            "bf16_peak_fraction": rnd(wl["bf16_peak_fraction"], 3),
            "fast_kernel_speedup": round(wl["fast_kernel_speedup"], 3),
            "openvino_speedup": rnd(wl["openvino_speedup"], 3),
            "openvino_steady_speedup": rnd(wl["openvino_steady_speedup"], 3),
            "openvino_steady_peak_fraction": rnd(wl["openvino_steady_peak_fraction"], 3),
            "openvino_max_abs_diff": (float(f"{wl['openvino_max_abs_diff']:.3g}")
                                      if wl.get("openvino_max_abs_diff") is not None else None),
            "openvino_bf16_steady_peak_fraction": rnd(wl["openvino_bf16_steady_peak_fraction"],
                                                      3),
            "openvino_bf16_min_cosine": rnd(wl.get("openvino_bf16_min_cosine"), 6),
            "reference_peak_fraction": round(wl["reference_peak_fraction"], 3),
            "matmul_only_peak_fraction": round(wl["matmul_only_peak_fraction"], 3)})
    if "whisper" in by_family:
        up, note = by_family["whisper"]
        wh = summary[up.name]
        headline.update({
            "whisper_exact_speedup": round(wh["exact_speedup"], 3),
            "whisper_bf16_speedup": rnd(wh["bf16_speedup"], 3),
            "whisper_bf16_min_cosine": round(wh["bf16_min_cosine"], 6),
            "whisper_exact_max_abs_diff": float(f"{wh['exact_max_abs_diff']:.3g}"),
            "whisper_exact_peak_fraction": round(wh["exact_peak_fraction"], 3),
            "whisper_bf16_peak_fraction": rnd(wh["bf16_peak_fraction"], 3),
            "whisper_matmul_only_peak_fraction": round(wh["matmul_only_peak_fraction"], 3),
            "whisper_openvino_bf16_steady_peak_fraction": rnd(
                wh["openvino_bf16_steady_peak_fraction"], 3),
            "whisper_upstream": note})
    result = {
        **headline, "bf16_timed": time_bf16, "native_bf16": native_bf16,
        "fp32_peak_gflops": round(peak["fp32"], 1), "bf16_peak_gflops": round(peak["bf16"], 1),
        "cpu_flags": flags, "amx": "amx_bf16" in flags,
        "memory_gb": args.memory_gb, "max_padding": args.max_padding,
        "clips_per_set": len(acted),
        "families": {name: family_json(fs, args.memory_gb) for name, fs in summary.items()},
        "repeats": args.repeats, "threads": torch.get_num_threads(),
        "max_audio_wait_s": round(max(waits), 3),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in demo.items()},
        **gpu,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
