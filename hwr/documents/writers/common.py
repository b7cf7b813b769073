"""What every structured writer needs: line text and confidence, word polygons, XML-safe ids
and values, the image's file name, regions."""
from __future__ import annotations

import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections import defaultdict, deque
from datetime import datetime, timezone

from hwr.documents.linegeom import word_polygons
from hwr.records import DOCUMENT_PAGE_SUFFIX, Line, Page, WordBox

_NCNAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")
# What XML 1.0 cannot hold at all, escaped or not (its `Char` production): control characters
# other than tab, newline and CR, lone surrogates (undecodable bytes of a file name) and U+FFFE/F.
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def confidence_01(value) -> float:
    """A confidence as the [0, 1] float the PAGE and ALTO schemas accept."""
    return min(1.0, max(0.0, float(value)))


def line_confidence(line: Line) -> float | None:
    if line.recognition is None:
        return None
    return confidence_01(line.recognition.confidence)


def words_with_polygons(line: Line, turn: int = 0) -> list[tuple[WordBox, list[tuple[int, int]]]]:
    """The line's recognised words, each with its polygon on the page (`turn`: the page's
    Page.orientation); empty without word boxes."""
    rec = line.recognition
    if rec is None or not rec.words:
        return []
    return list(zip(rec.words, word_polygons(line, [(word.x0, word.x1) for word in rec.words], turn)))


def xml_text(value: str) -> str:
    """`value` with what XML 1.0 cannot hold replaced by U+FFFD: a file name with a control
    character in it must not make the whole document ill-formed."""
    return _XML_BAD.sub("\ufffd", value)


def xml_safe_tree(root: ET.Element) -> ET.Element:
    """Every text, tail and attribute value of the tree made XML-safe (xml_text), in place."""
    for element in root.iter():
        if element.text:
            element.text = xml_text(element.text)
        if element.tail:
            element.tail = xml_text(element.tail)
        for key, value in element.attrib.items():
            element.attrib[key] = xml_text(value)
    return root


def image_file_name(page: Page) -> str:
    """The name of the page's image file: the source's file name without the `#p<N>` of a
    page of a multi-page document ("letter #12.png" keeps its "#12"). Every page file has a
    suffix (hwr.documents.pages.PAGE_SUFFIXES), so a name that ends in `#p<N>` is a page's.
    As a file name is written in XML (file_name_in_xml)."""
    if not page.source:
        return page.id or "page"
    return file_name_in_xml(os.path.basename(DOCUMENT_PAGE_SUFFIX.sub("", page.source)) or page.id or "page")


def file_name_in_xml(name: str) -> str:
    """A file name (or relative path) as PAGE and ALTO name the page image: as it is, unless it
    holds bytes that are not UTF-8 (a Latin-1 "café.png" from an old archive, which Python holds
    as lone surrogates): then percent-encoded byte for byte ("caf%E9.png"), which
    hwr.datasets.pagexml decodes back to the file. XML cannot hold those bytes, and U+FFFD in
    their place named no file: hwr eval, train and adapt refused the page. So too a control
    character XML 1.0 cannot hold ("scan\x01.png")."""
    if not any("\udc80" <= ch <= "\udcff" or ch in _XML_CONTROLS for ch in name):
        return name
    return urllib.parse.quote(os.fsencode(name), safe="/")


# The characters below U+0020 that XML 1.0 cannot hold (tab, line feed and carriage return it can).
_XML_CONTROLS = frozenset(chr(c) for c in range(0x20)) - {"\t", "\n", "\r"}


def xml_id(raw: str, used: set[str]) -> str:
    """An xsd:ID (NCName) made from `raw`, unique within `used` (which it joins)."""
    ident = _NCNAME_BAD.sub("_", raw) or "id"
    if not (ident[0].isalpha() or ident[0] == "_"):
        ident = "id_" + ident
    return unique_name(ident, used, "_")


def unique_name(name: str, used: set[str], separator: str = "-", numbered=None) -> str:
    """`name`, or `name-2`, `name-3`... : the first not in `used` (which it joins).
    numbered(k): the k-th candidate, where `name + separator + k` is not the form wanted."""
    candidate, k = name, 1
    while candidate in used:
        k += 1
        candidate = numbered(k) if numbered else f"{name}{separator}{k}"
    used.add(candidate)
    return candidate


def points(polygon) -> str:
    """PAGE/ALTO point list "x,y x,y", non-negative integers."""
    return " ".join(f"{max(0, int(round(x)))},{max(0, int(round(y)))}" for x, y in polygon)


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def page_regions(page: Page) -> list[tuple[str, list[Line]]]:
    """(region id, its lines) in reading order: the regions the segmenter found, as found.

    A page without regions (a line image, a page rebuilt from older JSON) falls back to
    regions guessed from geometry (group_regions). Lines no region names (a page edited after
    segmentation) each get a region of their own, after the others, so no line is dropped."""
    if not page.regions:
        return [(f"r{k + 1}", lines) for k, lines in enumerate(group_regions(page))]
    # Lines by id, in page order: a repeated id names the next line that carries it.
    by_id: dict[str, deque[int]] = defaultdict(deque)
    for index, line in enumerate(page.lines):
        by_id[line.id].append(index)
    out, placed = [], set()
    for region in page.regions:
        members = [by_id[i].popleft() for i in region.line_ids if by_id.get(i)]
        placed.update(members)
        if members:
            out.append((region.id, [page.lines[k] for k in members]))
    taken = {rid for rid, _ in out}
    for index, line in enumerate(page.lines):
        if index not in placed:
            out.append((unique_name(f"r_{line.id}", taken), [line]))
    return out


def group_regions(page: Page) -> list[list[Line]]:
    """Consecutive lines (reading order) that form one text block, guessed from geometry.

    For pages whose record carries no regions: blocks are recovered from geometry: the next line starts
    a new block when it does not overlap the previous one horizontally, or jumps up (next
    column) or down by more than two line heights (a paragraph gap or a new block).
    """
    regions: list[list[Line]] = []
    for line in page.lines:
        if regions:
            prev = regions[-1][-1]
            px0, py0, px1, py1 = prev.bbox
            x0, y0, x1, y1 = line.bbox
            height = max(1, py1 - py0, y1 - y0)
            overlaps = min(px1, x1) > max(px0, x0)
            if overlaps and -0.5 * height <= y0 - py1 <= 2 * height:
                regions[-1].append(line)
                continue
        regions.append([line])
    return regions


def bbox_of(lines: list[Line]) -> tuple[int, int, int, int]:
    boxes = [line.bbox for line in lines]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
