"""The one writer of Markdown tables (summary.md, reports, the leaderboard, cross-corpus
matrices).

Cells are escaped by default (:func:`emobox.escape.markdown`: a ``|``, HTML, emphasis or a line
break in a corpus, class or upstream name cannot break the table or be rendered); a cell that
is Markdown on purpose (bold, emphasis, a literal backslash) is wrapped in :class:`Markdown`.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from emobox import escape


class Markdown(str):
    """Text that is Markdown already: :func:`table` writes it as it is."""


ALIGNMENTS = {"l": "---", "r": "---:", "c": ":---:"}


def cell(value: Any) -> str:
    """``value`` as the text of one cell: escaped unless it is :class:`Markdown`."""
    return value if isinstance(value, Markdown) else escape.markdown(value)


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], align: str = "l",
          escape: bool = True) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table, ``| a | b |`` (no trailing newline).

    ``align`` is one letter per column, ``l`` (``---``), ``r`` (``---:``) or ``c``
    (``:---:``); a shorter string repeats its last letter for the remaining columns (so ``"r"``
    right-aligns every column and ``"lr"`` all but the first). A row shorter than the header is
    padded with empty cells; a longer one is an error. ``escape=False``: every cell is Markdown
    already (its caller escaped the names in it), as if each were wrapped in :class:`Markdown`.
    """
    n = len(header)
    if not align:
        align = "l"
    letters = (align + align[-1] * n)[:n]
    unknown = sorted(set(letters) - set(ALIGNMENTS))
    if unknown:
        raise ValueError(f"alignment {unknown[0]!r}: use l, r or c")
    lines = [_row(header, escape), "|" + "|".join(ALIGNMENTS[a] for a in letters) + "|"]
    for row in rows:
        row = list(row)
        if len(row) > n:
            raise ValueError(f"a row of {len(row)} cells in a table of {n} columns")
        lines.append(_row(row + [""] * (n - len(row)), escape))
    return lines


def _row(cells: Sequence[Any], escape: bool) -> str:
    return "| " + " | ".join(cell(c) if escape else str(c) for c in cells) + " |"
