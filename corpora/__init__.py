"""Built-in corpus adapters (installed as ``emobox.corpora``): the embedded ``demo`` corpus and
the EmoBox corpora, each registered through the ``emobox`` entry-point group like any
third-party plugin."""
