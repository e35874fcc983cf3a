"""data2vec 2.0 / emotion2vec port: frames, batching, layers, checkpoint conversion and lookup.

Tiny random configurations of the real architecture (7-layer CNN with the released strides,
narrow widths, few blocks); the agreement with FunASR's reference implementation is in
``test_upstream_data2vec2_funasr.py``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from emobox.errors import CheckpointNotFoundError, EmoboxUsageError
from emobox.upstreams import data2vec2 as plugin
from emobox.upstreams.data2vec2.ckpt import (
    AUDIO, CheckpointFormatError, convert_checkpoint, key_map, load_encoder)
from emobox.upstreams.data2vec2.net import (
    AttentionBias, D2v2Config, Data2Vec2Encoder, alibi_slopes, conv_output_length)
from emobox.upstreams.data2vec2.upstream import Data2Vec2Upstream

SPEC = "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16,2,2)] + [(16,2,2)]"
TINY = D2v2Config(
    conv_layers=((16, 10, 5),) + ((16, 3, 2),) * 4 + ((16, 2, 2),) * 2, embed_dim=24,
    num_heads=3, depth=2, prenet_depth=1, mlp_dim=40, conv_pos_depth=2, conv_pos_kernel=4,
    conv_pos_groups=4, num_extra_tokens=2, alibi_scale_shape=(1, 3))
ATOL = 2e-5  # fp32, batched vs alone and port vs reference


def tiny_encoder(cfg: D2v2Config = TINY, seed: int = 0) -> Data2Vec2Encoder:
    torch.manual_seed(seed)
    enc = Data2Vec2Encoder(cfg).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.2 * torch.randn_like(p))
        if enc.alibi_scale is not None:
            enc.alibi_scale.uniform_(-0.2, 1.5)  # a negative scale is clamped to 0
    return enc


def tiny_upstream(cfg: D2v2Config = TINY, seed: int = 0) -> Data2Vec2Upstream:
    return Data2Vec2Upstream("tiny", tiny_encoder(cfg, seed), "sha256:test")


def speech(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(16000 * seconds))) / 16000
    x = 0.3 * np.sin(2 * np.pi * 170 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2.5 * t))
    return torch.from_numpy((x + 0.05 * rng.standard_normal(len(t))).astype(np.float32))


def fairseq_checkpoint(enc: Data2Vec2Encoder, spec: str = SPEC, with_cfg: bool = True) -> dict:
    """The encoder's weights laid out as a fairseq data2vec 2.0 pre-training checkpoint."""
    cfg = enc.cfg
    ours = enc.state_dict()
    model = {src: ours[dst].clone() for src, dst in key_map(cfg).items()}
    model[AUDIO + "alibi_scale"] = model[AUDIO + "alibi_scale"].reshape(
        cfg.alibi_scale_shape[0], 1, cfg.alibi_scale_shape[1], 1, 1)
    model[AUDIO + "decoder.blocks.0.0.weight"] = torch.randn(8, 6, 3)  # pre-training only
    model[AUDIO + "decoder.proj.weight"] = torch.randn(24, 8)
    model["_ema"] = {"blocks.0.attn.qkv.weight": torch.randn(72, 24, dtype=torch.float64)}
    out = {"model": model}
    if with_cfg:
        out["cfg"] = {
            "model": {"_name": "data2vec_multi", "depth": cfg.depth, "num_heads": cfg.num_heads,
                      "embed_dim": cfg.embed_dim, "norm_eps": cfg.norm_eps,
                      "layer_norm_first": False,
                      "modalities": {"audio": {"feature_encoder_spec": spec,
                                               "prenet_depth": cfg.prenet_depth,
                                               "num_extra_tokens": cfg.num_extra_tokens,
                                               "extractor_mode": "layer_norm"}}},
            "task": {"_name": "audio_pretraining", "normalize": cfg.normalize}}
    return out


# -- frames and shapes -----------------------------------------------------------------------
@pytest.mark.parametrize("seconds, frames", [(1.0, 49), (7.3, 364), (35.0, 1749)])
def test_frame_counts_and_shapes(seconds, frames):
    up = tiny_upstream()
    n = int(round(16000 * seconds))
    assert up.frames_for(n) == frames
    out = up([speech(seconds)], "all")
    assert sorted(out.hidden) == list(range(4))
    for h in out.hidden.values():
        assert h.shape == (1, frames, 24) and h.dtype == torch.float32
        assert torch.isfinite(h).all()
    assert out.lengths.tolist() == [frames] and out.lengths.dtype == torch.int64


