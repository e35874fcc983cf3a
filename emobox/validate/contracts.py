"""Contract checks: does a plugin's spec, and the object it builds, keep the contracts?

Each check returns a list of problems (plain sentences naming the expected and the received value,
e.g. ``"expected hidden size 1024 (declared), got 768"``); an empty list means the contract holds.
``emobox plugins doctor`` runs them over every registered plugin, and plugin authors run them from
their own test suites through :mod:`emobox.testing` (``assert_upstream`` and friends).

The upstream properties are HEAR's: the declared sizes are the real ones, every requested layer
comes back as float32 ``[B, T, D]`` without NaNs, lengths agree with the frame rate, outputs are
deterministic, and a padded batch equals its items run alone (unless the upstream declares
``padding_sensitive``). A head must ignore frames past each length and agree with its packed and
fused forms. A corpus must scan into a manifest whose files exist and whose folds are consistent.

Spec checks import nothing heavy; object checks import torch when called.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping, Sequence

from emobox.plugin.specs import CorpusSpec, DownstreamSpec, UpstreamSpec

TRAINER_HPARAMS = ("lr", "weight_decay")  # grid entries the trainer consumes (not passed to build)
UPSTREAM_ATTRIBUTES = {
    # attribute: (accepted types, description of the expected value)
    "name": (str, "a non-empty string"),
    "sample_rate": (Integral, "a positive integer"),
    "num_layers": (Integral, "an integer >= 0"),
    "hidden_size": (Integral, "a positive integer"),
    "frame_rate": (Real, "a positive number"),
    "max_seconds": ((Real, type(None)), "None or a positive number"),
    "padding_sensitive": (bool, "True or False"),
    "checkpoint_id": (str, "a non-empty string identifying the weights"),
}


def _is(value: Any, types: Any) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and types in (Integral, Real))


def _type_name(value: Any) -> str:
    return type(value).__name__


# -- specs ----------------------------------------------------------------------------------------
def check_spec(spec: Any) -> list[str]:
    """Problems of a spec of any kind (types of the declared attributes, callable ``build``)."""
    if isinstance(spec, UpstreamSpec):
        return check_upstream_spec(spec)
    if isinstance(spec, CorpusSpec):
        return check_corpus_spec(spec)
    if isinstance(spec, DownstreamSpec):
        return check_downstream_spec(spec)
    return [f"expected an UpstreamSpec, CorpusSpec or DownstreamSpec, got {_type_name(spec)}"]


def _common(spec: Any) -> list[str]:
    out = []
    for attr in ("name", "description"):
        value = getattr(spec, attr)
        if not isinstance(value, str):
            out.append(f"{attr} must be a string, got {_type_name(value)}")
    if isinstance(spec.name, str) and not spec.name:
        out.append("name is empty")
    if not callable(spec.build):
        out.append(f"build is not callable (got {_type_name(spec.build)})")
    return out


def _signature_problem(build: Any, what: str, *args: Any, **kwargs: Any) -> str:
    """'' if ``build(*args, **kwargs)`` binds, else why not."""
    try:
        sig = inspect.signature(build)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return ""
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        return f"build{sig} cannot be called as {what}: {exc}"
    return ""


def check_upstream_spec(spec: UpstreamSpec) -> list[str]:
    out = _common(spec)
    checks = [
        ("sample_rate", Integral, lambda v: v > 0, "a positive integer"),
        ("num_layers", Integral, lambda v: v >= 0, "an integer >= 0"),
        # 0: decided by the build options (checked below: the spec must declare options)
        ("hidden_size", Integral, lambda v: v >= 0, "a positive integer (the feature size)"),
        ("frame_rate", Real,
         lambda v: (v > 0 or (v == 0 and spec.hidden_size == 0)) and math.isfinite(v),
         "a positive number"),
    ]
    for attr, types, ok, expected in checks:
        value = getattr(spec, attr)
        if not _is(value, types) or not ok(value):
            out.append(f"{attr} must be {expected}, got {value!r}")
    if _is(spec.hidden_size, Integral) and spec.hidden_size == 0 and not spec.options:
        out.append("hidden_size is 0 (decided by the build options) but the spec declares no "
                   "options")
    if spec.parameters is not None and (not _is(spec.parameters, Integral) or spec.parameters <= 0):
        out.append(f"parameters must be None or a positive integer, got {spec.parameters!r}")
    if not isinstance(spec.trained_on, (tuple, list)) or not all(
            isinstance(c, str) for c in spec.trained_on):
        out.append(f"trained_on must be a tuple of corpus names, got {spec.trained_on!r}")
    for attr in ("checkpoint", "revision", "paper", "license", "family", "requires"):
        if not isinstance(getattr(spec, attr), str):
            out.append(f"{attr} must be a string, got {_type_name(getattr(spec, attr))}")
    if callable(spec.build):
        problem = _signature_problem(spec.build, "build(ckpt=None, device='cpu')", ckpt=None,
                                     device="cpu")
        if problem:
            out.append(problem)
    return out


def check_corpus_spec(spec: CorpusSpec) -> list[str]:
    out = _common(spec)
    if not isinstance(spec.languages, (tuple, list)) or not all(
            isinstance(x, str) for x in spec.languages):
        out.append(f"languages must be a tuple of language names, got {spec.languages!r}")
    for attr in ("embedded", "reader"):
        value = getattr(spec, attr, False)
        if not isinstance(value, bool):
            out.append(f"{attr} must be True or False, got {value!r}")
    for attr in ("license", "homepage", "citation", "expected_top_level"):
        if not isinstance(getattr(spec, attr), str):
            out.append(f"{attr} must be a string, got {_type_name(getattr(spec, attr))}")
    if callable(spec.build):
        problem = _signature_problem(spec.build, "build(root)", None)
        if problem:
            out.append(problem)
    return out


def check_downstream_spec(spec: DownstreamSpec) -> list[str]:
    out = _common(spec)
    if spec.layers not in ("last", "all"):
        out.append(f"layers must be 'last' or 'all', got {spec.layers!r}")
    if not isinstance(spec.grid, Mapping):
        return out + [f"grid must be a mapping name -> list of values, got "
                      f"{_type_name(spec.grid)}"]
    for key, values in spec.grid.items():
        if not isinstance(key, str):
            out.append(f"grid key {key!r} is not a string")
        elif not isinstance(values, (list, tuple)) or not values:
            out.append(f"grid entry {key!r} must be a non-empty list of values, got {values!r}")
    if callable(spec.build) and not out:
        head_keys = [k for k in spec.grid if k not in TRAINER_HPARAMS]
        extra = {"n_layers": 3} if spec.layers == "all" else {}
        what = "build(in_dim, n_classes, **grid" + (", n_layers=L)" if extra else ")")
        for config in grid_configs(spec.grid, limit=64):
            hp = {k: config[k] for k in head_keys}
            problem = _signature_problem(spec.build, what, 8, 3, **hp, **extra)
            if problem:
                out.append(problem)
                break
    if not out:
        out.extend(_hparams_problems(spec))
    return out


def _hparams_problems(spec: DownstreamSpec) -> list[str]:
    """The declaration of the head's hyper-parameters, and its own grid against it."""
    from emobox.plugin.specs import HParam
    from emobox.training.sweep import check_grid

    hparams = getattr(spec, "hparams", {})
    if not isinstance(hparams, Mapping):
        return [f"hparams must be a mapping name -> emobox.HParam, got {_type_name(hparams)}"]
    bad = [k for k, v in hparams.items() if not isinstance(k, str) or not isinstance(v, HParam)]
    if bad:
        return [f"hparams entry {bad[0]!r} is not an emobox.HParam"]
    try:
        check_grid(spec, spec.grid, "grid")
    except Exception as exc:  # noqa: BLE001  (reported as a problem of the plugin)
        return [str(exc)]
    return []


