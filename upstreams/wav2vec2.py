"""Plugin: wav2vec 2.0 (Baevski et al., NeurIPS 2020) through transformers' ``Wav2Vec2Model``.

``wav2vec2_base``: the self-supervised Base model pre-trained on LibriSpeech 960 h, without
fine-tuning (fairseq's ``wav2vec_small.pt``; the transformers port ``facebook/wav2vec2-base``).
Its first convolution uses group norm over time, so its features change with padding
(``padding_sensitive``). The EmoBox paper left wav2vec 2.0 Large out: its last layer fails on SER.
"""

from __future__ import annotations

from emobox import hookimpl

from .ssl_family import SSLFamily, SSLVariant, ssl_specs

FAMILY = SSLFamily(
    family="wav2vec2", model_class="Wav2Vec2Model", model_type="wav2vec2",
    paper="Baevski, Zhou, Mohamed, Auli, wav2vec 2.0: A framework for self-supervised learning "
          "of speech representations, NeurIPS 2020",
    license="Apache-2.0")

VARIANTS = [
    SSLVariant("wav2vec2_base", "facebook/wav2vec2-base", 94_370_944, 12, 768, normalize=False,
               padding_sensitive=True,
               description="wav2vec 2.0 Base, self-supervised on LibriSpeech 960 h"),
]


@hookimpl
def emobox_upstreams():
    return ssl_specs(FAMILY, VARIANTS)
