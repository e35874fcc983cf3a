"""User strings (corpus, upstream and class names, paths, keys) written into an output format.

Names come from files emobox does not control (a folder corpus's label folders, an imported
corpus's ``corpus.json``, a submission's metadata), so every writer escapes them for its format:

- :func:`markdown`: a Markdown table cell or list item: ``|`` cannot end a cell, HTML tags and
  entities are shown rather than rendered, emphasis, code, links and math markers are literal,
  and a line break (or any control character) becomes a space;
- :func:`latex`: LaTeX text: its ten special characters, and ``< > |`` (which its
  default font sets as other glyphs);
- :func:`console`: a line printed through Rich: its ``[style]`` markup is shown, not applied;
- :func:`one_line`: a field of a tab-separated file: tabs and line breaks become spaces.

CSV files are written with the :mod:`csv` module, which quotes what needs quoting.
"""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
# ASCII punctuation that Markdown (CommonMark, GitHub) may treat as syntax inside a line; a
# backslash before any ASCII punctuation is always a literal character there
_MD_SPECIAL = re.compile(r"[\\`*\[\]<>|&~$]")
# "_" is emphasis only at a word's edge: snake_case names stay readable
_MD_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_TEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
        "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "<": r"\textless{}",
        ">": r"\textgreater{}", "|": r"\textbar{}"}
_TEX_SPECIAL = re.compile("[" + re.escape("".join(_TEX)) + "]")


def one_line(text: Any) -> str:
    """``text`` on one line: control characters (tabs, line breaks) become one space."""
    return _CONTROL.sub(" ", str(text))


def markdown(text: Any) -> str:
    """``text`` as literal Markdown text, safe inside a table cell."""
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), one_line(text))
    return _MD_UNDERSCORE.sub(r"\\_", text)


def latex(text: Any) -> str:
    """``text`` as literal LaTeX text."""
    return _TEX_SPECIAL.sub(lambda m: _TEX[m.group(0)], one_line(text))


def console(text: Any) -> str:
    """``text`` printed literally through Rich markup."""
    from rich.markup import escape

    return escape(str(text))