def grid_configs(grid: Mapping[str, Sequence[Any]], limit: int | None = None) -> list[dict]:
    """The grid's configurations in key order (at most ``limit``)."""
    import itertools

    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        out.append(dict(zip(keys, values)))
        if limit is not None and len(out) >= limit:
            break
    return out or [{}]


# -- upstream objects -----------------------------------------------------------------------------
def sample_waveforms(sample_rate: int = 16000, seconds: Sequence[float] = (1.0, 0.55)):
    """Deterministic test inputs: a tone plus seeded noise, one float32 tensor per duration."""
    import numpy as np
    import torch

    rng = np.random.default_rng(1234)
    out = []
    for i, sec in enumerate(seconds):
        n = max(1, int(round(sec * sample_rate)))
        t = np.arange(n) / sample_rate
        x = 0.3 * np.sin(2 * np.pi * (180.0 + 40 * i) * t) + 0.05 * rng.standard_normal(n)
        out.append(torch.from_numpy(x.astype(np.float32)))
    return out


def check_upstream(upstream: Any, spec: UpstreamSpec | None = None,
                   seconds: Sequence[float] = (1.0, 0.55)) -> list[str]:
    """Problems of a built upstream, compared with its spec when given.

    Runs ``forward`` on two short deterministic waveforms with every layer requested.
    """
    import torch

    from emobox.extraction.upstream import Upstream

    out: list[str] = []
    if not isinstance(upstream, torch.nn.Module):
        return [f"build returned {_type_name(upstream)}, not an emobox.Upstream (nn.Module)"]
    if not isinstance(upstream, Upstream):
        out.append(f"build returned {_type_name(upstream)}, not a subclass of emobox.Upstream "
                   f"(which provides resolve_layers, frames_for, flops and device)")
    missing = object()
    values: dict[str, Any] = {}
    for attr, (types, expected) in UPSTREAM_ATTRIBUTES.items():
        value = getattr(upstream, attr, missing)
        if value is missing:
            out.append(f"lacks attribute {attr!r} ({expected})")
            continue
        if not _is(value, types):
            out.append(f"{attr} must be {expected}, got {value!r}")
            continue
        values[attr] = value
    if values.get("name") == "":
        out.append("name is empty (the feature store is keyed by it)")
    if values.get("checkpoint_id") == "":
        out.append("checkpoint_id is empty: features of different weights could not be told "
                   "apart")
    for attr in ("sample_rate", "hidden_size", "frame_rate"):
        if attr in values and values[attr] <= 0:
            out.append(f"{attr} must be positive, got {values[attr]!r}")
    if "num_layers" in values and values["num_layers"] < 0:
        out.append(f"num_layers must be >= 0, got {values['num_layers']}")
    if spec is not None:
        out += _declared_vs_actual(spec, upstream, values)
    if not callable(getattr(upstream, "forward", None)):
        out.append("lacks a forward(wavs, layers) method")
    sane = (all(a in values for a in ("sample_rate", "num_layers", "hidden_size"))
            and values["sample_rate"] > 0 and values["num_layers"] >= 0
            and values["hidden_size"] > 0)
    if not sane:
        return out  # forward cannot be checked without sane sizes
    try:
        with _one_thread():
            out += _check_forward(upstream, values, seconds)
    except Exception as exc:  # the contract says forward works on short inputs
        out.append(f"forward raised {type(exc).__name__}: {exc}")
    out += _check_flops(upstream)
    return out