def test_short_inputs_give_one_frame():
    up = tiny_upstream()
    assert up.frames_for(399) == up.frames_for(0) == 1 and up.frames_for(400) == 1
    assert up.frames_for(720) == 2
    out = up([speech(0.01), torch.zeros(0)], [0, 3])
    assert out.lengths.tolist() == [1, 1] and out.hidden[3].shape == (2, 1, 24)
    assert up.frame_rate == 50.0 and up.num_layers == 3 and up.hidden_size == 24


def test_batched_equals_one_at_a_time():
    """Padding changes nothing: CNN frames, attention and the positional convolutions."""
    up = tiny_upstream()
    assert up.padding_sensitive is False
    wavs = [speech(1.0, 1), speech(0.37, 2), speech(2.13, 3)]
    batch = up(wavs, "all")
    assert batch.lengths.tolist() == [49, 18, 106]
    for i, w in enumerate(wavs):
        alone = up([w], "all")
        n = int(alone.lengths[0])
        for layer in range(4):
            torch.testing.assert_close(batch.hidden[layer][i, :n], alone.hidden[layer][0],
                                       atol=ATOL, rtol=0)


def test_group_norm_cnn_is_flagged_padding_sensitive():
    cfg = dataclasses.replace(TINY, extractor_mode="default")
    up = tiny_upstream(cfg)
    assert up.padding_sensitive is True
    wavs = [speech(1.0, 1), speech(0.4, 2)]
    batched = up(wavs, [0]).hidden[0][1, :19]
    alone = up([wavs[1]], [0]).hidden[0][0]
    assert (batched - alone).abs().max() > 1e-3  # why the extractor must not pad for it


def test_each_waveform_is_normalised_before_the_cnn():
    up = tiny_upstream()
    raw = Data2Vec2Upstream("raw", tiny_encoder(dataclasses.replace(TINY, normalize=False)), "x")
    w = speech(0.8)
    normalised = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-5)
    torch.testing.assert_close(up([w], [3]).hidden[3], raw([normalised], [3]).hidden[3],
                               atol=ATOL, rtol=0)
    # so a DC offset is removed (the CNN has no bias: without normalisation it would matter)
    torch.testing.assert_close(up([w + 0.4], [3]).hidden[3], up([w], [3]).hidden[3],
                               atol=1e-4, rtol=0)
    assert (raw([w + 0.4], [3]).hidden[3] - raw([w], [3]).hidden[3]).abs().max() > 1e-2


# -- layers ----------------------------------------------------------------------------------
def test_layer_selection_and_no_block_beyond_the_highest():
    up = tiny_upstream()
    w = [speech(0.9)]
    full = up(w, "all")
    calls = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: calls.append(k))
             for k, b in enumerate(up.encoder.blocks)]
    try:
        part = up(w, [1, 0])
    finally:
        for h in hooks:
            h.remove()
    assert sorted(part.hidden) == [0, 1] and calls == [0]
    torch.testing.assert_close(part.hidden[1], full.hidden[1], atol=0, rtol=0)
    assert set(up(w, None).hidden) == {3}
    torch.testing.assert_close(up(w, -2).hidden[2], full.hidden[2])
    with pytest.raises(EmoboxUsageError, match="layers 0..3"):
        up(w, [4])


def test_layer_zero_is_the_normalised_block_input_without_extra_tokens():
    enc = tiny_encoder()
    up = Data2Vec2Upstream("tiny", enc, "x")
    seen = {}
    enc.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    h0 = up([speech(0.5)], [0, 1]).hidden[0]
    assert seen["x"].shape[1] == h0.shape[1] + TINY.num_extra_tokens
    torch.testing.assert_close(seen["x"][:, TINY.num_extra_tokens:], h0)


