"""Where emobox keeps things.

``EMOBOX_HOME`` (default ``~/.cache/emobox``) holds feature stores (``features/``) and runs
(``runs/``); ``EMOBOX_DATA`` (default ``$EMOBOX_HOME/data``) is where corpora are looked for when
no ``--root`` is given (``$EMOBOX_DATA/<corpus>``); ``EMOBOX_MODELS`` (default
``$EMOBOX_HOME/models``) is where upstream checkpoints are looked for (``$EMOBOX_MODELS/<name>``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("EMOBOX_HOME") or Path.home() / ".cache" / "emobox").expanduser()


def data_dir() -> Path:
    return Path(os.environ.get("EMOBOX_DATA") or home() / "data").expanduser()


def models_dir() -> Path:
    return Path(os.environ.get("EMOBOX_MODELS") or home() / "models").expanduser()


def features_dir() -> Path:
    return home() / "features"


def runs_dir() -> Path:
    return home() / "runs"


def corpus_root(name: str, root: str | Path | None) -> Path:
    """The root given by the user, else ``$EMOBOX_DATA/<name>``."""
    if root:
        return Path(root).expanduser()
    return data_dir() / name
