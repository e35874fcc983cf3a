"""The one Markdown table writer (``emobox.reporting.markdown.table``)."""

from __future__ import annotations

import pytest

from emobox.reporting.markdown import Markdown, table


def test_cells_are_escaped_unless_marked_as_markdown():
    lines = table(["corpus", "UA"], [("my|lab", "61.50"), (Markdown("**mean**"), "<b>x</b>")])
    assert lines == ["| corpus | UA |",
                     "|---|---|",
                     "| my\\|lab | 61.50 |",
                     "| **mean** | \\<b\\>x\\</b\\> |"]


def test_a_line_break_in_a_name_cannot_end_the_row():
    assert table(["a"], [["two\nlines"]])[2] == "| two lines |"


def test_alignment_letters_and_the_last_one_repeats():
    assert table(["a", "b", "c"], [], "lr")[1] == "|---|---:|---:|"
    assert table(["a", "b"], [], "c")[1] == "|:---:|:---:|"
    with pytest.raises(ValueError, match="alignment 'x'"):
        table(["a"], [], "x")


def test_short_rows_are_padded_and_long_rows_refused():
    assert table(["a", "b", "c"], [[1]])[2] == "| 1 |  |  |"
    with pytest.raises(ValueError, match="a row of 2 cells in a table of 1 columns"):
        table(["a"], [[1, 2]])


def test_escape_false_writes_cells_as_given():
    assert table(["x"], [["_61.50_"]], escape=False)[2] == "| _61.50_ |"
