from emobox.cli import entrypoint

entrypoint()
