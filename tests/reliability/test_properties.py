"""Property-based tests of the pieces with invariants: fold assignment, metrics, masked pooling,
resampling and the feature store. Example counts are modest so that the suite stays fast."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from emobox import Manifest, Utterance
from emobox.datasets.audio import resample
from emobox.training.downstream import masked_mean, segment_ids, segment_mean
from emobox.training.metrics import scores, ua_from_confusion
from emobox.datasets.splits import (FoldTableRow, leakage, speaker_independent_folds, stratified_split,
                           table_folds)
from emobox.extraction.store import ChunkData, FeatureStore, StoreRequest, StoreWriter

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LABELS = ("Angry", "Happy", "Neutral", "Sad")


@st.composite
def corpora(draw, min_speakers=4, max_speakers=18):
    """A manifest: speakers with 1-6 utterances each, labels from 2-4 classes."""
    n_spk = draw(st.integers(min_speakers, max_speakers))
    n_labels = draw(st.integers(2, 4))
    utts = []
    for s in range(n_spk):
        for i in range(draw(st.integers(1, 6))):
            label = LABELS[draw(st.integers(0, n_labels - 1))]
            utts.append(Utterance(f"u{s:02d}_{i}", f"a/{s}/{i}.wav", label, speaker=f"spk{s:02d}"))
    order = draw(st.permutations(range(len(utts))))
    return Manifest("prop", "/corpus", [utts[i] for i in order])


# -- fold assignment --------------------------------------------------------------------------

@FAST
@given(corpora(), st.integers(0, 10_000))
def test_speaker_independent_folds_partition_keys_without_leakage(manifest, seed):
    folds = speaker_independent_folds(manifest, seed)
    keys = set(manifest.keys)
    n_spk = len(manifest.speakers())
    assert len(folds) == (n_spk if n_spk <= 6 else max(2, min(n_spk // 4, 6)))
    tests = [set(f.test) for f in folds]
    assert set().union(*tests) == keys  # every key is tested exactly once
    assert sum(map(len, tests)) == len(keys)
    for fold in folds:
        assert set(fold.train) | set(fold.valid) | set(fold.test) == keys
        assert len(fold.train) + len(fold.valid) + len(fold.test) == len(keys)
        spk = {role: {manifest[k].speaker for k in getattr(fold, role)}
               for role in ("train", "valid", "test")}
        assert not spk["test"] & (spk["train"] | spk["valid"])  # no speaker leaks into test
        if fold.valid_rule == "held-out-speakers":
            assert not spk["valid"] & spk["train"]  # selection is speaker-independent too
        assert fold.train  # something to train on
    assert not any(leakage(manifest, folds).values())
    again = speaker_independent_folds(manifest, seed)
    assert again == folds  # seeded, not random


@FAST
@given(st.lists(st.sampled_from(LABELS), min_size=1, max_size=60), st.integers(0, 10_000),
       st.sampled_from([0.1, 0.2, 0.5]))
def test_stratified_split_holds_the_fraction_of_every_label(labels, seed, fraction):
    keys = [f"k{i}" for i in range(len(labels))]
    by_key = dict(zip(keys, labels))
    rest, held = stratified_split(keys, by_key, fraction, seed)
    assert sorted(rest + held) == sorted(keys) and not set(rest) & set(held)
    assert rest == [k for k in keys if k in set(rest)]  # order kept
    total, taken = Counter(labels), Counter(by_key[k] for k in held)
    for label, n in total.items():
        want = 0 if n < 2 else max(1, min(math.floor(fraction * n + 0.5), n - 1))
        assert taken[label] == want, (label, n, taken[label])
    assert stratified_split(keys, by_key, fraction, seed) == (rest, held)


@FAST
@given(st.lists(st.tuples(st.integers(-1, 4), st.booleans()), min_size=8, max_size=50),
       st.integers(0, 100), st.booleans())
def test_fold_table_membership_is_followed_key_by_key(rows, seed, official):
    assume(any(t >= 1 for t, _ in rows))
    utts = [Utterance(f"k{i}", f"{i}.wav", LABELS[i % 4]) for i in range(len(rows))]
    manifest = Manifest("prop", "/corpus", utts)
    table = {f"k{i}": FoldTableRow(t, v) for i, (t, v) in enumerate(rows)}
    folds = table_folds(manifest, table, seed, official)
    assert len(folds) == max(t for t, _ in rows)
    for fold in folds:
        for key, row in table.items():
            role = fold.role_of(key)
            if row.test_fold == -1:
                assert role is None
            elif row.test_fold == fold.index:
                assert role == "test"
            else:
                assert role in ("train", "valid")
                if official:
                    assert (role == "valid") == row.valid


# -- metrics ----------------------------------------------------------------------------------

@st.composite
def predictions(draw):
    n_classes = draw(st.integers(2, 6))
    n = draw(st.integers(1, 80))
    gold = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    pred = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    return gold, pred, n_classes


@FAST
@given(predictions(), st.randoms(use_true_random=False))
def test_metrics_are_bounded_and_ignore_sample_order(case, rnd):
    gold, pred, n_classes = case
    s = scores(gold, pred, n_classes)
    for m in ("ua", "wa", "f1"):
        assert 0.0 <= s[m] <= 1.0
    cm = np.asarray(s["confusion"])
    assert cm.sum() == len(gold) and cm.sum(1).tolist() == np.bincount(gold, minlength=n_classes).tolist()
    assert s["wa"] == pytest.approx(np.trace(cm) / len(gold))
    assert s["ua"] == pytest.approx(ua_from_confusion(cm))
    present = [r for r in s["per_class_recall"] if r is not None]
    assert s["ua"] == pytest.approx(sum(present) / len(present))
    order = list(range(len(gold)))
    rnd.shuffle(order)
    shuffled = scores([gold[i] for i in order], [pred[i] for i in order], n_classes)
    for m in ("ua", "wa", "f1"):
        assert shuffled[m] == pytest.approx(s[m], abs=1e-12)
    perfect = scores(gold, gold, n_classes)
    assert perfect["ua"] == perfect["wa"] == perfect["f1"] == 1.0


# -- masked pooling ---------------------------------------------------------------------------

@FAST
@given(st.lists(st.integers(1, 12), min_size=1, max_size=6), st.integers(1, 8),
       st.integers(0, 5), st.integers(0, 2 ** 31 - 1))
def test_masked_pooling_ignores_padding(lengths, dim, extra_pad, seed):
    g = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    t_max = max(lengths) + extra_pad
    feats = torch.randn(len(lengths), t_max, dim, generator=g)
    garbage = feats.clone()
    for b, n in enumerate(lengths):  # anything at all in the padding, even huge values
        garbage[b, n:] = torch.randn(t_max - n, dim, generator=g) * 1e6
    pooled = masked_mean(feats, lengths_t)
    torch.testing.assert_close(masked_mean(garbage, lengths_t), pooled)
    packed = torch.cat([feats[b, :n] for b, n in enumerate(lengths)])
    torch.testing.assert_close(segment_mean(packed, segment_ids(lengths_t), lengths_t), pooled)
    expected = torch.stack([feats[b, :n].mean(0) for b, n in enumerate(lengths)])
    torch.testing.assert_close(pooled, expected)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 10), min_size=2, max_size=5), st.integers(0, 2 ** 31 - 1))
def test_linear_probe_logits_do_not_depend_on_padding_or_batch(lengths, seed):
    from emobox.plugin.registry import get_registry

    torch.manual_seed(seed)
    head = get_registry().downstream("linear_probe").build(6, 4, hidden=8).eval()
    g = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    feats = torch.randn(len(lengths), max(lengths) + 3, 6, generator=g)
    padded_garbage = feats.clone()
    for b, n in enumerate(lengths):
        padded_garbage[b, n:] = 1e4
    with torch.no_grad():
        batch = head(feats, lengths_t)
        torch.testing.assert_close(head(padded_garbage, lengths_t), batch)
        for b, n in enumerate(lengths):  # alone, unpadded
            torch.testing.assert_close(head(feats[b:b + 1, :n], lengths_t[b:b + 1]), batch[b:b + 1],
                                       atol=1e-5, rtol=1e-5)


# -- resampling -------------------------------------------------------------------------------

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]


@FAST
@given(st.sampled_from(RATES), st.sampled_from(RATES), st.floats(0.05, 1.0),
       st.floats(0.05, 0.35), st.floats(0.05, 0.9))
def test_resampling_keeps_duration_and_energy(sr_in, sr_out, seconds, rel_freq, amp):
    """Length scales by the rate ratio (to a sample) and a tone below both Nyquist limits keeps
    its energy (away from the edges, where the filter's transients are)."""
    n = int(seconds * sr_in)
    freq = rel_freq * min(sr_in, sr_out)  # at most 0.35 of the lower rate: in both pass bands
    x = (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr_in)).astype(np.float32)
    y = resample(x, sr_in, sr_out)
    assert y.dtype == np.float32
    assert abs(len(y) - n * sr_out / sr_in) <= 1
    edge = int(0.01 * sr_out) + 64
    assume(len(y) > 4 * edge and freq * seconds >= 3)  # a few periods in the middle
    rms_in = amp / math.sqrt(2)
    rms_out = float(np.sqrt(np.mean(y[edge:-edge].astype(np.float64) ** 2)))
    assert rms_out == pytest.approx(rms_in, rel=0.03)


