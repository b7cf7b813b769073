"""PAGE XML reader: lines cut from the page image along their polygons."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwr.datasets import DatasetError, SkipReport, read_pagexml

NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def page_xml(image_name: str, lines: str, width: int = 40, height: int = 30) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="{NS}">
  <Page imageFilename="{image_name}" imageWidth="{width}" imageHeight="{height}">
    <TextRegion id="r1"><Coords points="0,0 39,0 39,29 0,29"/>
{lines}
    </TextRegion>
  </Page>
</PcGts>
"""


TWO_LINES = """
      <TextLine id="l1"><Coords points="2,2 20,2 20,9 2,9"/>
        <TextEquiv index="2"><Unicode>second choice</Unicode></TextEquiv>
        <TextEquiv index="1"><Unicode> first line </Unicode></TextEquiv></TextLine>
      <TextLine id="l2"><Coords points="5,15 30,15 5,25"/>
        <TextEquiv><Unicode>triangle</Unicode></TextEquiv></TextLine>
      <TextLine id="l3"><Coords points="2,26 20,26 20,28 2,28"/></TextLine>
"""


def make_page(folder: Path, name: str = "page", lines: str = TWO_LINES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(folder / f"{name}.png")  # all ink
    xml = folder / f"{name}.xml"
    xml.write_text(page_xml(f"{name}.png", lines), encoding="utf-8")
    return xml


def test_cuts_transcribed_lines_and_reports_untranscribed(tmp_path):
    report = SkipReport()
    samples = read_pagexml(make_page(tmp_path), report=report)
    assert [(s.id, s.text) for s in samples] == [("page/l1", "first line"), ("page/l2", "triangle")]
    rect, triangle = samples[0].image, samples[1].image
    assert rect.shape == (8, 19) and rect.dtype == np.uint8 and (rect == 0).all()
    # Outside the triangle is painted white; inside keeps the page pixels.
    assert triangle.shape == (11, 26) and triangle[0, 0] == 0 and triangle[10, 25] == 255
    assert samples[1].meta["bbox"] == (5, 15, 31, 26)
    assert samples[1].where.endswith(".xml#l2")  # messages name the XML and the line, not pixels
    assert [e.reason for e in report.entries] == ["TextLine 'l3' has no text"]


def test_lines_of_one_page_sharing_an_id_are_told_apart_not_dropped(tmp_path):
    """An export that numbers each region's lines from l0 again: with --skip-bad, every line but
    the first of each id had been left out as a duplicate (a probe helper)."""
    lines = "".join(f'<TextLine id="l0"><Coords points="2,{y} 20,{y} 20,{y + 5} 2,{y + 5}"/>'
                    f"<TextEquiv><Unicode>line {k}</Unicode></TextEquiv></TextLine>"
                    for k, y in enumerate((2, 10, 18)))
    report = SkipReport()
    samples = read_pagexml(make_page(tmp_path, lines=lines), skip_bad=True, report=report)
    assert [(s.id, s.text) for s in samples] == [("page/l0", "line 0"), ("page/l0@2", "line 1"),
                                                 ("page/l0@3", "line 2")]
    assert not report.entries


def test_an_image_named_the_windows_way_is_found(tmp_path):
    """imageFilename="imgs\\page.png" or "C:\\scans\\page.png" from an export made on Windows had
    named no file here (a probe helper)."""
    xml = make_page(tmp_path)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "page.png").rename(tmp_path / "imgs" / "page.png")
    text = xml.read_text(encoding="utf-8")
    xml.write_text(text.replace('imageFilename="page.png"', 'imageFilename="imgs\\page.png"'), encoding="utf-8")
    assert [s.text for s in read_pagexml(xml)] == ["first line", "triangle"]
    (tmp_path / "imgs" / "page.png").rename(tmp_path / "page.png")
    xml.write_text(text.replace('imageFilename="page.png"', 'imageFilename="C:\\scans\\page.png"'),
                   encoding="utf-8")
    assert [s.text for s in read_pagexml(xml)] == ["first line", "triangle"]
    # A relative one is that path only: the page of its name beside the XML may be another one (a review).
    xml.write_text(text.replace('imageFilename="page.png"', 'imageFilename="vol2\\page.png"'), encoding="utf-8")
    with pytest.raises(DatasetError, match="not found"):
        read_pagexml(xml)


