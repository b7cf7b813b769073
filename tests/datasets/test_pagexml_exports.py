"""PAGE XML as other tools export it (tests/resources/, see its README): eScriptorium and kraken
PAGE 2019, a Transkribus PAGE 2013 export folder, ALTO v4 files that are not PAGE, and broken
files, each named in the error.

Not tested here: the pixels cut (tests/datasets/test_pagexml.py does that on generated pages)."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from hwr.datasets import DatasetError, SkipReport, read_pagexml
from hwr.datasets.pagexml import local_name

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"


def _with_page_images(folder: Path) -> None:
    """Blank scans of each page's declared size, where the PAGE file says they are (the fixtures
    carry the XML only)."""
    for xml in folder.rglob("*.xml"):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            continue  # the truncated fixture: the reader must say so, not this helper
        for page in (el for el in root.iter() if local_name(el.tag) == "Page" and el.get("imageFilename")):
            size = int(page.get("imageWidth")), int(page.get("imageHeight"))
            where = xml.parent.parent if xml.parent.name == "page" else xml.parent  # Transkribus: page/ below
            Image.new("L", size, 128).save(where / page.get("imageFilename"))


def _export(tmp_path: Path, *names: str) -> Path:
    """Copies of the named resources (files or folders) in one tmp folder, with page images."""
    for name in names:
        source = RESOURCES / name
        target = tmp_path / Path(name).name
        shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
    _with_page_images(tmp_path)
    return tmp_path


def test_escriptorium_page_2019_reads_its_transcribed_lines(tmp_path):
    folder = _export(tmp_path, "page/escriptorium_page2019.xml")
    samples = read_pagexml(folder / "escriptorium_page2019.xml", report=(report := SkipReport()))
    assert [s.meta["line"] for s in samples] == ["eSc_line_b2d7a910", "eSc_line_c3e8b021", "eSc_line_e5a0d243"]
    assert samples[0].text == "Dear Sir, I received your letter of the 4th"
    assert samples[0].meta["bbox"] == (92, 80, 1101, 151)  # the Coords box, end exclusive
    assert samples[0].image.shape == (71, 1009)
    assert [e.reason for e in report.entries] == ["TextLine 'eSc_line_d4f9c132' has no text"]


def test_kraken_page_takes_the_line_text_not_the_words(tmp_path):
    folder = _export(tmp_path, "page/kraken_page2019.xml")
    samples = read_pagexml(folder / "kraken_page2019.xml")
    assert [s.text for s in samples] == ["March 12 paid to the carrier 3 s. 6 d.",
                                         "March 14 received of Mr. Lowe 1 l. 2 s."]
    assert samples[0].image.shape == (71, 791)  # polygon of 6 points: its bounding box


def test_transkribus_export_folder_reads_pages_below_page_and_skips_mets(tmp_path):
    folder = _export(tmp_path, "page/transkribus_export")
    samples = read_pagexml(folder / "transkribus_export")
    assert [s.id for s in samples] == ["page/0001_letter/r1l1", "page/0001_letter/r1l2"]
    assert samples[1].text == "on Tuesday & the weather was fine."
    assert samples[0].meta["page_image"].endswith("transkribus_export/0001_letter.jpg")


@pytest.mark.parametrize("name", ["escriptorium_alto4.xml", "kraken_alto4.xml"])
def test_an_alto_file_is_not_taken_for_page(tmp_path, name):
    folder = _export(tmp_path, f"alto/{name}")
    with pytest.raises(DatasetError, match=f"{name}: not a PAGE XML file \\(root alto, expected PcGts\\)"):
        read_pagexml(folder / name)
    with pytest.raises(DatasetError, match="no transcribed TextLine"):  # a folder skips non-PAGE XML
        read_pagexml(folder)


@pytest.mark.parametrize("name,reason", [
    ("missing_coords.xml", "TextLine 'eSc_line_nocoords': has no Coords (only a Baseline); lines are placed"),
    ("bad_namespace.xml", "unknown PAGE namespace 'http://schema.example.org/"),
    ("truncated.xml", "not well-formed XML"),
])
def test_a_broken_page_file_is_an_error_naming_it_or_a_skip_when_asked(tmp_path, name, reason):
    folder = _export(tmp_path, f"invalid/{name}", "page/kraken_page2019.xml")
    with pytest.raises(DatasetError) as error:
        read_pagexml(folder / name)
    assert str(error.value).startswith(str(folder / name)) and reason in str(error.value)
    report = SkipReport()
    samples = read_pagexml(folder, skip_bad=True, report=report)  # the good page still reads
    assert len(samples) == 2
    assert any(e.source == str(folder / name) and reason in e.reason for e in report.entries)


def test_the_valid_fixtures_validate_against_the_official_schemas():
    """The hand-written exports are real PAGE 2019 / ALTO 4 documents, not look-alikes."""
    etree = pytest.importorskip("lxml.etree")

    class LocalXlink(etree.Resolver):
        def resolve(self, url, pubid, context):
            return self.resolve_filename(str(SCHEMAS / "xlink.xsd"), context) if url.endswith("xlink.xsd") else None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalXlink())
    page = etree.XMLSchema(etree.parse(str(SCHEMAS / "pagecontent-2019-07-15.xsd")))
    alto = etree.XMLSchema(etree.parse(str(SCHEMAS / "alto-4-4.xsd"), parser))
    for name, schema in [("page/escriptorium_page2019.xml", page), ("page/kraken_page2019.xml", page),
                         ("alto/escriptorium_alto4.xml", alto), ("alto/kraken_alto4.xml", alto)]:
        assert schema.validate(etree.parse(str(RESOURCES / name))), (name, schema.error_log.last_error)
    for name in ("invalid/missing_coords.xml", "invalid/bad_namespace.xml"):
        assert not page.validate(etree.parse(str(RESOURCES / name))), name