# -- feature store ----------------------------------------------------------------------------

@st.composite
def utterance_frames(draw):
    dim = draw(st.integers(1, 6))
    n_utts = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(1, 9), min_size=n_utts, max_size=n_utts))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    frames = [(rng.standard_normal((n, dim)) * 3).astype(np.float32) for n in lengths]
    cuts = sorted(set(draw(st.lists(st.integers(1, n_utts), max_size=4))) | {n_utts})
    return dim, frames, cuts


def _chunks(frames, cuts, start=0):
    lo = 0
    for hi in cuts:
        if hi > start:
            part = range(max(lo, start), hi)
            yield ChunkData([f"u{i:03d}" for i in part],
                            {0: [frames[i].astype(np.float16) for i in part]},
                            {0: [frames[i].mean(0) for i in part]}, hi)
        lo = hi


def _write(path, frames, cuts, kill_after=None, torn=b""):
    request = StoreRequest("prop_up", "ck", "prop", "m0")
    writer = StoreWriter(path, request, [0], {"chunk": 1})
    for i, chunk in enumerate(_chunks(frames, cuts)):
        if kill_after is not None and i == kill_after:
            for name in ("layer_0.f16", "pooled_0.f32", "index.tsv"):  # a chunk cut mid-write
                with open(path / ".partial" / name, "ab") as fh:
                    fh.write(torn)
            return None
        writer.append_chunk(chunk)
    return writer.finish({"hidden_size": frames[0].shape[1]})