def _declared_vs_actual(spec: UpstreamSpec, upstream: Any, values: dict) -> list[str]:
    out = []
    if not spec.hidden_size:  # sizes decided by the build options (e.g. which HEAR module)
        return out
    pairs = [("name", "name"), ("sample_rate", "sample rate"), ("num_layers", "number of layers"),
             ("hidden_size", "hidden size"), ("frame_rate", "frame rate")]
    for attr, words in pairs:
        if attr not in values:
            continue
        declared, actual = getattr(spec, attr), values[attr]
        same = (math.isclose(float(declared), float(actual), rel_tol=1e-6)
                if attr == "frame_rate" and _is(declared, Real) else declared == actual)
        if not same:
            out.append(f"expected {words} {declared!r} (declared), got {actual!r}")
    if spec.parameters:
        import torch

        actual = sum(p.numel() for p in upstream.parameters()) if isinstance(
            upstream, torch.nn.Module) else 0
        if abs(actual - spec.parameters) > 0.02 * spec.parameters:
            out.append(f"expected {spec.parameters:,} parameters (declared), got {actual:,}")
    return out


def _check_forward(upstream: Any, values: dict, seconds: Sequence[float]) -> list[str]:
    import torch

    out: list[str] = []
    sr, n_layers, hidden = values["sample_rate"], values["num_layers"], values["hidden_size"]
    wavs = [w.to(_device_of(upstream)) for w in sample_waveforms(sr, seconds)]
    layers = list(range(n_layers + 1))
    upstream.eval()
    with torch.inference_mode():
        res = upstream(wavs, layers)
        hidden_states = getattr(res, "hidden", None)
        lengths = getattr(res, "lengths", None)
        if not isinstance(hidden_states, Mapping) or not isinstance(lengths, torch.Tensor):
            return [f"forward must return UpstreamOutput(hidden={{layer: [B, T, D]}}, "
                    f"lengths=[B]), got {_type_name(res)}"]
        absent = [L for L in layers if L not in hidden_states]
        if absent:
            out.append(f"forward(wavs, layers={layers}) returned no layer {absent[0]} (it "
                       f"returned {sorted(hidden_states)})")
        if tuple(lengths.shape) != (len(wavs),) or lengths.dtype.is_floating_point:
            out.append(f"lengths must be an integer tensor [B] = [{len(wavs)}], got "
                       f"{lengths.dtype} {list(lengths.shape)}")
            return out
        for L in layers:
            if L not in hidden_states:
                continue
            h = hidden_states[L]
            where = f"layer {L}"
            if not isinstance(h, torch.Tensor) or h.dim() != 3:
                out.append(f"{where}: expected a [B, T, D] tensor, got "
                           f"{list(h.shape) if isinstance(h, torch.Tensor) else _type_name(h)}")
                continue
            if h.shape[0] != len(wavs):
                out.append(f"{where}: expected batch size {len(wavs)}, got {h.shape[0]}")
            if h.shape[2] != hidden:
                out.append(f"{where}: expected hidden size {hidden} (declared), got {h.shape[2]}")
            if h.dtype != torch.float32:
                out.append(f"{where}: expected float32 features, got {h.dtype}")
            if int(lengths.max()) > h.shape[1] or int(lengths.min()) < 1:
                out.append(f"{where}: lengths {lengths.tolist()} do not fit {h.shape[1]} frames")
            elif not torch.isfinite(h[0, : int(lengths[0])]).all() or not torch.isfinite(
                    h[1, : int(lengths[1])]).all():
                out.append(f"{where}: features contain NaN or inf")
        for i, w in enumerate(wavs):
            n = int(w.shape[-1])
            got = int(lengths[i])
            by_rate = n * values.get("frame_rate", 0) / sr
            if abs(got - by_rate) > max(2.0, 0.05 * by_rate):
                out.append(f"{n / sr:.2f} s gave {got} frames, but frame_rate "
                           f"{values.get('frame_rate')} means about {by_rate:.0f}")
                break
            expect = upstream.frames_for(n) if hasattr(upstream, "frames_for") else None
            if expect is not None and abs(got - int(expect)) > 2:
                out.append(f"{n / sr:.2f} s gave {got} frames, but frames_for({n}) says "
                           f"{expect}")
                break
        if out:
            return out
        again = upstream(wavs, layers)
        top = layers[-1]
        if not torch.equal(again.hidden[top], hidden_states[top]) and not torch.allclose(
                again.hidden[top], hidden_states[top], atol=1e-5, rtol=1e-5):
            out.append("forward is not deterministic: two calls on the same input differ "
                       "(switch dropout off in eval mode, seed any randomness)")
        only = upstream(wavs, [top])
        if top not in only.hidden:
            out.append(f"forward(wavs, layers=[{top}]) did not return layer {top}")
        elif not _close(only.hidden[top], hidden_states[top]):
            out.append(f"layer {top} differs when requested alone and with all layers")
        if not values.get("padding_sensitive", False):
            for i in range(len(wavs)):
                alone = upstream([wavs[i]], [top])
                n = int(lengths[i])
                a = alone.hidden[top][0, : int(alone.lengths[0])]
                b = hidden_states[top][i, :n]
                if a.shape != b.shape or not _close(a, b, rtol=1e-3, atol=1e-3):
                    diff = ("lengths differ" if a.shape != b.shape else
                            f"max abs difference {float((a - b).abs().max()):.3g}")
                    out.append(f"item {i} of a padded batch differs from the item run alone "
                               f"({diff}): mask the padding, or declare padding_sensitive = True")
                    break
    return out


