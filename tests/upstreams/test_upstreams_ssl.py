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
from emobox.plugin.registry import get_registry
from emobox.upstreams.common import feature_extractor_normalize, normalize_waveform
from emobox.upstreams.ssl_family import waveform_norm
from emobox.upstreams.ssl_model import SSLEncoder, WaveformNorm, load_ssl

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


def family_and_variant(name: str):
    from emobox.upstreams import data2vec, hubert, wav2vec2, wavlm

    for module in (wav2vec2, hubert, wavlm, data2vec):
        for v in module.VARIANTS:
            if v.name == name:
                return module.FAMILY, v
    raise KeyError(name)


def tiny_upstream(name: str, model=None) -> SSLEncoder:
    """``name``'s upstream on a tiny random model, with the waveform normalisation its build
    would choose for a checkpoint folder without preprocessor_config.json."""
    spec = get_registry().upstream(name)
    family, variant = family_and_variant(name)
    assert spec.num_layers == variant.num_layers
    method, source = waveform_norm(family, variant, None)
    return SSLEncoder(name, model if model is not None else tiny_model(name),
                      normalize=WaveformNorm(method, source),
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
    """Layers 0..N-1 are transformers' hidden_states; layer N is the encoder output
    (``last_hidden_state``), which for pre-norm models includes the final layer norm that
    transformers 5 leaves out of ``hidden_states[N]``."""
    up = tiny_upstream(name)
    x = speech(1.0)
    with torch.inference_mode():
        prepared = up._prepare(x)
        ref = up.model(prepared[None], output_hidden_states=True)
        out = up([x], "all")
    assert len(ref.hidden_states) == up.num_layers + 1
    for layer in range(up.num_layers):
        torch.testing.assert_close(out.hidden[layer], ref.hidden_states[layer], atol=1e-6,
                                   rtol=1e-5)
    torch.testing.assert_close(out.hidden[up.num_layers], ref.last_hidden_state, atol=1e-6,
                               rtol=1e-5)
    pre_norm = ARCH[name][2].get("do_stable_layer_norm", False)
    assert (up.final_norm is not None) == pre_norm


# every transformers class emobox wraps, post-norm and pre-norm ("stable layer norm")
LAST_HIDDEN_CASES = {
    "wav2vec2_base": {}, "wav2vec2_base/pre-norm": dict(feat_extract_norm="layer",
                                                        do_stable_layer_norm=True),
    "hubert_base": {}, "hubert_large": {},
    "wavlm_base": {}, "wavlm_large": {},
    "data2vec_base": {}, "data2vec_large": {},
}


@pytest.mark.parametrize("case", sorted(LAST_HIDDEN_CASES))
@pytest.mark.parametrize("do_normalize", [False, True])
def test_default_feature_is_last_hidden_state_of_what_emobox_fed(case, do_normalize):
    """The default layer, through the waveform normalisation, is what EmoBox's extraction
    computed: transformers' ``last_hidden_state`` of the feature extractor's output (for HuBERT:
    of fairseq's ``F.layer_norm`` input normalisation, as EmoBox ran it from fairseq)."""
    name = case.split("/")[0]
    cfg_cls, model_cls, flags = ARCH[name]
    torch.manual_seed(1)
    config = getattr(transformers, cfg_cls)(**{**TINY, **flags, **LAST_HIDDEN_CASES[case]})
    model = getattr(transformers, model_cls)(config).eval()
    family, variant = family_and_variant(name)
    if family.norm_from == "fairseq":
        method = "layer-norm" if do_normalize else "none"
    else:
        method = "feature-extractor" if do_normalize else "none"
    up = SSLEncoder(name, model, normalize=method, padding_sensitive=variant.padding_sensitive,
                    checkpoint_id="t")
    wavs = [speech(1.1, 3), 0.01 * speech(0.7, 4)]  # a quiet one: the epsilon matters
    fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize)
    with torch.inference_mode():
        out = up(wavs, None)
        for i, w in enumerate(wavs):
            if method == "layer-norm":
                inputs = torch.nn.functional.layer_norm(w, w.shape)[None]
            else:
                inputs = fe(w.numpy(), sampling_rate=16000, return_tensors="pt").input_values
            ref = model(inputs).last_hidden_state[0]
            n = int(out.lengths[i])
            assert n == ref.shape[0]
            torch.testing.assert_close(out.hidden[up.num_layers][i, :n], ref, atol=2e-5,
                                       rtol=1e-4)


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


def test_without_preprocessor_config_the_authors_setting_is_used():
    norm = {n: tiny_upstream(n).waveform_norm.method for n in ARCH}
    assert norm == {"wav2vec2_base": "none", "hubert_base": "none", "hubert_large": "layer-norm",
                    "wavlm_base": "none", "wavlm_large": "feature-extractor",
                    "data2vec_base": "feature-extractor", "data2vec_large": "feature-extractor"}
    assert "the model authors' setting (off" in tiny_upstream("wavlm_base").waveform_norm.source
    up = tiny_upstream("hubert_large")
    x = speech(1.0)
    with torch.inference_mode():
        torch.testing.assert_close(up([x], [2]).hidden[2], up([3 * x + 0.1], [2]).hidden[2],
                                   atol=1e-4, rtol=1e-4)


