"""The extraction engine: resumable, exact batching, bounded memory, never a silent reuse."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import emobox.extraction.store as store_mod
from emobox.extraction.batching import Plan, plan_batches
from emobox.errors import AudioError, DataError
from emobox.extraction.extract import FrameSource, extract, extract_stats
from emobox.extraction.store import FeatureStore

from extract_fakes import FrameUpstream, Interrupt, TinyHF, store_files, tone_corpus

TESTS = Path(__file__).resolve().parents[1]
SMALL = 200_000  # memory budget (bytes) that makes chunks of about one second of audio


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(1)
    seconds = [round(rng.uniform(0.2, 2.5), 3) for _ in range(30)]
    seconds[5] = seconds[6] = seconds[7] = 1.0  # equal lengths: batchable when padding-sensitive
    return tone_corpus(tmp_path_factory.mktemp("toy"), seconds)


def test_store_layout_and_content(corpus, tmp_path):
    up = FrameUpstream()
    store = extract(up, corpus, [1, 3], store_dir=tmp_path)
    assert store.complete and store.layers() == [1, 3]
    assert sorted(p.name for p in store.path.iterdir()) == [
        ".lock", "audio.tsv", "index.tsv", "layer_1.f16", "layer_3.f16", "meta.json",
        "pooled_1.npy", "pooled_3.npy", "sessions.jsonl"]
    keys, offsets, lengths = store.index()
    assert keys == corpus.keys  # manifest order, whatever the batching order was
    meta = store.meta
    assert (meta["upstream"], meta["checkpoint_id"], meta["precision"], meta["corpus"]) == (
        "toy_frames", "toy-frames-v1", "fp32", "toy")
    assert meta["manifest_hash"] == corpus.content_hash() and meta["emobox_version"]
    # the stored rows are the upstream's own output for that utterance, in fp16
    i = 7
    wav = torch.from_numpy(np.asarray(__import__("soundfile").read(
        str(corpus.root / corpus.utterances[i].path), dtype="float32")[0]))
    ref = up([wav], [3]).hidden[3][0]
    rows = np.asarray(store.layer(3)[offsets[i]: offsets[i] + lengths[i]], np.float32)
    assert lengths[i] == ref.shape[0]
    np.testing.assert_array_equal(rows, ref.numpy().astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(store.pooled(3)[i], ref.mean(0).numpy(), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resume_after_random_interruptions_is_byte_identical(corpus, tmp_path, monkeypatch,
                                                             seed):
    reference = extract(FrameUpstream(), corpus, [0, 2], store_dir=tmp_path / "ref",
                        memory_budget=SMALL)
    expected = store_files(reference.path)
    rng = random.Random(seed)
    out = tmp_path / "resumed"
    real_fsync = os.fsync
    for attempt in range(3):  # several crashes in a row, at random places, then a clean finish
        where = rng.choice(["upstream", "write"])
        if where == "upstream":
            up = FrameUpstream(fail_after=rng.randint(1, 25))
        else:
            up = FrameUpstream()
            budget = {"n": rng.randint(1, 60)}

            def flaky_fsync(fd, budget=budget):
                budget["n"] -= 1
                if budget["n"] <= 0:
                    raise Interrupt("injected failure while writing")
                real_fsync(fd)

            monkeypatch.setattr(store_mod.os, "fsync", flaky_fsync)
        try:
            extract(up, corpus, [0, 2], store_dir=tmp_path / "resumed", memory_budget=SMALL)
        except Interrupt:
            pass
        monkeypatch.setattr(store_mod.os, "fsync", real_fsync)
    up = FrameUpstream()
    stats = extract_stats(up, corpus, [0, 2], store_dir=out, memory_budget=SMALL)
    assert stats.store.path.name == reference.path.name
    assert store_files(stats.store.path) == expected
    assert not (stats.store.path / ".partial").exists()


def test_killed_process_resumes_identically(corpus, tmp_path):
    reference = extract(FrameUpstream(), corpus, [1], store_dir=tmp_path / "ref",
                        memory_budget=SMALL)
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import time, pickle, sys
        sys.path.insert(0, {str(TESTS)!r})
        from extract_fakes import FrameUpstream
        from emobox.datasets.manifest import Manifest
        from emobox.extraction.extract import extract
        m = pickle.load(open({str(tmp_path / 'm.pkl')!r}, 'rb'))
        class Slow(FrameUpstream):
            def forward(self, wavs, layers):
                time.sleep(0.15)
                return super().forward(wavs, layers)
        extract(Slow(), m, [1], store_dir={str(out)!r}, memory_budget={SMALL})
    """)
    import pickle

    pickle.dump(corpus, open(tmp_path / "m.pkl", "wb"))
    proc = subprocess.Popen([sys.executable, "-c", script])
    journal = reference.path.parent.parent.parent.parent / "killed" / reference.path.relative_to(
        tmp_path / "ref") / ".partial" / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 3:  # header + 2 chunks
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the extraction finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stats = extract_stats(FrameUpstream(), corpus, [1], store_dir=out, memory_budget=SMALL)
    assert stats.resumed_at > 0
    assert stats.utterances == len(corpus) - stats.resumed_at
    assert store_files(stats.store.path) == store_files(reference.path)