def _check_flops(upstream: Any) -> list[str]:
    flops = getattr(upstream, "flops", None)
    if not callable(flops):
        return []
    try:
        one, two = flops(16000), flops(32000)
    except Exception as exc:
        return [f"flops(num_samples) raised {type(exc).__name__}: {exc}"]
    if one is None and two is None:
        return []
    if not _is(one, Real) or not _is(two, Real) or one <= 0 or two < one:
        return [f"flops(num_samples) must be None or a positive number growing with the input, "
                f"got {one!r} for 1 s and {two!r} for 2 s"]
    return []


@contextlib.contextmanager
def _one_thread():
    """Checks run tiny inputs: one thread is fastest, and immune to busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device_of(module: Any):
    import torch

    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def _close(a, b, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol))


# -- downstream heads -----------------------------------------------------------------------------
def check_downstream(spec: DownstreamSpec, in_dim: int = 8, n_classes: int = 3,
                     max_configs: int = 16, num_layers: int = 3) -> list[str]:
    """Build the head for (up to ``max_configs``) grid configurations and check each."""
    with _one_thread():
        return _check_downstream(spec, in_dim, n_classes, max_configs, num_layers)


def _check_downstream(spec: DownstreamSpec, in_dim: int, n_classes: int, max_configs: int,
                      num_layers: int) -> list[str]:
    import torch

    out = check_downstream_spec(spec)
    if out:
        return out
    head_keys = [k for k in spec.grid if k not in TRAINER_HPARAMS]
    seen: set[str] = set()
    heads = []
    for config in grid_configs(spec.grid, limit=max_configs):
        hp = {k: config[k] for k in head_keys}
        label = ", ".join(f"{k}={v!r}" for k, v in hp.items()) or "default"
        if label in seen:
            continue
        seen.add(label)
        extra = {"n_layers": num_layers} if spec.layers == "all" else {}
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                head = spec.build(in_dim, n_classes, **hp, **extra)
        except Exception as exc:
            out.append(f"build({in_dim}, {n_classes}, {label}) raised {type(exc).__name__}: {exc}")
            continue
        problems = _check_head(head, spec.layers, in_dim, n_classes, num_layers)
        out += [f"[{label}] {p}" for p in problems]
        if not problems:
            heads.append(head)
    if len(heads) > 1:
        out += _check_fuse(heads, spec.layers, in_dim, num_layers)
    return out


def _features(layers: str, in_dim: int, num_layers: int, lengths: Sequence[int], seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    shape = (len(lengths), max(lengths), in_dim)
    if layers == "all":
        shape = (num_layers,) + shape
    x = torch.randn(shape, generator=g)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None].to(x.dtype), torch.tensor(lengths)


def _check_head(head: Any, layers: str, in_dim: int, n_classes: int, num_layers: int) -> list[str]:
    import torch

    from emobox.training.downstream import segment_ids

    if not isinstance(head, torch.nn.Module):
        return [f"build returned {_type_name(head)}, not an nn.Module"]
    if not any(p.requires_grad for p in head.parameters()):
        return ["the head has no trainable parameters"]
    head.eval()
    lengths = [6, 3]
    x, lens = _features(layers, in_dim, num_layers, lengths)
    with torch.no_grad():
        try:
            logits = head(x, lens)
        except Exception as exc:
            return [f"forward(features {list(x.shape)}, lengths {lengths}) raised "
                    f"{type(exc).__name__}: {exc}"]
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, n_classes):
            got = list(logits.shape) if isinstance(logits, torch.Tensor) else _type_name(logits)
            return [f"forward must return logits [B, C] = [2, {n_classes}], got {got}"]
        if not torch.isfinite(logits).all():
            return ["logits contain NaN or inf"]
        out = []
        noisy = x.clone()
        noisy[..., 1, 3:, :] = 1e3  # garbage past the second item's length
        if not _close(head(noisy, lens), logits, rtol=1e-4, atol=1e-4):
            out.append("frames past lengths[b] change the logits: mask the padding")
        alone = head(x[..., 1:2, :3, :], lens[1:2])
        if not _close(alone[0], logits[1], rtol=1e-4, atol=1e-4):
            out.append("an item's logits change when it is batched with a longer item")
        packed_fn = getattr(head, "forward_packed", None)
        if callable(packed_fn):
            frames = _pack(x, lengths)
            try:
                packed = packed_fn(frames, segment_ids(lens), lens)
            except Exception as exc:
                out.append(f"forward_packed raised {type(exc).__name__}: {exc}")
            else:
                if not _close(packed, logits, rtol=1e-4, atol=1e-4):
                    out.append("forward_packed(frames, segments, lengths) disagrees with "
                               "forward(features, lengths)")
    return out


def _pack(x, lengths: Sequence[int]):
    """Padded ``[..., B, T, D]`` -> packed ``[..., N, D]`` (the trainer's layout)."""
    import torch

    return torch.cat([x[..., b, :n, :] for b, n in enumerate(lengths)], dim=-2)


def _check_fuse(heads: list, layers: str, in_dim: int, num_layers: int) -> list[str]:
    import torch

    from emobox.training.downstream import fuse_heads, segment_ids

    lengths = [6, 3]
    x, lens = _features(layers, in_dim, num_layers, lengths)
    frames = _pack(x, lengths)
    try:
        fused = fuse_heads(heads)
        with torch.no_grad():
            together = fused.forward_packed(frames, segment_ids(lens), lens)
            each = torch.stack([h(x, lens) for h in heads])
    except Exception as exc:
        return [f"running the grid fused raised {type(exc).__name__}: {exc}"]
    if not _close(together, each, rtol=1e-4, atol=1e-4):
        return ["the fused grid (fuse(heads).forward_packed) disagrees with the heads run one by "
                "one"]
    return []


# -- corpora --------------------------------------------------------------------------------------
def _raised(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of an exception, naming the frame that raised it."""
    import traceback

    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def check_corpus(corpus: Any, spec: CorpusSpec | None = None, scheme: str = "emobox",
                 read_audio: int = 1) -> list[str]:
    """Problems of a built corpus: attributes, manifest, files on disk, folds.

    read_audio: how many of the manifest's files to decode (first ones), to catch unreadable data.
    """
    from emobox.datasets.corpus import Corpus
    from emobox.datasets.manifest import Manifest

    out: list[str] = []
    if not isinstance(corpus, Corpus):
        out.append(f"build returned {_type_name(corpus)}, not a subclass of emobox.Corpus")
    name = getattr(corpus, "name", None)
    if not isinstance(name, str) or not name:
        out.append(f"name must be a non-empty string, got {name!r}")
    elif spec is not None and name != spec.name:
        out.append(f"expected name {spec.name!r} (declared), got {name!r}")
    languages = getattr(corpus, "languages", None)
    if not isinstance(languages, (tuple, list)):
        out.append(f"languages must be a tuple, got {languages!r}")
    try:
        manifest = corpus.manifest
    except Exception as exc:  # noqa: BLE001 - the plugin's scan() may raise anything
        own = getattr(corpus, "__dict__", {})
        if "manifest" not in dir(type(corpus)) and "manifest" not in own:
            manifest = None  # no manifest at all: reported below
        else:
            return out + [f"{type(corpus).__name__}.scan() raised {_raised(exc)}"]
    if not isinstance(manifest, Manifest):
        return out + [f"manifest must be an emobox.Manifest, got {_type_name(manifest)}"]
    if len(manifest) == 0:
        return out + [f"scanned no utterances under {manifest.root}"]
    labels = tuple(getattr(corpus, "labels", ()) or ())
    if not labels:
        out.append("labels (the canonical classes) are empty")
    elif tuple(manifest.labels) != labels:
        out.append(f"manifest classes {list(manifest.labels)} differ from the corpus's labels "
                   f"{list(labels)}")
    missing = [u.path for u in manifest if not (manifest.root / u.path).is_file()]
    if missing:
        out.append(f"{len(missing)} manifest paths do not exist, e.g. "
                   f"{Path(manifest.root) / missing[0]}")
    elif read_audio:
        from emobox.datasets.audio import load_audio
        from emobox.errors import AudioError

        for utt in list(manifest)[:read_audio]:
            try:
                load_audio(manifest.audio_path(utt), channel=utt.channel, start=utt.start,
                           end=utt.end)
            except AudioError as exc:
                out.append(f"cannot read {utt.path}: {exc}")
    try:
        folds = corpus.folds(scheme=scheme)
    except Exception as exc:
        return out + [f"folds(scheme={scheme!r}) raised {type(exc).__name__}: {exc}"]
    if not folds:
        return out + [f"folds(scheme={scheme!r}) returned no fold"]
    keys = set(manifest.keys)
    tested: dict[str, int] = {}
    for fold in folds:
        for role in ("train", "valid", "test"):
            members = getattr(fold, role)
            if not members:
                out.append(f"fold {fold.index}: the {role} set is empty")
            stray = [k for k in members if k not in keys]
            if stray:
                out.append(f"fold {fold.index}: {role} key {stray[0]!r} is not in the manifest")
        for k in fold.test:
            if k in tested:
                out.append(f"key {k!r} is a test item of folds {tested[k]} and {fold.index}")
                break
            tested[k] = fold.index
    return out


__all__ = ["check_spec", "check_upstream_spec", "check_corpus_spec", "check_downstream_spec",
           "check_upstream", "check_downstream", "check_corpus", "sample_waveforms", "grid_configs"]
