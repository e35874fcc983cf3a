"""wav2vec2 / HuBERT / WavLM / data2vec upstreams on tiny random configs of the real classes.

Tolerances: padding-insensitive models give the same features batched (zero-padded with an
attention mask) as alone within 1e-5 absolute (float32 reduction order); the padding-sensitive
ones are never padded by ``forward`` and differ by more than 1e-2 when forced to.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from emobox import CheckpointNotFoundError, EmoboxUsageError
from emobox.plugins import get_registry
from emobox.upstreams.ssl_model import SSLEncoder, load_ssl

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)

# upstream name -> (transformers config and model classes, the variant's architecture flags)
ARCH = {
    "wav2vec2_base": ("Wav2Vec2Config", "Wav2Vec2Model",
                      dict(feat_extract_norm="group", do_stable_layer_norm=False)),
    "hubert_base": ("HubertConfig", "HubertModel",
                    dict(feat_extract_norm="group", do_stable_layer_norm=False)),
    "hubert_large": ("HubertConfig", "HubertModel",
                     dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    "wavlm_base": ("WavLMConfig", "WavLMModel",
                   dict(feat_extract_norm="group", do_stable_layer_norm=False, num_buckets=32,
                        max_bucket_distance=80)),
    "wavlm_large": ("WavLMConfig", "WavLMModel",
                    dict(feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=32,
                         max_bucket_distance=80)),
    "data2vec_base": ("Data2VecAudioConfig", "Data2VecAudioModel",
                      dict(conv_pos_kernel_size=5, num_conv_pos_embeddings=2)),
    "data2vec_large": ("Data2VecAudioConfig", "Data2VecAudioModel",
                       dict(conv_pos_kernel_size=5, num_conv_pos_embeddings=2)),
}
SECONDS = {1.0: 49, 7.3: 364, 35.0: 1749}  # conv stack (10,5)(3,2)x4(2,2)x2 on n samples


def tiny_model(name: str, seed: int = 0):
    cfg_cls, model_cls, flags = ARCH[name]
    torch.manual_seed(seed)
    kwargs = dict(TINY)
    kwargs.update(flags)
    config = getattr(transformers, cfg_cls)(**kwargs)
    return getattr(transformers, model_cls)(config).eval()


def tiny_upstream(name: str) -> SSLEncoder:
    spec = get_registry().upstream(name)
    from emobox.upstreams import data2vec, hubert, wav2vec2, wavlm

    variant = next(v for m in (wav2vec2, hubert, wavlm, data2vec) for v in m.VARIANTS
                   if v.name == name)
    assert spec.num_layers == variant.num_layers
    return SSLEncoder(name, tiny_model(name), normalize=variant.normalize,
                      padding_sensitive=variant.padding_sensitive, checkpoint_id="test")


def speech(seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(round(seconds * 16000))
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 150 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))
            + 0.05 * torch.randn(n, generator=g)).float()


@pytest.mark.parametrize("name", sorted(ARCH))
def test_shapes_and_frame_counts(name):
    up = tiny_upstream(name)
    wavs = [speech(s, i) for i, s in enumerate(SECONDS)]
    with torch.inference_mode():
        out = up(wavs, [0, up.num_layers])
    assert out.lengths.tolist() == list(SECONDS.values())
    assert [up.frames_for(len(w)) for w in wavs] == list(SECONDS.values())
    for layer in (0, up.num_layers):
        h = out.hidden[layer]
        assert h.shape == (3, 1749, 32) and h.dtype == torch.float32
        assert torch.isfinite(h).all()
    assert up.frames_for(100) == 1  # shorter than the 25-ms receptive field: one frame
    assert up([torch.zeros(100)], [1]).hidden[1].shape == (1, 1, 32)


@pytest.mark.parametrize("name", sorted(ARCH))
def test_layers_match_transformers_hidden_states(name):
    up = tiny_upstream(name)
    x = speech(1.0)
    with torch.inference_mode():
        prepared = up._prepare(x)
        ref = up.model(prepared[None], output_hidden_states=True).hidden_states
        out = up([x], "all")
    assert len(ref) == up.num_layers + 1
    for layer in range(up.num_layers + 1):
        torch.testing.assert_close(out.hidden[layer], ref[layer], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(ARCH))
def test_blocks_beyond_the_requested_layer_do_not_run(name):
    up = tiny_upstream(name)
    calls = [0] * up.num_layers
    hooks = [blk.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, blk in enumerate(up.model.encoder.layers)]
    try:
        with torch.inference_mode():
            out = up([speech(1.0)], [1])
            assert calls == [1, 0, 0] and set(out.hidden) == {1}
            up([speech(1.0)], [0])
            assert calls == [1, 0, 0]
            up([speech(1.0)], None)  # default: the last layer
            assert calls == [2, 1, 1]
    finally:
        for h in hooks:
            h.remove()
    assert not up.model.encoder.layers[0]._forward_hooks  # our capture hooks are gone


@pytest.mark.parametrize("name", sorted(ARCH))
def test_batched_equals_one_at_a_time(name):
    up = tiny_upstream(name)
    wavs = [speech(1.3, 1), speech(0.4, 2), speech(2.0, 3), speech(0.4, 4)]
    with torch.inference_mode():
        batch = up(wavs, [0, 3])
        for i, w in enumerate(wavs):
            alone = up([w], [0, 3])
            n = int(alone.lengths[0])
            assert int(batch.lengths[i]) == n
            for layer in (0, 3):
                np.testing.assert_allclose(batch.hidden[layer][i, :n], alone.hidden[layer][0],
                                           atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(ARCH))
def test_padding_sensitivity_is_declared_truthfully(name):
    up = tiny_upstream(name)
    long, short = speech(1.0, 5), speech(0.45, 6)
    with torch.inference_mode():
        padded = up.encode_padded([up._prepare(long), up._prepare(short)], [3])[3][1]
        alone = up.encode_padded([up._prepare(short)], [3])[3][0]
    n = up.frames_for(len(short))
    diff = float((padded[:n] - alone).abs().max())
    if up.padding_sensitive:
        assert diff > 1e-2, f"{name} is declared padding-sensitive but padding changes nothing"
    else:
        assert diff < 1e-5, f"{name} changes with padding ({diff:.2e}) but is not declared so"
    assert get_registry().upstream(name).build is not None


def test_declared_sensitivity_per_upstream():
    sensitive = {n for n in ARCH if tiny_upstream(n).padding_sensitive}
    assert sensitive == {"wav2vec2_base", "hubert_base", "wavlm_base", "data2vec_base",
                         "data2vec_large"}


@pytest.mark.parametrize("name", sorted(ARCH))
def test_analytic_flops_match_torch_flop_counter(name):
    from torch.utils.flop_counter import FlopCounterMode

    up = tiny_upstream(name)
    if up.model.config._attn_implementation == "sdpa":  # the counter misses CPU SDPA kernels
        up.model.set_attn_implementation("eager")
    x = speech(2.0)
    with FlopCounterMode(display=False) as counter:  # (its module tracker needs autograd on)
        up([x], [up.num_layers])
    counted = counter.get_total_flops()
    assert 0.9 < up.flops(len(x)) / counted < 1.1
    assert up.flops(len(x), layer=1) < up.flops(len(x))


def test_normalisation_follows_the_fairseq_task_config():
    norm = {n: tiny_upstream(n).normalize for n in ARCH}
    assert norm == {"wav2vec2_base": False, "hubert_base": False, "hubert_large": True,
                    "wavlm_base": False, "wavlm_large": True, "data2vec_base": True,
                    "data2vec_large": True}
    up = tiny_upstream("hubert_large")
    x = speech(1.0)
    with torch.inference_mode():
        torch.testing.assert_close(up([x], [2]).hidden[2], up([3 * x + 0.1], [2]).hidden[2],
                                   atol=1e-4, rtol=1e-4)


def test_load_ssl_reads_a_transformers_folder(tmp_path):
    model = tiny_model("hubert_large", seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    up = load_ssl("hubert_large", tmp_path / "ckpt", "HubertModel", "hubert", num_layers=3,
                  hidden_size=32, normalize=True, padding_sensitive=False)
    assert up.checkpoint_id.startswith("sha256:")
    x = speech(1.0)
    with torch.inference_mode():
        ref = model(torch.nn.functional.layer_norm(x, x.shape)[None],
                    output_hidden_states=True).hidden_states[3]
        torch.testing.assert_close(up([x], [3]).hidden[3], ref)


def test_wrong_or_incomplete_checkpoints_are_refused(tmp_path):
    tiny_model("hubert_base").save_pretrained(tmp_path / "tiny")
    with pytest.raises(EmoboxUsageError, match=r"3 layers x 32, but hubert_base has 12 x 768"):
        get_registry().upstream("hubert_base").build(ckpt=str(tmp_path / "tiny"))
    with pytest.raises(EmoboxUsageError, match=r"'hubert' checkpoint, but wavlm_base needs"):
        get_registry().upstream("wavlm_base").build(ckpt=str(tmp_path / "tiny"))
    from safetensors.torch import load_file, save_file

    sd = load_file(tmp_path / "tiny" / "model.safetensors")
    sd.pop(next(k for k in sd if "encoder.layers.1.attention.k_proj.weight" in k))
    save_file(sd, tmp_path / "tiny" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EmoboxUsageError, match="not a complete hubert_base checkpoint, 1 "
                                               "weights are missing"):
        load_ssl("hubert_base", tmp_path / "tiny", "HubertModel", "hubert", num_layers=3,
                 hidden_size=32, normalize=False, padding_sensitive=True)
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        get_registry().upstream("hubert_base").build(ckpt=str(tmp_path / "nowhere"))
    with pytest.raises(EmoboxUsageError, match="takes no options"):
        get_registry().upstream("hubert_base").build(mode="trimmed")
