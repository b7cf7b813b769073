"""Page inputs: folders, globs, list files, multi-page TIFF and PDF, stable ids, broken files."""
from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwr.documents.pages import (
    DEFAULT_DPI,
    expand_inputs,
    input_files,
    load_page,
    may_name_several,
    page_refs,
    prefetch_map,
)
from hwr.recognition.imaging import ImageError

import bad_inputs


def iter_pages(inputs, dpi: int = DEFAULT_DPI, workers: int = 2, skip=None):
    """(page_id, source, gray page or the exception that made it unusable), in input order: the
    pieces a batch loads pages with (page_refs, load_page, prefetch_map), put together."""
    def load(ref):
        try:
            return ref.page_id, ref.source, load_page(ref, dpi)
        except Exception as exc:  # noqa: BLE001 - the tests look at the exception
            return ref.page_id, ref.source, exc

    refs = (r for r in page_refs(inputs) if skip is None or not skip(r.page_id))
    return prefetch_map(load, refs, workers)


def _img(value: int, size=(60, 40)) -> Image.Image:
    return Image.new("L", size, value)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "box" / "sub").mkdir(parents=True)
    _img(10).save(tmp_path / "box" / "a.png")
    _img(20).save(tmp_path / "box" / "sub" / "b.jpg")
    (tmp_path / "box" / "notes.md").write_text("not a page")
    frames = [_img(v) for v in (30, 40, 50)]
    frames[0].save(tmp_path / "box" / "scan.tif", save_all=True, append_images=frames[1:])
    pdf_pages = [_img(200, (144, 72)).convert("RGB"), _img(100, (144, 72)).convert("RGB")]
    pdf_pages[0].save(tmp_path / "doc.pdf", save_all=True, append_images=pdf_pages[1:], resolution=72)
    return tmp_path


def test_folder_ids_are_relative_paths_and_frames_numbered(tree):
    ids = [ref.page_id for ref in page_refs([tree / "box"])]
    assert ids == ["a", "scan#p1", "scan#p2", "scan#p3", "sub/b"]
    pages = {pid: gray for pid, _, gray in iter_pages([tree / "box"], workers=2)}
    assert pages["scan#p2"].dtype == np.uint8 and int(pages["scan#p2"][0, 0]) == 40
    assert int(pages["sub/b"].mean()) in range(15, 26)


def test_pdf_rasterised_at_dpi(tree):
    pages = list(iter_pages([tree / "doc.pdf"], dpi=144, workers=0))
    assert [p[0] for p in pages] == ["doc#p1", "doc#p2"]
    gray = pages[0][2]
    assert gray.shape == (144, 288)  # 2 x 1 inch at 144 dpi
    assert gray.mean() > pages[1][2].mean()
    assert pages[1][1].endswith("doc.pdf#p2")


def test_globs_and_list_files(tree):
    assert [p.name for p, _ in expand_inputs([str(tree / "box" / "*.png")])] == ["a.png"]
    listing = tree / "pages.txt"
    listing.write_text("# scans\nbox/a.png\n\nbox/sub/b.jpg\n")
    assert [stem for _, stem in expand_inputs([listing])] == ["box/a", "box/sub/b"]


def test_list_file_rows_end_as_the_data_readers_rows_do(tmp_path):
    """Old Mac line ends (a lone CR) end a row; a form feed or U+2028 inside a file's name does
    not (str.splitlines had cut such a name in two); an indented `#` row is a comment."""
    names = ["a.png", "b\u2028c.png", "d\x0ce.png", "f.png"]
    for name in names:
        try:
            _img(1).save(tmp_path / name)
        except OSError:
            pytest.skip("this file system refuses such names")
    listing = tmp_path / "pages.txt"
    listing.write_bytes("a.png\rb\u2028c.png\r\n  # old scans\nd\x0ce.png\rf.png".encode("utf-8"))
    refs = list(page_refs([listing]))
    assert [r.path.name for r in refs if not r.error] == names and not _errors(refs)


def test_a_list_file_row_finds_its_file_in_the_other_unicode_form(tmp_path):
    """A list typed on Linux (NFC) naming scans a Mac's zip had written decomposed (NFD): the
    rows looked like the names and each was "no such file" (a probe helper)."""
    import unicodedata

    name = unicodedata.normalize("NFD", "café.png")
    _img(1).save(tmp_path / name)
    if len(list(tmp_path.glob("*.png"))) != 1 or (tmp_path / "café.png").exists():
        pytest.skip("this file system folds Unicode forms itself")
    listing = tmp_path / "pages.txt"
    listing.write_text("café.png\n", encoding="utf-8")
    refs = list(page_refs([listing]))
    assert [r.path.name for r in refs] == [name] and not _errors(refs)


def test_a_folder_in_a_list_file_stands_for_its_pages(tree):
    listing = tree / "pages.txt"
    listing.write_text("box/sub\nbox/a.png\n")
    assert [(p.name, stem) for p, stem in expand_inputs([listing])] == [("b.jpg", "box/sub/b"), ("a.png", "box/a")]
    (tree / "vol.1").mkdir()
    _img(60).save(tree / "vol.1" / "c.png")
    listing.write_text("vol.1\n")
    assert [stem for _, stem in expand_inputs([listing])] == ["vol.1/c"]  # a dot in a folder name is no suffix
    (tree / "empty").mkdir()
    listing.write_text("empty\n")
    (ref,) = page_refs([listing])
    assert ref.error == "folder holds no image or PDF files" and ref.path == tree / "empty"