# -- attention against a plain re-implementation ---------------------------------------------
def reference_block(block, x, slopes, n_extra, pad=None):
    """fairseq's AltBlock (post-norm) with the ALiBi matrix written out in full."""
    B, T, D = x.shape
    H = block.heads
    q, k, v = block.attn_in(x).reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
    attn = (q * (D // H) ** -0.5) @ k.transpose(-2, -1)
    pos = torch.arange(T) - n_extra
    bias = -(pos[:, None] - pos[None, :]).abs().float()
    bias[:n_extra, :] = 0
    bias[:, :n_extra] = 0
    attn = attn + slopes[None, :, None, None] * bias
    if pad is not None:
        attn = attn.masked_fill(pad[:, None, None, :], float("-inf"))
    a = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
    x = block.attn_norm(x + block.attn_out(a))
    return block.ffn_norm(x + block.ffn_out(torch.nn.functional.gelu(block.ffn_in(x))))


@pytest.mark.parametrize("max_elements", [1 << 26, 500])  # one chunk, then many query chunks
def test_block_matches_the_written_out_reference(max_elements, monkeypatch):
    enc = tiny_encoder()
    monkeypatch.setattr(AttentionBias, "max_elements", max_elements)
    x = torch.randn(2, 31, 24)
    pad = torch.zeros(2, 31, dtype=torch.bool)
    pad[1, 20:] = True
    slopes = enc.block_slopes(1)
    bias = AttentionBias(31, 2, pad, x.device, x.dtype)
    bias.slopes = slopes
    with torch.no_grad():
        ours = enc.blocks[1](x, bias)
        ref = reference_block(enc.blocks[1], x, slopes, 2, pad)
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def test_alibi_slopes_follow_the_geometric_rule():
    assert alibi_slopes(8) == pytest.approx([2 ** -(i + 1) for i in range(8)])
    s12 = alibi_slopes(12)  # 8 from the power of two, then every other one of 16
    assert s12[:8] == pytest.approx(alibi_slopes(8))
    assert s12[8:] == pytest.approx([2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5])
    assert len(alibi_slopes(16)) == 16 and alibi_slopes(16)[0] == pytest.approx(2 ** -0.5)


# -- checkpoints -----------------------------------------------------------------------------
def test_key_map_uses_fairseq_names():
    cfg = dataclasses.replace(TINY, conv_layers=((16, 10, 5), (16, 3, 2)), depth=1,
                              prenet_depth=1, conv_pos_depth=1, num_extra_tokens=1)
    a = AUDIO
    blk = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
           "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
           "mlp.fc2.weight", "mlp.fc2.bias"]
    expected = {
        a + "local_encoder.conv_layers.0.0.weight", a + "local_encoder.conv_layers.0.2.1.weight",
        a + "local_encoder.conv_layers.0.2.1.bias", a + "local_encoder.conv_layers.1.0.weight",
        a + "local_encoder.conv_layers.1.2.1.weight", a + "local_encoder.conv_layers.1.2.1.bias",
        a + "project_features.1.weight", a + "project_features.1.bias",
        a + "project_features.2.weight", a + "project_features.2.bias",
        a + "relative_positional_encoder.1.0.weight", a + "relative_positional_encoder.1.0.bias",
        a + "extra_tokens", a + "alibi_scale",
        a + "context_encoder.norm.weight", a + "context_encoder.norm.bias",
        *(a + "context_encoder.blocks.0." + k for k in blk), *("blocks.0." + k for k in blk)}
    mapping = key_map(cfg)
    assert set(mapping) == expected
    assert set(mapping.values()) == set(Data2Vec2Encoder(cfg).state_dict())


def test_converter_round_trip_through_a_fairseq_checkpoint(tmp_path):
    enc = tiny_encoder()
    path = tmp_path / "base_libri.pt"
    torch.save(fairseq_checkpoint(enc), path)
    loaded, ignored = load_encoder(path, D2v2Config())
    assert loaded.cfg == enc.cfg
    assert ignored == [AUDIO + "decoder.blocks.0.0.weight", AUDIO + "decoder.proj.weight"]
    w = speech(1.3)[None]
    with torch.no_grad():
        a, fa = enc(w, torch.tensor([w.shape[1]]), range(4))
        b, fb = loaded(w, torch.tensor([w.shape[1]]), range(4))
    assert fa.tolist() == fb.tolist() == [64]
    for layer in range(4):
        torch.testing.assert_close(a[layer], b[layer], atol=0, rtol=0)


def test_converted_folder_loads_the_same_weights(tmp_path, capsys):
    from emobox.upstreams.data2vec2.ckpt import main

    enc = tiny_encoder(seed=3)
    torch.save(fairseq_checkpoint(enc), tmp_path / "large_vox.pt")
    assert main([str(tmp_path / "large_vox.pt"), str(tmp_path / "converted")]) == 0
    assert "3 blocks of 24, 2 extra tokens" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.pt"), str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing.pt'}: not a readable")
    dst = tmp_path / "converted"
    meta = json.loads((dst / "config.json").read_text())
    assert meta["format"] == "emobox.data2vec2" and meta["config"]["prenet_depth"] == 1
    again, ignored = load_encoder(dst, D2v2Config())
    assert ignored == [] and again.cfg == enc.cfg
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, atol=0, rtol=0)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    ckpt = fairseq_checkpoint(tiny_encoder())
    del ckpt["model"]["blocks.1.mlp.fc2.bias"]
    ckpt["model"]["blocks.0.attn.rel_bias"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointFormatError) as err:
        load_encoder(tmp_path / "bad.pt", D2v2Config())
    msg = str(err.value)
    assert str(tmp_path / "bad.pt") in msg
    assert "missing keys: blocks.1.mlp.fc2.bias" in msg
    assert "unexpected keys: blocks.0.attn.rel_bias" in msg


