"""Built-in downstream heads (installed as ``emobox.downstreams``), registered through the
``emobox`` entry-point group like any third-party plugin."""
