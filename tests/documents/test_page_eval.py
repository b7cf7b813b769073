"""Page scoring: polygon IoU, one-to-one matching, page CER/WER, ground-truth readers, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from hwr.datasets import DatasetError
from hwr.documents.page_eval import (
    evaluate_page_folder,
    evaluate_pages,
    match_lines,
    polygon_iou,
    read_page_truth,
    score_page,
    summarize,
    truth_from_page,
)
from hwr.documents.writers import write_page
from hwr.recognition.imaging import ImageError
from hwr.recognition.model import Recognizer
from hwr.records import Line, Page, Recognition
from hwr.synth import LineSynthesizer, SynthConfig

import bad_inputs


def square(x, y, size=10):
    return [(x, y), (x + size - 1, y), (x + size - 1, y + size - 1), (x, y + size - 1)]


def test_polygon_iou():
    assert polygon_iou(square(0, 0), square(0, 0)) == pytest.approx(1.0)
    assert polygon_iou(square(0, 0), square(5, 0)) == pytest.approx(50 / 150)
    assert polygon_iou(square(0, 0), square(50, 50)) == 0.0


def test_matching_is_one_to_one_and_thresholded():
    truth = [square(0, 0, 20), square(0, 30, 20)]
    merged = [(0, 0), (19, 0), (19, 49), (0, 49)]  # one box over both lines: IoU 0.4 each
    assert match_lines(truth, [merged]) == []
    found = [square(1, 1, 20), square(0, 31, 20), square(2, 2, 20)]
    matches = match_lines(truth, found)
    assert sorted((t, p) for t, p, _ in matches) == [(0, 0), (1, 1)]


def _page(texts, polygons):
    return Page("p", "", 100, 100, [Line(f"l{k}", poly, [], (0, 0, 1, 1), recognition=Recognition(t, 1.0))
                                    for k, (t, poly) in enumerate(zip(texts, polygons))])


def test_page_cer_joins_lines_in_reading_order():
    truth = truth_from_page(_page(["ab cd", "ef"], [square(0, 0, 20), square(0, 30, 20)]))
    truth.lines = ["ab cd", "ef"]
    perfect = score_page(truth, _page(["ab cd", "ef"], [square(0, 0, 20), square(0, 30, 20)]))
    assert perfect.char_errors == 0 and perfect.matched_lines == 2
    swapped = score_page(truth, _page(["ef", "ab cd"], [square(0, 30, 20), square(0, 0, 20)]))
    assert swapped.char_errors > 0 and swapped.matched_lines == 2  # order costs text, not detection
    report = summarize([perfect, swapped])
    assert report.pages == 2 and report.detection_precision == 1.0 and report.detection_recall == 1.0
    assert report.chars == 16 and 0 < report.cer < 1


@pytest.fixture(scope="module")
def gt_folder(tmp_path_factory):
    """Two rendered pages with PAGE XML ground truth written by hwr's own writer."""
    folder = tmp_path_factory.mktemp("gt")
    # Level lines: this scores the pages; how the segmenter copes with sloping ones is
    # test_segment.py's (a line sloping a degree or more against the page sometimes falls in two).
    synth = LineSynthesizer(SynthConfig(rotation_std_deg=0.0), split="val", seed=11)
    for i in range(2):
        rendered = synth.sample_page(i, n_lines=3 + i)
        cv2.imwrite(str(folder / f"page{i}.png"), rendered.image)
        rendered.page.source = str(folder / f"page{i}.png")
        (folder / f"page{i}.xml").write_text(write_page(rendered.page, "pagexml"), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model_dir(untrained_model):
    return untrained_model


def test_pagexml_and_gt_txt_truth(gt_folder, tmp_path):
    truths = read_page_truth(gt_folder)
    assert [t.id for t in truths] == ["page0", "page1"]
    assert len(truths[1].lines) == 4 and len(truths[1].polygons) == 4 and all(truths[1].lines)
    cv2.imwrite(str(tmp_path / "scan.png"), cv2.imread(str(gt_folder / "page0.png")))
    (tmp_path / "scan.gt.txt").write_text("first line\n\nsecond line\n")
    (only,) = read_page_truth(tmp_path)
    assert only.lines == ["first line", "second line"] and only.polygons is None


def test_evaluate_pages_and_cli(gt_folder, model_dir, tmp_path, capsys):
    report = evaluate_pages(Recognizer.load(model_dir, device="cpu"), read_page_truth(gt_folder))
    assert report.pages == 2 and report.detection_recall >= 0.8 and report.detection_precision >= 0.8
    assert report.chars == sum(len("\n".join(t.lines)) for t in read_page_truth(gt_folder))
    from hwr.cli import main

    assert main(["eval", str(gt_folder), "--pages", "--model", str(model_dir), "--device", "cpu",
                 "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "pages 2" in out and "detection P" in out and (tmp_path / "r.json").is_file()


def test_each_page_of_a_multi_page_tiff_is_scored_against_its_own_page(model_dir, tmp_path):
    from PIL import Image

    synth = LineSynthesizer(split="val", seed=11)
    rendered = [synth.sample_page(i, n_lines=3 + i) for i in range(2)]
    images = [Image.fromarray(r.image) for r in rendered]
    images[0].save(tmp_path / "book.tif", save_all=True, append_images=images[1:])
    for i, r in enumerate(rendered):  # written as hwr transcribe writes a document's pages
        r.page.source = f"{tmp_path / 'book.tif'}#p{i + 1}"
        (tmp_path / f"truth{i}.xml").write_text(write_page(r.page, "pagexml"), encoding="utf-8")
    truths = read_page_truth(tmp_path)
    assert [(t.image.name, t.page_index, t.page_count, len(t.lines)) for t in truths] == [
        ("book.tif", 0, 2, 3), ("book.tif", 1, 2, 4)]
    # Page 1's 3 lines could not match page 2's 4 polygons: the recall says each page was read.
    report = evaluate_pages(Recognizer.load(model_dir, device="cpu"), truths)
    assert report.pages == 2 and report.detection_recall >= 0.8 and not report.failures


# --- bad ground truth (issue 21) ---------------------------------------------------------------

@pytest.fixture
def gt_txt_folder(gt_folder, tmp_path):
    """Two page images with .gt.txt, one non-UTF-8 .gt.txt, one .gt.txt whose image is missing."""
    folder = tmp_path / "gt-txt"
    folder.mkdir()
    for name in ("a", "b", "latin1"):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.imread(str(gt_folder / "page0.png")))
    (folder / "a.gt.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    (folder / "b.gt.txt").write_text("third line\n", encoding="utf-8")
    bad_inputs.latin1_text(folder / "latin1.gt.txt")
    (folder / "orphan.gt.txt").write_text("a page nobody scanned\n", encoding="utf-8")
    return folder


def test_a_gt_txt_page_is_the_image_of_a_usual_format_beside_its_copies(tmp_path):
    """scan.gt.txt beside scan.tif and its JPEG 2000 copy: the first name in order had been taken."""
    for name in ("scan.tif", "scan.jp2"):
        Image.new("L", (40, 20), 255).save(tmp_path / name)
    (tmp_path / "scan.gt.txt").write_text("a line\n", encoding="utf-8")
    [truth] = read_page_truth(tmp_path)
    assert Path(truth.image).name == "scan.tif" and truth.id == "scan"


def test_a_gt_txt_that_cannot_transcribe_its_page_says_why(tmp_path):
    """A multi-page TIFF's first page had been scored against the whole text, in silence; a
    .gt.txt beside a PDF was "no page image beside it" (a probe helper)."""
    pages = [Image.new("L", (40, 20), 255) for _ in range(3)]
    pages[0].save(tmp_path / "book.tif", save_all=True, append_images=pages[1:])
    (tmp_path / "book.gt.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    pages[0].save(tmp_path / "doc.pdf")
    (tmp_path / "doc.gt.txt").write_text("a line\n", encoding="utf-8")
    failures = []
    assert read_page_truth(tmp_path, failures) == []
    why = {Path(f.source).name: f.message for f in failures}
    assert why["book.gt.txt"].startswith("book.tif holds 3 pages, and a .gt.txt transcribes one page")
    assert why["doc.gt.txt"].startswith("doc.pdf is a PDF, whose pages a .gt.txt cannot transcribe")
    assert len(failures) == 2


def test_of_two_page_images_of_one_name_the_master_is_scored_and_the_other_named(tmp_path, caplog):
    """Of two scans of one name, the first by name had been scored without a word (a.jpg before
    a.png; a probe helper); refused, an archive's TIFF master beside its JPEG copy had ended the
    whole evaluation (a review helper). The lossless one is scored, saying which."""
    page = Image.new("L", (40, 20), 255)
    for name in ("leaf.jpg", "leaf.tif", "plate.png", "plate.webp", "slip.tif", "slip.jp2"):
        page.save(tmp_path / name)
    for stem in ("leaf", "plate", "slip"):
        (tmp_path / f"{stem}.gt.txt").write_text("a line\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        truths = read_page_truth(tmp_path)
    assert sorted(Path(t.image).name for t in truths) == ["leaf.tif", "plate.png", "slip.tif"]
    assert "leaf.gt.txt: scored against leaf.tif; leaf.jpg beside it of the same name is not scored" in caplog.text
    assert "plate.gt.txt: scored against plate.png; plate.webp" in caplog.text
    assert "slip.gt.txt" not in caplog.text  # a JPEG 2000 copy beside its master is no second scan


def test_hwrs_own_page_xml_of_a_png_turned_by_exif_after_its_pixels_is_scored(gt_folder, tmp_path):
    """The header alone gave the size as stored, a quarter turn from the upright size hwr had
    written: hwr eval --pages refused hwr's own PAGE XML of such a phone photo (a probe helper)."""
    from hwr.recognition.imaging import load_gray

    upright = Image.open(gt_folder / "page0.png")
    bad_inputs.png_with_late_exif(tmp_path / "page0.png", upright.transpose(Image.Transpose.ROTATE_90))
    assert np.array_equal(load_gray(tmp_path / "page0.png"), np.asarray(upright.convert("L")))
    (tmp_path / "page0.xml").write_text((gt_folder / "page0.xml").read_text(encoding="utf-8"), encoding="utf-8")
    [truth] = read_page_truth(tmp_path)
    assert len(truth.lines) == 3
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "page0.png")  # turned, and no EXIF says so
    with pytest.raises(DatasetError, match="but the XML declares"):
        read_page_truth(tmp_path)


def test_bad_ground_truth_is_named_or_skipped(gt_txt_folder):
    with pytest.raises(DatasetError, match=r"latin1\.gt\.txt.*not valid UTF-8"):
        read_page_truth(gt_txt_folder)
    (gt_txt_folder / "latin1.gt.txt").unlink()
    with pytest.raises(DatasetError, match=r"orphan\.gt\.txt.*no page image"):
        read_page_truth(gt_txt_folder)
    bad_inputs.latin1_text(gt_txt_folder / "latin1.gt.txt")
    failures = []
    truths = read_page_truth(gt_txt_folder, failures)
    assert [t.id for t in truths] == ["a", "b"]
    assert sorted(Path(f.source).name for f in failures) == ["latin1.gt.txt", "orphan.gt.txt"]
    assert {f.stage for f in failures} == {"truth"}


def test_a_page_image_without_ground_truth_is_named_not_dropped(gt_txt_folder):
    (gt_txt_folder / "latin1.gt.txt").unlink()
    (gt_txt_folder / "orphan.gt.txt").unlink()
    with pytest.raises(DatasetError, match=r"latin1\.png.*no ground truth latin1\.gt\.txt"):
        read_page_truth(gt_txt_folder)
    failures = []
    assert [t.id for t in read_page_truth(gt_txt_folder, failures)] == ["a", "b"]
    assert [Path(f.source).name for f in failures] == ["latin1.png"]


def test_page_xml_and_gt_txt_pages_in_one_folder_are_all_scored_each_once(gt_folder, tmp_path):
    import shutil

    folder = shutil.copytree(gt_folder, tmp_path / "mixed")
    cv2.imwrite(str(folder / "scan.png"), cv2.imread(str(gt_folder / "page0.png")))
    (folder / "scan.gt.txt").write_text("a line of its own\n")
    (folder / "page0.gt.txt").write_text("page0 has PAGE XML: this is not scored\n")
    truths = read_page_truth(folder)
    assert [t.id for t in truths] == ["page0", "page1", "scan"]
    assert truths[0].polygons is not None and truths[2].lines == ["a line of its own"]


def test_hwr_eval_pages_names_bad_ground_truth_and_honours_skip_bad(gt_txt_folder, model_dir, tmp_path, capsys):
    from hwr.cli import main

    args = ["eval", str(gt_txt_folder), "--pages", "--model", str(model_dir), "--device", "cpu"]
    assert main(args) == 2
    assert "latin1.gt.txt" in capsys.readouterr().err
    assert main(args + ["--skip-bad", "--json", str(tmp_path / "r.json")]) == 1
    captured = capsys.readouterr()
    # Both are ground-truth files, not unreadable page images: the message says which.
    assert "pages 2" in captured.out and "skipped 2 pages (bad ground truth: 2)" in captured.err, captured.err
    failed = json.loads((tmp_path / "r.json").read_text())["failed_files"]
    assert any("orphan.gt.txt" in f for f in failed) and any("latin1.gt.txt" in f for f in failed)
    # A file name's terminal codes are written \xNN in the summary too, as in the lines above it.
    (gt_txt_folder / "esc\x1b[31mred.gt.txt").write_text("a line\n", encoding="utf-8")
    assert main(args + ["--skip-bad"]) == 1
    summary = capsys.readouterr().err.splitlines()[-1]
    assert summary.startswith("hwr eval: skipped 3 pages") and "\x1b" not in summary and "\\x1b[31m" in summary


def test_unreadable_page_image_fails_unless_skip_bad(gt_txt_folder, model_dir):
    for name in ("latin1.gt.txt", "latin1.png", "orphan.gt.txt"):
        (gt_txt_folder / name).unlink()
    (gt_txt_folder / "b.png").write_bytes(b"not a png")
    recognizer = Recognizer.load(model_dir, device="cpu")
    with pytest.raises(ImageError, match=r"b\.png"):
        evaluate_pages(recognizer, read_page_truth(gt_txt_folder))
    report = evaluate_pages(recognizer, read_page_truth(gt_txt_folder), skip_bad=True)
    assert report.pages == 1 and [f.stage for f in report.failures] == ["read"]


def test_page_scores_follow_the_normalisation_flags_line_by_line():
    """--casefold / --strip-punctuation had been ignored by --pages: raw figures passed for normalised."""
    from hwr.documents.page_eval import format_page_summary
    from hwr.scoring.metrics import TextNormalization

    polygons = [square(0, 0, 20), square(0, 30, 20)]
    truth = truth_from_page(_page(["", ""], polygons))
    truth.lines = ["A,b.", "  c d"]
    read = _page(["a b", "c  d"], polygons)
    assert score_page(truth, read).char_errors > 0
    normalization = TextNormalization(casefold=True, strip_punctuation=True, collapse_whitespace=True)
    result = score_page(truth, read, normalization)
    assert result.reference == "ab\nc d" and result.hypothesis == "a b\nc d" and result.char_errors == 1
    report = summarize([result], normalization=normalization)
    assert report.normalization == ["casefold", "strip_punctuation", "collapse_whitespace"]
    assert "normalisation: casefold, strip_punctuation, collapse_whitespace" in format_page_summary(report)
    assert "normalisation" not in format_page_summary(summarize([score_page(truth, read)]))


def test_hwr_eval_pages_refuses_options_it_would_ignore(gt_txt_folder, model_dir, capsys):
    from hwr.cli import main

    for option in (["--groups-file", "g.tsv"], ["--compare", str(model_dir)], ["--split-file", "s.lst"]):
        assert main(["eval", str(gt_txt_folder), "--pages", "--model", str(model_dir), *option]) == 2
        assert f"{option[0]} does not apply to --pages" in capsys.readouterr().err


def test_pages_with_empty_references_say_cer_is_undefined():
    from hwr.documents.page_eval import format_page_summary

    truth = truth_from_page(_page(["", ""], [square(0, 0, 20), square(0, 30, 20)]))
    truth.lines = []
    report = summarize([score_page(truth, _page(["abc", "de"], [square(0, 0, 20), square(0, 30, 20)]))])
    text = format_page_summary(report)
    assert "CER undefined" in text and "6 characters inserted" in text and "1.0000" not in text


def test_an_untranscribed_line_is_left_out_with_what_was_read_on_it():
    from hwr.documents.page_eval import PageTruth, format_page_summary

    polygons = [square(0, 0, 20), square(0, 30, 20), square(0, 60, 20)]
    truth = PageTruth("p", Path(""), ["ab cd", "", "ef"], polygons, untranscribed=frozenset({1}))
    assert truth.text == "ab cd\nef" and truth.transcribed
    # The model reads all three lines; the middle one has no reference yet: not an insertion.
    read = score_page(truth, _page(["ab cd", "xyz", "ef"], polygons))
    assert read.char_errors == 0 and read.chars == 8 and read.untranscribed_lines == 1
    assert read.matched_lines == 3  # detection still counts the untranscribed line's geometry
    # A line read where no line is (matched to none) still costs its characters.
    extra = score_page(truth, _page(["ab cd", "xyz", "ef", "!!"], [*polygons, square(50, 50, 20)]))
    assert extra.char_errors == 3
    report = summarize([read], untranscribed_pages=2)
    assert report.untranscribed_lines == 1 and report.untranscribed_pages == 2
    assert "untranscribed (not scored, nor what was read on them): 1 line(s) on scored pages, 2 page(s)" in (
        format_page_summary(report))
    assert not PageTruth("q", Path(""), ["", ""], polygons[:2], untranscribed=frozenset({0, 1})).transcribed
    assert PageTruth("r", Path(""), [], []).transcribed  # a page with no lines: nothing to read there is truth


def test_a_partly_transcribed_pagexml_export_is_scored_on_its_transcribed_lines(gt_folder, model_dir, tmp_path):
    """An eScriptorium/Transkribus export of a page still being transcribed: its untranscribed
    lines neither count as empty references nor make the page's reading insertions."""
    import xml.etree.ElementTree as ET

    def without_text(name, line_numbers):
        """The PAGE file with the TextEquiv of these TextLines (0-based; None: all) removed."""
        tree = ET.parse(gt_folder / name)
        lines = [el for el in tree.iter() if el.tag.endswith("}TextLine")]
        for k, line in enumerate(lines):
            if line_numbers is None or k in line_numbers:
                for equiv in [c for c in line if c.tag.endswith("}TextEquiv")]:
                    line.remove(equiv)
        tree.write(folder / name, encoding="utf-8", xml_declaration=True)

    folder = tmp_path / "wip"
    folder.mkdir()
    for name in ("page0.png", "page1.png"):
        (folder / name).write_bytes((gt_folder / name).read_bytes())
    without_text("page0.xml", None)  # nothing transcribed yet
    without_text("page1.xml", {1})  # its second line awaits its text
    truths = read_page_truth(folder)
    assert [len(t.untranscribed) for t in truths] == [len(truths[0].lines), 1]
    recognizer = Recognizer.load(model_dir, device="cpu")
    report = evaluate_pages(recognizer, truths)
    full = evaluate_pages(recognizer, [t for t in read_page_truth(gt_folder) if t.id == "page1"])
    assert report.pages == 1 and report.untranscribed_pages == 1 and report.untranscribed_lines == 1
    assert report.chars == len(truths[1].text) < full.chars
    # The line the model read where the truth has no text yet is not in the scored reading (the
    # segmenter finds every line of this clean page: one reading line fewer than lines read).
    (result,) = report.results
    assert result.matched_lines == result.predicted_lines == 4 and result.untranscribed_lines == 1
    assert len(result.hypothesis.split("\n")) == result.predicted_lines - 1


# --- PAGE reading order, .gt.txt encoding, declared size (issue: eval probe) -----------------

def _two_region_xml(folder: Path, width: int = 40, height: int = 30) -> Path:
    """Regions stored rB, rA; the ReadingOrder says rA first."""
    cv2.imwrite(str(folder / "page.png"), 255 * np.ones((30, 40), np.uint8))
    xml = folder / "page.xml"
    xml.write_text(f"""<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
<Page imageFilename="page.png" imageWidth="{width}" imageHeight="{height}">
  <ReadingOrder><OrderedGroup id="g"><RegionRefIndexed index="0" regionRef="rA"/>
    <RegionRefIndexed index="1" regionRef="rB"/></OrderedGroup></ReadingOrder>
  <TextRegion id="rB"><TextLine id="b"><Coords points="2,16 30,16 30,25 2,25"/>
    <TextEquiv><Unicode>second line</Unicode></TextEquiv></TextLine></TextRegion>
  <TextRegion id="rA"><TextLine id="a"><Coords points="2,2 30,2 30,12 2,12"/>
    <TextEquiv><Unicode>first line</Unicode></TextEquiv></TextLine></TextRegion>
</Page></PcGts>""", encoding="utf-8")
    return xml


def test_pagexml_truth_follows_the_reading_order_not_the_file_order(tmp_path):
    (truth,) = read_page_truth(_two_region_xml(tmp_path))
    assert truth.lines == ["first line", "second line"]
    assert truth.polygons[0][0] == (2, 2)  # polygons stay with their lines


def test_an_exports_mets_and_metadata_beside_the_pages_are_not_pages(tmp_path):
    """A Transkribus export: page/0001.xml with mets.xml and metadata.xml in the folder above, as
    the line readers read it (the page scorer had failed on metadata.xml: "not a PAGE XML file")."""
    page_folder = tmp_path / "page"
    page_folder.mkdir()
    xml = _two_region_xml(tmp_path)
    xml.rename(page_folder / "page.xml")
    (tmp_path / "mets.xml").write_text('<mets xmlns="http://www.loc.gov/METS/"/>', encoding="utf-8")
    (tmp_path / "metadata.xml").write_text("<trpDocMetadata/>", encoding="utf-8")
    failures = []
    (truth,) = read_page_truth(tmp_path, failures=failures)
    assert truth.lines == ["first line", "second line"] and failures == []
    with pytest.raises(DatasetError, match=r"metadata\.xml: not a PAGE XML file"):  # named alone, it is no page
        read_page_truth(tmp_path / "metadata.xml")
    foreign = tmp_path / "foreign.xml"
    foreign.write_text((page_folder / "page.xml").read_text(encoding="utf-8").replace(
        "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15", "urn:other"), encoding="utf-8")
    with pytest.raises(DatasetError, match="unknown PAGE namespace"):
        read_page_truth(foreign)


def test_two_pages_that_would_share_an_id_keep_their_own_ids(tmp_path):
    """a.xml transcribing page.png, and a.png with a.gt.txt: both had id "a", and each was scored
    against one page's reading."""
    _two_region_xml(tmp_path).rename(tmp_path / "a.xml")
    cv2.imwrite(str(tmp_path / "a.png"), 255 * np.ones((30, 40), np.uint8))
    (tmp_path / "a.gt.txt").write_text("its own line\n", encoding="utf-8")
    truths = read_page_truth(tmp_path)
    assert sorted((t.id, t.image.name) for t in truths) == [("a", "page.png"), ("a-2", "a.png")]


def test_pagexml_truth_refuses_an_image_of_another_size_than_declared(tmp_path):
    xml = _two_region_xml(tmp_path, width=80, height=60)  # the image was resized to half
    with pytest.raises(DatasetError, match=r"page\.xml: page image .* is 40x30 but the XML declares 80x60"):
        read_page_truth(xml)


def test_a_truth_polygon_far_off_the_page_is_held_to_the_page_not_rasterised_at_its_size(tmp_path):
    """A typo in one point (100000 px, or 1e12, past int32) made polygon_iou ask for a mask the
    size of the point's box (37 GiB): a MemoryError ended hwr eval --pages with a traceback."""
    xml = _two_region_xml(tmp_path)
    text = xml.read_text(encoding="utf-8").replace("30,2 30,12", "100000,2 1e12,100000")
    xml.write_text(text, encoding="utf-8")
    (truth,) = read_page_truth(xml)
    assert truth.polygons[0] == [(2, 2), (39, 2), (39, 29), (2, 12)]  # the page is 40x30
    found = _page(["first line", "second line"], [square(2, 2, 20), [(2, 16), (30, 16), (30, 25), (2, 25)]])
    assert score_page(truth, found).matched_lines == 1  # the second line, untouched


def test_a_line_with_malformed_coords_keeps_the_page_scored_on_its_text_not_its_detection(tmp_path, caplog):
    xml = _two_region_xml(tmp_path)
    xml.write_text(xml.read_text(encoding="utf-8").replace("2,16 30,16", "2,16 30;16"), encoding="utf-8")
    with caplog.at_level("WARNING", logger="hwr.documents.page_eval"):
        (truth,) = read_page_truth(xml)
    from hwr.documents.page_eval import format_page_summary

    assert truth.lines == ["first line", "second line"] and truth.bad_coords == ("b",)
    assert any("page.xml: TextLine 'b': malformed Coords" in r.getMessage() for r in caplog.records)
    found = _page(["first line", "second lime"], [square(2, 2, 10), [(2, 16), (30, 16), (30, 25), (2, 25)]])
    result = score_page(truth, found)
    assert (result.char_errors, result.chars, result.matched_lines) == (1, len("first line\nsecond line"), None)
    assert summarize([result]).detection_recall is None  # not a missed line: the page's detection is not judged
    (tmp_path / "intact").mkdir()
    other = score_page(read_page_truth(_two_region_xml(tmp_path / "intact"))[0], found)
    headline = format_page_summary(summarize([result, other]))
    assert "R 0.500 (IoU>=0.5, on the 1 of 2 pages with line polygons)" in headline


@pytest.mark.parametrize("coords, problem", [
    ('<Coords points="2,16 30,25"/>', "Coords need at least 3 points"),
    ("", "has no Coords; lines are placed on the page by their Coords polygon"),
    ('<Coords points="2,16 30,16 30,16 2,16"/>', "degenerate polygon"),
    ('<Coords points="50,40 90,40 90,55 50,55"/>', "polygon lies outside the page image"),
    ('<Coords points="-20,16 0,16 0,25 -20,25"/>', "polygon barely reaches onto the page image")])
def test_a_line_whose_polygon_is_no_line_on_the_page_is_not_counted_as_a_missed_line(tmp_path, caplog, coords,
                                                                                    problem):
    """The line readers refuse these polygons (hwr.datasets.pagexml); line detection counted
    them as lines the segmenter missed, in silence."""
    xml = _two_region_xml(tmp_path)
    xml.write_text(xml.read_text(encoding="utf-8").replace('<Coords points="2,16 30,16 30,25 2,25"/>', coords),
                   encoding="utf-8")
    with caplog.at_level("WARNING", logger="hwr.documents.page_eval"):
        (truth,) = read_page_truth(xml)
    assert truth.bad_coords == ("b",) and truth.lines == ["first line", "second line"]
    assert any(f"TextLine 'b': {problem}" in r.getMessage() for r in caplog.records)
    found = _page(["first line", "second line"], [square(2, 2, 10), [(2, 16), (30, 16), (30, 25), (2, 25)]])
    assert score_page(truth, found).matched_lines is None


def test_a_pdf_pages_truth_carries_the_dpi_its_declared_size_gives(tmp_path):
    """The page is transcribed at the resolution of its ground truth's coordinates, not 300 dpi."""
    page = tmp_path / "page.pdf"
    Image.fromarray(255 * np.ones((30, 40), np.uint8)).save(page, resolution=72)
    xml = _two_region_xml(tmp_path)  # declares 40x30
    xml.write_text(xml.read_text(encoding="utf-8").replace("page.png", "page.pdf"), encoding="utf-8")
    (truth,) = read_page_truth(xml)
    assert truth.dpi == 72


def test_gt_txt_truth_reads_a_byte_order_mark_and_crlf_as_the_line_readers_do(tmp_path):
    cv2.imwrite(str(tmp_path / "scan.png"), 255 * np.ones((30, 40), np.uint8))
    (tmp_path / "scan.gt.txt").write_bytes("\ufefffirst line\r\nsecond line\r\n".encode())
    (truth,) = read_page_truth(tmp_path)
    assert truth.lines == ["first line", "second line"]


def test_a_page_whose_pagexml_fails_is_named_once_not_again_as_an_image_without_ground_truth(tmp_path):
    for folder in (tmp_path / "flat", tmp_path / "export" / "page"):  # Transkribus keeps XML in page/
        folder.mkdir(parents=True)
        _two_region_xml(folder, width=80, height=60)  # an image of another size than declared
    (tmp_path / "export" / "page" / "page.png").rename(tmp_path / "export" / "page.png")
    failures = []
    assert read_page_truth(tmp_path, failures) == []
    assert sorted(Path(f.source).relative_to(tmp_path).as_posix() for f in failures) == [
        "export/page/page.xml", "flat/page.xml"]


def test_an_empty_gt_txt_is_scored_as_a_blank_page_with_a_warning(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "scan.png"), 255 * np.ones((30, 40), np.uint8))
    (tmp_path / "scan.gt.txt").write_text("\n")
    (truth,) = read_page_truth(tmp_path)
    assert truth.lines == [] and "scan.gt.txt: empty: the page is scored as blank" in caplog.text
    caplog.clear()
    (tmp_path / "scan.gt.txt").write_text("a line\n")
    _two_region_xml(tmp_path)
    (tmp_path / "page.gt.txt").write_text("")  # beside a PAGE XML: not read, so not said
    assert [t.id for t in read_page_truth(tmp_path)] == ["page", "scan"] and "empty" not in caplog.text


def test_reading_pagexml_truth_checks_the_image_without_decoding_it(tmp_path, monkeypatch):
    import hwr.datasets.pagexml as pagexml

    def no_decoding(*_):
        raise AssertionError("the page image was decoded to read the ground truth")

    monkeypatch.setattr(pagexml, "load_page", no_decoding)
    (truth,) = read_page_truth(_two_region_xml(tmp_path))
    assert truth.lines == ["first line", "second line"]


def test_a_report_over_a_ground_truth_file_is_refused_before_any_page_is_read(gt_txt_folder, model_dir):
    from hwr.errors import ConfigError

    recognizer = Recognizer.load(model_dir, device="cpu")
    # A ground-truth file skipped as bad (not UTF-8) is the user's data all the same.
    for name in ("a.gt.txt", "latin1.gt.txt", "b.png"):
        before = (gt_txt_folder / name).read_bytes()
        with pytest.raises(ConfigError, match=rf"--json .*{name}: is one of the input files of the data set"):
            evaluate_page_folder(recognizer, gt_txt_folder, skip_bad=True,
                                 reports=[("--json", str(gt_txt_folder / name))])
        assert (gt_txt_folder / name).read_bytes() == before
