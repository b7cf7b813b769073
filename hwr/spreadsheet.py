"""Text cells of the CSV files hwr writes for people to open in a spreadsheet.

Excel, LibreOffice and Google Sheets read a cell that begins with `=`, `+`, `-`, `@`, a tab or
a carriage return as a formula (CSV injection, OWASP): a hypothesis or a file name from an
upload could run one. Such a text cell gets a leading single quote, the usual escape, which
spreadsheets show as text; a tab or carriage return is written \\xNN, as every control
character is. Numbers are written as they are: `-0.5` must stay a number.
"""
from __future__ import annotations

from hwr.fileio import escape_line_controls

FORMULA_STARTS = ("=", "+", "-", "@")  # a leading tab or carriage return is escaped (text_cell)


def text_cell(value: str) -> str:
    """`value` as a CSV text cell that no spreadsheet reads as a formula, its control characters
    written \\xNN as a printed reference shows them (`escape_line_controls`): a NUL cuts a
    cell short in some spreadsheets, an ESC or a stray carriage return shows as nothing."""
    value = escape_line_controls(str(value))
    return "'" + value if value.startswith(FORMULA_STARTS) else value
