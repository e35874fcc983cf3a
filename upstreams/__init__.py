"""Built-in upstream encoders (installed as ``emobox.upstreams``); each family registers through
the ``emobox`` entry-point group like any third-party plugin."""