def test_wrong_shapes_and_foreign_checkpoints_are_clear_errors(tmp_path):
    ckpt = fairseq_checkpoint(tiny_encoder())
    ckpt["model"]["blocks.0.mlp.fc1.bias"] = torch.zeros(41)
    torch.save(ckpt, tmp_path / "shape.pt")
    with pytest.raises(CheckpointFormatError, match=r"wrong shapes: blocks\.1\.ffn_in\.bias"):
        load_encoder(tmp_path / "shape.pt", D2v2Config())
    torch.save({"model": {"encoder.layers.0.weight": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointFormatError, match="not a data2vec 2.0 audio checkpoint"):
        load_encoder(tmp_path / "other.pt", D2v2Config())
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointFormatError, match="junk.pt: not a readable PyTorch"):
        load_encoder(tmp_path / "junk.pt", D2v2Config())


def test_sidecar_config_yaml_and_state_dict_only_file(tmp_path):
    """emotion2vec's release: a bare state dict, the config in FunASR's config.yaml."""
    enc = tiny_encoder(dataclasses.replace(TINY, normalize=False))
    torch.save(fairseq_checkpoint(enc, with_cfg=False)["model"], tmp_path / "emotion2vec_base.pt")
    (tmp_path / "config.yaml").write_text(
        "model: Emotion2vec\nmodel_conf:\n  depth: 2\n  num_heads: 3\n  norm_eps: 1.0e-05\n"
        "  normalize: false\n  modalities:\n    audio:\n"
        f"      feature_encoder_spec: '{SPEC}'\n")
    loaded, _ = load_encoder(tmp_path / "emotion2vec_base.pt", D2v2Config())
    assert loaded.cfg == enc.cfg and loaded.cfg.normalize is False


# -- lookup through the registry ---------------------------------------------------------------
@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache of the test's own."""
    import huggingface_hub.constants

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_missing_checkpoint_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch,
                                                                   hf_cache):
    monkeypatch.setenv("EMOBOX_MODELS", str(tmp_path / "models"))
    from emobox.plugin.registry import get_registry

    with pytest.raises(CheckpointNotFoundError) as err:
        get_registry().upstream("data2vec2_large").build()
    msg = str(err.value)
    assert str(tmp_path / "models" / "data2vec2_large") in msg
    assert "https://dl.fbaipublicfiles.com/fairseq/data2vec2/large_vox.pt" in msg
    with pytest.raises(CheckpointNotFoundError) as err:
        get_registry().upstream("emotion2vec_base").build()
    assert "Hugging Face cache (emotion2vec/emotion2vec_base@" in str(err.value)
    assert "hf download emotion2vec/emotion2vec_base" in str(err.value)
    with pytest.raises(CheckpointNotFoundError, match="nowhere.pt: does not exist"):
        get_registry().upstream("data2vec2_base").build(ckpt=tmp_path / "nowhere.pt")


def test_cli_reports_a_missing_checkpoint_in_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOBOX_MODELS", str(tmp_path / "models"))
    res = cli("run", "-u", "data2vec2_base", "-c", "demo", "-d", "linear_probe", "-q")
    assert res.code == 2, res
    assert res.err.startswith("error: no checkpoint for upstream 'data2vec2_base'")
    assert "Traceback" not in res.err