@FAST
@given(utterance_frames(), st.data())
def test_store_round_trip_and_resume_is_byte_identical(tmp_path_factory, case, data):
    dim, frames, cuts = case
    base = tmp_path_factory.mktemp("store")
    store = _write(base / "whole", frames, cuts)
    keys, offsets, lengths = store.index()
    assert keys == [f"u{i:03d}" for i in range(len(frames))]
    assert lengths.tolist() == [len(f) for f in frames]
    layer = np.asarray(store.layer(0))
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(layer[offsets[i]:offsets[i] + lengths[i]],
                                      f.astype(np.float16))
    np.testing.assert_allclose(store.pooled(0), np.stack([f.mean(0) for f in frames]),
                               rtol=1e-6)
    store.verify()
    # killed after some chunk (with a torn write after it), resumed by a new writer
    kill_after = data.draw(st.integers(0, len(cuts) - 1))
    torn = data.draw(st.binary(max_size=40))
    assert _write(base / "resumed", frames, cuts, kill_after, torn) is None
    request = StoreRequest("prop_up", "ck", "prop", "m0")
    writer = StoreWriter(base / "resumed", request, [0], {"chunk": 1})
    for chunk in _chunks(frames, cuts, start=writer.resume_position):
        writer.append_chunk(chunk)
    resumed = writer.finish({"hidden_size": dim})
    for name in ("layer_0.f16", "pooled_0.npy", "index.tsv"):
        assert (resumed.path / name).read_bytes() == (store.path / name).read_bytes(), name
    assert FeatureStore(resumed.path).meta["index_sha256"] == store.meta["index_sha256"]
