"""ALTO v4 (4.4): TextBlock > TextLine (Shape polygon, BASELINE) > String (CONTENT, WC) / SP.

With word boxes (CTC forced alignment) each word is a String with SP between; without, the
line is one String. Positions are pixels (MeasurementUnit "pixel"); a String's box is the
bounding box of its part of the line polygon (see hwr.documents.linegeom).
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

NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"


def _el(parent, tag: str, **attrs) -> ET.Element:
    return ET.SubElement(parent, f"{{{NS}}}{tag}", {k: str(v) for k, v in attrs.items() if v is not None})


def _box(x0, y0, x1, y1) -> dict:
    return {"HPOS": int(x0), "VPOS": int(y0), "WIDTH": max(0, int(x1 - x0)), "HEIGHT": max(0, int(y1 - y0))}


def write(page: Page) -> str:
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    root = ET.Element(f"{{{NS}}}alto", {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION})
    desc = _el(root, "Description")
    _el(desc, "MeasurementUnit").text = "pixel"
    info = _el(desc, "sourceImageInformation")
    _el(info, "fileName").text = image_file_name(page)
    step = _el(desc, "Processing", ID="hwr_processing")
    _el(step, "processingDateTime").text = now_utc()
    software = _el(step, "processingSoftware")
    _el(software, "softwareName").text = "hwr"
    _el(software, "softwareVersion").text = __version__
    layout = _el(root, "Layout")
    used: set[str] = set()
    # The page's number in its document (a PDF's or multi-page TIFF's `#p<N>`), 1 for an image.
    number = document_page_number(page.source or page.id) or 1
    page_el = _el(layout, "Page", ID=xml_id(f"page_{page.id}", used), PHYSICAL_IMG_NR=number,
                  WIDTH=page.width, HEIGHT=page.height)
    if page.orientation:  # ALTO's ROTATION: the text's own turn, counter-clockwise: what undoes it clockwise
        page_el.set("ROTATION", str(page.orientation))
    space = _el(page_el, "PrintSpace", **_box(0, 0, page.width, page.height))
    for region_id, lines in page_regions(page):
        block = _el(space, "TextBlock", ID=xml_id(f"block_{region_id}", used), **_box(*bbox_of(lines)))
        for line in lines:
            _write_line(block, line, used, page.orientation)
    return ET.tostring(xml_safe_tree(root), encoding="unicode", xml_declaration=True) + "\n"


def _write_line(block, line: Line, used: set[str], turn: int) -> None:
    lid = xml_id(line.id, used)
    attrs = _box(*line.bbox)
    if len(line.baseline) >= 2:
        attrs["BASELINE"] = points(line.baseline)
    line_el = _el(block, "TextLine", ID=lid, **attrs)
    if len(line.polygon) >= 3:
        _el(_el(line_el, "Shape"), "Polygon", POINTS=points(line.polygon))
    words = words_with_polygons(line, turn)
    if words:
        for k, (word, polygon) in enumerate(words, start=1):
            if k > 1:
                _el(line_el, "SP")
            xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
            _el(line_el, "String", ID=xml_id(f"{lid}_w{k}", used), CONTENT=word.text,
                WC=f"{confidence_01(word.confidence):.4f}", **_box(min(xs), min(ys), max(xs) + 1, max(ys) + 1))
        return
    conf = line_confidence(line)
    _el(line_el, "String", ID=xml_id(f"{lid}_s", used), CONTENT=line.read_text,
        WC=None if conf is None else f"{conf:.4f}", **_box(*line.bbox))
