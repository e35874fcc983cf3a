"""Error types and exit codes.

Every error a user can act on derives from :class:`EmoboxError`; the CLI prints it as one line
(``error: <message>``) and exits with the class's :class:`ExitCode`, never with a traceback.
"""

from __future__ import annotations

import difflib
from enum import IntEnum
from typing import Iterable


class ExitCode(IntEnum):
    """Process exit codes of the ``emobox`` command."""

    OK = 0
    INTERNAL = 1  # a bug in emobox or a plugin: the traceback is printed
    USAGE = 2  # unknown name, bad option, missing root or checkpoint
    DATA = 3  # unreadable audio, unknown label, inconsistent corpus
    PLUGIN = 4  # a plugin is broken or two plugins claim one name
    CHECK_FAILED = 5  # a check command found problems
    FILESYSTEM = 6  # a file or folder cannot be read or written (permissions, full disk, ...)
    INTERRUPTED = 130


class EmoboxError(Exception):
    """Base of every error emobox raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class EmoboxUsageError(EmoboxError):
    """Something the user can fix: an unknown name, a missing folder, a bad option."""

    exit_code = ExitCode.USAGE


class CheckpointNotFoundError(EmoboxUsageError):
    """An upstream's weights are not on this machine."""


class DataError(EmoboxError):
    """The data on disk is not what emobox expects (bad audio, unknown label, ...)."""

    exit_code = ExitCode.DATA

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class AudioError(DataError):
    """An audio file (or segment) that cannot be read."""


class PluginError(EmoboxError):
    """A plugin that fails to import, raises in a hook, or clashes with another plugin."""

    exit_code = ExitCode.PLUGIN


class ContractError(PluginError):
    """A plugin object that does not satisfy its contract (expected vs received)."""


def close_names(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Known names closest to ``name``, best first (substring matches count as close)."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    for cand in candidates:
        if len(close) >= n:
            break
        if cand not in close and name and (name in cand or cand in name):
            close.append(cand)
    return close


PLURALS = {"corpus": "corpora"}


def plural(kind: str) -> str:
    return PLURALS.get(kind, kind + "s")


def unknown_name_message(kind: str, name: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    close = close_names(name, candidates)
    msg = f"no {kind} named {name!r}"
    if close:
        msg += "; did you mean " + ", ".join(repr(c) for c in close) + "?"
    elif candidates:
        msg += f"; known {plural(kind)}: " + ", ".join(sorted(candidates))
    else:
        msg += f"; no {plural(kind)} are registered (is emobox installed correctly?)"
    msg += f" (`emobox plugins` lists every {kind})"
    return msg
