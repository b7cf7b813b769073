"""Guards on what users upload to the web app: zips, work folders, page round trips."""
from __future__ import annotations

import os
import re
import stat
import time
import zipfile

import pytest

from hwr.records import Line, Page, Recognition
from hwr_ui.pages import apply_corrections, page_from_dict, page_to_dict
from hwr_ui.uploads import UploadError, WorkDirs, ZipLimits, extract_zip

import bad_inputs


def make_zip(path, members: dict[str, bytes], link: str | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_extract_keeps_folders_and_drops_archiver_junk(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"lines/a.png": b"x", "__MACOSX/lines/._a.png": b"junk", "b.gt.txt": b"hi"})
    files = extract_zip(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in files) == ["b.gt.txt", "lines/a.png"]


@pytest.mark.parametrize("members, link, message", [
    ({"../evil.txt": b"x"}, None, "points outside the archive"),
    ({"/etc/evil.txt": b"x"}, None, "points outside the archive"),
    ({"ok.txt": b"x"}, "link", "symbolic link"),
    ({}, None, "is empty"),
])
def test_extract_refuses_unsafe_archives(tmp_path, members, link, message):
    archive = make_zip(tmp_path / "bad.zip", members, link)
    with pytest.raises(UploadError, match=message):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("members, message", [
    ({"a": b"x", "a/b.png": b"y"}, "a/b.png: cannot be unpacked"),  # a file where a folder must go
    ({"a/b.png": b"y", "a": b"x"}, "a: cannot be unpacked"),  # a folder where the file must go
    ({"x" * 300 + ".png": b"x"}, "cannot be unpacked"),  # longer than the file system allows
    ({".": b"x"}, "'.' names no file"),
])
def test_members_that_cannot_be_unpacked_are_named(tmp_path, members, message):
    with pytest.raises(UploadError, match=message):
        extract_zip(make_zip(tmp_path / "odd.zip", members), tmp_path / "out")


def test_a_name_twice_in_one_archive_is_refused(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it is asked to write
        with zipfile.ZipFile(tmp_path / "dup.zip", "w") as zf:
            zf.writestr("lines/a.png", b"first")
            zf.writestr("lines/a.png", b"second")
    with pytest.raises(UploadError, match="lines/a.png is in the archive twice"):
        extract_zip(tmp_path / "dup.zip", tmp_path / "out")


def test_a_zip_of_pages_with_a_name_twice_keeps_the_last_copy_and_names_the_earlier(tmp_path):
    """A zip of pages (`damaged` asked for) is not refused for one name held twice: its last copy
    is unpacked, as unzip and zipfile keep it, and the earlier copies are named."""
    import warnings

    from hwr_ui.uploads import earlier_copies

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(tmp_path / "dup.zip", "w") as zf:
            zf.writestr("lines/a.png", b"first")
            zf.writestr("lines/b.png", b"other")
            zf.writestr("lines/a.png", b"second")
            zf.writestr("lines/a.png", b"third")
    damaged = {}
    files = extract_zip(tmp_path / "dup.zip", tmp_path / "out", damaged=damaged)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in files) == ["lines/a.png", "lines/b.png"]
    assert (tmp_path / "out" / "lines" / "a.png").read_bytes() == b"third"
    assert list(damaged) == [earlier_copies("lines/a.png")]
    assert damaged[earlier_copies("lines/a.png")].startswith("dup.zip holds lines/a.png 3 times; only its last")


def test_extract_refuses_bombs_and_non_zips(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * 100_000})
    with pytest.raises(UploadError, match="unpacks to"):
        extract_zip(archive, tmp_path / "out", ZipLimits(max_bytes=50_000))
    with pytest.raises(UploadError, match="holds 3 files"):
        extract_zip(make_zip(tmp_path / "many.zip", {f"{i}": b"" for i in range(3)}), tmp_path / "o",
                    ZipLimits(max_files=2))
    many = make_zip(tmp_path / "index.zip", {f"{i}": b"" for i in range(50)})
    real_zipfile = zipfile.ZipFile
    with pytest.MonkeyPatch.context() as patch:  # refused from the zip's end record, its index never read
        patch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the whole index was read"))
        with pytest.raises(UploadError, match="holds 50 entries; at most 20 files"):
            extract_zip(many, tmp_path / "o", ZipLimits(max_files=20))
    assert zipfile.ZipFile is real_zipfile
    (tmp_path / "fake.zip").write_bytes(b"PK but not really")
    with pytest.raises(UploadError, match="is not a zip file"):
        extract_zip(tmp_path / "fake.zip", tmp_path / "out")


def test_work_dirs_sweep_old_folders_and_close(tmp_path):
    work = WorkDirs(max_age_s=60)
    old = work.new("old")
    os.utime(old, (time.time() - 120, time.time() - 120))
    fresh = work.new("fresh")  # creating one sweeps the others that are too old
    assert not old.exists() and fresh.exists()
    work.close()
    assert not work.root.exists()