def test_a_list_file_in_a_list_file_stands_for_the_files_it_lists(tree):
    (tree / "box" / "more.txt").write_text("a.png\nsub/b.jpg\n")
    listing = tree / "pages.txt"
    listing.write_text("box/more.txt\n")
    # Ids as if pages.txt listed them itself: box/a, as a folder box/ named in it would give.
    assert [(p.name, stem) for p, stem in expand_inputs([listing])] == [("a.png", "box/a"), ("b.jpg", "box/sub/b")]
    listing.write_text("pages.txt\nbox/a.png\n")  # names itself: a failure, and the rest is read
    refs = list(page_refs([listing]))
    assert [r.error for r in refs] == ["list files name each other in a loop", ""]
    assert refs[0].error_stage == "input" and refs[1].path == tree / "box" / "a.png"
    (tree / "empty.lst").write_text("# nothing yet\n")
    listing.write_text("empty.lst\n")
    (ref,) = page_refs([listing])
    assert ref.error == "list file lists no files" and ref.path == tree / "empty.lst"


def test_a_dash_for_standard_input_is_a_failed_input_that_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (ref,) = page_refs(["-"])
    assert ref.error_stage == "input" and "standard input ('-') is not read" in ref.error
    _img(5).save(tmp_path / "-", format="PNG")  # a file of that name is read as any file
    (ref,) = page_refs(["-"])
    assert not ref.error


def test_same_stem_keeps_suffix(tmp_path):
    _img(1).save(tmp_path / "p.png")
    _img(2).save(tmp_path / "p.bmp")
    assert sorted(stem for _, stem in expand_inputs([tmp_path])) == ["p.bmp", "p.png"]


def test_broken_and_missing_pages_are_reported_not_raised(tmp_path):
    _img(5).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    results = list(iter_pages([tmp_path / "bad.png", tmp_path / "gone.png", tmp_path / "bad.pdf",
                               tmp_path / "good.png"]))
    assert [r[0] for r in results] == ["bad.png", "gone", "bad.pdf", "good"]  # same stem: suffix kept
    errors = [r for r in results if isinstance(r[2], Exception)]
    assert len(errors) == 3 and all(isinstance(e[2], ImageError) for e in errors)
    assert "bad.png" in str(errors[0][2])
    assert isinstance(results[-1][2], np.ndarray)


def test_broken_and_looping_links_in_a_folder_are_reported_not_dropped(tmp_path):
    _img(5).save(tmp_path / "good.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop1.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop1.png")
    refs = list(page_refs([tmp_path]))
    assert [r.page_id for r in refs] == ["dangling", "good", "loop1", "loop2"]
    errors = _errors(refs)
    assert set(errors) == {str(tmp_path / n) for n in ("dangling.png", "loop1.png", "loop2.png")}
    assert all("broken or looping symbolic link" in e for e in errors.values())


def test_a_document_page_never_takes_the_id_of_a_file_named_like_it(tmp_path):
    """scan.tif's pages would be scan#p1...; a file scan#p1.png already has that id, so the
    document's pages get a stem of their own: no output overwrites another."""
    frames = [_img(v) for v in (30, 40, 50)]
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:])
    _img(90).save(tmp_path / "scan#p1.png")
    ids = [ref.page_id for ref in page_refs([tmp_path])]
    assert ids == ["scan#p1", "scan-2#p1", "scan-2#p2", "scan-2#p3"] and len(set(ids)) == 4
    assert ids == [ref.page_id for ref in page_refs([tmp_path])]  # the same on every run (resume)


def test_inputs_that_may_stand_for_several_files(tree):
    listing = tree / "pages.txt"
    listing.write_text("box/a.png\n")
    assert may_name_several([tree / "box"]) and may_name_several([str(tree / "box" / "*.png")])
    assert may_name_several([listing]) and may_name_several([tree / "box" / "a.png", tree / "doc.pdf"])
    assert not may_name_several([tree / "box" / "a.png"]) and not may_name_several([tree / "doc.pdf"])


def test_skip_drops_pages_before_loading(tree):
    got = [pid for pid, _, _ in iter_pages([tree / "box"], skip=lambda pid: pid.startswith("scan"))]
    assert got == ["a", "sub/b"]


def test_prefetch_map_keeps_order():
    assert list(prefetch_map(lambda x: x * x, range(20), workers=3)) == [x * x for x in range(20)]


def _square_and_pid(x: int) -> tuple[int, int]:
    import os

    return x * x, os.getpid()


def test_prefetch_map_in_processes_keeps_order_and_runs_elsewhere():
    import os

    got = list(prefetch_map(_square_and_pid, range(12), workers=2, processes=True))
    assert [square for square, _ in got] == [x * x for x in range(12)]
    assert os.getpid() not in {pid for _, pid in got}


def _quick_then_slow(x: int) -> int:
    import time

    if x:
        time.sleep(120)
    return x


