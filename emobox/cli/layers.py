"""The layer arguments of ``emobox run``, ``bench`` and ``extract``: one layer, a list, a range.

``8`` (one layer), ``-1`` (counted from the last), ``last``, ``all`` (every layer of the
upstream), ``4,8,12`` (a list), ``0-12`` (a range, both ends included) and mixes such as
``0-3,8``. Layers are numbered as the upstream numbers them: 0 is the input of the first block
(for most models the convolutional or embedding output), the last is the encoder's output.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import EmoboxUsageError

MAX_LAYER = 10_000  # no upstream has more layers; bounds what a range can ask for
FORMS = "a layer number (8), a list (4,8,12), a range (0-12), a mix (0-3,8), 'last' or 'all'"
_INT = re.compile(r"-?\d+")
_RANGE = re.compile(r"(\d+)-(\d+)")


def layer_tokens(text: str, flag: str = "--layer") -> list[Any]:
    """``"0-2,8"`` -> ``[0, 1, 2, 8]``: numbers (a negative one counts from the last layer),
    ranges expanded, ``last`` and ``all`` kept as words. Commas or spaces separate the parts."""
    out: list[Any] = []
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise EmoboxUsageError(f"{flag} {text!r}: no layer given; use {FORMS}")
    for part in parts:
        word = part.lower()
        if word in ("all", "last"):
            out.append(word)
            continue
        if _INT.fullmatch(part):
            value = int(part)
            if abs(value) > MAX_LAYER:
                raise EmoboxUsageError(f"{flag} {part}: no upstream has a layer {value}")
            out.append(value)
            continue
        match = _RANGE.fullmatch(part)
        if match is None:
            raise EmoboxUsageError(f"{flag} {part!r}: not a layer; use {FORMS}")
        first, last = int(match.group(1)), int(match.group(2))
        if first > last:
            raise EmoboxUsageError(f"{flag} {part}: the range runs backwards; write "
                                   f"{last}-{first}")
        if last > MAX_LAYER:
            raise EmoboxUsageError(f"{flag} {part}: no upstream has a layer {last}")
        out.extend(range(first, last + 1))
    return out


def parse_layer_arg(text: str | None, flag: str = "--layer") -> Any:
    """What ``--layer`` asks for: None (not given: the last layer), one layer (an int, or
    ``"last"``), ``"all"`` (every layer of the upstream) or a tuple of two or more layers (a
    layer sweep; sorted, each once). A list of one layer is that layer."""
    if text is None:
        return None
    tokens = layer_tokens(text, flag)
    if len(tokens) == 1:
        return tokens[0]
    words = [t for t in tokens if isinstance(t, str)]
    if words:
        raise EmoboxUsageError(f"{flag} {text!r}: {words[0]!r} stands alone; with other layers "
                               f"give numbers (e.g. 0-3,8)")
    return tuple(sorted(set(tokens))) if len(set(tokens)) > 1 else tokens[0]
