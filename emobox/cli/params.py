"""Command-line value types shared by the commands.

:class:`KeyValue` is the one parser of ``NAME=VALUE`` arguments (``-U``/``--upstream-option``,
``-C``/``--corpus-option``, ``--grid``, ``--root-map``, ``plugins doctor --root``...): use it as
an option's ``click_type`` (each value arrives as a ``(name, value)`` pair), or call
:meth:`KeyValue.parse` on a string. A malformed argument is one ``error:`` line naming the flag
and what was expected (exit 2), before any work.
"""

from __future__ import annotations

import ast
from typing import Any

import click

from ..errors import EmoboxUsageError


def literal(text: str) -> Any:
    """``text`` as a Python literal (``3`` -> 3, ``1e-3`` -> 0.001, ``True``, ``[1, 2]``), or
    the text itself when it is not one (``trimmed``, ``/data/x``). Never runs code."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


class KeyValue(click.ParamType):
    """``NAME=VALUE`` -> ``(name, value)``.

    The name is stripped and must not be empty; the value is everything after the first ``=``
    (so it may hold ``=`` itself). ``literal=True`` reads the value as a Python literal
    (:func:`literal`); ``strip=True`` strips it and refuses an empty one. ``expected`` is the
    syntax an error message shows (e.g. ``corpus=DIR``); ``flag`` names the option in messages
    where Click does not say which it is (Typer's ``parser=``, which calls the type with the
    bare value)::

        root: List[str] = typer.Option([], "--root", parser=KeyValue("NAME=DIR", flag="--root"))
    """

    name = "name=value"

    def __init__(self, expected: str = "name=value", literal: bool = False,
                 strip: bool = False, flag: str = "") -> None:
        self.expected = expected
        self.literal = literal
        self.strip = strip
        self.flag = flag

    def get_metavar(self, param: click.Parameter, *args: Any) -> str:
        return self.expected.upper() if self.expected.islower() else self.expected

    def parse(self, text: str, flag: str) -> tuple[str, Any]:
        """``text`` as ``(name, value)``, or :class:`emobox.EmoboxUsageError` naming ``flag``."""
        name, sep, value = str(text).partition("=")
        name = name.strip()
        if self.strip:
            value = value.strip()
        if not sep or not name or (self.strip and not value):
            raise EmoboxUsageError(f"{flag} {text!r}: expected {self.expected}")
        return name, literal(value) if self.literal else value

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> tuple[str, Any]:
        if isinstance(value, tuple):  # already converted (a default)
            return value
        return self.parse(value, flag_of(param) if param is not None else self.flag or "option")


def flag_of(param: click.Parameter) -> str:
    """The long form of an option's name (``--corpus-option`` for ``-C``), for messages."""
    opts = list(getattr(param, "opts", ()) or ()) or [param.name or "option"]
    return max(opts, key=len)


#: ``-U``/``-C``: option values read as literals (``n=3`` gives the integer 3)
OPTION = KeyValue(literal=True)
#: ``--root-map`` and the like: ``corpus=DIR``
ROOT_MAP = KeyValue("corpus=DIR", strip=True)
