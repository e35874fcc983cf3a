"""Plugin: HuBERT (Hsu et al., TASLP 2021) through transformers' ``HubertModel``.

``hubert_base``: pre-trained on LibriSpeech 960 h (group-norm feature encoder: padding
sensitive); ``hubert_large``: pre-trained on Libri-Light 60k h (layer norm everywhere, pre-norm
blocks; its input is normalised per utterance, as fairseq's task config for it says). EmoBox
extracted HuBERT from fairseq's checkpoints, so the waveform normalisation is fairseq's
(``task.normalize``, ``F.layer_norm``), not the transformers port's ``preprocessor_config.json``.
"""

from __future__ import annotations

from emobox import hookimpl

from .ssl_family import SSLFamily, SSLVariant, ssl_specs

FAMILY = SSLFamily(
    family="hubert", model_class="HubertModel", model_type="hubert",
    paper="Hsu, Bolte, Tsai, Lakhotia, Salakhutdinov, Mohamed, HuBERT: Self-supervised speech "
          "representation learning by masked prediction of hidden units, TASLP 2021",
    license="Apache-2.0", norm_from="fairseq")

VARIANTS = [
    SSLVariant("hubert_base", "facebook/hubert-base-ls960", 94_370_944, 12, 768,
               normalize=False, padding_sensitive=True,
               description="HuBERT Base, self-supervised on LibriSpeech 960 h"),
    SSLVariant("hubert_large", "facebook/hubert-large-ll60k", 315_437_696, 24, 1024,
               normalize=True, padding_sensitive=False,
               description="HuBERT Large, self-supervised on Libri-Light 60k h"),
]


@hookimpl
def emobox_upstreams():
    return ssl_specs(FAMILY, VARIANTS)
