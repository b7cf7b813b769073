"""CSV text cells that spreadsheets would read as formulas (hwr.spreadsheet)."""
from __future__ import annotations

import pytest

from hwr.spreadsheet import text_cell


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_that_starts_a_formula_gets_a_leading_quote(text):
    assert text_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["", "the cat", "1-2", "a=b", " =1", "'quoted"])
def test_other_cells_are_left_as_they_are(text):
    assert text_cell(text) == text
