"""Page writers: text, JSON, and PAGE / ALTO XML validated against the official schemas."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from hwr.documents.linegeom import LineFrame, word_polygons
from hwr.documents.orientation import line_back, points_back
from hwr.documents.writers import FORMATS, SUFFIXES, parse_formats, write_page
from hwr.records import Line, Page, Recognition, Region, WordBox

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"


class _LocalXlink(etree.Resolver):
    """ALTO imports XLink from loc.gov; resolve it to the copy shipped beside it."""

    def resolve(self, url, pubid, context):
        if url.endswith("xlink.xsd"):
            return self.resolve_filename(str(SCHEMAS / "xlink.xsd"), context)
        return None


@pytest.fixture(scope="module")
def schemas():
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXlink())
    return {"pagexml": etree.XMLSchema(etree.parse(str(SCHEMAS / "pagecontent-2019-07-15.xsd"))),
            "alto": etree.XMLSchema(etree.parse(str(SCHEMAS / "alto-4-4.xsd"), parser))}


def make_page(words: bool) -> Page:
    """Two lines in one column, one slightly rotated, plus a second column; odd ids on purpose."""
    def line(lid, x0, y0, x1, y1, text, conf, dy=0):
        polygon = [(x0, y0), (x1, y0 + dy), (x1, y1 + dy), (x0, y1)]
        rec = Recognition(text, conf, char_confidences=[conf] * len(text))
        if words:
            parts, x, rec.words = text.split(), 2.0, []
            for part in parts:
                rec.words.append(WordBox(part, 0.9, x, x + 12.0 * len(part)))
                x += 12.0 * len(part) + 10
        return Line(id=lid, polygon=polygon, baseline=[(x0 + 2, y1 - 8), (x1 - 2, y1 - 8 + dy)],
                    bbox=(x0, y0, x1 + 1, y1 + dy + 1), recognition=rec)

    lines = [line("1 bad#id", 40, 40, 400, 90, "the cat sat", 0.91),
             line("l2", 40, 110, 420, 160, "on a mat & <more>", 0.5, dy=6),
             line("l2", 600, 40, 900, 90, "", 1.0)]  # duplicate id, empty text
    return Page(id="box/scan#p2", source="/data/box/scan.tif#p2", width=1000, height=300, lines=lines)


@pytest.mark.parametrize("words", [False, True])
@pytest.mark.parametrize("fmt", ["pagexml", "alto"])
def test_xml_validates_against_official_schema(schemas, fmt, words):
    xml = write_page(make_page(words), fmt)
    doc = etree.fromstring(xml.encode("utf-8"))
    assert schemas[fmt].validate(doc), schemas[fmt].error_log


def test_pagexml_lines_words_and_confidence():
    doc = etree.fromstring(write_page(make_page(True), "pagexml").encode())
    ns = {"pc": PAGE_NS}
    lines = doc.findall(".//pc:TextLine", ns)
    assert len(lines) == 3
    assert lines[0].find("pc:TextEquiv", ns).get("conf") == "0.9100"
    assert lines[1].find("pc:TextEquiv/pc:Unicode", ns).text == "on a mat & <more>"
    words = lines[0].findall("pc:Word", ns)
    assert [w.find("pc:TextEquiv/pc:Unicode", ns).text for w in words] == ["the", "cat", "sat"]
    assert lines[0].find("pc:Baseline", ns).get("points") == "42,82 398,82"
    # Geometry says the third line is a second column: its own region, read after the first.
    regions = doc.findall(".//pc:TextRegion", ns)
    assert [len(r.findall("pc:TextLine", ns)) for r in regions] == [2, 1]
    refs = doc.findall(".//pc:RegionRefIndexed", ns)
    assert [r.get("regionRef") for r in refs] == [r.get("id") for r in regions]
    assert doc.find(".//pc:Page", ns).get("imageFilename") == "scan.tif"
    # scan.tif holds several pages: the file says which is this one (hwr.datasets.pagexml reads it).
    items = doc.findall("pc:Metadata/pc:MetadataItem", ns)
    assert [(i.get("type"), i.get("name"), i.get("value")) for i in items] == [("imageProperties", "page", "2")]


def test_pagexml_of_a_single_image_names_no_page_within_it():
    page = make_page(False)
    page.source = "/data/box/scan #p2.png"  # a file's own name may hold "#p2"; only a page's ends in it
    doc = etree.fromstring(write_page(page, "pagexml").encode())
    ns = {"pc": PAGE_NS}
    assert doc.findall(".//pc:MetadataItem", ns) == []
    assert doc.find(".//pc:Page", ns).get("imageFilename") == "scan #p2.png"


def test_alto_strings_per_word_with_spaces_or_one_per_line():
    ns = {"a": ALTO_NS}
    with_words = etree.fromstring(write_page(make_page(True), "alto").encode())
    first = with_words.findall(".//a:TextLine", ns)[0]
    assert [s.get("CONTENT") for s in first.findall("a:String", ns)] == ["the", "cat", "sat"]
    assert len(first.findall("a:SP", ns)) == 2
    assert all(0.0 <= float(s.get("WC")) <= 1.0 for s in first.findall("a:String", ns))
    plain = etree.fromstring(write_page(make_page(False), "alto").encode())
    strings = plain.findall(".//a:TextLine", ns)[1].findall("a:String", ns)
    assert [s.get("CONTENT") for s in strings] == ["on a mat & <more>"] and strings[0].get("WC") == "0.5000"
    assert plain.find(".//a:MeasurementUnit", ns).text == "pixel"


def test_alto_numbers_a_documents_page_and_names_the_published_schema():
    ns = {"a": ALTO_NS}
    page = make_page(False)
    page.source = "/data/box/ledger.tif#p3"
    doc = etree.fromstring(write_page(page, "alto").encode())
    assert doc.find(".//a:Page", ns).get("PHYSICAL_IMG_NR") == "3"  # had been 1 on every page
    assert doc.find(".//a:fileName", ns).text == "ledger.tif"
    location = doc.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation")
    assert location.endswith(" http://www.loc.gov/standards/alto/v4/alto-4-4.xsd")
    page.source = "/data/box/scan.png"
    assert etree.fromstring(write_page(page, "alto").encode()).find(".//a:Page", ns).get("PHYSICAL_IMG_NR") == "1"


def test_txt_and_json():
    page = make_page(True)
    assert write_page(page, "txt") == "the cat sat\non a mat & <more>\n\n"
    data = json.loads(write_page(page, "json"))
    assert data["id"] == "box/scan#p2" and len(data["lines"]) == 3
    first = data["lines"][0]
    assert first["text"] == "the cat sat" and first["confidence"] == pytest.approx(0.91)
    assert first["polygon"][0] == [40, 40] and first["baseline"] == [[42, 82], [398, 82]]
    assert [w["text"] for w in first["words"]] == ["the", "cat", "sat"]


def test_word_polygons_follow_the_line_frame():
    page = make_page(True)
    line = page.lines[1]  # rotated: baseline drops 6 px over 376 px
    frame = LineFrame.of(line)
    assert frame.angle_deg < 0
    words = line.recognition.words
    polygons = word_polygons(line, [(w.x0, w.x1) for w in words])
    assert len(polygons) == len(words)
    for w, polygon in zip(words, polygons):
        xs = [p[0] for p in polygon]
        # Along the line, each word starts about w.x0 from the polygon's left end.
        assert abs(min(xs) - (line.polygon[0][0] + w.x0)) <= 2
        assert abs(max(xs) - (line.polygon[0][0] + w.x1)) <= 2


def test_word_polygons_clip_the_line_polygon_to_each_span():
    # An upright line whose polygon is a notched rectangle: x 100..300, y 50..90, notch at x 180..220.
    notched = [(100, 50), (180, 50), (180, 70), (220, 70), (220, 50), (300, 50), (300, 90), (100, 90)]
    line = Line(id="l", polygon=notched, baseline=[(100, 85), (300, 85)], bbox=(100, 50, 200, 40))
    inside, across_notch, outside = word_polygons(line, [(10, 50), (60, 140), (250, 260)])
    assert sorted(set(inside)) == sorted({(110, 50), (150, 50), (150, 90), (110, 90)})
    assert sorted(set(across_notch)) == sorted({(160, 50), (180, 50), (180, 70), (220, 70), (220, 50), (240, 50),
                                                (240, 90), (160, 90)})
    # A span past the polygon's end still gets a box: the band across the whole line frame.
    assert {y for _, y in outside} == {50, 90} and {x for x, _ in outside} == {350, 360}


def test_formats_and_suffixes():
    assert set(FORMATS) == set(SUFFIXES) == {"txt", "json", "pagexml", "alto"}
    assert parse_formats("txt, alto,txt") == ["txt", "alto"]
    with pytest.raises(ValueError, match="hocr"):
        parse_formats("txt,hocr")
    with pytest.raises(ValueError):
        write_page(make_page(False), "docx")


def test_regions_are_written_as_the_page_record_carries_them():
    """Geometry would put lines 1 and 2 in one block and line 3 in another; the segmenter
    said otherwise, and the writers write what it found, in its reading order."""
    page = make_page(False)
    page.regions = [Region("col_b", ["l2"]), Region("col_a", ["1 bad#id", "l2"])]  # the 2nd l2: line 3
    ns = {"pc": PAGE_NS}
    doc = etree.fromstring(write_page(page, "pagexml").encode())
    regions = doc.findall(".//pc:TextRegion", ns)
    assert [r.get("id") for r in regions] == ["col_b", "col_a"]
    assert [[line.find("pc:TextEquiv/pc:Unicode", ns).text or "" for line in r.findall("pc:TextLine", ns)]
            for r in regions] == [["on a mat & <more>"], ["the cat sat", ""]]
    order = [r.get("regionRef") for r in doc.findall(".//pc:RegionRefIndexed", ns)]
    assert order == ["col_b", "col_a"]
    alto = etree.fromstring(write_page(page, "alto").encode())
    blocks = alto.findall(f".//{{{ALTO_NS}}}TextBlock")
    assert [len(b.findall(f"{{{ALTO_NS}}}TextLine")) for b in blocks] == [1, 2]
    assert [r["id"] for r in json.loads(write_page(page, "json"))["regions"]] == ["col_b", "col_a"]


def test_a_line_no_region_names_still_gets_written(schemas):
    page = make_page(False)
    page.regions = [Region("r1", ["1 bad#id"])]
    doc = etree.fromstring(write_page(page, "pagexml").encode())
    assert len(doc.findall(f".//{{{PAGE_NS}}}TextLine")) == 3 and schemas["pagexml"].validate(doc)


def _image_names(page: Page) -> tuple[str, str]:
    """(PAGE XML imageFilename, ALTO fileName) of the page."""
    pagexml = etree.fromstring(write_page(page, "pagexml").encode("utf-8"))
    alto = etree.fromstring(write_page(page, "alto").encode("utf-8"))
    return (pagexml.find(f"{{{PAGE_NS}}}Page").get("imageFilename"),
            alto.find(f".//{{{ALTO_NS}}}fileName").text)


def test_a_hash_in_a_file_name_is_kept_and_only_a_documents_page_number_dropped():
    page = make_page(False)
    page.source = "/scans/letter #12.png"
    assert _image_names(page) == ("letter #12.png", "letter #12.png")
    page.source = "/scans/box #3/ledger #1.pdf#p12"
    assert _image_names(page) == ("ledger #1.pdf", "ledger #1.pdf")


@pytest.mark.parametrize("fmt", ["pagexml", "alto"])
def test_characters_xml_cannot_hold_never_make_the_document_ill_formed(schemas, fmt):
    page = make_page(False)  # the line's text is written whole (ALTO: one String)
    page.source = "/scans/ctl\x01x.png"  # a control character
    page.lines[0].recognition.text = "bell\x07 and \x1b escape"
    xml = write_page(page, fmt)
    doc = etree.fromstring(xml.encode("utf-8"))  # raises when not well-formed
    assert schemas[fmt].validate(doc), schemas[fmt].error_log
    # The text's control characters as U+FFFD; the file name's encoded byte for byte, naming the file.
    assert "ctl%01x.png" in xml and "bell\ufffd and \ufffd escape" in xml
    # With an undecodable byte too (file_name_in_xml).
    page.source = "/scans/ctl\x01x\udcff.png"
    xml = write_page(page, fmt)
    assert schemas[fmt].validate(etree.fromstring(xml.encode("utf-8"))), schemas[fmt].error_log
    assert "ctl%01x%FF.png" in xml


def test_page_xml_written_apart_from_the_scans_says_where_its_image_is_and_is_read_back(tmp_path, schemas):
    """`hwr transcribe scans/ --output-dir out --format pagexml` then `hwr eval out/p.xml` (or
    correcting out/ and adapting to it): imageFilename stays the bare name, as exports have it,
    and an imagePath item gives the way from the XML to the scan."""
    import xml.etree.ElementTree as ET

    from PIL import Image

    from hwr.datasets.pagexml import resolve_page_image
    from hwr.documents.writers import write_page_files

    scans = tmp_path / "scans"
    scans.mkdir()
    Image.new("L", (1000, 300), 255).save(scans / "scan.tif")
    page = make_page(words=False)
    page.source = str(scans / "scan.tif") + "#p2"
    [xml] = write_page_files(page, tmp_path / "out", "scan#p2", ["pagexml"])
    root = ET.parse(xml).getroot()
    assert schemas["pagexml"].validate(etree.parse(str(xml))), schemas["pagexml"].error_log
    items = {el.get("name"): el.get("value") for el in root.iter(f"{{{PAGE_NS}}}MetadataItem")}
    assert items == {"page": "2", "imagePath": "../scans/scan.tif"}
    assert next(root.iter(f"{{{PAGE_NS}}}Page")).get("imageFilename") == "scan.tif"
    assert resolve_page_image(xml, "scan.tif", root) == xml.parent / "../scans/scan.tif"
    # Beside the scan: the bare name says it all.
    [beside] = write_page_files(page, scans, "scan#p2", ["pagexml"])
    assert "imagePath" not in beside.read_text(encoding="utf-8")
    # An upload's display name is no file here: nothing to point to.
    page.source = "my upload.png"
    assert "imagePath" not in write_page(page, "pagexml")


def test_a_scan_whose_name_is_not_utf8_is_named_byte_for_byte_and_found_again(tmp_path, schemas):
    """A Latin-1 "café.png" from an old archive: PAGE and ALTO had named it "caf\ufffd.png", a
    name of no file, and hwr eval refused the page its own transcribe had written."""
    import os
    import xml.etree.ElementTree as ET

    from PIL import Image

    from hwr.datasets.pagexml import resolve_page_image
    from hwr.documents.writers import write_page_files

    scans = tmp_path / "scans"
    scans.mkdir()
    try:
        latin1 = os.fsdecode(os.fsencode(str(scans)) + b"/caf\xe9 1%.png")
        Image.new("L", (1000, 300), 255).save(latin1)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    page = make_page(words=False)
    page.source = latin1
    for folder, image_path in ((tmp_path / "out", "../scans/caf%E9%201%25.png"), (scans, None)):
        xml, alto = write_page_files(page, folder, "cafe", ["pagexml", "alto"])
        root = ET.parse(xml).getroot()
        assert schemas["pagexml"].validate(etree.parse(str(xml))), schemas["pagexml"].error_log
        items = {el.get("name"): el.get("value") for el in root.iter(f"{{{PAGE_NS}}}MetadataItem")}
        assert items.get("imagePath") == image_path
        name = next(root.iter(f"{{{PAGE_NS}}}Page")).get("imageFilename")
        assert name == "caf%E9%201%25.png" and "<fileName>caf%E9%201%25.png<" in alto.read_text(encoding="utf-8")
        assert os.path.samefile(resolve_page_image(xml, name, root), latin1)
    # A UTF-8 name is written as it is, "%" and all.
    page.source = str(scans / "café 1%.png")
    Image.new("L", (10, 10), 255).save(page.source)
    [xml] = write_page_files(page, scans, "utf8", ["pagexml"])
    assert 'imageFilename="café 1%.png"' in xml.read_text(encoding="utf-8")
    # A control character XML cannot hold: encoded too (it had become U+FFFD, naming no file).
    page.source = str(scans / "scan\x01 1%.png")
    Image.new("L", (10, 10), 255).save(page.source)
    [xml] = write_page_files(page, scans, "ctl", ["pagexml"])
    root = ET.parse(xml).getroot()
    name = next(root.iter(f"{{{PAGE_NS}}}Page")).get("imageFilename")
    assert name == "scan%01%201%25.png" and os.path.samefile(resolve_page_image(xml, name, root), page.source)


def turned_page(turn: int) -> Page:
    """make_page's lines as found on the same page scanned needing `turn` clockwise to read."""
    page = make_page(True)
    width, height = (page.width, page.height) if turn == 180 else (page.height, page.width)
    page.lines = [line_back(line, turn, width, height) for line in page.lines]
    page.width, page.height, page.orientation = width, height, turn
    return page


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_turned_page_says_so_and_places_its_words_along_its_lines(schemas, turn):
    page = turned_page(turn)
    correction = {90: "90", 180: "180", 270: "-90"}[turn]  # PAGE: the clockwise correction, in (-180, 180]
    doc = etree.fromstring(write_page(page, "pagexml").encode())
    assert schemas["pagexml"].validate(doc), schemas["pagexml"].error_log
    assert doc.find(".//pc:Page", {"pc": PAGE_NS}).get("orientation") == correction
    alto = etree.fromstring(write_page(page, "alto").encode())
    assert schemas["alto"].validate(alto), schemas["alto"].error_log
    assert alto.find(".//a:Page", {"a": ALTO_NS}).get("ROTATION") == str(turn)
    data = json.loads(write_page(page, "json"))
    assert data["orientation"] == turn
    upright = make_page(True).lines[0]
    expected = [points_back(p, turn, page.width, page.height)
                for p in word_polygons(upright, [(w.x0, w.x1) for w in upright.recognition.words])]
    assert [w["polygon"] for w in data["lines"][0]["words"]] == [list(map(list, p)) for p in expected]


def test_an_upright_page_writes_no_orientation():
    page = make_page(False)
    assert etree.fromstring(write_page(page, "pagexml").encode()).find(
        ".//pc:Page", {"pc": PAGE_NS}).get("orientation") is None
    assert etree.fromstring(write_page(page, "alto").encode()).find(
        ".//a:Page", {"a": ALTO_NS}).get("ROTATION") is None
    assert json.loads(write_page(page, "json"))["orientation"] == 0
