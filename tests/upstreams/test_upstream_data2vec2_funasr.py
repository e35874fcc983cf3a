"""The port agrees with FunASR's emotion2vec model (fairseq's data2vec 2.0 code) layer by layer.

FunASR (``pip install funasr``, in the ``test`` extra) is the reference implementation: its
``Emotion2vec`` class is fairseq's ``Data2VecMultiModel`` audio path, so it also stands for
data2vec 2.0 with data2vec 2.0's settings. Each case builds a tiny random FunASR model, saves
its state dict the way the released files are laid out, loads it through the converter, and
compares every hidden state on one utterance, then the port's padded batch against FunASR's
one-at-a-time output.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

if os.environ.get("CI"):
    import funasr  # noqa: F401  (in CI the reference must be there: never skip silently)
else:
    pytest.importorskip("funasr", reason="the FunASR reference is in the test extra")

from emobox.upstreams.data2vec2.ckpt import load_encoder  # noqa: E402
from emobox.upstreams.data2vec2.net import D2v2Config  # noqa: E402
from emobox.upstreams.data2vec2.upstream import Data2Vec2Upstream  # noqa: E402

from test_upstream_data2vec2 import ATOL, speech  # noqa: E402

SPEC = "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16,2,2)] + [(16,2,2)]"


def funasr_conf(depth=2, prenet=1, extra=3, pos_width=12, pos_depth=3, per_layer=False,
                pre_ln=False, heads=4, dim=32) -> dict:
    return dict(
        depth=depth, num_heads=heads, embed_dim=dim, mlp_ratio=4.0, norm_eps=1e-5,
        norm_affine=True, encoder_dropout=0.1, post_mlp_drop=0.1, attention_dropout=0.1,
        activation_dropout=0.0, dropout_input=0.0, layerdrop=0.0, layer_norm_first=False,
        end_of_block_targets=False, start_drop_path_rate=0.0, end_drop_path_rate=0.0,
        average_top_k_layers=depth, clone_batch=1, normalize=True,
        modalities=dict(audio=dict(
            type="AUDIO", prenet_depth=prenet, prenet_layerdrop=0.0, prenet_dropout=0.0,
            start_drop_path_rate=0.0, end_drop_path_rate=0.0, num_extra_tokens=extra,
            init_extra_token_zero=False, use_alibi_encoder=True, alibi_scale=1.0,
            learned_alibi=False, alibi_max_pos=None, learned_alibi_scale=True,
            learned_alibi_scale_per_head=True, learned_alibi_scale_per_layer=per_layer,
            num_alibi_heads=heads, model_depth=depth,
            decoder=dict(decoder_dim=16, decoder_groups=4, decoder_kernel=3, decoder_layers=1,
                         input_dropout=0.1, add_positions_masked=False, add_positions_all=False,
                         decoder_residual=True, projection_layers=1, projection_ratio=2.0),
            extractor_mode="layer_norm", feature_encoder_spec=SPEC, conv_pos_width=pos_width,
            conv_pos_groups=4, conv_pos_depth=pos_depth, conv_pos_pre_ln=pre_ln,
            mask_prob=0.5, mask_length=5, mask_noise_std=0.01, mask_prob_min=None,
            inverse_mask=False, mask_prob_adjust=0.0, keep_masked_pct=0.0, add_masks=False,
            remove_masks=False, mask_dropout=0.0, encoder_zero_mask=True, mask_channel_prob=0.0,
            mask_channel_length=64, ema_local_encoder=False, local_grad_mult=1.0)))


def reference_model(conf: dict, seed: int = 0):
    from funasr.models.emotion2vec.model import Emotion2vec

    torch.manual_seed(seed)
    model = Emotion2vec(model_conf=conf).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        model.modality_encoders["AUDIO"].alibi_scale.uniform_(0.3, 1.5)
    return model


def reference_hidden(model, wav: torch.Tensor, n_extra: int) -> list[torch.Tensor]:
    """Every hidden state of FunASR's model on one normalised waveform [1, S], extra tokens
    removed: the context encoder's normalised input, then each block's output."""
    enc = model.modality_encoders["AUDIO"]
    states, hooks = [], [enc.context_encoder.norm.register_forward_hook(
        lambda m, i, o: states.append(o))]
    for blk in [*enc.context_encoder.blocks, *model.blocks]:
        hooks.append(blk.register_forward_hook(lambda m, i, o: states.append(o[0])))
    try:
        with torch.no_grad():
            out = model.extract_features(wav, padding_mask=None)
    finally:
        for h in hooks:
            h.remove()
    torch.testing.assert_close(out["x"], states[-1][:, n_extra:])
    return [s[:, n_extra:] for s in states]


CASES = {
    "emotion2vec-like": dict(),  # prenet, 10 -> 3 extra tokens, even positional kernel
    "data2vec2-base-like": dict(prenet=0, extra=0, depth=3, pos_width=15),  # odd kernel
    "per-layer-alibi-pre-ln": dict(per_layer=True, pre_ln=True, heads=2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_port_matches_funasr_layer_by_layer(case, tmp_path):
    conf = funasr_conf(**CASES[case])
    model = reference_model(conf)
    torch.save({"model": model.state_dict(),
                "cfg": {"model": conf, "task": {"normalize": True}}}, tmp_path / "ref.pt")
    enc, ignored = load_encoder(tmp_path / "ref.pt", D2v2Config())
    assert ignored and all(".decoder." in k for k in ignored)
    n_extra = conf["modalities"]["audio"]["num_extra_tokens"]
    assert enc.cfg.num_extra_tokens == n_extra
    up = Data2Vec2Upstream("ref", enc, "x")
    wavs = [speech(1.1, 1), speech(0.45, 2), speech(2.0, 3)]
    batch = up(wavs, "all")
    for i, w in enumerate(wavs):
        ref = reference_hidden(model, F.layer_norm(w, w.shape)[None], n_extra)
        assert len(ref) == up.num_layers + 1
        n = int(batch.lengths[i])
        for layer, r in enumerate(ref):
            assert r.shape[1] == n == up.frames_for(len(w))
            torch.testing.assert_close(batch.hidden[layer][i:i + 1, :n], r, atol=ATOL, rtol=0,
                                       msg=lambda m: f"layer {layer}, item {i}: {m}")


def test_funasr_layout_bare_state_dict_with_config_yaml(tmp_path):
    """FunASR's emotion2vec_base folder: the state dict alone, the config in config.yaml."""
    import yaml

    conf = funasr_conf()
    model = reference_model(conf, seed=7)
    torch.save(model.state_dict(), tmp_path / "emotion2vec_base.pt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec",
                                                          "model_conf": conf}))
    enc, _ = load_encoder(tmp_path / "emotion2vec_base.pt", D2v2Config())
    w = speech(0.8, 4)
    ours = Data2Vec2Upstream("e2v", enc, "x")([w], "last").hidden[3]
    ref = reference_hidden(model, F.layer_norm(w, w.shape)[None], 3)[-1]
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