def test_build_from_emobox_models_and_from_the_hf_cache(tmp_path, monkeypatch, hf_cache):
    monkeypatch.setitem(plugin.SHAPES, "emotion2vec_base", (3, 24))
    monkeypatch.setenv("EMOBOX_MODELS", str(tmp_path / "models"))
    from emobox.plugin.registry import get_registry

    enc = tiny_encoder(seed=5)
    spec = get_registry().upstream("emotion2vec_base")
    snap = hf_cache / "models--emotion2vec--emotion2vec_base" / "snapshots" / plugin.E2V_REVISION
    snap.mkdir(parents=True)
    torch.save(fairseq_checkpoint(enc), snap / "emotion2vec_base.pt")
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(plugin.E2V_REVISION)
    from_hub = spec.build()
    assert from_hub.name == "emotion2vec_base" and from_hub.checkpoint_id.startswith("sha256:")
    folder = tmp_path / "models" / "emotion2vec_base"
    convert_checkpoint(snap / "emotion2vec_base.pt", folder)
    from_models = spec.build()
    w = [speech(0.6)]
    torch.testing.assert_close(from_hub(w, "all").hidden[3], from_models(w, "all").hidden[3],
                               atol=0, rtol=0)
    with pytest.raises(EmoboxUsageError, match="takes no --upstream-option"):
        spec.build(attention="flash")
    monkeypatch.setitem(plugin.SHAPES, "data2vec2_base", (12, 768))
    with pytest.raises(EmoboxUsageError, match="a 3-layer, 24-dim model, but data2vec2_base has "
                                               "12 layers of 768"):
        get_registry().upstream("data2vec2_base").build(ckpt=snap / "emotion2vec_base.pt")


def test_specs_declare_what_the_papers_used():
    from emobox.plugin.registry import get_registry

    reg = get_registry()
    base, large, e2v = (reg.upstream(n) for n in
                        ("data2vec2_base", "data2vec2_large", "emotion2vec_base"))
    assert (base.num_layers, base.hidden_size, base.frame_rate) == (12, 768, 50.0)
    assert (large.num_layers, large.hidden_size) == (24, 1024)
    assert "base_libri.pt" in base.checkpoint and "large_vox.pt" in large.checkpoint
    assert e2v.checkpoint.startswith("emotion2vec/emotion2vec_base") and len(e2v.revision) == 40
    assert {"iemocap", "meld", "mead", "msppodcast"} <= set(e2v.trained_on)
    assert base.trained_on == () and large.trained_on == ()
    from emobox.upstreams.data2vec2.upstream import preset

    for spec in (base, large, e2v):
        with torch.device("meta"):
            enc = Data2Vec2Encoder(preset(spec.name))
        assert sum(p.numel() for p in enc.parameters()) == spec.parameters
        assert (enc.cfg.num_layers, enc.cfg.embed_dim) == (spec.num_layers, spec.hidden_size)


def test_flops_grow_with_length_and_count_every_block():
    up = tiny_upstream()
    f1, f2 = up.flops(16000), up.flops(32000)
    assert 1.9 < f2 / f1 < 2.3
    cfg = TINY
    T = conv_output_length(16000, cfg.conv_layers) + cfg.num_extra_tokens
    block = 2 * T * 24 * (4 * 24 + 2 * 40) + 4 * T * T * 24
    assert up.flops(16000) - tiny_upstream(dataclasses.replace(cfg, depth=1)).flops(16000) \
        == pytest.approx(block)


def test_info_and_convert_commands_cover_the_family(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("EMOBOX_MODELS", str(tmp_path / "models"))
    res = cli("upstreams", "info", "data2vec2_base")
    assert res.code == 0 and "missing" in res.out and "base_libri.pt" in res.out
    (tmp_path / "models").mkdir()
    torch.save(fairseq_checkpoint(tiny_encoder(seed=6)), tmp_path / "models" / "data2vec2_base.pt")
    res = cli("upstreams", "info", "data2vec2_base")
    assert res.code == 0 and "present" in res.out
    res = cli("upstreams", "convert", "data2vec2_base", "--out", tmp_path / "conv")
    assert res.code == 0, res
    meta = json.loads((tmp_path / "conv" / "config.json").read_text())
    assert meta["format"] == "emobox.data2vec2" and meta["source"] == "data2vec2_base.pt"
    res = cli("upstreams", "convert", "data2vec2_base", "--out", tmp_path / "conv")
    assert res.code == 2 and "pass --overwrite" in res.err
