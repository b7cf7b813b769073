"""ui/batch.py: what the Batch tab makes of uploads (one row per page, failures kept)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from hwr.recognition.model import Recognizer
from hwr_ui.batch import NESTED_ZIP, collect_inputs, find_row, run_batch
from hwr_ui.uploads import UploadError, ZipLimits

from helpers import render_line


def _pages(n: int) -> list[Image.Image]:
    return [Image.fromarray(render_line(f"page {k + 1} of a scan")) for k in range(n)]


def test_pdfs_and_multipage_tiffs_give_one_row_per_page(tmp_path, untrained_model):
    pdf, tiff, png = tmp_path / "scan.pdf", tmp_path / "fax.tif", tmp_path / "one.png"
    first, *rest = _pages(3)
    first.save(pdf, save_all=True, append_images=rest, resolution=150)
    first, *rest = _pages(2)
    first.save(tiff, save_all=True, append_images=rest)
    _pages(1)[0].save(png)
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(pdf, "inner/scan.pdf")
        zf.writestr("notes.txt", "not a page")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")

    uploads = [pdf, tiff, png, archive, tmp_path / "broken.pdf"]
    inputs = collect_inputs(uploads, tmp_path / "work", ZipLimits())
    assert [i.name for i in inputs] == [
        "scan.pdf#p1", "scan.pdf#p2", "scan.pdf#p3", "fax.tif#p1", "fax.tif#p2", "one.png",
        "more.zip/inner/scan.pdf#p1", "more.zip/inner/scan.pdf#p2", "more.zip/inner/scan.pdf#p3", "broken.pdf"]

    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [r.name for r in rows] == [i.name for i in inputs]
    assert all(not r.error and r.lines == 1 for r in rows[:-1])
    assert rows[-1].error.startswith("not a readable PDF")  # its row names the file
    # Every page has its own outputs, named after the file and the page.
    written = {p.stem for p in (tmp_path / "out").glob("*.txt")}
    assert {"scan#p1", "scan#p3", "fax#p2", "more.zip__inner__scan#p2"} <= written


def test_bombs_and_broken_tiffs_get_an_error_row_and_the_rest_is_read(tmp_path, untrained_model):
    """Issue 21 item 3: one such upload used to fail the whole batch with a server error."""
    import bad_inputs

    good = tmp_path / "good.png"
    _pages(1)[0].save(good)
    uploads = [bad_inputs.huge_tiff_header(tmp_path / "bomb.tif"), good,
               bad_inputs.truncated_multipage_tiff(tmp_path / "cut.tif"),
               bad_inputs.short_multipage_tiff(tmp_path / "short.tif")]
    inputs = collect_inputs(uploads, tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "auto", tmp_path / "out")
    by_name = {r.name: r for r in rows}
    assert "too large" in by_name["bomb.tif"].error
    # cut.tif's page chain breaks at page 3: page 1 is read, page 2 fails to decode, page 3 says why.
    assert not by_name["cut.tif#p1"].error and by_name["cut.tif#p2"].error
    assert "page chain breaks" in by_name["cut.tif#p3"].error
    assert not by_name["good.png"].error and by_name["good.png"].lines == 1
    assert any(r.error for n, r in by_name.items() if n.startswith("short.tif#p"))
    assert all(str(tmp_path) not in r.error for r in rows)  # no server-side paths in messages
    assert (tmp_path / "out" / "good.txt").is_file()


def test_read_pages_can_be_found_again_to_correct_and_failed_ones_cannot(tmp_path, untrained_model):
    pdf, broken = tmp_path / "scan.pdf", tmp_path / "broken.pdf"
    first, *rest = _pages(2)
    first.save(pdf, save_all=True, append_images=rest, resolution=150)
    broken.write_bytes(b"%PDF-1.4 truncated")
    inputs = collect_inputs([pdf, broken], tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [r.correctable for r in rows] == [True, True, False]
    row = find_row(rows, "scan.pdf#p2")
    # The page comes back as the batch read it: the second page of the PDF, at the same size.
    image = row.image()
    assert image.shape == (row.page.height, row.page.width)
    assert image.dtype == np.uint8 and (image < 128).any()
    with pytest.raises(UploadError, match="broken.pdf: not a page of the last batch"):
        find_row(rows, "broken.pdf")


def test_two_uploads_of_one_name_get_rows_that_can_be_told_apart(tmp_path, untrained_model):
    from hwr_ui.batch import results_csv

    for folder, text in (("p", "the cat sat"), ("q", "a big dog")):
        (tmp_path / folder).mkdir()
        Image.fromarray(render_line(text)).save(tmp_path / folder / "a.png")
    inputs = collect_inputs([tmp_path / "p" / "a.png", tmp_path / "q" / "a.png"], tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    # Both used to be "a.png": the CSV could not say which was which, and only the first could be corrected.
    assert [r.name for r in rows] == ["a.png", "a (2).png"]
    assert find_row(rows, "a (2).png").ref.path.read_bytes() == (tmp_path / "q" / "a.png").read_bytes()
    assert {p.name for p in (tmp_path / "out").glob("*.txt")} == {"a.txt", "a (2).txt"}
    assert [line.split(",")[0] for line in results_csv(rows).splitlines()[1:]] == ["a.png", "a (2).png"]


def test_a_damaged_member_of_a_zip_of_pages_gets_its_own_row_and_the_other_pages_are_read(tmp_path,
                                                                                        untrained_model):
    import bad_inputs

    first, second = io.BytesIO(), io.BytesIO()
    for image, buffer in zip(_pages(2), (first, second)):
        image.save(buffer, "PNG")
    archive = bad_inputs.zip_with_a_damaged_member(tmp_path / "pages.zip", {"scans/a.png": first.getvalue()},
                                                   "scans/b.png", second.getvalue())
    inputs = collect_inputs([archive], tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [(r.name, bool(r.error)) for r in rows] == [("pages.zip/scans/a.png", False),
                                                       ("pages.zip/scans/b.png", True)]
    assert "Bad CRC-32" in rows[1].error and str(tmp_path) not in rows[1].error


def test_a_page_twice_in_a_zip_costs_a_row_for_its_earlier_copy_not_the_batch(tmp_path):
    import warnings

    page = io.BytesIO()
    _pages(1)[0].save(page, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it is asked to write
        with zipfile.ZipFile(tmp_path / "pages.zip", "w") as zf:
            zf.writestr("scans/a.png", page.getvalue())
            zf.writestr("scans/b.png", page.getvalue())
            zf.writestr("scans/a.png", page.getvalue())
            zf.writestr("notes.txt", "x")
            zf.writestr("notes.txt", "y")  # not a page: left out, as a single one is
    inputs = collect_inputs([tmp_path / "pages.zip"], tmp_path / "work", ZipLimits())
    assert [(i.name, bool(i.error)) for i in inputs] == [
        ("pages.zip/scans/a.png", False), ("pages.zip/scans/a.png (earlier copies)", True),
        ("pages.zip/scans/b.png", False)]
    assert "holds scans/a.png 2 times; only its last copy was read" in inputs[1].error


def test_a_zip_inside_a_zip_of_pages_gets_its_own_row_not_left_out_in_silence(tmp_path):
    import zipfile

    page = io.BytesIO()
    _pages(1)[0].save(page, "PNG")
    with zipfile.ZipFile(tmp_path / "pages.zip", "w") as zf:
        zf.writestr("a.png", page.getvalue())
        zf.writestr("more.zip", b"PK")
        zf.writestr("a.gt.txt", "a transcript beside its page")  # left out, as before
    inputs = collect_inputs([tmp_path / "pages.zip"], tmp_path / "work", ZipLimits())
    assert [(i.name, i.error) for i in inputs] == [("pages.zip/a.png", ""), ("pages.zip/more.zip", NESTED_ZIP)]


def test_a_zip_that_cannot_be_used_costs_its_own_row_not_the_batch(tmp_path, untrained_model):
    import bad_inputs

    page = io.BytesIO()
    _pages(1)[0].save(page, "PNG")
    (tmp_path / "good.png").write_bytes(page.getvalue())
    locked = bad_inputs.zip_with_patched_member(tmp_path / "locked.zip", {}, "a.png", page.getvalue(), flags=0x1)
    notes = tmp_path / "notes.zip"
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("notes.txt", "no pages here")
    (tmp_path / "fake.zip").write_bytes(b"not a zip at all")
    uploads = [tmp_path / "good.png", locked, notes, tmp_path / "fake.zip"]
    inputs = collect_inputs(uploads, tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [(r.name, bool(r.error)) for r in rows] == [("good.png", False), ("locked.zip/a.png", True),
                                                       ("notes.zip", True), ("fake.zip", True)]
    assert "password-protected" in rows[1].error and "holds no images" in rows[2].error
    assert "not a zip file" in rows[3].error


def test_the_output_zip_is_written_whole_or_leaves_the_earlier_one_as_it_was(tmp_path, monkeypatch):
    from hwr.documents.writers.manifest import OutputManifest
    from hwr_ui.batch import BatchRow, zip_outputs

    out, archive = tmp_path / "out", tmp_path / "hwr-batch.zip"
    out.mkdir()
    (out / "a.txt").write_text("the cat\n")
    OutputManifest(out).record(out / "a.txt", b"the cat\n")
    zip_outputs([BatchRow("a.png", text="the cat")], out, archive)
    assert zipfile.ZipFile(archive).namelist() == ["results.csv", "a.txt"]  # not the batch's manifest
    before = archive.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "write", disk_full)
    with pytest.raises(OSError, match="no space"):
        zip_outputs([BatchRow("a.png", text="the cat")], out, archive)
    assert archive.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hwr-batch.zip", "out"]  # no temp file left


def test_a_batch_keeps_its_uploads_when_gradios_copies_are_swept(tmp_path, untrained_model):
    """gradio deletes its upload copies an hour old while a long batch still reads them: its later
    pages had failed "file not found", and a page could not be corrected afterwards."""
    uploads = []
    for k, page in enumerate(_pages(2)):
        (tmp_path / "cache" / str(k)).mkdir(parents=True)
        page.save(tmp_path / "cache" / str(k) / "scan.png")
        uploads.append(tmp_path / "cache" / str(k) / "scan.png")
    inputs = collect_inputs(uploads, tmp_path / "work", ZipLimits())
    for upload in uploads:
        upload.unlink()  # the sweep
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [r.name for r in rows] == ["scan.png", "scan (2).png"] and not any(r.error for r in rows)
    assert find_row(rows, "scan (2).png").image().shape == np.asarray(_pages(1)[0].convert("L")).shape


def test_a_stopped_batch_ends_after_the_page_it_is_on(tmp_path, untrained_model):
    import threading

    from hwr_ui.batch import BatchStopped

    for k, page in enumerate(_pages(3)):
        page.save(tmp_path / f"p{k}.png")
    inputs = collect_inputs([tmp_path / f"p{k}.png" for k in range(3)], tmp_path / "work", ZipLimits())
    stop = threading.Event()
    stop.set()
    with pytest.raises(BatchStopped):
        run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out", stop=stop)


def test_closing_the_stream_of_a_stoppable_job_stops_it():
    """gradio closes an event's generator when the user cancels: a plain function had run on to
    the end, outside the queue's count."""
    import threading

    from hwr_ui.app import stoppable

    started, ended = threading.Event(), threading.Event()

    def job(stop):
        started.set()
        stop.wait(10)
        ended.set()
        return "done" if not stop.is_set() else "stopped"

    stream = stoppable(job, poll_s=0.01)
    next(stream)  # a "no change" while it runs
    assert started.wait(5)
    stream.close()
    assert ended.wait(5)
    assert list(stoppable(lambda stop: "result", poll_s=0.01))[-1] == "result"