def test_load_ssl_reads_a_transformers_folder(tmp_path):
    model = tiny_model("hubert_large", seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    up = load_ssl("hubert_large", tmp_path / "ckpt", "HubertModel", "hubert", num_layers=3,
                  hidden_size=32, normalize="layer-norm", padding_sensitive=False)
    assert up.checkpoint_id.startswith("sha256:")
    x = speech(1.0)
    with torch.inference_mode():
        ref = model(torch.nn.functional.layer_norm(x, x.shape)[None]).last_hidden_state
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


# -- waveform normalisation: the checkpoint's preprocessor_config.json, as EmoBox loaded it ----

def tiny_spec(name: str):
    """``name``'s real spec and builder, with the tiny architecture (3 x 32) declared so that
    ``build`` accepts a tiny checkpoint folder."""
    import dataclasses

    from emobox.upstreams.ssl_family import _spec

    family, variant = family_and_variant(name)
    return _spec(family, dataclasses.replace(variant, num_layers=3, hidden_size=32))


def write_preprocessor(folder, **fields):
    import json

    config = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
              "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
              "return_attention_mask": True, "sampling_rate": 16000}
    config.update(fields)
    (folder / "preprocessor_config.json").write_text(json.dumps(config))


def test_feature_extractor_normalisation_is_transformers_own():
    """Same values as Wav2Vec2FeatureExtractor (epsilon 1e-7), not F.layer_norm's 1e-5: on quiet
    audio the two differ by far more than rounding."""
    for x in (speech(1.3, 2), 1e-3 * speech(0.8, 3), torch.zeros(500)):
        ref = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)(
            x.numpy(), sampling_rate=16000).input_values[0]
        ours = feature_extractor_normalize(x)
        assert ours.dtype == torch.float32 and ours.shape == x.shape
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6, atol=1e-6)
    quiet = 1e-3 * speech(0.8, 3)
    assert float((feature_extractor_normalize(quiet) - normalize_waveform(quiet)).abs().max()) > 0.1


@pytest.mark.parametrize("name, do_normalize", [("wav2vec2_base", True), ("wavlm_base", True),
                                                ("wavlm_large", False), ("data2vec_base", False)])
def test_preprocessor_config_decides_the_normalisation(tmp_path, name, do_normalize):
    """Where the file says otherwise than the model authors' setting, the file wins, as it did
    in EmoBox's AutoFeatureExtractor; the features equal transformers' own pipeline's."""
    folder = tmp_path / "ckpt"
    model = tiny_model(name, seed=2)
    model.save_pretrained(folder)
    write_preprocessor(folder, do_normalize=do_normalize)
    _, variant = family_and_variant(name)
    assert variant.normalize != do_normalize  # the authors' setting is the other one
    up = tiny_spec(name).build(ckpt=str(folder))
    assert up.store_options == {"input_norm": "feature-extractor" if do_normalize else "none"}
    assert up.waveform_norm.source == (f"{folder / 'preprocessor_config.json'} (do_normalize: "
                                       f"{str(do_normalize).lower()})")
    fe = transformers.AutoFeatureExtractor.from_pretrained(str(folder))
    x = 0.02 * speech(0.9, 5)
    with torch.inference_mode():
        ref = model(**fe(x.numpy(), sampling_rate=16000, return_tensors="pt")).last_hidden_state
        torch.testing.assert_close(up([x], None).hidden[3], ref, atol=2e-5, rtol=1e-4)


def test_without_the_file_the_authors_setting_is_used_and_named(tmp_path):
    folder = tmp_path / "ckpt"
    tiny_model("wav2vec2_base").save_pretrained(folder)
    up = tiny_spec("wav2vec2_base").build(ckpt=str(folder))
    assert up.waveform_norm.method == "none"
    assert up.waveform_norm.source == (f"the model authors' setting (off; no "
                                       f"preprocessor_config.json in {folder})")


def test_hubert_keeps_fairseqs_setting_whatever_the_file_says(tmp_path):
    """EmoBox ran HuBERT from fairseq's checkpoints (task.normalize, F.layer_norm), so the
    transformers port's preprocessor_config.json is not read."""
    for name, method in (("hubert_base", "none"), ("hubert_large", "layer-norm")):
        folder = tmp_path / name
        tiny_model(name).save_pretrained(folder)
        write_preprocessor(folder, do_normalize=method == "none")
        up = tiny_spec(name).build(ckpt=str(folder))
        assert up.waveform_norm.method == method
        assert "task.normalize of fairseq's checkpoint" in up.waveform_norm.source


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, found list"),
    ('{"do_normalize": "yes"}', "do_normalize must be true or false, not 'yes'"),
    ('{"do_normalize": 1}', "do_normalize must be true or false, not 1"),
    ('{"sampling_rate": 8000}', "sampling_rate is 8000; the encoder takes 16000 Hz audio"),
    ('{"feature_size": 80}', "feature_size is 80; a waveform has 1"),
    ('{"feature_extractor_type": "WhisperFeatureExtractor"}',
     "feature_extractor_type is 'WhisperFeatureExtractor'"),
    ("\xff\xfe", "not valid JSON"),
    (" " * (2 << 20), "larger than 1 MiB"),
])
def test_a_bad_preprocessor_config_is_one_error_naming_it(tmp_path, content, message):
    from emobox import DataError

    folder = tmp_path / "ckpt"
    tiny_model("wavlm_large").save_pretrained(folder)
    (folder / "preprocessor_config.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(DataError) as info:
        tiny_spec("wavlm_large").build(ckpt=str(folder))
    text = str(info.value)
    assert text.startswith(f"{folder / 'preprocessor_config.json'}: ") and message in text
    assert "\n" not in text and info.value.path == str(folder / "preprocessor_config.json")
