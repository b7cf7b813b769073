"""Page outputs, one module per format: plain text, JSON, PAGE XML (2019-07-15), ALTO v4.

Serialisation is kept apart from the pipeline: every writer takes a `records.Page` (lines in
reading order, each with polygon, baseline, bbox and a Recognition) and returns a string.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from hwr.documents.writers import alto, jsonout, pagexml, txt
from hwr.documents.writers.common import file_name_in_xml
from hwr.documents.writers.manifest import OutputManifest
from hwr.fileio import atomic_write_bytes, utf8_bytes
from hwr.records import DOCUMENT_PAGE_SUFFIX, Page

WRITERS = {"txt": txt.write, "json": jsonout.write, "pagexml": pagexml.write, "alto": alto.write}
FORMATS = tuple(WRITERS)
# What each writer stamps near the top of its files (the creator, or JSON's first keys): a file
# at an output path without it is someone else's, e.g. a ground-truth PAGE XML beside the
# scans. A text file carries no such mark, and a file hwr wrote keeps it when corrected by hand:
# the output folder's manifest records what hwr wrote (hwr.documents.writers.manifest; see
# written_by_hwr); the mark decides only where there is no record.
OWN_MARKS = {"json": b'{\n "creator": "hwr ', "pagexml": b"<Creator>hwr ", "alto": b"<softwareName>hwr</softwareName>"}
MARK_WITHIN = 2048  # bytes
SUFFIXES = {"txt": ".txt", "json": ".json", "pagexml": ".xml", "alto": ".alto.xml"}


def write_page(page: Page, fmt: str, image_path: str | None = None) -> str:
    """The page serialised in `fmt` (one of FORMATS). `image_path`: for PAGE XML, the page's
    image file relative to the folder the XML goes to (`image_path_from`)."""
    try:
        writer = WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}") from None
    return pagexml.write(page, image_path) if fmt == "pagexml" else writer(page)


def image_path_from(page: Page, folder: Path) -> str | None:
    """The page's image file as a path relative to `folder`, when its source is a file here
    (not an upload's display name); a page of a PDF or multi-page TIFF names the file."""
    if not page.source:
        return None
    source = Path(DOCUMENT_PAGE_SUFFIX.sub("", page.source))
    if not source.is_file():
        source = Path(page.source)  # a file whose own name ends in #p<N>
        if not source.is_file():
            return None
    try:
        return file_name_in_xml(Path(os.path.relpath(source.resolve(), folder.resolve())).as_posix())
    except (OSError, ValueError):  # another drive (Windows), a path that cannot be resolved
        return None


def output_paths(stem: str, folder: str | Path, formats: Iterable[str]) -> list[Path]:
    """Where a page's outputs go: <folder>/<stem><suffix> (stems may hold sub-folders)."""
    return [Path(folder) / (stem + SUFFIXES[fmt]) for fmt in formats]


def write_page_files(page: Page, folder: str | Path, stem: str, formats: Iterable[str],
                     manifest: OutputManifest | None = None, origin: dict | None = None,
                     locate_image: bool = True) -> list[Path]:
    """Write the page in each format, atomically, as <folder>/<stem><suffix>; returns the paths.
    `manifest`: the folder's record, where each output is recorded as hwr's, read from `origin`
    (OutputManifest.origin_of). `locate_image` False: the page's source is a name from
    elsewhere (a web upload's), never looked up on this machine for PAGE's image path."""
    formats = list(formats)
    paths = output_paths(stem, folder, formats)
    for fmt, path in zip(formats, paths):
        image_path = image_path_from(page, path.parent) if fmt == "pagexml" and locate_image else None
        data = utf8_bytes(write_page(page, fmt, image_path))
        if manifest is not None:
            manifest.record(path, data, origin)
        atomic_write_bytes(path, data)
    return paths


def written_by_hwr(path: Path, fmt: str, manifest: OutputManifest) -> bool:
    """Whether the file at `path` (an output path of `fmt`) is an hwr output that a rerun may
    replace, as `manifest` (the output folder's record) tells: what hwr wrote there and still
    there, unedited. A marked format (PAGE, ALTO, JSON) the manifest does not know counts as hwr's
    when it carries hwr's mark (an output of a version that kept no record); a PAGE XML hwr wrote
    and someone corrected since keeps the mark but is theirs now. A file that cannot be read
    counts as hwr's (writing it fails, and says so, as it would have anyway)."""
    try:
        data = path.read_bytes()
    except OSError:
        return True
    if manifest.knows(path):
        return manifest.wrote(path, data)
    return fmt in OWN_MARKS and OWN_MARKS[fmt] in data[:MARK_WITHIN]


def holds_lines(path: Path, fmt: str) -> bool:
    """Whether the output file of `fmt` at `path` holds a line: a page on which the segmenter
    found none is written without any (an empty text file). A file that cannot be read, or
    read as `fmt`, counts as holding lines: it is not known to be an empty page."""
    try:
        data = path.read_bytes()
    except OSError:
        return True
    if fmt == "txt":
        return bool(data)
    if fmt == "json":
        try:
            return bool(json.loads(data)["lines"])
        except (ValueError, KeyError, TypeError):
            return True
    return b"<TextLine" in data  # PAGE XML and ALTO alike


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
