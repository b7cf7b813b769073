"""CSV text cells that spreadsheets would read as formulas (hwr.spreadsheet)."""
from __future__ import annotations

import pytest

from hwr.spreadsheet import text_cell


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)"])
def test_a_cell_that_starts_a_formula_gets_a_leading_quote(text):
    assert text_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["", "the cat", "1-2", "a=b", " =1", "'quoted"])
def test_other_cells_are_left_as_they_are(text):
    assert text_cell(text) == text


@pytest.mark.parametrize("text, cell", [("\tx", "\\x09x"), ("\rx", "\\x0dx"), ("a\x00b", "a\\x00b"),
                                        ("\x1b[31mred", "\\x1b[31mred"), ("=\n1", "'=\\x0a1")])
def test_control_characters_are_written_as_escapes_not_raw(text, cell):
    assert text_cell(text) == cell