def test_a_folder_in_use_is_never_swept_and_its_hour_starts_when_the_work_ends(tmp_path):
    """A batch running for hours: its outputs (and a zip's unpacked pages) must survive the
    sweep that any other request's new folder starts."""
    work = WorkDirs(max_age_s=60)
    with work.using("batch") as batch:
        (batch / "out").mkdir()
        (batch / "out" / "page1.txt").write_text("read")  # writing below does not touch the folder
        os.utime(batch, (time.time() - 120, time.time() - 120))
        work.new("transcribe")  # another request sweeps
        assert (batch / "out" / "page1.txt").is_file()
    assert time.time() - batch.stat().st_mtime < 30  # kept another max_age_s for the downloads
    work.new("export")
    assert batch.exists()
    os.utime(batch, (time.time() - 120, time.time() - 120))
    work.new("export")
    assert not batch.exists()
    work.close()


def test_a_held_folder_is_kept_until_released(tmp_path):
    """A Teach run's folder outlives its request: another request's sweep had deleted the
    uncorrected pages its second round reads."""
    work = WorkDirs(max_age_s=60)
    teach = work.new("teach", held=True)
    os.utime(teach, (time.time() - 120, time.time() - 120))
    work.new("transcribe")
    assert teach.exists()
    work.release(teach)
    work.new("transcribe")
    assert teach.exists()  # its hour starts at the release
    os.utime(teach, (time.time() - 120, time.time() - 120))
    work.new("transcribe")
    assert not teach.exists()
    work.close()


def _page() -> Page:
    lines = [Line(id=f"p-l{i}", polygon=[(0, i * 10), (50, i * 10), (50, i * 10 + 9)], baseline=[(0, i * 10 + 8)],
                  bbox=(0, i * 10, 51, i * 10 + 10), recognition=Recognition(t, 0.5, [0.5] * len(t), [(0, 1)] * len(t)))
             for i, t in enumerate(["frist line", "second"])]
    return Page(id="p", source="p.png", width=51, height=20, lines=lines)


def test_page_survives_json_and_takes_corrections():
    page = page_from_dict(page_to_dict(_page()))
    assert page == _page()
    fixed = apply_corrections(page, "first line\nsecond\n")
    assert [line.recognition.text for line in fixed.lines] == ["first line", "second"]
    assert fixed.lines[0].recognition.confidence == 1.0 and fixed.lines[1].recognition.confidence == 0.5
    assert page.lines[0].recognition.text == "frist line"  # the original is left alone
    with pytest.raises(UploadError, match="3 lines but 2 lines were detected"):
        apply_corrections(page, "a\nb\nc")


def test_a_damaged_member_refuses_the_archive_unless_damaged_members_are_asked_for(tmp_path):
    archive = bad_inputs.zip_with_a_damaged_member(tmp_path / "pages.zip", {"a.png": b"first page"}, "b.png",
                                                   b"second page")
    with pytest.raises(UploadError, match=r"pages.zip is a corrupt zip file \(Bad CRC-32"):
        extract_zip(archive, tmp_path / "whole")
    damaged = {}
    files = extract_zip(archive, tmp_path / "out", damaged=damaged)
    assert [p.name for p in files] == ["a.png"] and list(damaged) == ["b.png"]
    assert damaged["b.png"].startswith("damaged in pages.zip (Bad CRC-32")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]  # nothing half-copied left


@pytest.mark.parametrize("patch, message", [
    (dict(flags=0x1), "password-protected"),
    (dict(method=9), "packed in a way this server cannot unpack"),
])
def test_a_member_zipfile_cannot_unpack_is_named_not_a_server_error(tmp_path, patch, message):
    archive = bad_inputs.zip_with_patched_member(tmp_path / "pages.zip", {"a.png": b"first"}, "b.png", b"second",
                                                 **patch)
    with pytest.raises(UploadError, match=f"pages.zip: b.png is .*{message}"):
        extract_zip(archive, tmp_path / "whole")
    damaged = {}
    assert [p.name for p in extract_zip(archive, tmp_path / "out", damaged=damaged)] == ["a.png"]
    assert message in damaged["b.png"] and "pages.zip" in damaged["b.png"]


@pytest.mark.parametrize("members, refused", [
    ({"good1.png": b"1", "y" * 300 + ".png": b"2", "good2.png": b"3"}, "y" * 300 + ".png"),  # too long a name
    ({"good1.png": b"1", "a": b"x", "a/b.png": b"2", "good2.png": b"3"}, "a/b.png"),  # a file where its folder goes
])
def test_a_member_the_disk_refuses_costs_its_own_row_in_a_zip_of_pages(tmp_path, members, refused):
    """It refused the whole zip: the good pages beside it were never read."""
    damaged = {}
    files = extract_zip(make_zip(tmp_path / "pages.zip", members), tmp_path / "out", damaged=damaged)
    assert {"good1.png", "good2.png"} <= {p.name for p in files} and list(damaged) == [refused]
    assert damaged[refused].startswith("cannot be unpacked (") and damaged[refused].endswith("(in pages.zip)")


