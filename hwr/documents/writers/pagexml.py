"""PAGE XML, 2019-07-15 schema: TextRegion > TextLine (Coords, Baseline, Word, TextEquiv).

Confidence goes to `TextEquiv/@conf` (0..1). Word elements are written when the
recognition carries word boxes (CTC forced alignment); their Coords are the line polygon cut
between the word's ends along the baseline (see hwr.documents.linegeom). Regions are the page
record's (what the segmenter found; hwr.documents.writers.common.page_regions), listed in a ReadingOrder.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from hwr import __version__
from hwr.documents.writers.common import (
    bbox_of,
    confidence_01,
    image_file_name,
    line_confidence,
    now_utc,
    page_regions,
    points,
    words_with_polygons,
    xml_id,
    xml_safe_tree,
)
from hwr.records import Line, Page, document_page_number

NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} {NS}/pagecontent.xsd"
# The MetadataItem (PAGE 2019) that says which page of a multi-page image file a PAGE file is.
PAGE_NUMBER_ITEM = "page"
# The MetadataItem that gives the image file's path relative to the XML, where it is not beside
# it: imageFilename stays the bare file name, as Transkribus and eScriptorium exports have it.
IMAGE_PATH_ITEM = "imagePath"


def _el(parent, tag: str, **attrs) -> ET.Element:
    return ET.SubElement(parent, f"{{{NS}}}{tag}", {k: str(v) for k, v in attrs.items() if v is not None})


def _text_equiv(parent, text: str, conf: float | None) -> None:
    equiv = _el(parent, "TextEquiv", conf=None if conf is None else f"{conf:.4f}")
    _el(equiv, "Unicode").text = text


def _coords(parent, polygon) -> None:
    pts = list(polygon)
    if len(pts) < 2:  # PointsType needs two points at least; keep the element valid
        pts = pts * 2 if pts else [(0, 0), (0, 0)]
    _el(parent, "Coords", points=points(pts))


def write(page: Page, image_path: str | None = None) -> str:
    """The page as PAGE XML. `image_path`: the image file relative to the XML's folder (written
    as the imagePath item where it is not the bare imageFilename), so that hwr eval, train and
    adapt find the image of an output folder apart from the scans."""
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(f"{{{NS}}}PcGts", {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION})
    meta = _el(root, "Metadata")
    _el(meta, "Creator").text = f"hwr {__version__}"
    stamp = now_utc()
    _el(meta, "Created").text = stamp
    _el(meta, "LastChange").text = stamp
    number = document_page_number(page.source or "")
    if number is not None:
        # imageFilename names a file of several pages (a PDF, a multi-page TIFF): say which is this
        # one (hwr.datasets.pagexml reads the item back; PAGE has no attribute of its own for it).
        _el(meta, "MetadataItem", type="imageProperties", name=PAGE_NUMBER_ITEM, value=number)
    file_name = image_file_name(page)
    if image_path and image_path != file_name:
        _el(meta, "MetadataItem", type="imageProperties", name=IMAGE_PATH_ITEM, value=image_path)
    page_el = _el(root, "Page", imageFilename=file_name, imageWidth=page.width, imageHeight=page.height)
    if page.orientation:  # PAGE's clockwise correction lies in (-180, 180]
        page_el.set("orientation", str(page.orientation - 360 if page.orientation > 180 else page.orientation))
    used: set[str] = set()
    found = page_regions(page)
    regions = [lines for _, lines in found]
    region_ids = [xml_id(rid, used) for rid, _ in found]
    if regions:
        order = _el(_el(page_el, "ReadingOrder"), "OrderedGroup", id=xml_id("ro", used), caption="reading order")
        for k, rid in enumerate(region_ids):
            _el(order, "RegionRefIndexed", index=k, regionRef=rid)
    for rid, lines in zip(region_ids, regions):
        region_el = _el(page_el, "TextRegion", id=rid, type="paragraph")
        x0, y0, x1, y1 = bbox_of(lines)
        _coords(region_el, [(x0, y0), (x1 - 1, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)])
        for line in lines:
            _write_line(region_el, line, used, page.orientation)
        _text_equiv(region_el, "\n".join(line.read_text for line in lines), None)
    return ET.tostring(xml_safe_tree(root), encoding="unicode", xml_declaration=True) + "\n"


def _write_line(region_el, line: Line, used: set[str], turn: int) -> None:
    lid = xml_id(line.id, used)
    line_el = _el(region_el, "TextLine", id=lid)
    _coords(line_el, line.polygon)
    if len(line.baseline) >= 2:
        _el(line_el, "Baseline", points=points(line.baseline))
    for k, (word, polygon) in enumerate(words_with_polygons(line, turn), start=1):
        word_el = _el(line_el, "Word", id=xml_id(f"{lid}_w{k}", used))
        _coords(word_el, polygon)
        _text_equiv(word_el, word.text, confidence_01(word.confidence))
    _text_equiv(line_el, line.read_text, line_confidence(line))
