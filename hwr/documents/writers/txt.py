"""Plain text: the lines in reading order, one per line."""
from __future__ import annotations

from hwr.records import Page


def write(page: Page) -> str:
    return page.text + "\n" if page.lines else ""