def test_a_latin1_name_under_the_utf8_flag_is_named_not_a_server_error(tmp_path):
    archive = bad_inputs.zip_with_patched_member(tmp_path / "old.zip", {"a.png": b"x"}, "cafe.png", b"y",
                                                 flags=0x800, name=b"caf\xe9.png")
    with pytest.raises(UploadError, match="old.zip: a file name in it is not the UTF-8 the zip declares"):
        extract_zip(archive, tmp_path / "out")


def test_a_colon_in_a_name_is_a_name_and_a_drive_letter_points_outside(tmp_path):
    archive = make_zip(tmp_path / "scans.zip", {"2024-05-01T10:30:00.png": b"x"})
    assert [p.name for p in extract_zip(archive, tmp_path / "out")] == ["2024-05-01T10:30:00.png"]
    with pytest.raises(UploadError, match="points outside the archive"):
        extract_zip(make_zip(tmp_path / "drive.zip", {"C:/evil.png": b"x"}), tmp_path / "out2")


@pytest.mark.parametrize("field, value, message", [
    ("polygon", ["ab", "cd"], "a point of the polygon"), ("bbox", [1, 2], "bbox"),
    ("baseline", [[float("inf"), 1], [2, 3]], "a point of the baseline"), ("polygon", [[True, 1]], "polygon"),
])
def test_line_geometry_from_the_browser_that_is_no_numbers_is_a_readable_error(field, value, message):
    """It failed in a writer: "something went wrong on the server", a traceback in the log."""
    data = page_to_dict(_page())
    data["lines"][0][field] = value
    with pytest.raises(UploadError, match=f"not a page result from the transcribe step .*{message}"):
        page_from_dict(data)
    data = page_to_dict(_page())
    data["lines"][0]["id"] = 5  # a number for an id is taken as its text
    assert page_from_dict(data).lines[0].id == "5"


def test_an_exported_page_names_its_image_as_the_browser_sent_it_never_looked_up_on_the_server(tmp_path):
    from hwr_ui.pages import export_page

    page = _page()
    page.source = "/etc/passwd"
    xml = next(p for p in export_page(page, tmp_path / "out", "p", ["pagexml"]) if p.suffix == ".xml")
    text = xml.read_text(encoding="utf-8")
    assert 'imageFilename="passwd"' in text and "/etc" not in text and "imagePath" not in text


@pytest.mark.parametrize("typed, shown", [("first\x00 line", r"'\x00'"), ("first\rline", r"'\r'"),
                                          ("fir\ud800st", r"'\ud800'"), ("\x1b[1mfirst", r"'\x1b'"),
                                          ("first\u2028line", r"'\u2028'"), ("first\u2029", r"'\u2029'")])
def test_a_correction_holding_a_control_character_is_refused_naming_its_line(typed, shown):
    """Saved as a training line, a NUL or a lone CR made a line the reader refuses, which adapt
    then left out in silence; a lone surrogate was a server error; U+2028 split the line in two."""
    with pytest.raises(UploadError, match=f"line 2 of the corrected text holds {re.escape(shown)}"):
        apply_corrections(_page(), f"first line\n{typed}")
    assert apply_corrections(_page(), "first\tline\nsecond").lines[0].text == "first\tline"  # a tab is kept


@pytest.mark.parametrize("field, value", [("confidence", "high"), ("char_confidences", [None]),
                                          ("text", 5), ("confidence", float("nan")), ("char_frames", [[1]]),
                                          ("words", [{"text": "a", "confidence": "x", "x0": 0, "x1": 1}])])
def test_a_reading_from_the_browser_that_is_no_reading_is_a_readable_error(field, value):
    data = page_to_dict(_page())
    data["lines"][0]["recognition"][field] = value
    with pytest.raises(UploadError, match="not a page result from the transcribe step"):
        page_from_dict(data)


def test_a_full_disk_fails_the_upload_once_not_as_a_row_per_member(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    archive = make_zip(tmp_path / "pages.zip", {"a.png": b"1", "b.png": b"2"})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", full)
    damaged = {}
    with pytest.raises(UploadError, match=r"pages.zip: the server cannot unpack it now \(No space left on device\)"):
        extract_zip(archive, tmp_path / "out", damaged=damaged)
    assert damaged == {}


def test_a_zip_inside_a_data_set_zip_is_refused_by_name_not_passed_over(tmp_path):
    """The Evaluate and Teach tabs read an upload as one data set, whose readers pass over a .zip
    file: its lines had been left out of the report or the training without a word."""
    from hwr_ui.uploads import NESTED_ZIP, extract_data_zip

    inner = make_zip(tmp_path / "inner.zip", {"l.gt.txt": b"x"}).read_bytes()
    make_zip(tmp_path / "set.zip", {"a/l.gt.txt": b"x", "b/more.zip": inner, "c/Even.ZIP": inner})
    with pytest.raises(UploadError) as caught:
        extract_data_zip(tmp_path / "set.zip", tmp_path / "out")
    assert str(caught.value) == f"set.zip: b/more.zip (and 1 more): {NESTED_ZIP}"
    make_zip(tmp_path / "plain.zip", {"a/l.gt.txt": b"x", "a/l.png": b"png"})
    assert len(extract_data_zip(tmp_path / "plain.zip", tmp_path / "out2")) == 2
