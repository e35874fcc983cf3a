"""``--runtime openvino``: the wav2vec2 family's features computed by OpenVINO agree with
torch's, are checked before use, and every store says which runtime made them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import transformers

import emobox.extraction.runtime as runtime_mod
from emobox.errors import DataError
from emobox.extraction.extract import extract_stats
from emobox.extraction.precision import cpu_native_bf16
from emobox.upstreams.ssl_model import SSLEncoder, WaveformNorm

from extract_fakes import FrameUpstream, tone_corpus

import openvino  # (in the test extra: a missing install fails, never skips)


def tiny_wavlm_large(seed: int = 0) -> SSLEncoder:
    """A pre-norm (stable layer norm) WavLM with a layer-norm feature encoder: padding-
    insensitive, so unequal lengths are batched with an attention mask."""
    import torch

    torch.manual_seed(seed)
    cfg = transformers.WavLMConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_buckets=32,
        max_bucket_distance=80)
    model = transformers.WavLMModel(cfg).eval()
    return SSLEncoder("wavlm_large", model, normalize=WaveformNorm("layer-norm"),
                      padding_sensitive=False, checkpoint_id="tiny-wavlm")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # unequal lengths (masked batches), two equal ones (an unmasked batch) and a long one
    seconds = [0.6, 0.7, 0.75, 1.2, 1.2, 1.3, 2.9, 0.45]
    return tone_corpus(tmp_path_factory.mktemp("ov"), seconds)


LAYERS = [0, 2, 3]  # the input of the first block, a middle block, and the final-norm output


@pytest.fixture(scope="module")
def torch_store(corpus, tmp_path_factory):
    return extract_stats(tiny_wavlm_large(), corpus, LAYERS,
                         store_dir=tmp_path_factory.mktemp("torch")).store


def frames(store, layer):
    keys, offsets, lengths = store.index()
    arr = np.asarray(store.layer(layer), np.float32)
    return {k: arr[o: o + n] for k, o, n in zip(keys, offsets, lengths)}


def test_openvino_features_agree_with_torch_and_the_store_says_who_made_them(
        corpus, torch_store, tmp_path, monkeypatch):
    conversions = []
    real_convert = openvino.convert_model
    monkeypatch.setattr(openvino, "convert_model",
                        lambda *a, **k: conversions.append(1) or real_convert(*a, **k))
    up = tiny_wavlm_large()
    stats = extract_stats(up, corpus, LAYERS, store_dir=tmp_path, runtime="openvino")
    store = stats.store
    # the same store key: fp32 features of both runtimes agree within the exactness tolerance
    assert store.path.name == torch_store.path.name
    for L in LAYERS:
        np.testing.assert_allclose(store.pooled(L), torch_store.pooled(L), atol=1e-4, rtol=0)
        ov, ref = frames(store, L), frames(torch_store, L)
        assert ov.keys() == ref.keys()
        for k in ref:
            assert ov[k].shape == ref[k].shape
            # fp16 storage: one rounding step of the value apart at most
            np.testing.assert_allclose(ov[k], ref[k], rtol=2e-3, atol=2e-3)
        engine = store.engine(L)
        assert engine["runtime"] == f"openvino {runtime_mod.openvino_version()} (CPU, f32)"
        assert "conv_feature_encoder" not in engine  # OpenVINO traced the stock modules
        assert "runtime" not in torch_store.engine(L)
    assert not [n for n in stats.notes if "openvino" in n.lower()]
    assert len(conversions) == 2  # equal lengths, and padded with a mask
    # another extraction with the same upstream in this process: no new conversion
    again = extract_stats(up, corpus, LAYERS, store_dir=tmp_path / "again", runtime="openvino")
    assert len(conversions) == 2
    assert again.store.engine(3)["runtime"] == store.engine(3)["runtime"]
    np.testing.assert_allclose(again.store.pooled(3), store.pooled(3), atol=1e-6, rtol=0)


def tiny_whisper(mode: str):
    import torch
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from emobox.upstreams.whisper.model import WhisperUpstream

    torch.manual_seed(0)
    cfg = transformers.WhisperConfig(d_model=32, encoder_layers=3, encoder_attention_heads=2,
                                     encoder_ffn_dim=128, num_mel_bins=80,
                                     max_source_positions=1500)
    return WhisperUpstream("whisper_test", WhisperEncoder(cfg).eval(), mode=mode,
                           checkpoint_id="t")


@pytest.mark.parametrize("mode", ["faithful", "trimmed"])
def test_whisper_runs_on_openvino_in_both_modes(corpus, tmp_path, mode):
    """Faithful mode: 30-s windows, no mask. Trimmed mode: each batch padded to its longest
    clip, with a mask (the corpus's unequal lengths are batched together)."""
    ref = extract_stats(tiny_whisper(mode), corpus, [1, 3], store_dir=tmp_path / "t").store
    ov = extract_stats(tiny_whisper(mode), corpus, [1, 3], store_dir=tmp_path / "o",
                       runtime="openvino")
    assert ov.store.path.name == ref.path.name  # the same store key as torch's
    for L in (1, 3):
        np.testing.assert_allclose(ov.store.pooled(L), ref.pooled(L), atol=1e-4, rtol=0)
        for key, want in frames(ref, L).items():
            np.testing.assert_allclose(frames(ov.store, L)[key], want, atol=2e-3, rtol=2e-3)
    assert ov.store.engine(3)["runtime"].startswith("openvino ")
    assert not any("openvino" in n for n in ov.notes), ov.notes


@pytest.mark.parametrize("extractor_mode", ["layer_norm", "default"])
def test_data2vec2_and_emotion2vec_run_on_openvino(corpus, tmp_path, extractor_mode):
    """The data2vec 2.0 encoder with emotion2vec's extra tokens: with a layer-norm CNN unequal
    lengths are batched with a mask, with the group-norm CNN ("default", padding-sensitive)
    only equal lengths are."""
    import dataclasses

    from test_upstream_data2vec2 import TINY, tiny_upstream

    cfg = dataclasses.replace(TINY, extractor_mode=extractor_mode)
    assert cfg.num_extra_tokens == 2 and cfg.padding_sensitive == (extractor_mode == "default")
    ref = extract_stats(tiny_upstream(cfg), corpus, [0, 3], store_dir=tmp_path / "t").store
    ov = extract_stats(tiny_upstream(cfg), corpus, [0, 3], store_dir=tmp_path / "o",
                       runtime="openvino")
    assert ov.store.path.name == ref.path.name
    for L in (0, 3):
        np.testing.assert_allclose(ov.store.pooled(L), ref.pooled(L), atol=1e-4, rtol=0)
        for key, want in frames(ref, L).items():
            np.testing.assert_allclose(frames(ov.store, L)[key], want, atol=2e-3, rtol=2e-3)
    assert ov.store.engine(3)["runtime"].startswith("openvino "), ov.notes
    assert not any("openvino" in n for n in ov.notes), ov.notes


def test_openvino_output_that_disagrees_with_torch_is_not_used(corpus, torch_store, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(runtime_mod, "EXACT_TOLERANCE", 0.0)  # any difference is too much
    stats = extract_stats(tiny_wavlm_large(), corpus, [3], store_dir=tmp_path,
                          runtime="openvino")
    (note,) = [n for n in stats.notes if "--runtime openvino" in n]
    assert note.startswith("--runtime openvino: wavlm_large: OpenVINO was not used, its "
                           "features differ from torch's by up to ")
    assert note.endswith("on the first batch (allowed: 0.00e+00); torch computed the features")
    runtime = stats.store.engine(3)["runtime"]
    assert runtime.startswith(f"torch (openvino {runtime_mod.openvino_version()} refused: its "
                              f"features differ from torch's by up to ")
    # what was stored is torch's
    np.testing.assert_allclose(stats.store.pooled(3), torch_store.pooled(3), atol=1e-5, rtol=0)


def test_a_later_batch_that_disagrees_stops_the_extraction_and_discards_it(
        corpus, torch_store, tmp_path, monkeypatch):
    """Batches 2, 4, 8... are compared again; one that disagrees (here: the second check)
    stops the run, and nothing OpenVINO computed is kept for a resume to build on."""
    real = runtime_mod.OpenVINORuntime._disagreement
    seen = []

    def second_check_fails(self, ref, got, where=""):
        seen.append(real(self, ref, got, where))
        return "" if len(seen) == 1 else "its features differ from torch's by up to 9.99e-01"

    monkeypatch.setattr(runtime_mod.OpenVINORuntime, "_disagreement", second_check_fails)
    with pytest.raises(DataError) as err:
        extract_stats(tiny_wavlm_large(), corpus, [3], store_dir=tmp_path, runtime="openvino",
                      batch_seconds=0.5)  # one clip a batch: every batch of one kind
    assert seen[0] == ""  # the first batch did agree
    assert str(err.value) == (
        "--runtime openvino: wavlm_large: on batch 2 of its kind its features differ from "
        "torch's by up to 9.99e-01; the features this extraction computed are discarded: run "
        "it again with --runtime torch")
    (store_path,) = [p for p in tmp_path.glob("*/*/*") if p.is_dir()]
    assert not (store_path / ".partial").exists() and not (store_path / "meta.json").exists()
    monkeypatch.undo()
    again = extract_stats(tiny_wavlm_large(), corpus, [3], store_dir=tmp_path)
    assert again.resumed_at == 0
    np.testing.assert_array_equal(again.store.pooled(3), torch_store.pooled(3))


def test_an_upstream_without_a_graph_runs_on_torch_with_a_note(corpus, tmp_path):
    stats = extract_stats(FrameUpstream(), corpus, [1], store_dir=tmp_path, runtime="openvino")
    assert ("--runtime openvino: toy_frames has no graph for OpenVINO; torch computed its "
            "features") in stats.notes
    assert "runtime" not in stats.store.engine(1)
    ref = extract_stats(FrameUpstream(), corpus, [1], store_dir=tmp_path / "t").store
    np.testing.assert_array_equal(stats.store.pooled(1), ref.pooled(1))


def test_bf16_records_the_precision_openvino_computed_in(corpus, tmp_path):
    stats = extract_stats(tiny_wavlm_large(), corpus.subset(corpus.keys[:3]), [3],
                          store_dir=tmp_path, runtime="openvino", precision="bf16")
    used = "bf16" if cpu_native_bf16() else "f32"
    assert stats.store.engine(3)["runtime"].endswith(f"(CPU, {used})")
    assert stats.store.meta["precision"] == "bf16"


def test_runtime_flag_errors_are_one_line(cli, tmp_path, monkeypatch):
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "--runtime", "tpu",
              "--out", str(tmp_path / "a"))
    assert res.code != 0
    assert "error: --runtime must be one of torch, openvino (got 'tpu')" in res.err
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed
    res = cli("run", "-u", "fbank", "-c", "demo", "-d", "linear_probe", "--runtime", "openvino",
              "--out", str(tmp_path / "b"))
    assert res.code != 0
    assert ("error: --runtime openvino needs the openvino package: pip install openvino"
            in res.err)
    assert not (tmp_path / "b").exists()  # refused before any work
    res = cli("extract", "-u", "fbank", "-c", "demo", "--runtime", "openvino")
    assert res.code != 0 and "needs the openvino package" in res.err


def test_openvino_is_refused_on_a_gpu_and_named_in_the_summary_line():
    from emobox.errors import EmoboxUsageError
    from emobox.tracks.runner import engine_words

    with pytest.raises(EmoboxUsageError) as err:
        runtime_mod.check_runtime("openvino", "cuda:0")
    assert str(err.value) == ("--runtime openvino runs on the CPU; --device cuda:0 runs torch "
                              "(drop one of the two)")
    words = engine_words({"precision": "fp32", "runtime": "openvino 2026.4.1 (CPU, f32)",
                          "device": "cpu", "threads": 2})
    assert words == "fp32, computed by openvino 2026.4.1 (CPU, f32), on cpu, 2 threads"
