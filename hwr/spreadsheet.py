"""Text cells of the CSV files hwr writes for people to open in a spreadsheet.

Excel, LibreOffice and Google Sheets read a cell that begins with `=`, `+`, `-`, `@`, a tab or
a carriage return as a formula (CSV injection, OWASP): a hypothesis or a file name from an
upload could run one. Such a text cell gets a leading single quote, the usual escape, which
spreadsheets show as text. Numbers are written as they are: `-0.5` must stay a number.
"""
from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """`value` as a CSV text cell that no spreadsheet reads as a formula."""
    value = str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value
