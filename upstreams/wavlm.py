"""Plugin: WavLM (Chen et al., JSTSP 2022) through transformers' ``WavLMModel``.

``wavlm_base``: pre-trained on LibriSpeech 960 h (group-norm feature encoder: padding
sensitive); ``wavlm_large``: pre-trained on 94k h (Libri-Light, GigaSpeech, VoxPopuli), layer
norm everywhere, input normalised per utterance. Both add a gated relative position bias to
attention.
"""

from __future__ import annotations

from emobox import hookimpl

from .ssl_family import SSLFamily, SSLVariant, ssl_specs

FAMILY = SSLFamily(
    family="wavlm", model_class="WavLMModel", model_type="wavlm",
    paper="Chen, Wang, Chen, Wu, Liu, Chen, Li, Kanda, Yoshioka, Xiao, et al., WavLM: "
          "Large-scale self-supervised pre-training for full stack speech processing, "
          "JSTSP 2022",
    license="MIT")

VARIANTS = [
    SSLVariant("wavlm_base", "microsoft/wavlm-base", 94_381_168, 12, 768, normalize=False,
               padding_sensitive=True,
               description="WavLM Base, self-supervised on LibriSpeech 960 h"),
    SSLVariant("wavlm_large", "microsoft/wavlm-large", 315_452_096, 24, 1024, normalize=True,
               padding_sensitive=False,
               description="WavLM Large, self-supervised on 94k h (Libri-Light, GigaSpeech, "
                           "VoxPopuli)"),
]


@hookimpl
def emobox_upstreams():
    return ssl_specs(FAMILY, VARIANTS)