def test_a_kill_while_finishing_leaves_no_temporary_file_in_the_resumed_store(
        corpus, tmp_path, monkeypatch):
    """SIGKILL inside the atomic write of pooled_<L>.npy leaves ``.pooled_<L>.npy.<8>.tmp``
    (no handler runs); the resumed extraction finishes the store and removes it."""
    reference = extract(FrameUpstream(), corpus, [1], store_dir=tmp_path / "ref")
    out = tmp_path / "killed"
    import emobox.io as io_mod

    def killed_replace(src, dst):  # the kill: the temporary stays, the handler never runs
        os.rename(src, Path(src).with_name(Path(dst).name.join([".", ".k2j4x9ab.tmp"])))
        raise Interrupt("killed while finishing")

    monkeypatch.setattr(io_mod.os, "replace", killed_replace)
    with pytest.raises(Interrupt):
        extract(FrameUpstream(), corpus, [1], store_dir=out)
    monkeypatch.undo()
    (store_path,) = [p.parent for p in out.rglob(".partial")]
    # the handler of the real write unlinks its own name; what a kill leaves looks like this
    assert [p.name for p in store_path.glob(".*.tmp")] == [".pooled_1.npy.k2j4x9ab.tmp"]
    assert not (store_path / "meta.json").exists()
    stats = extract_stats(FrameUpstream(), corpus, [1], store_dir=out)
    assert any("finishing an extraction" in n for n in stats.notes)
    assert store_files(stats.store.path) == store_files(reference.path)
    assert not list(stats.store.path.glob(".*.tmp"))