def test_a_zip_members_long_path_gets_output_names_the_disk_takes(tmp_path, untrained_model):
    """Its folders joined by "__" made a 275-byte name from short parts: a server error, after
    txt, JSON and PAGE XML were written and ALTO failed."""
    import os
    import zipfile

    page = io.BytesIO()
    Image.fromarray(render_line("the cat sat")).save(page, "PNG")
    member = "/".join(["f" * 90] * 3) + ".png"
    with zipfile.ZipFile(tmp_path / "deep.zip", "w") as zf:
        zf.writestr(member, page.getvalue())
    inputs = collect_inputs([tmp_path / "deep.zip"], tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [r.error for r in rows] == [""]
    written = [p.name for p in (tmp_path / "out").iterdir() if p.suffix in (".txt", ".json", ".xml")]
    assert len(written) >= 4 and all(len(os.fsencode(name)) <= 255 for name in written)


def test_an_input_named_like_anothers_alto_file_gets_outputs_of_its_own(tmp_path, untrained_model):
    """x.alto.png's PAGE XML and x.png's ALTO file were both x.alto.xml: one replaced the other in
    silence, and the download held one output fewer (a probe helper)."""
    for name in ("x.png", "x.alto.png"):
        Image.fromarray(render_line("the cat sat")).save(tmp_path / name)
    inputs = collect_inputs([tmp_path / "x.png", tmp_path / "x.alto.png"], tmp_path / "work", ZipLimits())
    rows = run_batch(Recognizer.load(untrained_model, device="cpu"), inputs, "line", tmp_path / "out")
    assert [r.error for r in rows] == ["", ""]
    xml = sorted(p.name for p in (tmp_path / "out").glob("*.xml"))
    assert len(xml) == 4 and "x.alto.xml" in xml, xml  # each input's PAGE XML and ALTO, none replaced
