"""Whisper upstreams: front end, modes, windows, layers, batching and the OpenAI .pt mapping,
on tiny random configurations of transformers' ``WhisperEncoder``.

Tolerances: log-mel vs transformers' ``WhisperFeatureExtractor`` (numpy, float64 STFT) within
2e-4 absolute on a [-1.5, 1.5] scale; batched vs one-at-a-time within 1e-5; our layer loop vs
transformers' own forward within 1e-5.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from emobox.upstreams.whisper import WhisperVariant, load
from emobox.upstreams.whisper.formats import (openai_to_transformers, read_openai,
                                              transformers_to_openai)
from emobox.upstreams.whisper.model import (WINDOW_SAMPLES, WhisperUpstream, log_mel,
                                            mel_filters)

from test_upstreams_ssl import speech

SECONDS = {1.0: 50, 7.3: 365, 35.0: 1750}


def tiny_encoder(n_mels: int = 80, seed: int = 0) -> WhisperEncoder:
    torch.manual_seed(seed)
    cfg = transformers.WhisperConfig(d_model=32, encoder_layers=3, encoder_attention_heads=2,
                                     encoder_ffn_dim=128, num_mel_bins=n_mels,
                                     max_source_positions=1500)
    return WhisperEncoder(cfg).eval()


def tiny_whisper(mode: str = "faithful", **kw) -> WhisperUpstream:
    return WhisperUpstream("whisper_test", tiny_encoder(**kw), mode=mode, checkpoint_id="t")


def demo_speech(i: int = 0) -> torch.Tensor:
    from pathlib import Path

    from emobox.datasets.audio import load_audio

    import emobox.corpora.demo as demo

    files = sorted(Path(demo.__file__).parent.glob("audio/*/*.flac"))
    return torch.from_numpy(load_audio(files[i], sample_rate=16000))


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_transformers(n_mels):
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(num_frequency_bins=201, num_mel_filters=n_mels, min_frequency=0.0,
                          max_frequency=8000.0, sampling_rate=16000, norm="slaney",
                          mel_scale="slaney")
    ours = mel_filters(n_mels).numpy().T
    assert ours.shape == ref.shape
    assert abs(ours - ref).max() < 1e-7 * abs(ref).max() + 1e-12


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_whisper_feature_extractor(n_mels):
    audio = torch.cat([demo_speech(0), demo_speech(5)])
    fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    ref = fe(audio.numpy(), sampling_rate=16000, return_tensors="np")["input_features"][0]
    padded = torch.nn.functional.pad(audio, (0, WINDOW_SAMPLES - len(audio)))
    ours = log_mel(padded, mel_filters(n_mels).float(), torch.hann_window(400)).numpy()
    assert ours.shape == ref.shape == (n_mels, 3000)
    assert abs(ours - ref).max() < 2e-4


def test_layers_match_transformers_whisper_encoder():
    up = tiny_whisper()
    mel = log_mel(torch.nn.functional.pad(speech(2.0), (0, WINDOW_SAMPLES - 32000)),
                  up.filters, up.window)[None]
    with torch.inference_mode():
        ref = up.encoder(mel, output_hidden_states=True)
        ours = up.encode_mel(mel, None, range(4))
    assert len(ref.hidden_states) == 4
    for layer in range(4):  # layer 3 (the last) is after the final layer norm, as in transformers
        torch.testing.assert_close(ours[layer], ref.hidden_states[layer], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[3], ref.last_hidden_state, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["faithful", "trimmed"])
def test_shapes_frames_and_store_options(mode):
    up = tiny_whisper(mode)
    wavs = [speech(s, i) for i, s in enumerate(SECONDS)]
    with torch.inference_mode():
        out = up(wavs, [0, 3])
    assert out.lengths.tolist() == list(SECONDS.values())
    assert [up.frames_for(len(w)) for w in wavs] == list(SECONDS.values())
    assert out.hidden[3].shape == (3, 1750, 32) and out.hidden[0].shape == (3, 1750, 32)
    assert up.store_options == {"mode": mode}
    assert up.frames_for(0) == 1 and up.frames_for(100) == 1 and up.frames_for(480000) == 1500
    assert up([torch.zeros(50)], [3]).hidden[3].shape == (1, 1, 32)


@pytest.mark.parametrize("mode", ["faithful", "trimmed"])
def test_frames_kept_are_emoboxs_count(mode):
    """EmoBox kept ``n // 320`` frames of an ``n``-sample input (``feat_len = wav.size(0) //
    320``), not ``ceil((n // 160) / 2)``, which has one more for half of all lengths."""
    up = tiny_whisper(mode)
    for n in (16170, 16330, 16000, 7999, 321, 320, 319, 1, 0, 480000, 480319, 480500, 959999):
        assert up.frames_for(n) == max(1, n // 320), n
    wavs = [speech(16170 / 16000, 1), speech(16500 / 16000, 2)]
    with torch.inference_mode():
        out = up(wavs, [3])
    assert out.lengths.tolist() == [50, 51] and out.hidden[3].shape[1] == 51


def test_default_feature_is_emoboxs_last_hidden_state_slice():
    """EmoBox's Whisper feature: transformers' WhisperFeatureExtractor (30-s padding), the
    encoder's last hidden state (after its final layer norm), its first ``n // 320`` frames."""
    up = tiny_whisper()
    fe = transformers.WhisperFeatureExtractor(feature_size=80)
    audio = torch.cat([demo_speech(2), demo_speech(6)])[:22570]  # 141 mel frames
    with torch.inference_mode():
        mel = fe(audio.numpy(), sampling_rate=16000, return_tensors="pt").input_features
        ref = up.encoder(mel, output_hidden_states=True)
        out = up([audio], None)
    n = len(audio) // 320
    assert int(out.lengths[0]) == n == 70 and out.hidden[3].shape[1] == n
    torch.testing.assert_close(ref.hidden_states[-1], ref.last_hidden_state)
    torch.testing.assert_close(out.hidden[3][0], ref.last_hidden_state[0, :n], atol=2e-3,
                               rtol=1e-3)


@pytest.mark.parametrize("mode", ["faithful", "trimmed"])
def test_long_inputs_are_encoded_in_30_s_windows_and_concatenated(mode):
    up = tiny_whisper(mode)
    x = speech(35.0, 7)
    with torch.inference_mode():
        whole = up([x], [2]).hidden[2][0]
        first = up([x[:WINDOW_SAMPLES]], [2]).hidden[2][0]
        rest = up([x[WINDOW_SAMPLES:]], [2]).hidden[2][0]
    assert whole.shape[0] == 1750 and first.shape[0] == 1500 and rest.shape[0] == 250
    torch.testing.assert_close(whole[:1500], first)
    torch.testing.assert_close(whole[1500:], rest)
    # a last window too short for a frame (under 320 samples) adds none and is not encoded
    calls = []
    hook = up.encoder.conv1.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    try:
        with torch.inference_mode():
            tail = up([x[:WINDOW_SAMPLES + 300]], [2])
    finally:
        hook.remove()
    assert calls == [1] and tail.lengths.tolist() == [1500]
    torch.testing.assert_close(tail.hidden[2][0], first)
    assert up.frames_for(WINDOW_SAMPLES + 500) == 1501 == len(x[:WINDOW_SAMPLES + 500]) // 320


@pytest.mark.parametrize("mode", ["faithful", "trimmed"])
def test_batched_equals_one_at_a_time(mode):
    up = tiny_whisper(mode)
    wavs = [speech(1.3, 1), speech(0.41, 2), speech(2.0, 3), speech(31.0, 4)]
    with torch.inference_mode():
        batch = up(wavs, [1, 3])
        for i, w in enumerate(wavs):
            alone = up([w], [1, 3])
            n = int(alone.lengths[0])
            assert int(batch.lengths[i]) == n
            for layer in (1, 3):
                torch.testing.assert_close(batch.hidden[layer][i, :n], alone.hidden[layer][0],
                                           atol=1e-5, rtol=0)


def test_trimmed_mode_is_a_different_feature():
    x = speech(1.0)
    faithful, trimmed = tiny_whisper("faithful"), tiny_whisper("trimmed")
    with torch.inference_mode():
        a, b = faithful([x], [3]).hidden[3], trimmed([x], [3]).hidden[3]
    assert a.shape == b.shape and float((a - b).abs().max()) > 1e-2
    with pytest.raises(Exception, match="mode must be one of faithful, trimmed"):
        tiny_whisper("fast")


def test_blocks_beyond_the_requested_layer_do_not_run():
    up = tiny_whisper()
    calls = {}
    mods = list(up.encoder.layers) + [up.encoder.layer_norm]
    hooks = [m.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, 1 + calls.get(i, 0)))
             for i, m in enumerate(mods)]
    try:
        with torch.inference_mode():
            up([speech(1.0)], [1])
        assert calls == {0: 1}
        with torch.inference_mode():
            up([speech(1.0)], None)  # default: the last layer, after the final layer norm
        assert calls == {0: 2, 1: 1, 2: 1, 3: 1}
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("mode", ["faithful", "trimmed"])
def test_analytic_flops_match_torch_flop_counter(mode):
    from torch.utils.flop_counter import FlopCounterMode

    up = tiny_whisper(mode)
    up.encoder.set_attn_implementation("eager")  # the counter misses CPU SDPA kernels
    x = speech(2.0)
    with FlopCounterMode(display=False) as counter:
        up([x], [3])
    assert 0.9 < up.flops(len(x)) / counter.get_total_flops() < 1.1
    assert up.flops(len(x), layer=1) < up.flops(len(x))
    if mode == "faithful":
        assert up.flops(16000) == up.flops(32000)  # always a full 30-s window
    else:
        assert up.flops(16000) < up.flops(32000)


def openai_checkpoint(encoder: WhisperEncoder, path, drop_positions: bool = False):
    """An OpenAI-format .pt (dims + model_state_dict) holding ``encoder``'s weights."""
    cfg = encoder.config
    sd = {"encoder." + transformers_to_openai(k): v.clone()
          for k, v in encoder.state_dict().items()}
    if drop_positions:
        sd.pop("encoder.positional_embedding")
    sd["decoder.token_embedding.weight"] = torch.zeros(10, cfg.d_model)  # ignored
    dims = {"n_mels": cfg.num_mel_bins, "n_audio_ctx": cfg.max_source_positions,
            "n_audio_state": cfg.d_model, "n_audio_head": cfg.encoder_attention_heads,
            "n_audio_layer": cfg.encoder_layers, "n_vocab": 10, "n_text_ctx": 448,
            "n_text_state": cfg.d_model, "n_text_head": 2, "n_text_layer": 1}
    torch.save({"dims": dims, "model_state_dict": sd}, path)
    return path


def test_openai_names_round_trip_and_pt_files_load(tmp_path):
    enc = tiny_encoder(seed=4)
    names = list(enc.state_dict())
    assert [openai_to_transformers(transformers_to_openai(n)) for n in names] == names
    assert transformers_to_openai("layers.2.self_attn.q_proj.weight") == \
        "blocks.2.attn.query.weight"
    assert transformers_to_openai("layers.0.fc2.bias") == "blocks.0.mlp.2.bias"
    assert transformers_to_openai("layer_norm.weight") == "ln_post.weight"
    variant = WhisperVariant("whisper_test", "none", 3, 32, 2, 80, 0, "test")
    for drop in (False, True):  # the position table is rebuilt when a file leaves it out
        pt = openai_checkpoint(enc, tmp_path / f"tiny{drop}.pt", drop_positions=drop)
        config, state = read_openai(pt)
        assert config["encoder_ffn_dim"] == 128  # OpenAI's blocks are always 4 x wide
        for k, v in enc.state_dict().items():
            torch.testing.assert_close(state[k], v, atol=1e-6, rtol=0)
        up = load(variant, pt)
        assert up.source == "openai"
        ref = WhisperUpstream("whisper_test", enc, checkpoint_id="x")
        x = speech(1.0)
        with torch.inference_mode():
            torch.testing.assert_close(up([x], [3]).hidden[3], ref([x], [3]).hidden[3])


def test_openai_whisper_package_agrees_when_installed():
    whisper = pytest.importorskip("whisper")
    enc = tiny_encoder(seed=5)
    cfg = enc.config
    theirs = whisper.model.AudioEncoder(cfg.num_mel_bins, cfg.max_source_positions,
                                        cfg.d_model, cfg.encoder_attention_heads,
                                        cfg.encoder_layers).eval()
    theirs.load_state_dict({transformers_to_openai(k): v for k, v in enc.state_dict().items()})
    audio = demo_speech(3)
    ref_mel = whisper.audio.log_mel_spectrogram(whisper.audio.pad_or_trim(audio))
    up = WhisperUpstream("whisper_test", enc, checkpoint_id="x")
    ours_mel = log_mel(torch.nn.functional.pad(audio, (0, WINDOW_SAMPLES - len(audio))),
                       up.filters, up.window)
    assert float((ours_mel - ref_mel).abs().max()) < 1e-4
    with torch.inference_mode():
        ref = theirs(ref_mel[None])
        ours = up.encode_mel(ref_mel[None], None, [3])[3]
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
