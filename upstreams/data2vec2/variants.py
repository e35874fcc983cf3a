"""The released data2vec 2.0 and emotion2vec models: shapes, file names, preset overrides and
where to get each."""

from __future__ import annotations

FAIRSEQ_URL = "https://dl.fbaipublicfiles.com/fairseq/data2vec2/"
E2V_HUB, E2V_REVISION = "emotion2vec/emotion2vec_base", "0c9a3152734f9d7a7a05b4ee6bfb3c109d288664"

# name -> (transformer blocks, width) of the released model; a checkpoint must match
SHAPES = {"data2vec2_base": (12, 768), "data2vec2_large": (24, 1024), "emotion2vec_base": (12, 768)}

# name -> (file names a folder may hold, preset architecture overrides, how to obtain it)
VARIANTS = {
    "data2vec2_base": (
        ("base_libri.pt",), {},
        f"download {FAIRSEQ_URL}base_libri.pt (fairseq's data2vec 2.0 release, LibriSpeech 960 h, "
        f"not fine-tuned) and save it as $EMOBOX_MODELS/data2vec2_base.pt"),
    "data2vec2_large": (
        ("large_vox.pt",),
        dict(embed_dim=1024, num_heads=16, depth=16, prenet_depth=8, mlp_dim=4096,
             alibi_scale_shape=(1, 16)),
        f"download {FAIRSEQ_URL}large_vox.pt (fairseq's data2vec 2.0 release, Libri-light 60k h, "
        f"not fine-tuned) and save it as $EMOBOX_MODELS/data2vec2_large.pt"),
    "emotion2vec_base": (
        ("emotion2vec_base.pt",),
        dict(depth=8, prenet_depth=4, num_extra_tokens=10),
        f"`hf download {E2V_HUB} --revision {E2V_REVISION}` (online, into the "
        f"Hugging Face cache), or put emotion2vec_base.pt from the emotion2vec release in "
        f"$EMOBOX_MODELS/emotion2vec_base/"),
}
