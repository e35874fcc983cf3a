"""Plugin: data2vec audio (Baevski et al., ICML 2022) through ``Data2VecAudioModel``.

Both sizes normalise the input per utterance and use layer norm in the feature encoder, but the
relative position embedding is a stack of five convolutions with a layer norm in between, so
padded frames leak into the last real frames after the first one: ``padding_sensitive``.
``data2vec_base`` is pre-trained on LibriSpeech 960 h, ``data2vec_large`` on Libri-Light 60k h.
"""

from __future__ import annotations

from emobox import hookimpl

from .ssl_family import SSLFamily, SSLVariant, ssl_specs

FAMILY = SSLFamily(
    family="data2vec", model_class="Data2VecAudioModel", model_type="data2vec-audio",
    paper="Baevski, Hsu, Xu, Babu, Gu, Auli, data2vec: A general framework for self-supervised "
          "learning in speech, vision and language, ICML 2022",
    license="Apache-2.0")

VARIANTS = [
    SSLVariant("data2vec_base", "facebook/data2vec-audio-base", 93_163_520, 12, 768,
               normalize=True, padding_sensitive=True,
               description="data2vec audio Base, self-supervised on LibriSpeech 960 h"),
    SSLVariant("data2vec_large", "facebook/data2vec-audio-large", 313_275_392, 24, 1024,
               normalize=True, padding_sensitive=True,
               description="data2vec audio Large, self-supervised on Libri-Light 60k h"),
]


@hookimpl
def emobox_upstreams():
    return ssl_specs(FAMILY, VARIANTS)