def test_metadata_mismatch_is_refused_and_other_requests_get_their_own_store(corpus, tmp_path):
    store = extract(FrameUpstream(), corpus, [1], store_dir=tmp_path)
    meta = json.loads((store.path / "meta.json").read_text())
    meta["checkpoint_id"] = "some-other-weights"  # a consistent meta.json of another request
    meta["meta_sha256"] = store_mod.meta_checksum(meta)
    (store.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not match this request.*checkpoint_id"):
        extract(FrameUpstream(), corpus, [1], store_dir=tmp_path)
    # another checkpoint, manifest or precision is a different store, never this one
    other = FrameUpstream()
    other.checkpoint_id = "toy-frames-v2"
    assert extract(other, corpus, [1], store_dir=tmp_path).path != store.path
    sub = corpus.subset(corpus.keys[:5])
    assert extract(FrameUpstream(), sub, [1], store_dir=tmp_path).path != store.path
    bf16 = extract(FrameUpstream(), sub, [1], store_dir=tmp_path, precision="bf16")
    assert bf16.meta["precision"] == "bf16"
    assert bf16.path != extract(FrameUpstream(), sub, [1], store_dir=tmp_path).path


def test_partial_extraction_of_other_settings_is_discarded(corpus, tmp_path):
    with pytest.raises(Interrupt):
        extract(FrameUpstream(fail_after=3), corpus, [1], store_dir=tmp_path,
                memory_budget=SMALL)
    store = next(tmp_path.glob("*/*/*"))
    journal = store / ".partial" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    head = json.loads(lines[0])
    head["identity"]["checkpoint_id"] = "tampered"
    journal.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    stats = extract_stats(FrameUpstream(), corpus, [1], store_dir=tmp_path, memory_budget=SMALL)
    assert stats.resumed_at == 0 and stats.utterances == len(corpus)
    assert any("discarded" in n for n in stats.notes)


def test_long_and_very_short_files_extract(tmp_path):
    m = tone_corpus(tmp_path / "audio", [35.0, 0.2, 3.0])
    up = TinyHF("layer")
    store = extract(up, m, [2], store_dir=tmp_path / "f")
    keys, _, lengths = store.index()
    assert keys == m.keys
    expected = [int(up.model._get_feat_extract_output_lengths(torch.tensor(n)))
                for n in (35 * 16000, 3200, 48000)]
    assert lengths.tolist() == expected == [1749, 9, 149]


class NoFrameUpstream(FrameUpstream):
    """Returns no frame for inputs under 0.1 s (as a model with a large receptive field)."""

    def forward(self, wavs, layers):
        out = super().forward(wavs, layers)
        out.lengths[[i for i, w in enumerate(wavs) if w.shape[0] < 1600]] = 0
        return out


def test_too_short_for_the_upstream_is_named_or_skipped(tmp_path):
    m = tone_corpus(tmp_path / "audio", [1.0, 0.01, 1.0])  # 160 samples: no wav2vec2 frame
    with pytest.raises(DataError, match="utt001: 160 samples .* too short for toy_frames"):
        extract(NoFrameUpstream(), m, [1], store_dir=tmp_path / "f")
    store = extract(NoFrameUpstream(), m, [1], store_dir=tmp_path / "f", on_bad_audio="skip")
    assert store.index()[0] == ["utt000", "utt002"]
    assert "too short" in store.skipped()["utt001"]
    # an upstream that raises on such an input: the utterance is named, alone or in a batch
    with pytest.raises(DataError, match=r"utt001: upstream tiny_wav2vec2_layer failed on this "
                                        r"utterance \(160 samples, 0.010 s\): RuntimeError"):
        extract(TinyHF("layer"), m, [1], store_dir=tmp_path / "g")
    raising = RaisingUpstream()
    store = extract(raising, m, [1], store_dir=tmp_path / "h", on_bad_audio="skip",
                    max_padding=200, batch_seconds=10)
    assert len(raising.calls[0]) == 3  # tried as one batch, then one by one
    assert list(store.skipped()) == ["utt001"] and len(store.index()[0]) == 2
    assert "RuntimeError: input too short" in store.skipped()["utt001"]


class RaisingUpstream(FrameUpstream):
    def forward(self, wavs, layers):
        self.calls.append([int(w.shape[0]) for w in wavs])
        if min(w.shape[0] for w in wavs) < 1600:
            raise RuntimeError("input too short")
        return super().forward(wavs, layers)


def test_batched_equals_one_at_a_time_for_layer_norm_encoders(corpus, tmp_path):
    one = TinyHF("layer", arch="wavlm")
    calls = []
    original = one.forward

    def recording(wavs, layers):
        calls.append(len(wavs))
        return original(wavs, layers)

    one.forward = recording
    single = extract(one, corpus, [1, 2], store_dir=tmp_path / "one", batch_seconds=1e-3)
    assert set(calls) == {1}
    calls.clear()
    batched = extract(one, corpus, [1, 2], store_dir=tmp_path / "many", batch_seconds=30,
                      max_padding=1.0)
    assert max(calls) > 4  # it really batched
    for L in (1, 2):
        a = np.asarray(single.layer(L), np.float32)
        b = np.asarray(batched.layer(L), np.float32)
        assert a.shape == b.shape
        # pooled means are computed from the float32 frames: the tight exactness check
        assert np.abs(single.pooled(L) - batched.pooled(L)).max() <= 1e-4
        # fp16 rows agree to the last fp16 step
        assert np.abs(a - b).max() <= 2e-3 * max(1.0, np.abs(a).max())


def test_padding_sensitive_encoders_are_never_padded(corpus, tmp_path):
    up = FrameUpstream(padding_sensitive=True)
    extract(up, corpus, [1], store_dir=tmp_path / "a", batch_seconds=60)
    assert all(len(set(call)) == 1 for call in up.calls)
    assert [16000] * 3 in up.calls  # the equal lengths were batched together
    free = FrameUpstream()
    extract(free, corpus, [1], store_dir=tmp_path / "b", batch_seconds=60, max_padding=1.0)
    assert any(len(set(call)) > 1 for call in free.calls)


def test_plan_batches_respects_the_padded_budget():
    plan = Plan(sample_rate=10, batch_seconds=10, chunk_seconds=100, max_padding=1.0)
    lengths = [30, 10, 20, 50, 10, 40]  # seconds x 10
    batches = plan_batches(lengths, plan)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) / 10 <= 10
    assert batches[0] == [1, 4, 2]  # shortest first, stable, 3 x 2 s = 6 s
    tight = Plan(sample_rate=10, batch_seconds=100, chunk_seconds=100, max_padding=0.1)
    assert plan_batches([100, 105, 111, 200, 215], tight) == [[0, 1], [2], [3, 4]]
    whisper = Plan(sample_rate=10, batch_seconds=60, chunk_seconds=100, max_seconds=30)
    assert plan_batches([10, 20, 400], whisper) == [[0, 1], [2]]  # 30-s windows cost 30 s
    sensitive = Plan(sample_rate=10, batch_seconds=100, chunk_seconds=100,
                     padding_sensitive=True)
    assert plan_batches([10, 20, 10, 20, 30], sensitive) == [[0, 2], [1, 3], [4]]


