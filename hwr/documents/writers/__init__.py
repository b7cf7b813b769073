"""Page outputs, one module per format: plain text, JSON, PAGE XML (2019-07-15), ALTO v4.

Serialisation is kept apart from the pipeline: every writer takes a `records.Page` (lines in
reading order, each with polygon, baseline, bbox and a Recognition) and returns a string.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hwr.documents.writers import alto, jsonout, pagexml, txt
from hwr.fileio import atomic_write_text
from hwr.records import Page

WRITERS = {"txt": txt.write, "json": jsonout.write, "pagexml": pagexml.write, "alto": alto.write}
FORMATS = tuple(WRITERS)
# What each writer stamps near the top of its files (the creator, or JSON's first keys): a file
# at an output path without it is someone else's, e.g. a ground-truth PAGE XML beside the
# scans. A text file carries no such mark (see written_by_hwr).
OWN_MARKS = {"json": b'{\n "id": ', "pagexml": b"<Creator>hwr ", "alto": b"<softwareName>hwr</softwareName>"}
MARK_WITHIN = 2048  # bytes
SUFFIXES = {"txt": ".txt", "json": ".json", "pagexml": ".xml", "alto": ".alto.xml"}


def write_page(page: Page, fmt: str) -> str:
    """The page serialised in `fmt` (one of FORMATS)."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}") from None
    return writer(page)


def output_paths(stem: str, folder: str | Path, formats: Iterable[str]) -> list[Path]:
    """Where a page's outputs go: <folder>/<stem><suffix> (stems may hold sub-folders)."""
    return [Path(folder) / (stem + SUFFIXES[fmt]) for fmt in formats]


def write_page_files(page: Page, folder: str | Path, stem: str, formats: Iterable[str]) -> list[Path]:
    """Write the page in each format, atomically, as <folder>/<stem><suffix>; returns the paths."""
    formats = list(formats)
    paths = output_paths(stem, folder, formats)
    for fmt, path in zip(formats, paths):
        atomic_write_text(path, write_page(page, fmt))
    return paths


def written_by_hwr(path: Path, fmt: str) -> bool:
    """Whether the file at `path` (an output path of `fmt`) is an hwr output that a rerun may
    replace. A txt file cannot tell who wrote it, so it counts as hwr's; a file that cannot be
    read counts as hwr's too (writing it fails, and says so, as it would have anyway)."""
    if fmt not in OWN_MARKS:
        return True
    try:
        with open(path, "rb") as file:
            head = file.read(MARK_WITHIN)
    except OSError:
        return True
    return OWN_MARKS[fmt] in head


def parse_formats(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """"txt,pagexml" (or a list) -> ["txt", "pagexml"], checked, duplicates dropped."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    formats = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        if item in ("page", "xml"):
            item = "pagexml"
        if item not in WRITERS:
            raise ValueError(f"unknown output format {item!r}; choose from {', '.join(FORMATS)}")
        if item not in formats:
            formats.append(item)
    if not formats:
        raise ValueError("no output format given")
    return formats