def test_text_at_word_level_only_or_in_plaintext_is_the_lines_text(tmp_path):
    words = ('<TextLine id="l1"><Coords points="2,2 20,2 20,9 2,9"/>'
             '<Word id="w1"><Coords points="2,2 9,2 9,9 2,9"/><TextEquiv><Unicode>two</Unicode></TextEquiv></Word>'
             '<Word id="w2"><Coords points="11,2 20,2 20,9 11,9"/><TextEquiv><Unicode>words</Unicode></TextEquiv>'
             '</Word></TextLine>'
             '<TextLine id="l2"><Coords points="2,12 20,12 20,19 2,19"/>'
             '<TextEquiv><PlainText>plain text</PlainText></TextEquiv></TextLine>'
             '<TextLine id="l3"><Coords points="2,21 20,21 20,28 2,28"/>'
             '<Word id="w3"><Coords points="2,21 9,21 9,28 2,28"/><TextEquiv><Unicode>half</Unicode></TextEquiv></Word>'
             '<Word id="w4"><Coords points="11,21 20,21 20,28 11,28"/></Word></TextLine>')
    report = SkipReport()
    samples = read_pagexml(make_page(tmp_path, lines=words), report=report)
    assert [(s.id, s.text) for s in samples] == [("page/l1", "two words"), ("page/l2", "plain text")]
    assert [e.reason for e in report.entries] == ["TextLine 'l3' has no text"]  # a word untranscribed: not whole