def test_only_missing_layers_are_computed(corpus, tmp_path):
    up = FrameUpstream()
    first = extract(up, corpus, [3], store_dir=tmp_path / "s")
    up.layer_calls.clear()
    store = extract(up, corpus, [1, 3], store_dir=tmp_path / "s")
    assert store.path == first.path and store.layers() == [1, 3]
    assert {tuple(c) for c in up.layer_calls} == {(1,)}  # stops at the highest missing layer
    up.calls.clear()
    extract(up, corpus, [3, 1], store_dir=tmp_path / "s")
    assert up.calls == []  # complete: reused
    together = extract(FrameUpstream(), corpus, [1, 3], store_dir=tmp_path / "t")
    for name in ("layer_1.f16", "layer_3.f16", "pooled_1.npy", "index.tsv"):
        assert (store.path / name).read_bytes() == (together.path / name).read_bytes()


def test_corrupt_and_truncated_files_are_named(corpus, tmp_path, cli):
    store = extract(FrameUpstream(), corpus, [1], store_dir=tmp_path)
    layer = store.path / "layer_1.f16"
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF
    layer.write_bytes(bytes(data))
    res = cli("features", "verify", "--features-dir", tmp_path)
    assert res.code == 5 and "layer_1.f16" in res.err and "checksum" in res.err
    layer.write_bytes(bytes(data[:-10]))
    with pytest.raises(DataError, match=r"layer_1\.f16: feature file has .* bytes, expected"):
        extract(FrameUpstream(), corpus, [1], store_dir=tmp_path)
    layer.unlink()
    (store.path / "index.tsv").write_text("key\toffset\tlength\nutt000\t0\t5\n")
    with pytest.raises(DataError, match=r"index\.tsv: the index does not match its checksum"):
        FeatureStore(store.path).index()
    (store.path / "meta.json").write_text("{ not json")
    with pytest.raises(DataError, match=r"meta\.json: corrupt meta\.json"):
        extract(FrameUpstream(), corpus, [1], store_dir=tmp_path)


def test_bad_audio_fails_naming_the_file_and_keeps_finished_chunks(corpus, tmp_path):
    import shutil

    root = tmp_path / "audio"
    shutil.copytree(corpus.root, root)
    (root / "utt020.wav").write_bytes(b"RIFF not really a wav")
    from emobox.datasets.manifest import Manifest

    m = Manifest(corpus.corpus, root, corpus.utterances)
    with pytest.raises(AudioError, match=r"utt020\.wav.*utterance utt020"):
        extract(FrameUpstream(), m, [1], store_dir=tmp_path / "f", memory_budget=SMALL)
    journal = next((tmp_path / "f").glob("*/*/*/.partial/journal.jsonl"))
    done = json.loads(journal.read_text().splitlines()[-1])["next"]
    assert 10 <= done <= 20  # the chunks before the bad file are kept
    stats = extract_stats(FrameUpstream(), m, [1], store_dir=tmp_path / "f",
                          memory_budget=SMALL, on_bad_audio="skip")
    assert stats.resumed_at == done
    assert list(stats.store.skipped()) == ["utt020"]
    assert len(stats.store.index()[0]) == len(m) - 1