def test_prefetch_map_in_processes_stopped_early_ends_its_workers_now():
    import time
    from multiprocessing.connection import wait

    before = set(multiprocessing.active_children())  # any an earlier test left are not this pool's
    pages = prefetch_map(_quick_then_slow, range(4), workers=1, window=2, processes=True)
    assert next(pages) == 0
    workers = [child for child in multiprocessing.active_children() if child not in before]
    start = time.monotonic()
    pages.close()  # a Ctrl-C in the consumer: the page the worker is on is not waited for
    assert time.monotonic() - start < 20
    # Sentinels, not join() and is_alive(): the pool's thread may reap a worker first.
    sentinels = [worker.sentinel for worker in workers]
    while len(wait(sentinels, timeout=1)) < len(sentinels) and time.monotonic() - start < 20:
        pass
    assert workers and len(wait(sentinels, timeout=0)) == len(sentinels)


def _warn_of_a_file(name: str) -> str:
    import logging

    logging.getLogger("hwr.documents.pages").warning("%s: cannot read", name)
    return name


def test_a_page_workers_warning_comes_out_as_the_parents_do(capfd):
    """Spawned workers started with logging unconfigured: a warning came out bare (no level, no
    logger) and a file name's control characters drove the terminal."""
    import logging

    from hwr.logs import level_for_workers

    assert logging.getLogger().handlers and level_for_workers() is not None  # pytest's handlers
    list(prefetch_map(_warn_of_a_file, ["odd\x1bname.png"], workers=1, processes=True))
    assert "WARNING hwr.documents.pages: odd\\x1bname.png: cannot read" in capfd.readouterr().err


def test_workers_of_a_library_caller_leave_logging_to_it(monkeypatch):
    import logging

    from hwr.logs import level_for_workers

    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    assert level_for_workers() is None


# --- bad inputs (issue 21) ---------------------------------------------------------------------

def _errors(refs) -> dict[str, str]:
    return {ref.source: ref.error for ref in refs if ref.error}


def test_tiff_claiming_30000_square_pixels_is_a_failed_page_not_a_crash(tmp_path):
    bomb = bad_inputs.huge_tiff_header(tmp_path / "bomb.tif")
    _img(5).save(tmp_path / "good.png")
    refs = list(page_refs([bomb, tmp_path / "good.png"]))
    assert [r.page_id for r in refs] == ["bomb", "good"]
    assert "too large" in _errors(refs)[str(bomb)]


@pytest.mark.parametrize("make", [bad_inputs.truncated_multipage_tiff, bad_inputs.short_multipage_tiff])
def test_broken_multipage_tiffs_fail_as_pages_not_as_the_batch(tmp_path, make):
    broken = make(tmp_path / "fax.tif")
    results = list(iter_pages([broken], workers=0))
    assert results and all(isinstance(r[2], (ImageError, np.ndarray)) for r in results)
    failed = [r for r in results if isinstance(r[2], ImageError)]
    assert failed and all("fax.tif" in str(r[2]) for r in failed)
    # The pages before the damage are read, not lost with the rest of the file.
    assert results[0][0] == "fax#p1" and isinstance(results[0][2], np.ndarray)


def test_a_tiff_cut_short_in_its_header_is_refused_in_words_not_by_pillows_file_object(tmp_path):
    whole = tmp_path / "whole.tif"
    _img(5).save(whole, compression="tiff_lzw")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:10])
    (ref,) = page_refs([cut])
    assert ref.error == "not a readable image (not one Pillow can identify: another format, or a damaged file)"