def test_lines_of_a_page_in_light_ink_are_cut_in_dark_ink(tmp_path):
    from helpers import render_line

    line = render_line("negative film")
    page = np.full((60, line.shape[1] + 20), 255, np.uint8)
    page[10:10 + line.shape[0], 10:10 + line.shape[1]] = line
    h, w = page.shape
    triangle = f'<TextLine id="l1"><Coords points="5,5 {w - 5},5 5,{h - 5}"/><TextEquiv><Unicode>x</Unicode>' \
               "</TextEquiv></TextLine>"
    crops = []
    for name, pixels in (("positive", page), ("negative", 255 - page)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.xml").write_text(page_xml(f"{name}.png", triangle, w, h), encoding="utf-8")
        [sample] = read_pagexml(tmp_path / f"{name}.xml")
        crops.append(sample.image)
    assert np.array_equal(crops[0], crops[1])  # white outside the polygon, not a blot of light ink


def test_folder_reads_pages_sorted_and_passes_over_other_xml(tmp_path):
    make_page(tmp_path / "b", "p")
    make_page(tmp_path / "a", "p")
    (tmp_path / "mets.xml").write_text("<mets/>", encoding="utf-8")
    samples = read_pagexml(tmp_path)
    assert [s.id for s in samples] == ["a/p/l1", "a/p/l2", "b/p/l1", "b/p/l2"]


def test_pages_named_in_upper_case_are_read_beside_lower_case_ones(tmp_path):
    """A folder mixing a.xml and b.XML (a Windows tool's export) had read a.xml alone, exit 0."""
    from hwr.datasets import open_dataset

    make_page(tmp_path, "a")
    make_page(tmp_path, "b").rename(tmp_path / "b.XML")
    assert [s.id for s in read_pagexml(tmp_path)] == ["a/l1", "a/l2", "b/l1", "b/l2"]
    only_upper = tmp_path / "upper"
    make_page(only_upper, "c").rename(only_upper / "c.XML")
    assert [s.id for s in open_dataset(str(only_upper))] == ["c/l1", "c/l2"]  # found PAGE, not "cannot tell"


def test_transkribus_layout_finds_image_above_page_folder(tmp_path):
    xml = make_page(tmp_path / "page")
    (tmp_path / "page" / "page.png").rename(tmp_path / "page.png")
    assert len(read_pagexml(xml)) == 2


def test_bad_coords_raise_or_are_skipped(tmp_path):
    bad = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', 'points="2,2 20"')
    xml = make_page(tmp_path, lines=bad)
    with pytest.raises(DatasetError, match=r"page\.xml: TextLine 'l1': malformed Coords"):
        read_pagexml(xml)
    assert [s.id for s in read_pagexml(xml, skip_bad=True, report=SkipReport())] == ["page/l2"]


def test_page_level_problems_name_the_xml(tmp_path):
    xml = make_page(tmp_path)
    (tmp_path / "page.png").unlink()
    with pytest.raises(DatasetError, match=r"page\.xml: page image 'page.png' not found"):
        read_pagexml(xml)
    xml.write_text("<PcGts><Page>\n<oops></PcGts>", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"page\.xml:2: not well-formed XML"):
        read_pagexml(xml)


def test_a_page_image_named_in_another_unicode_form_is_found_and_a_folder_is_named_as_one(tmp_path):
    """macOS and some zip tools store "é" decomposed (NFD), XML files as one character (NFC):
    the two names look alike everywhere, so "not found" named a file the user could see."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "Seite é 1"), unicodedata.normalize("NFD", "Seite é 1")
    xml = make_page(tmp_path, nfd)
    xml.write_text(page_xml(f"{nfc}.png", TWO_LINES), encoding="utf-8")
    samples = read_pagexml(xml)
    assert len(samples) == 2 and samples[0].meta["page_image"].endswith(f"{nfd}.png")
    (tmp_path / f"{nfd}.png").unlink()
    (tmp_path / f"{nfc}.png").mkdir()
    with pytest.raises(DatasetError, match=r"page image 'Seite é 1.png' names a folder"):
        read_pagexml(xml)


def test_a_missing_page_image_skips_each_transcribed_line_of_its_page(tmp_path):
    make_page(tmp_path / "a", "p")
    make_page(tmp_path / "b", "q")
    (tmp_path / "b" / "q.png").unlink()
    report = SkipReport()
    assert [s.id for s in read_pagexml(tmp_path, skip_bad=True, report=report)] == ["a/p/l1", "a/p/l2"]
    assert [(e.untranscribed, e.reason.split(":")[0]) for e in report.entries] == [
        (True, "TextLine 'l3' has no text"), (True, "TextLine 'l3' has no text"),
        (False, "TextLine 'l1'"), (False, "TextLine 'l2'")]
    assert all("'q.png' not found" in e.reason for e in report.problems)
    # Counted with the unreadable images, not as bad ground truth: the transcriptions may be fine.
    assert [e.image_missing for e in report.problems] == [True, True]


@pytest.mark.parametrize("written", ["my%20page.png", "file:///scans/box%201/my%20page.png",
                                     "https://example.org/iiif/my%20page.png"])
def test_a_page_image_named_by_a_uri_or_percent_encoded_is_found_beside_the_xml(tmp_path, written):
    xml = make_page(tmp_path, "my page")
    xml.write_text(page_xml(written, TWO_LINES), encoding="utf-8")
    assert len(read_pagexml(xml)) == 2
    assert len(read_pagexml(xml, confined_to=tmp_path)) == 2  # in an upload too: found beside the XML


def test_a_page_image_named_in_another_case_is_not_taken_but_pointed_at(tmp_path):
    xml = make_page(tmp_path, "page")
    xml.write_text(page_xml("PAGE.PNG", TWO_LINES), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"'PAGE.PNG' not found .*; .*page\.png is there \(the names differ in case"):
        read_pagexml(xml)


def test_declared_size_must_match_the_image(tmp_path):
    xml = make_page(tmp_path)
    Image.new("L", (30, 40), 255).save(tmp_path / "page.png")  # rotated copy of the scan
    with pytest.raises(DatasetError, match="is 30x40 but the XML declares 40x30"):
        read_pagexml(xml)
    Image.new("L", (40, 30), 255).save(tmp_path / "page.png")
    # A size written as a decimal number ("40.0") declares the same pixels.
    xml.write_text(xml.read_text().replace('imageWidth="40"', 'imageWidth="40.0"'))
    assert 'imageWidth="40.0"' in xml.read_text() and len(read_pagexml(xml)) == 2


def test_2010_point_children_and_no_namespace(tmp_path):
    xml = make_page(tmp_path)
    points = "".join(f'<Point x="{x}" y="{y}"/>' for x, y in [(1, 1), (9, 1), (9, 4), (1, 4)])
    xml.write_text(
        '<PcGts><Page imageFilename="page.png"><TextLine id="old"><Coords>' + points + "</Coords>"
        "<TextEquiv><Unicode>old schema</Unicode></TextEquiv></TextLine></Page></PcGts>",
        encoding="utf-8",
    )
    (sample,) = read_pagexml(xml)
    assert sample.text == "old schema" and sample.image.shape == (4, 9)


def two_region_page(folder: Path, reading_order: str) -> Path:
    """Region rB stored before rA; `reading_order` is the Page's ReadingOrder element (or "")."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(folder / "page.png")
    xml = folder / "page.xml"
    xml.write_text(f"""<PcGts xmlns="{NS}"><Page imageFilename="page.png" imageWidth="40" imageHeight="30">
  {reading_order}
  <TextRegion id="rB"><TextLine id="b1"><Coords points="2,16 30,16 30,25 2,25"/>
    <TextEquiv><Unicode>second</Unicode></TextEquiv></TextLine></TextRegion>
  <TextRegion id="rC"><TextLine id="c1"><Coords points="2,26 30,26 30,29 2,29"/>
    <TextEquiv><Unicode>unranked</Unicode></TextEquiv></TextLine></TextRegion>
  <TextRegion id="rA"><TextLine id="a1"><Coords points="2,2 30,2 30,12 2,12"/>
    <TextEquiv><Unicode>first</Unicode></TextEquiv></TextLine></TextRegion>
</Page></PcGts>""", encoding="utf-8")
    return xml


A_THEN_B = """<ReadingOrder><OrderedGroup id="g"><RegionRefIndexed index="1" regionRef="rB"/>
  <RegionRefIndexed index="0" regionRef="rA"/></OrderedGroup></ReadingOrder>"""


def test_lines_follow_the_reading_order_and_unranked_regions_keep_file_order_after(tmp_path):
    assert [s.text for s in read_pagexml(two_region_page(tmp_path / "ro", A_THEN_B))] == ["first", "second", "unranked"]
    assert [s.text for s in read_pagexml(two_region_page(tmp_path / "no-ro", ""))] == ["second", "unranked", "first"]


def test_a_line_without_id_never_takes_the_id_of_a_real_line(tmp_path):
    lines = TWO_LINES.replace('id="l1"', 'id="line2"').replace('<TextLine id="l2">', "<TextLine>")
    ids = [s.id for s in read_pagexml(make_page(tmp_path, lines=lines))]
    assert ids[0] == "page/line2" and ids[1] != "page/line2" and len(set(ids)) == 2


def test_untranscribed_lines_are_recorded_apart_from_bad_ones(tmp_path):
    report = SkipReport()
    bad = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', 'points="2,2 20"')
    read_pagexml(make_page(tmp_path, lines=bad), skip_bad=True, report=report)
    assert [(e.untranscribed, e.reason.split(":")[0]) for e in report.entries] == [
        (True, "TextLine 'l3' has no text"), (False, "TextLine 'l1'")]


def test_when_every_page_is_skipped_the_error_says_why(tmp_path):
    make_page(tmp_path / "a", "p")
    make_page(tmp_path / "b", "p")
    Image.new("L", (20, 20), 255).save(tmp_path / "b" / "p.png")  # a resized copy of the scan
    (tmp_path / "a" / "p.png").rename(tmp_path / "a" / "P.PNG")  # wrong case
    # Each transcribed line of a page lost with its image is one skipped line: 2 pages x 2 lines.
    with pytest.raises(DatasetError,
                       match=r"no transcribed TextLine.*4 skipped: .*'l1': page image 'p\.png' not found.*is 20x20"):
        read_pagexml(tmp_path, skip_bad=True, report=SkipReport())
    with pytest.raises(DatasetError, match=r"4 skipped"):
        read_pagexml(tmp_path, skip_bad=True)  # no report given: the reasons are still said


def test_a_polygon_enclosing_no_area_is_refused_naming_the_line(tmp_path):
    flat = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', 'points="2,5 10,5 20,5"')
    with pytest.raises(DatasetError, match=r"page\.xml: TextLine 'l1': degenerate polygon"):
        read_pagexml(make_page(tmp_path, lines=flat))


def test_a_self_intersecting_polygon_is_cut_as_it_is_filled(tmp_path):
    """A bowtie (the line's right end dragged upside down in an editor) sums to area 0 by the
    shoelace formula and was refused as degenerate; both its lobes hold the line's ink."""
    bowtie = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', 'points="2,2 20,9 20,2 2,9"')
    first = read_pagexml(make_page(tmp_path, lines=bowtie))[0]
    assert first.meta["bbox"] == (2, 2, 21, 10) and (first.image == 0).mean() > 0.5


def test_a_baseline_traced_out_and_back_still_encloses_nothing(tmp_path):
    there_and_back = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', 'points="2,5 10,8 20,5 10,8"')
    with pytest.raises(DatasetError, match=r"TextLine 'l1': degenerate polygon"):
        read_pagexml(make_page(tmp_path, lines=there_and_back))


@pytest.mark.parametrize("points, bbox", [("2,2 1e12,2 1e12,9 2,9", (2, 2, 40, 10)),  # to the page's right edge
                                           ("2,2 20,2 20,1e12 2,1e12", (2, 2, 21, 30)),
                                           ("-1e12,2 20,2 20,9 -1e12,9", (0, 2, 21, 10))])
def test_a_point_far_off_the_page_is_held_to_the_page(tmp_path, points, bbox):
    """Past int32 (clipped to its limits), the box's right edge wrapped round to -2**31: an empty
    crop, or OpenCV's "Layout of the output array img is incompatible" out of a PAGE folder."""
    far = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', f'points="{points}"')
    first = read_pagexml(make_page(tmp_path, lines=far))[0]
    x0, y0, x1, y1 = bbox
    assert first.meta["bbox"] == bbox and first.image.shape == (y1 - y0, x1 - x0) and (first.image == 0).all()


def test_a_flat_polygon_far_off_the_page_is_measured_without_wrapping_round(tmp_path):
    flat = TWO_LINES.replace('points="2,2 20,2 20,9 2,9"', 'points="-1e12,5 10,5 20,5"')
    with pytest.raises(DatasetError, match=r"degenerate polygon \(2147483668x0 px box"):
        read_pagexml(make_page(tmp_path, lines=flat))


def test_a_line_break_inside_unicode_reads_as_a_space(tmp_path):
    broken = TWO_LINES.replace("<Unicode> first line </Unicode>", "<Unicode>first\n   line </Unicode>")
    assert read_pagexml(make_page(tmp_path, lines=broken))[0].text == "first line"


def two_page_tiff(folder: Path) -> Path:
    """A 2-page TIFF: page 1 all ink, page 2 blank but for an ink square where the line is."""
    folder.mkdir(parents=True, exist_ok=True)
    first = Image.fromarray(np.zeros((30, 40), np.uint8))
    second = np.full((30, 40), 255, np.uint8)
    second[2:10, 2:21] = 0
    second[4, 4] = 128  # a mark only page 2 has
    path = folder / "book.tif"
    first.save(path, save_all=True, append_images=[Image.fromarray(second)])
    return path


ONE_LINE = """
      <TextLine id="l1"><Coords points="2,2 20,2 20,9 2,9"/>
        <TextEquiv><Unicode>page two</Unicode></TextEquiv></TextLine>
"""


def test_a_page_of_a_multi_page_image_is_cut_from_that_page(tmp_path):
    two_page_tiff(tmp_path)
    # As hwr transcribe writes it: the MetadataItem names the page (the XML's name need not).
    xml = tmp_path / "renamed.xml"
    xml.write_text(page_xml("book.tif", ONE_LINE).replace(
        "<Page ", '<Metadata><Creator>x</Creator><Created>2026-01-01T00:00:00</Created>'
        '<LastChange>2026-01-01T00:00:00</LastChange>'
        '<MetadataItem type="imageProperties" name="page" value="2"/></Metadata><Page '), encoding="utf-8")
    [line] = read_pagexml(xml)
    assert line.text == "page two" and line.image[2, 2] == 128
    # hwr's own file name says it too, when the XML has no such item.
    named = tmp_path / "book#p2.xml"
    named.write_text(page_xml("book.tif", ONE_LINE), encoding="utf-8")
    assert read_pagexml(named)[0].image[2, 2] == 128


def test_a_multi_page_image_without_its_page_number_is_refused_not_cut_from_page_one(tmp_path):
    two_page_tiff(tmp_path)
    xml = tmp_path / "book.xml"
    xml.write_text(page_xml("book.tif", ONE_LINE), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"book\.xml.*book\.tif has 2 pages and the XML does not say which"):
        read_pagexml(xml)
    beyond = tmp_path / "book#p3.xml"
    beyond.write_text(page_xml("book.tif", ONE_LINE), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"describes page 3 of .*book\.tif, which has 2 pages"):
        read_pagexml(beyond)
    # A superscript two is a digit to str.isdigit but not to int(): it was a ValueError traceback.
    odd = tmp_path / "odd.xml"
    odd.write_text(page_xml("book.tif", ONE_LINE).replace(
        "<Page ", '<Metadata><Creator>x</Creator><Created>2026-01-01T00:00:00</Created>'
        '<LastChange>2026-01-01T00:00:00</LastChange>'
        '<MetadataItem type="other" name="page" value="\u00b2"/></Metadata><Page '), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"odd\.xml.*must be a page number from 1, got '\u00b2'"):
        read_pagexml(odd)


def ink_square_pdf(folder: Path) -> Path:
    """A 40 x 30 pt one-page PDF: white, an ink square where ONE_LINE's polygon is (at 72 dpi)."""
    page = np.full((30, 40), 255, np.uint8)
    page[2:10, 2:21] = 0
    path = folder / "letter.pdf"
    Image.fromarray(page).save(path, resolution=72)
    return path


def test_a_pdf_page_is_drawn_at_the_dpi_its_declared_size_gives_not_the_default(tmp_path):
    """hwr transcribe --dpi 72 wrote this PAGE file (40x30 px); drawn at the default 300 dpi the
    page was 167x126 and every line was refused, so hwr's own output could not be scored."""
    ink_square_pdf(tmp_path)
    xml = tmp_path / "letter.xml"
    xml.write_text(page_xml("letter.pdf", ONE_LINE), encoding="utf-8")
    [line] = read_pagexml(xml)
    assert line.image.shape == (8, 19) and (line.image < 128).mean() > 0.9  # the ink square, whole
    xml.write_text(page_xml("letter.pdf", ONE_LINE).replace('imageWidth="40"', 'imageWidth="40.0"'), encoding="utf-8")
    [line] = read_pagexml(xml)  # a size written as a decimal number gives the same dpi
    assert line.image.shape == (8, 19)
    xml.write_text(page_xml("letter.pdf", ONE_LINE, width=41, height=17), encoding="utf-8")  # no dpi draws this
    with pytest.raises(DatasetError, match=r"letter\.pdf is 167x126 but the XML declares 41x17"):
        read_pagexml(xml)
    # A declared size that is no number ("4\u00b2": a digit to str.isdigit, not to int()) leaves
    # the default dpi, whose size the check then names; it was a ValueError traceback.
    xml.write_text(page_xml("letter.pdf", ONE_LINE).replace('imageWidth="40"', 'imageWidth="4\u00b2"'),
                   encoding="utf-8")
    with pytest.raises(DatasetError, match=r"letter\.pdf is 167x126 but the XML declares"):
        read_pagexml(xml)


@pytest.mark.parametrize("orientation, turn", [("90", 90), ("-90", 270), ("180.0", 180), ("3.5", 0), ("x", 0)])
def test_lines_of_a_page_marked_as_turned_are_cut_upright(tmp_path, orientation, turn):
    """hwr transcribe writes Page/@orientation for a page it read turned; a corrected copy of
    it used for training must give the lines upright, as they were read."""
    from hwr.documents.orientation import turned

    image = np.full((30, 40), 230, np.uint8)
    image[3:5, 3:15] = 20  # ink along the line's top: shows which way its crop lies
    Image.fromarray(image).save(tmp_path / "page.png")
    line = """<TextLine id="l1"><Coords points="2,2 20,2 20,9 2,9"/>
        <TextEquiv><Unicode>a line</Unicode></TextEquiv></TextLine>"""
    xml = tmp_path / "page.xml"
    xml.write_text(page_xml("page.png", line), encoding="utf-8")
    as_is = read_pagexml(xml)[0].image
    xml.write_text(page_xml("page.png", line).replace("<Page ", f'<Page orientation="{orientation}" '),
                   encoding="utf-8")
    assert np.array_equal(read_pagexml(xml)[0].image, turned(as_is, turn))


def test_a_polygon_that_only_touches_the_page_edge_is_no_line():
    """It passed as on the page (its right edge at x = 0) and was cut as a 1-pixel strip."""
    import numpy as np

    from hwr.datasets.pagexml import unusable_line_polygon

    left = np.array([[-100, 100], [0, 100], [0, 200], [-100, 200]], np.int32)
    bottom = np.array([[10, 299], [200, 299], [200, 400], [10, 400]], np.int32)
    across = np.array([[-50, 100], [150, 100], [150, 140], [-50, 140]], np.int32)
    assert unusable_line_polygon(left, 400, 300).startswith("polygon barely reaches onto the page image")
    assert unusable_line_polygon(bottom, 400, 300).startswith("polygon barely reaches onto the page image")
    assert unusable_line_polygon(across, 400, 300) == ""  # mostly on the page: its part there is a line
    # A band across a corner, both ends beyond two sides: its part on the page is a line (moving
    # each point onto the page had flattened it); a band wholly off the page beyond a corner is none.
    corner = np.array([[-60, -20], [-20, -60], [1040, 1000], [1000, 1040]], np.int32)
    beyond = np.array([[-300, 40], [40, -300], [60, -280], [-280, 60]], np.int32)
    assert unusable_line_polygon(corner, 1000, 1000) == ""
    assert unusable_line_polygon(beyond, 1000, 1000) == "polygon lies outside the page image"


def test_a_polygon_mostly_off_the_page_is_no_line():
    """Four fifths beyond the page's right side: its crop had held a sliver with no ink, trained on
    under the whole line's text (a probe helper); the XML was drawn on another image or size."""
    import numpy as np

    from hwr.datasets.pagexml import unusable_line_polygon

    mostly_off = np.array([[700, 100], [1200, 100], [1200, 180], [700, 180]], np.int32)
    assert unusable_line_polygon(mostly_off, 800, 600) == (
        "polygon lies mostly outside the page image (20% of it on the 800 x 600 page): is the image the one it "
        "was drawn on, at that size?")
    assert unusable_line_polygon(mostly_off, 1000, 600) == ""  # three fifths on it


def test_an_image_name_too_long_for_the_file_system_is_a_dataset_error_naming_the_xml(tmp_path):
    """Python 3.11's pathlib raised ENAMETOOLONG from the image lookup: a bare OSError that
    --skip-bad could not skip, naming the image, not the XML."""
    xml = tmp_path / "long.xml"
    xml.write_text(page_xml("q" * 300 + ".png", ONE_LINE), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"long\.xml.*page image 'q+\.png' not found"):
        read_pagexml(xml)


def test_an_indexed_text_wins_over_one_without_an_index_and_markup_keeps_its_text(tmp_path):
    """A TextEquiv without an index had counted as index 0 and beaten index="1"; `the <b>end</b>`
    inside Unicode (invalid PAGE) had read as "the" (a probe helper)."""
    lines = """
      <TextLine id="l1"><Coords points="2,2 20,2 20,9 2,9"/>
        <TextEquiv index="1"><Unicode>good day</Unicode></TextEquiv>
        <TextEquiv><Unicode>ALT</Unicode></TextEquiv></TextLine>
      <TextLine id="l2"><Coords points="2,12 20,12 20,20 2,20"/>
        <TextEquiv><Unicode>the <b>end</b> now</Unicode></TextEquiv></TextLine>"""
    samples = read_pagexml(make_page(tmp_path, lines=lines))
    assert [s.text for s in samples] == ["good day", "the end now"]
