"""The time-major convolutional feature encoder: same features, swapped only where it is safe."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from emobox.extraction.extract import extract
from emobox.extraction import kernels
from emobox.extraction.kernels import (attention_kernel_name, channels_last_conv,
                                      conv_kernel_name, fused_wavlm_attention)
from extract_fakes import TinyHF, tone_corpus


def _tiny(model: str, norm: str = "layer", **extra):
    import transformers

    cfg_cls, model_cls = {
        "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"), "hubert": ("HubertConfig", "HubertModel"),
        "wavlm": ("WavLMConfig", "WavLMModel"),
        "data2vec": ("Data2VecAudioConfig", "Data2VecAudioModel")}[model]
    torch.manual_seed(0)
    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
              conv_dim=(24,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    if model != "data2vec":
        kw.update(feat_extract_norm=norm, conv_bias=True)
    kw.update(extra)
    return getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**kw)).eval()


@pytest.mark.parametrize("model", ["wav2vec2", "hubert", "wavlm", "data2vec"])
def test_layer_norm_stacks_give_the_stock_features(model):
    net = _tiny(model)
    torch.manual_seed(1)
    x = torch.randn(3, 16000)
    with torch.inference_mode():
        stock = net(x, output_hidden_states=True).hidden_states
        with channels_last_conv(net) as swapped:
            fast = net(x, output_hidden_states=True).hidden_states
    assert swapped == 1
    for a, b in zip(stock, fast):  # exact mode's bound: within 1e-4 of the stock features
        assert (a - b).abs().max() <= 1e-4, (a - b).abs().max()
    assert any((a != b).any() for a, b in zip(stock, fast))  # it did take the other path
    # the stock forward is back
    encoder = next(m for m in net.modules() if type(m).__name__.endswith("FeatureEncoder"))
    assert "forward" not in encoder.__dict__


def test_group_norm_stacks_and_hooked_modules_are_left_alone():
    # no transposes to save there: swapped only when asked (low precision on a CPU)
    assert conv_kernel_name(_tiny("wav2vec2", "group")) is None
    net = _tiny("wav2vec2")
    assert conv_kernel_name(net) is not None
    seen = []
    net.feature_extractor.conv_layers[3].register_forward_hook(lambda *a: seen.append(1))
    with torch.inference_mode(), channels_last_conv(net) as swapped:
        net(torch.randn(1, 8000))
    assert swapped == 0 and seen == [1]  # the hook still ran: the stock modules did


@pytest.mark.parametrize("model", ["wav2vec2", "hubert", "wavlm"])
def test_group_norm_stacks_time_major_give_the_stock_features(model):
    net = _tiny(model, "group")
    assert conv_kernel_name(net, group_norm=True) == \
        "time-major matmul (group-norm convolution stacks)"
    assert conv_kernel_name(_tiny(model), group_norm=True) == \
        "time-major matmul (layer-norm convolution stacks)"
    torch.manual_seed(1)
    x = torch.randn(2, 16000) * torch.tensor([[0.1], [3.0]])
    with torch.inference_mode():
        stock = net(x, output_hidden_states=True).hidden_states
        with channels_last_conv(net, group_norm=True) as swapped:
            fast = net(x, output_hidden_states=True).hidden_states
        with channels_last_conv(net) as left:  # not asked: the stock modules
            again = net(x, output_hidden_states=True).hidden_states
    assert swapped == 1 and left == 0
    for a, b, c in zip(stock, fast, again):
        assert (a - b).abs().max() <= 1e-4, (a - b).abs().max()
        assert torch.equal(a, c)
    assert any((a != b).any() for a, b in zip(stock, fast))


def test_bf16_extraction_runs_group_norm_stacks_time_major_and_fp32_does_not(tmp_path):
    corpus = tone_corpus(tmp_path / "c", [0.8, 1.3, 1.0])
    exact = extract(TinyHF("group"), corpus, [1], store_dir=tmp_path / "exact")
    fast = extract(TinyHF("group"), corpus, [1], store_dir=tmp_path / "bf16", precision="bf16")
    assert "conv_feature_encoder" not in exact.meta["engine"]
    assert fast.meta["engine"]["conv_feature_encoder"] == \
        "time-major matmul (group-norm convolution stacks)"
    a = np.asarray(exact.layer(1), np.float32)
    b = np.asarray(fast.layer(1), np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert a.shape == b.shape and cos.min() > 0.99


@pytest.mark.parametrize("bias", [True, False])
def test_a_time_major_block_is_the_convolution_in_pieces(monkeypatch, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 5, kernel_size=3, stride=2, bias=bias)
    block = SimpleNamespace(conv=conv, activation=torch.tanh)
    x = torch.randn(2, 41, 6)  # [B, T, C]
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 3)  # 20 output frames: 6 full pieces and a part
    with torch.no_grad():
        want = torch.tanh(conv(x.transpose(1, 2))).transpose(1, 2)
        got = kernels._block_time_major(x, block, {}, last=True)
    assert got.shape == (2, 20, 5) and got.is_contiguous()
    assert torch.allclose(got, want, atol=1e-6)
    with torch.no_grad():  # off a CPU: each op once over the whole batch, the same values
        whole = kernels._block_time_major(x, block, {}, last=True, pieces=False)
    assert whole.shape == (2, 20, 5) and torch.allclose(whole, want, atol=1e-6)
    with pytest.raises(RuntimeError):  # shorter than one window: the convolution's own error
        kernels._block_time_major(torch.randn(1, 2, 6), block, {}, last=True)


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_stacks_in_small_pieces_give_the_whole_sequence_features(monkeypatch, norm):
    from emobox.extraction.precision import compute_context

    net = _tiny("wav2vec2", norm)
    torch.manual_seed(1)
    x = torch.randn(2, 9000) * torch.tensor([[0.1], [3.0]])
    runs = {}
    for rows in (10 ** 9, 7):  # the whole sequence in one piece, then pieces of 7 frames
        monkeypatch.setattr(kernels, "BLOCK_ROWS", rows)
        for precision in ("fp32", "bf16"):
            with compute_context(precision, "cpu"), \
                    channels_last_conv(net, group_norm=True) as swapped:
                assert swapped == 1
                runs[rows, precision] = net.feature_extractor(x)
    with torch.inference_mode():
        stock = net.feature_extractor(x)
    with compute_context("bf16", "cpu"):
        stock_bf16 = net.feature_extractor(x)
    whole, pieces = runs[10 ** 9, "fp32"], runs[7, "fp32"]
    assert (pieces - stock).abs().max() <= 1e-4 and (pieces - whole).abs().max() <= 1e-5
    whole, pieces = runs[10 ** 9, "bf16"], runs[7, "bf16"]
    assert pieces.dtype == whole.dtype == stock_bf16.dtype  # what the stock stack hands on
    for other in (whole, stock_bf16):
        cos = torch.nn.functional.cosine_similarity(pieces.float(), other.float(), dim=1)
        assert cos.min() > 0.999, cos.min()


def test_engine_uses_it_records_it_and_an_upstream_can_opt_out(tmp_path):
    corpus = tone_corpus(tmp_path / "c", [0.8, 1.3, 1.0, 2.1])
    up = TinyHF("layer")
    fast = extract(up, corpus, [2], store_dir=tmp_path / "fast")
    assert fast.meta["engine"]["conv_feature_encoder"].startswith("time-major matmul")
    up.fast_kernels = False
    stock = extract(up, corpus, [2], store_dir=tmp_path / "stock")
    assert "conv_feature_encoder" not in stock.meta["engine"]
    a = np.asarray(fast.layer(2), np.float32)
    b = np.asarray(stock.layer(2), np.float32)
    assert a.shape == b.shape and np.abs(a - b).max() <= 2e-3  # float16 storage: 1 ulp
    assert np.abs(fast.pooled(2) - stock.pooled(2)).max() <= 1e-5
    group = extract(TinyHF("group"), corpus, [1], store_dir=tmp_path / "group")
    assert "conv_feature_encoder" not in group.meta["engine"]
    assert json.loads((fast.path / "meta.json").read_text())["layers"]["2"]["engine"] == \
        fast.meta["engine"]


def test_bf16_autocast_runs_the_matmul_in_bf16_close_to_the_stock_path():
    from emobox.extraction.precision import compute_context

    net = _tiny("wavlm")
    x = torch.randn(2, 16000)
    with compute_context("bf16", "cpu"):
        stock = net(x).last_hidden_state.float()
        with channels_last_conv(net):
            fast = net(x).last_hidden_state.float()
    cos = torch.nn.functional.cosine_similarity(stock.flatten(0, 1), fast.flatten(0, 1), dim=-1)
    assert cos.min() > 0.99


def _padded(lengths):
    torch.manual_seed(1)
    wavs = [torch.randn(n) for n in lengths]
    x = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    mask = (torch.arange(x.shape[1])[None] < torch.tensor(lengths)[:, None]).long()
    return x, mask


@pytest.mark.parametrize("stable", [False, True])
def test_fused_wavlm_attention_gives_the_stock_features_of_a_padded_batch(stable):
    net = _tiny("wavlm", do_stable_layer_norm=stable, num_hidden_layers=3)
    x, mask = _padded([16000, 11000, 6400])
    frames = net._get_feat_extract_output_lengths(mask.sum(1)).tolist()
    with torch.inference_mode():
        stock = net(x, attention_mask=mask, output_hidden_states=True).hidden_states
        with fused_wavlm_attention(net) as swapped:
            fast = net(x, attention_mask=mask, output_hidden_states=True).hidden_states
    assert swapped == 3  # one attention per block
    for a, b in zip(stock, fast):  # each item's real frames: within exact mode's 1e-4
        for i, n in enumerate(frames):
            assert (a[i, :n] - b[i, :n]).abs().max() <= 1e-4
    assert any((a != b).any() for a, b in zip(stock, fast))  # it did take the other path
    assert all("forward" not in m.__dict__ for m in net.modules())  # the stock forward is back


def test_fused_wavlm_attention_swaps_all_blocks_or_none():
    assert attention_kernel_name(_tiny("wav2vec2")) is None  # transformers' own attention
    net = _tiny("wavlm", num_hidden_layers=3)
    assert attention_kernel_name(net) == "emobox fused sdpa"
    seen = []
    net.encoder.layers[1].attention.register_forward_hook(lambda *a: seen.append(1))
    assert attention_kernel_name(net) is None
    x, mask = _padded([8000, 6000])
    with torch.inference_mode(), fused_wavlm_attention(net) as swapped:
        net(x, attention_mask=mask)
    assert swapped == 0 and seen == [1]  # the hooked module ran, and so did the others, stock


def test_bf16_autocast_fused_wavlm_attention_stays_close_to_the_stock_path():
    from emobox.extraction.precision import compute_context

    net = _tiny("wavlm")
    x, mask = _padded([16000, 12000])
    with compute_context("bf16", "cpu"):
        stock = net(x, attention_mask=mask).last_hidden_state.float()
        with fused_wavlm_attention(net):
            fast = net(x, attention_mask=mask).last_hidden_state.float()
    cos = torch.nn.functional.cosine_similarity(stock[1, :37], fast[1, :37], dim=-1)
    assert cos.min() > 0.99


def test_with_bf16_weights_the_projections_run_as_one_matmul_and_stay_close():
    from torch.overrides import TorchFunctionMode

    from emobox.extraction.precision import compute_context, lowp_weights

    class Linears(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.rows = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.linear:
                self.rows.append(tuple(args[1].shape))
            return func(*args, **(kwargs or {}))

    net = _tiny("wavlm", num_hidden_layers=3)  # hidden size 32
    x, mask = _padded([16000, 12000])
    runs = {}
    for held in (False, True):  # autocast alone, then with the engine's bf16 weights
        with compute_context("bf16", "cpu"), fused_wavlm_attention(net), \
                (lowp_weights(net, "bf16") if held else torch.no_grad()), Linears() as seen:
            runs[held] = net(x, attention_mask=mask).last_hidden_state.float()
        assert seen.rows.count((96, 32)) == (3 if held else 0)  # one [q; k; v] per block
        assert seen.rows.count((32, 32)) == (3 if held else 12)  # out_proj (+ q, k, v)
    cos = torch.nn.functional.cosine_similarity(runs[True][1, :37], runs[False][1, :37], dim=-1)
    assert cos.min() > 0.999


def test_engine_records_the_fused_attention_and_an_upstream_can_opt_out(tmp_path):
    corpus = tone_corpus(tmp_path / "c", [0.8, 1.3, 1.0, 2.1])
    up = TinyHF("layer", arch="wavlm")
    up.model(torch.zeros(1, 4000), output_hidden_states=True)  # transformers adds its hooks
    fast = extract(up, corpus, [2], store_dir=tmp_path / "fast")
    assert fast.meta["engine"]["attention"] == "emobox fused sdpa"
    up.fast_kernels = False
    stock = extract(up, corpus, [2], store_dir=tmp_path / "stock")
    assert stock.meta["engine"]["attention"] == "eager"
    a = np.asarray(fast.layer(2), np.float32)
    b = np.asarray(stock.layer(2), np.float32)
    assert a.shape == b.shape and np.abs(a - b).max() <= 2e-3  # float16 storage: 1 ulp
    assert np.abs(fast.pooled(2) - stock.pooled(2)).max() <= 1e-5


class _Recorder:
    def __init__(self):
        self.events = []

    def log(self, message):
        self.events.append(("log", message))

    def task(self, description, total, unit=""):
        from contextlib import contextmanager

        from emobox.progress import Task

        @contextmanager
        def cm():
            self.events.append(("task", description))
            yield Task()
        return cm()


def test_bf16_on_a_cpu_without_native_bfloat16_warns_with_the_measured_ratio_first(
        tmp_path, monkeypatch):
    import emobox.extraction.precision as precision

    corpus = tone_corpus(tmp_path / "c", [0.8, 1.0])
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: False)
    monkeypatch.setattr(precision, "bf16_slowdown", lambda: 37.4)
    rec = _Recorder()
    extract(TinyHF("layer"), corpus, [1], store_dir=tmp_path / "s", precision="bf16",
            reporter=rec)
    warning = ("log", "warning: this CPU has no native bfloat16 (AVX512-BF16 or AMX): a bfloat16 "
                      "matmul measured 37x slower than float32 here, so bf16 extraction will be "
                      "slower than exact fp32 (use --precision fp32)")
    assert rec.events.index(warning) < [e[0] for e in rec.events].index("task")
    rec2 = _Recorder()  # the store is complete: nothing is extracted, nothing to warn about
    extract(TinyHF("layer"), corpus, [1], store_dir=tmp_path / "s", precision="bf16",
            reporter=rec2)
    assert not any("bfloat16" in str(e) for e in rec2.events)
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: True)
    rec3 = _Recorder()
    extract(TinyHF("layer"), corpus, [2], store_dir=tmp_path / "t", precision="bf16",
            reporter=rec3)
    assert not any("bfloat16" in str(e) for e in rec3.events)


def test_bf16_slowdown_is_a_measured_ratio():
    from emobox.extraction.precision import bf16_slowdown

    ratio = bf16_slowdown.__wrapped__(n=64, repeats=2)
    assert 0 < ratio < 10_000