def test_a_folders_pages_in_formats_hwr_cannot_read_fail_by_name_and_the_rest_are_read(tmp_path):
    """A folder's .heic and .djvu files had been passed over without a word (exit 0), and its
    .jfif and .jp2 files too, which hwr reads when named."""
    _img(5).save(tmp_path / "a.png")
    _img(6).convert("RGB").save(tmp_path / "b.jfif", format="JPEG")
    (tmp_path / "c.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (tmp_path / "d.djvu").write_bytes(b"AT&TFORM" + bytes(64))
    (tmp_path / "notes.docx").write_bytes(b"PK")  # not a page: not listed
    results = {page_id: outcome for page_id, _, outcome in iter_pages([tmp_path], workers=0)}
    assert sorted(results) == ["a", "b", "c", "d"]
    assert isinstance(results["a"], np.ndarray) and isinstance(results["b"], np.ndarray)
    assert "HEIC (a phone's photo format) files cannot be read here" in str(results["c"])
    assert "DjVu files cannot be read here" in str(results["d"]) and str(tmp_path / "d.djvu") in str(results["d"])


def test_a_pdf_page_whose_scan_cannot_be_decoded_fails_naming_it_not_as_a_blank_page(tmp_path):
    """pdfium draws nothing for an image it cannot decode: the page had been read as empty, exit 0."""
    import re

    rng = np.random.default_rng(0)
    scan = Image.fromarray(rng.integers(0, 255, (300, 400), dtype=np.uint8)).convert("RGB")
    blank = Image.new("RGB", (400, 300), "white")
    scans = tmp_path / "scans.pdf"
    scan.save(scans, save_all=True, append_images=[scan.copy(), scan.copy(), blank], resolution=72)
    data = bytearray(scans.read_bytes())
    second = [m.end() for m in re.finditer(rb"/Subtype\s*/Image.*?stream\r?\n", data, re.S)][1]
    data[second + 600:second + 3600] = rng.integers(0, 255, 3000, dtype=np.uint8).tobytes()
    scans.write_bytes(bytes(data))
    refs = list(page_refs([scans]))
    assert [r.page_id for r in refs] == ["scans#p1", "scans#p2", "scans#p3", "scans#p4"]
    with pytest.raises(ImageError, match=r"scans\.pdf#p2: an image on this PDF page cannot be decoded"):
        load_page(refs[1], dpi=72)
    assert load_page(refs[0], dpi=72).std() > 10 and load_page(refs[2], dpi=72).std() > 10
    assert load_page(refs[3], dpi=72).min() == 255  # a page scanned blank is read as blank
    # A damaged image drawn off the page is none of the page's: its blank page is read (a review).
    off_page = tmp_path / "off.pdf"
    placed = [m.start() for m in re.finditer(rb"300\.000000 0 0 cm /image Do", data)][1]  # page 2's scan
    data[placed:placed + 17] = b"300 9000 90000 cm"  # as long: the file's offsets hold
    off_page.write_bytes(bytes(data))
    assert load_page(list(page_refs([off_page]))[1], dpi=72).min() == 255


def test_a_file_is_read_as_what_its_bytes_are_where_its_name_says_otherwise(tmp_path, caplog):
    """A multi-page TIFF saved as .png had been read as its first page alone; a PDF named .png
    was "not one Pillow can identify", and an image named .pdf a pdfium "Data format error"."""
    pages = [_img(3), _img(4)]
    pages[0].save(tmp_path / "scans.png", format="TIFF", save_all=True, append_images=pages[1:])
    assert [r.page_id for r in page_refs([tmp_path / "scans.png"])] == ["scans#p1", "scans#p2"]
    assert np.array_equal(load_page(list(page_refs([tmp_path / "scans.png"]))[1]), np.asarray(pages[1]))
    pages[0].save(tmp_path / "doc.pdf", format="PNG")
    pages[0].save(tmp_path / "pdf.png", format="PDF")
    with pytest.raises(ImageError, match="not a PDF: it is a PNG image under a PDF's name; name it .png"):
        load_page(list(page_refs([tmp_path / "doc.pdf"]))[0])
    with pytest.raises(ImageError, match="it is a PDF file under another name; name it .pdf"):
        load_page(list(page_refs([tmp_path / "pdf.png"]))[0])


def test_a_blank_pdf_page_holding_a_scan_is_read_without_pdfiums_warning(tmp_path, caplog):
    """Asking a blank page's images whether they decode had warned "Explicitly closing
    <PdfBitmap ...>. This is a potentially unsafe operation!" for every such page, naming none."""
    Image.new("L", (200, 100), 255).save(tmp_path / "blank.pdf", resolution=72)
    with caplog.at_level("WARNING"):
        assert load_page(list(page_refs([tmp_path / "blank.pdf"]))[0], dpi=72).min() == 255
    assert not caplog.records


def test_a_copy_in_another_format_beside_a_page_is_no_page_of_its_own(tmp_path):
    """A camera's RAW+JPEG pairs, a TIFF master beside its JPEG 2000 access copy: the copies had
    failed one by one (and renamed the JPEGs' outputs) or been read twice, once listed."""
    _img(5).save(tmp_path / "IMG_0001.JPG")
    (tmp_path / "IMG_0001.CR2").write_bytes(b"II*\x00" + bytes(64))
    _img(6).save(tmp_path / "leaf.tif")
    _img(6).save(tmp_path / "leaf.jp2")
    _img(7).save(tmp_path / "alone.jp2")  # no page of its name: a page
    (tmp_path / "phone.heic").write_bytes(bytes(64))  # likewise: listed, and fails naming its format
    assert sorted(ref.page_id for ref in page_refs([tmp_path])) == ["IMG_0001", "alone", "leaf", "phone"]
    assert sorted(ref.page_id for ref in page_refs([str(tmp_path / "leaf.*")])) == ["leaf"]
    # Named, a copy is read.
    assert [ref.path.name for ref in page_refs([tmp_path / "leaf.jp2"])] == ["leaf.jp2"]


def test_a_later_tiff_page_whose_header_is_cut_short_fails_naming_it(tmp_path):
    """Pillow counts the page, warns "Corrupt EXIF data" (naming no file) and decodes it black; the
    pages after it are not counted at all. It had been read as an empty page, exit 0."""
    import warnings

    fax = bad_inputs.damaged_tags_multipage_tiff(tmp_path / "fax.tif")
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        refs = list(page_refs([fax]))
    assert not [w for w in escaped if "EXIF" in str(w.message)]  # Pillow's own warning names no file
    assert [r.page_id for r in refs] == ["fax#p1", "fax#p2"] and not refs[0].error
    assert "page chain breaks at this page (its page header is cut short" in refs[1].error
    with pytest.raises(ImageError, match=r"fax\.tif#p2: the file's page chain breaks"):
        load_page(refs[1])
    assert load_page(refs[0]).shape == (100, 200)


def test_a_page_counted_but_past_the_files_end_fails_saying_the_chain_breaks(tmp_path):
    fax = bad_inputs.tiff_whose_second_page_is_past_its_end(tmp_path / "fax.tif")
    refs = list(page_refs([fax]))
    assert load_page(refs[0]).shape == (100, 200)
    if len(refs) == 2:  # as Pillow 12 counts it; a Pillow that stops at the break lists one page
        with pytest.raises(ImageError, match=r"fax.tif#p2: the file's page chain breaks at this page"):
            load_page(refs[1])


def test_a_broken_page_chain_keeps_the_pages_before_it_and_reports_the_break(tmp_path):
    broken = bad_inputs.truncated_multipage_tiff(tmp_path / "fax.tif")  # page 3's header is cut off
    refs = list(page_refs([broken]))
    assert [r.page_id for r in refs] == ["fax#p1", "fax#p2", "fax#p3"]
    assert not refs[0].error and not refs[1].error
    assert "page chain breaks at this page" in refs[2].error and refs[2].source.endswith("fax.tif#p3")


def test_a_page_chain_that_loops_back_reports_the_loop_and_keeps_the_pages_before_it(tmp_path):
    """Pillow stops at a link back to an earlier page as at the chain's end: the pages after it
    had been lost without a word, exit 0 (a probe helper)."""
    import struct

    pages = [_img(10 * k) for k in (1, 2, 3)]
    pages[0].save(tmp_path / "loop.tif", save_all=True, append_images=pages[1:])
    data = bytearray((tmp_path / "loop.tif").read_bytes())

    def next_link(ifd: int) -> int:  # where an IFD (little-endian) keeps the offset of the next one
        return ifd + 2 + 12 * struct.unpack("<H", data[ifd:ifd + 2])[0]

    first = struct.unpack("<I", data[4:8])[0]
    second = struct.unpack("<I", data[next_link(first):next_link(first) + 4])[0]
    data[next_link(second):next_link(second) + 4] = struct.pack("<I", first)  # page 2 leads back to page 1
    (tmp_path / "loop.tif").write_bytes(bytes(data))
    refs = list(page_refs([tmp_path / "loop.tif"]))
    assert [r.page_id for r in refs] == ["loop#p1", "loop#p2", "loop#p3"]
    assert not refs[0].error and not refs[1].error
    assert refs[2].error.startswith("the file's page chain loops back to page 1 after page 2")
    pages[0].save(tmp_path / "whole.tif", save_all=True, append_images=pages[1:])
    assert not any(r.error for r in page_refs([tmp_path / "whole.tif"]))


def test_hidden_files_and_folders_of_a_folder_are_not_pages_unless_named(tmp_path):
    for name in ("page.png", ".thumbnails/page.png", "._page.png", "sub/.git/x.png", "sub/b.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        _img(10).save(tmp_path / name)
    assert [r.page_id for r in page_refs([tmp_path])] == ["page", "sub/b"]
    assert [r.page_id for r in page_refs([tmp_path / ".thumbnails" / "page.png"])] == ["page"]


def test_a_file_named_directly_and_within_a_folder_is_read_once(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    _img(10).save(tmp_path / "d" / "sub" / "y.png")
    refs = list(page_refs([tmp_path / "d", tmp_path / "d" / "sub" / "y.png"]))
    assert [r.page_id for r in refs] == ["sub/y"]


def test_the_same_name_in_two_folders_gets_two_ids(tmp_path):
    for folder, value in (("batch1", 10), ("batch2", 20)):
        (tmp_path / folder).mkdir()
        _img(value).save(tmp_path / folder / "scan001.png")
    _img(30).save(tmp_path / "batch2" / "scan002.png")
    ids = [r.page_id for r in page_refs([tmp_path / "batch1", tmp_path / "batch2"])]
    assert ids == ["batch1/scan001", "batch2/scan001", "batch2/scan002"]
    # Stable: an id does not depend on which other files exist.
    (tmp_path / "batch2" / "scan001.png").unlink()
    assert [r.page_id for r in page_refs([tmp_path / "batch1", tmp_path / "batch2"])] == [
        "batch1/scan001", "batch2/scan002"]


def test_two_folders_of_one_name_get_ids_that_do_not_depend_on_their_order(tmp_path):
    for parent, value in (("p", 10), ("q", 20)):
        (tmp_path / parent / "scans").mkdir(parents=True)
        _img(value).save(tmp_path / parent / "scans" / "s1.png")
    folders = [tmp_path / "p" / "scans", tmp_path / "q" / "scans"]
    ids = {str(r.path): r.page_id for r in page_refs(folders)}
    assert sorted(ids.values()) == ["p/scans/s1", "q/scans/s1"]
    assert {str(r.path): r.page_id for r in page_refs(folders[::-1])} == ids


def test_one_file_named_two_ways_is_read_once(tmp_path):
    (tmp_path / "x").mkdir()
    _img(10).save(tmp_path / "x" / "a.png")
    refs = page_refs([tmp_path / "x" / "a.png", tmp_path / "x" / ".." / "x" / "a.png"])
    assert [r.page_id for r in refs] == ["a"]


def test_files_named_alike_in_different_folders_get_distinct_ids(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _img(1).save(tmp_path / folder / "p.png")
    ids = [stem for _, stem in expand_inputs([tmp_path / "a" / "p.png", tmp_path / "b" / "p.png"])]
    assert len(set(ids)) == 2


def test_ids_of_files_named_alike_by_a_glob_hold_when_another_joins_them(tmp_path):
    """A resume must find each file's outputs again: numbering clashing ids in sorted order
    (f/0001-2) gave a new box2 file the id of box3's earlier outputs, so it was skipped."""
    for box, value in (("box1", 10), ("box3", 30)):
        (tmp_path / box / "f").mkdir(parents=True)
        _img(value).save(tmp_path / box / "f" / "0001.png")
    pattern = str(tmp_path / "*" / "f" / "*.png")
    before = {str(r.path): r.page_id for r in page_refs([pattern])}
    assert sorted(before.values()) == ["box1/f/0001", "box3/f/0001"]
    (tmp_path / "box2" / "f").mkdir(parents=True)
    _img(20).save(tmp_path / "box2" / "f" / "0001.png")
    after = {str(r.path): r.page_id for r in page_refs([pattern])}
    assert {path: after[path] for path in before} == before and len(set(after.values())) == 3
    # Absolute paths in a list file and files given directly are named the same way.
    listed = tmp_path / "pages.lst"
    listed.write_text("\n".join(after) + "\n", encoding="utf-8")
    assert {str(r.path): r.page_id for r in page_refs([listed])} == after
    assert {str(r.path): r.page_id for r in page_refs(list(after)[::-1])} == after
    # Beside another suffix in its own folder, a file keeps its suffix as well.
    _img(40).save(tmp_path / "box1" / "f" / "0001.jpg")
    ids = sorted(r.page_id for r in page_refs([str(tmp_path / "*" / "f" / "*.*")]))
    assert ids == ["box1/f/0001.jpg", "box1/f/0001.png", "box2/f/0001", "box3/f/0001"]


def test_ids_never_start_at_the_file_system_root_nor_depend_on_the_order_of_the_inputs(tmp_path):
    from hwr.documents.pages import _distinguishing_prefixes

    # A file at / beside one in /tmp: an id "/x" would write its outputs outside --output-dir.
    assert _distinguishing_prefixes({Path("/"), Path("/tmp")}) == {Path("/"): "", Path("/tmp"): "tmp/"}
    # A folder's f/0001 and a direct file whose distinguishing prefix makes it f/0001 too.
    for folder in ("top/f", "x/f", "y/g"):
        (tmp_path / folder).mkdir(parents=True)
        _img(10).save(tmp_path / folder / "0001.png")
    inputs = [tmp_path / "top", tmp_path / "x" / "f" / "0001.png", tmp_path / "y" / "g" / "0001.png"]
    ids = {str(r.path): r.page_id for r in page_refs(inputs)}
    assert len(set(ids.values())) == 3
    assert {str(r.path): r.page_id for r in page_refs(inputs[::-1])} == ids


def test_an_unreadable_sub_folder_is_reported(tmp_path, monkeypatch):
    """Tests run as root, where chmod 000 does not stop reading: the listing is made to fail."""
    import os

    (tmp_path / "in" / "locked").mkdir(parents=True)
    _img(1).save(tmp_path / "in" / "a.png")
    _img(2).save(tmp_path / "in" / "locked" / "b.png")
    locked = str(tmp_path / "in" / "locked")
    scandir = os.scandir

    def refuse(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    refs = list(page_refs([tmp_path / "in"]))
    assert [r.page_id for r in refs if not r.error] == ["a"]
    errors = _errors(refs)
    assert list(errors) == [locked] and "cannot read folder" in errors[locked]


def test_a_list_file_row_that_is_not_utf8_names_its_file_byte_for_byte(tmp_path, caplog):
    try:
        latin1 = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.png"))
        _img(1).save(latin1)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    _img(2).save(tmp_path / "good.png")
    listing = bad_inputs.latin1_text(tmp_path / "pages.txt", "good.png\ncaf\xe9.png\ngone.png\n")
    with caplog.at_level("WARNING", logger="hwr.documents.pages"):
        refs = list(page_refs([listing]))
    assert [r.path for r in refs if not r.error] == [tmp_path / "good.png", latin1]  # the rest is not lost
    assert list(_errors(refs)) == [str(tmp_path / "gone.png")]
    assert any("pages.txt: not UTF-8 on line(s) 2;" in r.getMessage() for r in caplog.records)


def test_a_name_too_long_for_the_file_system_is_one_failed_input(tmp_path):
    """Python 3.11's pathlib raises ENAMETOOLONG where it says False for a missing file: one
    such row of a list file, or one such argument, stopped the whole batch before any page."""
    _img(1).save(tmp_path / "good.png")
    _img(2).save(tmp_path / "also.png")
    long = "q" * 300 + ".png"
    listing = tmp_path / "pages.txt"
    listing.write_text(f"good.png\n{long}\nalso.png\n", encoding="utf-8")
    for inputs in ([listing], [tmp_path / "good.png", tmp_path / long, tmp_path / "also.png"]):
        refs = list(page_refs(inputs))
        assert [r.page_id for r in refs if not r.error] == ["good", "also"]
        [(name, error)] = _errors(refs).items()
        assert name.endswith(long) and "too long" in error
        assert may_name_several(inputs) and tmp_path / long not in input_files(inputs)
    assert not may_name_several([tmp_path / long])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])  # with and without a byte order mark
def test_a_utf16_list_file_is_a_failure_naming_it(tmp_path, encoding):
    listing = tmp_path / "pages.txt"
    listing.write_bytes("good.png\n".encode(encoding))
    _img(1).save(tmp_path / "good.png")
    refs = list(page_refs([listing, tmp_path / "good.png"]))
    assert [r.page_id for r in refs if not r.error] == ["good"]
    assert "not UTF-8" in _errors(refs)[str(listing)] and "UTF-16" in _errors(refs)[str(listing)]
    assert len(_errors(refs)) == 1  # one failure, the list's, not one per row


def test_pdf_page_of_the_largest_size_renders_below_the_pixel_cap():
    from hwr.documents.pages import pdf_render_scale
    from hwr.recognition.imaging import MAX_IMAGE_PIXELS

    scale = pdf_render_scale(14400, 14400, 300)
    assert math.ceil(14400 * scale) ** 2 <= MAX_IMAGE_PIXELS
    assert scale > 0.999 * (MAX_IMAGE_PIXELS / 14400 ** 2) ** 0.5  # as large as the cap allows
    for width, height in ((14400, 3), (3000, 14400), (612, 792)):
        s = pdf_render_scale(width, height, 600)
        assert math.ceil(width * s) * math.ceil(height * s) <= MAX_IMAGE_PIXELS
    assert pdf_render_scale(612, 792, 300) == 300 / 72  # a letter page keeps its dpi


def test_oversized_pdf_page_renders_at_a_lower_dpi(tmp_path, monkeypatch):
    from hwr.documents import pages
    from hwr.recognition import imaging

    pdf = bad_inputs.huge_pdf(tmp_path / "poster.pdf", 1441, 1439)
    monkeypatch.setattr(pages, "MAX_IMAGE_PIXELS", 1_000_003)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 1_000_003)
    gray = pages.render_pdf_page(pdf, 0, 300)
    assert gray.size <= 1_000_003 and gray.size > 0.99 * 1_000_003


def test_linked_sub_folders_are_read_and_a_link_loop_only_once(tmp_path, caplog):
    (tmp_path / "in" / "real").mkdir(parents=True)
    (tmp_path / "volume2").mkdir()
    _img(1).save(tmp_path / "in" / "real" / "a.png")
    _img(2).save(tmp_path / "volume2" / "b.png")
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "volume2", target_is_directory=True)
    (tmp_path / "in" / "real" / "up").symlink_to(tmp_path / "in", target_is_directory=True)  # a loop
    refs = list(page_refs([tmp_path / "in"]))
    assert [(r.page_id, r.error) for r in refs] == [("linked/b", ""), ("real/a", "")]
    # Said once, however often the inputs are listed (hwr transcribe lists them twice).
    list(page_refs([tmp_path / "in"]))
    assert caplog.text.count("a symbolic link loop?") == 1


def test_an_input_that_matches_nothing_is_a_failure_beside_the_others(tmp_path):
    _img(1).save(tmp_path / "a.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("no pages here")
    (tmp_path / "comments.lst").write_text("# nothing listed yet\n\n")
    nomatch = str(tmp_path / "nomatch" / "*.png")
    refs = list(page_refs([tmp_path / "a.png", nomatch, tmp_path / "empty", tmp_path / "comments.lst"]))
    assert [r.page_id for r in refs if not r.error] == ["a"]
    errors = {str(r.path): (r.error, r.error_stage) for r in refs if r.error}
    assert errors == {nomatch: ("pattern matches no files", "input"),
                      str(tmp_path / "empty"): ("folder holds no image or PDF files", "input"),
                      str(tmp_path / "comments.lst"): ("list file lists no files", "input")}


def test_no_two_pages_share_an_output_file_in_any_format(tmp_path):
    """x's ALTO is x.alto.xml, and so is the PAGE XML of x.alto.png: the later input gets a
    stem of its own when both formats are written (and only then)."""
    _img(1).save(tmp_path / "x.png")
    _img(2).save(tmp_path / "x.alto.png")
    # Path order: x.alto.png comes first, so x is the later input.
    assert [r.page_id for r in page_refs([tmp_path], ["pagexml", "alto"])] == ["x.alto", "x-2"]
    assert [r.page_id for r in page_refs([tmp_path], ["txt", "pagexml"])] == ["x.alto", "x"]


def test_ids_apart_only_by_case_get_outputs_apart_on_case_insensitive_file_systems(tmp_path):
    """A.png (one folder) and a.png (another) wrote A.txt and a.txt: one file on macOS and
    Windows, and in a zip of the outputs unpacked there; the later page replaced the first."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    _img(1).save(tmp_path / "one" / "Scan.png")
    _img(2).save(tmp_path / "two" / "scan.png")
    _img(3).save(tmp_path / "two" / "x.png")
    _img(3).save(tmp_path / "two" / "X.ALTO.png")
    inputs = [tmp_path / "one" / "Scan.png", tmp_path / "two"]
    ids = {r.path.name: r.page_id for r in page_refs(inputs, ["pagexml", "alto"])}
    assert len({i.casefold() for i in ids.values()}) == len(ids) == 4
    assert ids["Scan.png"].endswith("one/Scan") and ids["scan.png"].endswith("two/scan")  # apart by their folders
    # Order-free, as for equal names: the ids depend on the clashing files alone, so a resume
    # with the inputs in another order (or a new file in the clash) never takes another's outputs.
    assert {r.path.name: r.page_id for r in page_refs(inputs[::-1], ["pagexml", "alto"])} == ids
    # One folder of a case-sensitive disk: each id ends in a digest of its own file's name.
    (tmp_path / "two" / "Scan.png").write_bytes((tmp_path / "two" / "scan.png").read_bytes())
    again = {r.path.name: r.page_id for r in page_refs([tmp_path / "two"], ["txt"])}
    assert again["Scan.png"].startswith("Scan~") and again["scan.png"].startswith("scan~")
    assert again["x.png"] == "x"  # its ALTO is no output here: no clash with X.ALTO


def test_a_pdf_without_pages_is_reported_as_such_not_as_pdfium_success(tmp_path):
    from hwr.documents.pages import count_pages

    pdf = bad_inputs.pageless_pdf(tmp_path / "blank.pdf")
    with pytest.raises(ImageError, match="not a readable PDF"):  # leaves PDFium's error code stale
        count_pages(bad_inputs.broken_pdf(tmp_path / "broken.pdf"))
    with pytest.raises(ImageError, match="the PDF has no pages") as raised:
        count_pages(pdf)
    assert "blank.pdf" in str(raised.value) and "Success" not in str(raised.value)


def test_a_password_protected_pdf_is_named_as_such(tmp_path):
    """pdfium's own words had been passed on: "not a readable PDF (... Incorrect password error)"."""
    import pypdfium2.raw as pdfium_c

    from hwr.documents.pages import PDFIUM_PASSWORD_ERROR, count_pages, render_pdf_page

    assert PDFIUM_PASSWORD_ERROR == pdfium_c.FPDF_ERR_PASSWORD
    pdf = bad_inputs.password_protected_pdf(tmp_path / "locked.pdf")
    with pytest.raises(ImageError, match="locked.pdf.*the PDF is password-protected; save a copy without"):
        count_pages(pdf)
    with pytest.raises(ImageError, match="password-protected"):
        render_pdf_page(pdf, 0)


def test_input_files_are_every_file_a_folder_pattern_or_list_stands_for_and_the_list_itself(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("a.png", "b.png"):
        (scans / name).write_bytes(b"")
    (tmp_path / "c.png").write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text("c.png\n", encoding="utf-8")
    found = {p.resolve() for p in input_files([str(scans), str(tmp_path / "s*" / "b.png"), str(listing),
                                               str(tmp_path / "missing")])}
    assert found == {(scans / "a.png").resolve(), (scans / "b.png").resolve(), (tmp_path / "c.png").resolve(),
                     listing.resolve()}


def test_a_pipe_in_a_folder_is_a_failure_naming_it_not_skipped_in_silence(tmp_path):
    import os

    _img(1).save(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")
    refs = list(page_refs([tmp_path]))
    assert [r.page_id for r in refs if not r.error] == ["good"]
    assert "is a pipe, not an image" in _errors(refs)[str(tmp_path / "pipe.png")]


def test_a_pdf_page_capped_a_hair_under_its_dpi_is_not_announced_as_lowered(tmp_path, caplog):
    """A 14,400 x 0.2 pt strip, capped by a hair, logged "too large for 300 dpi; rendered at 300 dpi"."""
    from hwr.documents import pages

    strip = bad_inputs.huge_pdf(tmp_path / "strip.pdf", 14400, 0.2)
    poster = bad_inputs.huge_pdf(tmp_path / "poster.pdf", 14400, 14400)
    with caplog.at_level("WARNING", logger="hwr.documents.pages"):
        pages.render_pdf_page(strip, 0, 300)
        assert "too large" not in caplog.text
        assert pages.pdf_render_scale(14400, 14400, 300) * 72 <= 299
        pages.render_pdf_page(poster, 0, 300)
    assert "poster.pdf#p1: page too large for 300 dpi; rendered at" in caplog.text


def test_a_file_name_near_the_file_systems_limit_gets_an_id_every_output_name_fits(tmp_path):
    """A 254-byte scan name is legal; its ALTO output (+ ".alto.xml") was not, and failed the
    page after its other outputs were written, at every --resume again."""
    import os

    from hwr.documents.writers import FORMATS, output_paths

    names = ["x" * 250 + ".png", "x" * 249 + "y.png", "é" * 125 + ".png", "short.png"]
    for name in names:
        _img(1).save(tmp_path / name)
    ids = {r.path.name: r.page_id for r in page_refs([tmp_path], formats=FORMATS)}
    assert len(set(ids.values())) == 4 and ids["short.png"] == "short"
    for name, page_id in ids.items():
        for path in output_paths(page_id + "#p12", tmp_path, FORMATS):
            assert len(os.fsencode(path.name)) <= 255, name
    assert ids["x" * 250 + ".png"].startswith("x" * 200) and "~" in ids["x" * 250 + ".png"]
    assert {r.page_id for r in page_refs([tmp_path], formats=FORMATS)} == set(ids.values())  # the same on a resume