def test_extraction_memory_stays_bounded_when_features_exceed_the_budget(tmp_path):
    """About 200 MB of features through a 16 MB budget: anonymous memory grows by far less."""
    script = textwrap.dedent(f"""
        import sys, threading, time
        sys.path.insert(0, {str(TESTS)!r})
        from extract_fakes import FrameUpstream, tone_corpus
        from emobox.extraction.extract import extract
        m = tone_corpus({str(tmp_path / 'audio')!r}, [1.0] * 120)
        up = FrameUpstream(dim=8192, num_layers=1)
        def anon():  # resident anonymous memory (heap), not mapped library or file pages
            for line in open('/proc/self/status'):
                if line.startswith('RssAnon:'):
                    return int(line.split()[1]) * 1024
        base, peak, done = anon(), [0], []
        def watch():
            while not done:
                peak[0] = max(peak[0], anon())
                time.sleep(0.005)
        watcher = threading.Thread(target=watch)
        watcher.start()
        store = extract(up, m, [1], store_dir={str(tmp_path / 'f')!r}, memory_budget=16 << 20)
        done.append(1)
        watcher.join()
        print((store.path / 'layer_1.f16').stat().st_size, peak[0] - base)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    size, growth = map(int, out.stdout.split())
    assert size > 190e6
    assert growth < 100e6, f"grew by {growth / 1e6:.0f} MB for {size / 1e6:.0f} MB of features"


def test_frame_source_gathers_from_disk_past_its_memory_budget(corpus, tmp_path):
    import tracemalloc

    store = extract(FrameUpstream(dim=64), corpus, [1], store_dir=tmp_path)
    keys = corpus.keys[::2]
    in_memory = FrameSource(store, 1, keys)
    tracemalloc.start()
    on_disk = FrameSource(store, 1, keys, memory_limit=10_000)
    idx = torch.tensor([0, 3, 5])
    frames, lengths = on_disk.gather(idx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = int(on_disk.lengths.sum()) * 64 * 4
    assert on_disk._frames is None and in_memory._frames is not None
    assert peak < total / 2  # it did not load the selection
    ref_frames, ref_lengths = in_memory.gather(idx)
    assert torch.equal(lengths, ref_lengths)
    torch.testing.assert_close(frames, ref_frames)


def _tiny_transformers(arch: str):
    """A tiny random model of a transformers class an upstream wraps, and a forward on audio."""
    import transformers as tf

    torch.manual_seed(0)
    if arch == "data2vec2":  # the plain-torch port (data2vec 2.0 / emotion2vec)
        from emobox.upstreams.data2vec2.net import D2v2Config, Data2Vec2Encoder
        from emobox.upstreams.data2vec2.upstream import Data2Vec2Upstream

        cfg = D2v2Config(conv_layers=((16, 10, 5),) + ((16, 3, 2),) * 4 + ((16, 2, 2),) * 2,
                         embed_dim=24, num_heads=3, depth=2, prenet_depth=1, mlp_dim=40,
                         conv_pos_depth=2, conv_pos_kernel=4, conv_pos_groups=4,
                         num_extra_tokens=2, alibi_scale_shape=(1, 3))
        model = Data2Vec2Upstream("tiny", Data2Vec2Encoder(cfg), "test")
        wavs = [torch.randn(16000), torch.randn(12000)]
        return model, lambda: model(wavs, [2]).hidden[2]
    if arch == "whisper":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        model = WhisperEncoder(tf.WhisperConfig(d_model=32, encoder_layers=2,
                                                encoder_attention_heads=2, encoder_ffn_dim=64,
                                                num_mel_bins=16, max_source_positions=100))
        mel = torch.randn(2, 16, 200)
        return model, lambda: model(mel).last_hidden_state
    cls = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
           "hubert": (tf.HubertConfig, tf.HubertModel),
           "wavlm": (tf.WavLMConfig, tf.WavLMModel),
           "data2vec": (tf.Data2VecAudioConfig, tf.Data2VecAudioModel)}[arch]
    cfg = cls[0](hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                 num_conv_pos_embedding_groups=2, feat_extract_norm="layer")
    model = cls[1](cfg)
    x = torch.randn(2, 16000)
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 12000:] = 0
    return model, lambda: model(x, attention_mask=mask).last_hidden_state


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm", "data2vec", "whisper",
                                  "data2vec2"])
def test_fast_path_is_bit_identical_to_autocast(arch):
    from emobox.extraction.precision import fast_path

    model, run = _tiny_transformers(arch)
    model.eval().requires_grad_(False)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = run()
        with fast_path(model, "bf16"):
            assert any(p.dtype == torch.bfloat16 for p in model.parameters())
            fast = run()
    assert torch.equal(plain, fast)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # restored


def _per_frame_weight_matmuls(fn) -> int:
    """bmm calls whose second operand is a [T, D, D] stack of one weight (T > 1)."""
    from torch.profiler import profile

    with profile(record_shapes=True) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name == "aten::bmm" and len(e.input_shapes) == 2
               and len(e.input_shapes[1]) == 3 and e.input_shapes[1][1] == e.input_shapes[1][2]
               == 32 and e.input_shapes[1][0] > 1)


def test_fast_path_removes_per_frame_weight_copies_and_keeps_the_values(corpus, tmp_path):
    from emobox.extraction.precision import compute_context, fast_path

    up = TinyHF("layer", arch="wavlm")
    wavs = [torch.randn(16000), torch.randn(12000)]
    out = {}

    def plain():
        with compute_context("bf16", "cpu"):
            out["plain"] = up(wavs, [2]).hidden[2]

    def fast():
        with compute_context("bf16", "cpu"), fast_path(up, "bf16"):
            out["fast"] = up(wavs, [2]).hidden[2]

    assert _per_frame_weight_matmuls(plain) > 0  # the trap, as transformers' WavLM falls in it
    assert _per_frame_weight_matmuls(fast) == 0
    assert torch.equal(out["plain"], out["fast"])
    # and the engine takes the fast path on batches
    assert _per_frame_weight_matmuls(lambda: extract(up, corpus, [2], store_dir=tmp_path,
                                                     precision="bf16", batch_seconds=30,
                                                     max_padding=1.0)) == 0


def test_bf16_store_is_labelled_and_close_to_fp32(corpus, tmp_path):
    up = TinyHF("layer", arch="wavlm")
    exact = extract(up, corpus, [2], store_dir=tmp_path)
    fast = extract_stats(up, corpus, [2], store_dir=tmp_path, precision="bf16")
    assert fast.store.meta["precision"] == "bf16" and exact.meta["precision"] == "fp32"
    assert "bf16" in fast.summary()
    a = np.asarray(exact.layer(2), np.float32)
    b = np.asarray(fast.store.layer(2), np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99


def test_meta_records_the_engine_settings_that_made_the_features(corpus, tmp_path):
    up = TinyHF("layer", arch="wavlm")
    exact = extract(up, corpus, [2], store_dir=tmp_path)
    fast = extract(up, corpus, [2], store_dir=tmp_path, precision="bf16")
    e, f = exact.meta["engine"], fast.meta["engine"]
    assert (e["precision"], e["lowp_weight_cache"], "autocast" in e) == ("fp32", False, False)
    assert (f["precision"], f["autocast"], f["lowp_weight_cache"]) == ("bf16", "bf16", True)
    # transformers' WavLM has no SDPA attention: emobox's fused one made these features
    assert e["attention"] == f["attention"] == "emobox fused sdpa"
    assert e["threads"] == torch.get_num_threads() and e["torch"] == torch.__version__
    assert e["batching"].startswith("sorted by length")
    assert exact.sessions()[-1]["engine"] == e  # the journal keeps each extraction's settings
    sensitive = extract(TinyHF("group"), corpus, [1], store_dir=tmp_path)
    assert sensitive.meta["engine"]["batching"] == "equal lengths only"


def test_each_layer_keeps_the_engine_of_the_extraction_that_computed_it(corpus, tmp_path):
    up = TinyHF("layer", arch="wavlm")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        extract(up, corpus, [1], store_dir=tmp_path, workers=1)
    finally:
        torch.set_num_threads(threads)
    store = extract(up, corpus, [2], store_dir=tmp_path, workers=2)  # adds a layer
    assert sorted(store.meta["layers"]) == ["1", "2"]
    assert store.engine(1)["threads"] == 1 and store.engine(1)["decode_workers"] == 1
    assert store.engine(2)["threads"] == threads and store.engine(2)["decode_workers"] == 2
    assert store.engine() == store.meta["engine"] == store.engine(2)  # the last extraction


def test_damaged_engine_record_is_refused_naming_the_store(corpus, tmp_path):
    from emobox.extraction.store import FeatureStore, meta_checksum

    store = extract(TinyHF("layer", arch="wavlm"), corpus, [2], store_dir=tmp_path)
    meta = json.loads((store.path / "meta.json").read_text())
    meta["layers"]["2"]["engine"] = "fp32"
    meta["meta_sha256"] = meta_checksum(meta)
    (store.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as err:
        FeatureStore(store.path).meta
    assert "meta.json" in str(err.value) and "layer 2: 'engine' is" in str(err.value)


def test_cpu_default_batches_short_clips_of_different_lengths_exactly(tmp_path):
    # short clips within 25% of each other: batched by default on CPU (a 1-s clip alone runs
    # matmuls far below the CPU's peak), with features those of one clip at a time
    clips = tone_corpus(tmp_path / "c", [0.8, 0.95, 0.85, 1.0, 0.9, 0.82])
    up = TinyHF("layer", arch="wavlm")
    calls = []
    original = up.forward

    def recording(wavs, layers):
        calls.append(sorted(len(w) for w in wavs))
        return original(wavs, layers)

    up.forward = recording
    batched = extract(up, clips, [2], store_dir=tmp_path / "batched")
    assert len(calls) == 1 and len(set(calls[0])) == 6  # one batch of six different lengths
    assert batched.meta["engine"]["batching"].startswith("sorted by length, padding <= 0.25")
    calls.clear()
    single = extract(up, clips, [2], store_dir=tmp_path / "single", batch_seconds=1e-3)
    assert all(len(c) == 1 for c in calls)
    assert np.abs(single.pooled(2) - batched.pooled(2)).max() <= 1e-4
    a, b = np.asarray(single.layer(2), np.float32), np.asarray(batched.layer(2), np.float32)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 2e-3 * max(1.0, np.abs(a).max())


def test_bf16_weights_are_cast_once_per_extraction_not_at_every_batch(corpus, tmp_path,
                                                                      monkeypatch):
    import contextlib

    import emobox.extraction.engine as engine
    from emobox.extraction.precision import lowp_weights

    up = TinyHF("layer", arch="wavlm")
    entered: list[int] = []

    @contextlib.contextmanager
    def counting(module, dtype):
        with lowp_weights(module, dtype) as n:
            entered.append(n)
            yield n

    monkeypatch.setattr(engine, "lowp_weights", counting)
    dense = next(m for name, m in up.named_modules() if name.endswith("intermediate_dense"))
    seen: list[torch.dtype] = []
    dense.register_forward_hook(lambda mod, args, out: seen.append(mod.weight.dtype))
    store = extract(up, corpus, [2], store_dir=tmp_path, precision="bf16", batch_seconds=1.0)
    assert len(seen) > 2  # several batches
    assert set(seen) == {torch.bfloat16}  # every batch ran on the bfloat16 copies
    assert len(entered) == 1 and entered[0] > 0  # made once, for the whole extraction
    assert dense.weight.dtype == torch.float32  # and the float32 weights are back after it
    # the same features as autocast casting the float32 weights at every call
    monkeypatch.setattr(engine, "lowp_weights", lambda module, dtype: contextlib.nullcontext(0))
    per_call = extract(up, corpus, [2], store_dir=tmp_path / "per_call", precision="bf16",
                       batch_seconds=1.0)
    assert np.array_equal(np.asarray(store.layer(2)), np.asarray(per_call.layer(2)))


def test_weight_normed_weights_are_computed_once_per_extraction(corpus, tmp_path, monkeypatch):
    up = TinyHF("layer", arch="wavlm")
    parametrized = [m for m in up.modules() if hasattr(m, "parametrizations")]
    assert parametrized  # the positional convolution's weight norm
    real = torch._weight_norm
    calls: list[int] = []

    def counting(v, g, dim=0):
        calls.append(1)
        return real(v, g, dim)

    batches: list[int] = []
    up.register_forward_hook(lambda *a: batches.append(1))
    monkeypatch.setattr(torch, "_weight_norm", counting)
    once = extract(up, corpus, [2], store_dir=tmp_path / "once", batch_seconds=1.0)
    assert len(batches) > 2 and len(calls) == len(parametrized)  # once, not at every batch
    # the same features as computing it at every batch
    import torch.nn.utils.parametrize as parametrize

    monkeypatch.setattr(parametrize, "cached", contextlib.nullcontext)
    calls.clear()
    every = extract(up, corpus, [2], store_dir=tmp_path / "every", batch_seconds=1.0)
    assert len(calls) > len(parametrized)
    assert np.array_equal(np.asarray(once.layer(2)), np.asarray(every.layer(2)))
