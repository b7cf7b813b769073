"""path<TAB>text manifest reader."""
from pathlib import Path

import pytest
from PIL import Image

from hwr.datasets import DatasetError, SkipReport, read_manifest


def make_manifest(tmp_path: Path, rows: str) -> Path:
    for name in ("lines/one.png", "lines/two.png", "elsewhere/three.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 4), 255).save(tmp_path / name)
    tsv = tmp_path / "data" / "gt.tsv"
    tsv.parent.mkdir(exist_ok=True)
    tsv.write_text(rows, encoding="utf-8")
    return tsv


def test_reads_rows_in_file_order_relative_and_absolute(tmp_path):
    absolute = tmp_path / "elsewhere" / "three.png"
    tsv = make_manifest(
        tmp_path, f"# comment line\n../lines/two.png\tsecond\n\n../lines/one.png\t first \n{absolute}\tthird\n"
    )
    samples = read_manifest(tsv)
    assert [s.id for s in samples] == ["../lines/two", "../lines/one", absolute.with_suffix("").as_posix()]
    assert [s.text for s in samples] == ["second", "first", "third"]
    assert samples[0].image == tsv.parent / "../lines/two.png"
    assert samples[0].meta["source"] == str(tsv) and samples[0].meta["line_no"] == 2


def test_a_comment_row_naming_an_image_there_is_skipped_with_a_warning_saying_how_to_read_it(tmp_path, caplog):
    tsv = make_manifest(tmp_path, "#2.png\tsecond\n#\tnot a path\n  # ../lines/one.png was re-cut, indented\n"
                                  "../lines/one.png\tfirst\n")
    Image.new("L", (8, 4), 255).save(tsv.parent / "#2.png")
    assert [s.text for s in read_manifest(tsv)] == ["first"]
    assert "gt.tsv:1: read as a comment (it begins with #), though #2.png is an image there; write ./#2.png" \
        in caplog.text
    assert "gt.tsv:2" not in caplog.text and "gt.tsv:3" not in caplog.text  # comments naming no image, or no tab


@pytest.mark.parametrize("end", ["\r\n", "\r", "\n"])
def test_a_row_that_is_not_utf8_is_skipped_alone_with_skip_bad(tmp_path, end):
    tsv = make_manifest(tmp_path, "")
    tsv.write_bytes(end.join(["../lines/one.png\tfirst", "../lines/two.png\tcaf\xe9", "../elsewhere/three.png\tthird",
                              ""]).encode("latin-1"))
    with pytest.raises(DatasetError, match=r"gt\.tsv:2: not valid UTF-8 \(byte 0xe9\)"):
        read_manifest(tsv)
    report = SkipReport()
    samples = read_manifest(tsv, skip_bad=True, report=report)
    assert [(s.text, s.meta["line_no"]) for s in samples] == [("first", 1), ("third", 3)]
    assert report.summary() == f"1 entries skipped: {tsv}:2: not valid UTF-8 (byte 0xe9)"


def test_malformed_rows_name_file_and_line(tmp_path):
    tsv = make_manifest(tmp_path, "../lines/one.png\tok\nno tab here\n")
    with pytest.raises(DatasetError, match=r"gt\.tsv:2: expected 2 tab-separated columns"):
        read_manifest(tsv)
    tsv = make_manifest(tmp_path, "../lines/one.png\tok\n../lines/missing.png\tgone\n")
    with pytest.raises(DatasetError, match=r"gt\.tsv:2: image not found"):
        read_manifest(tsv)
    (tmp_path / "lines" / "dir.png").mkdir()
    tsv = make_manifest(tmp_path, "../lines/one.png\tok\n../lines/dir.png\ta folder\n")
    with pytest.raises(DatasetError, match=r"gt\.tsv:2: image is a folder, not a file: .*dir\.png"):
        read_manifest(tsv)


def test_skip_bad_goes_on_and_reports(tmp_path):
    tsv = make_manifest(tmp_path, "a\tb\tc\n../lines/one.png\tok\n../lines/one.png\tagain\n")
    report = SkipReport()
    samples = read_manifest(tsv, skip_bad=True, report=report)
    assert [s.text for s in samples] == ["ok"]
    assert [e.line_no for e in report.entries] == [1, 3]
    assert "duplicate id '../lines/one' (first at" in report.entries[1].reason


def test_a_row_naming_a_file_too_long_for_the_file_system_is_skipped_alone(tmp_path):
    """Python 3.11's pathlib raises ENAMETOOLONG for such a name: --skip-bad or not, the
    whole set failed with a bare OSError."""
    tsv = make_manifest(tmp_path, f"../lines/one.png\tok\n{'q' * 300}.png\tlong\n../lines/two.png\tfine\n")
    with pytest.raises(DatasetError, match=r"gt\.tsv:2: image not found"):
        read_manifest(tsv)
    report = SkipReport()
    assert [s.text for s in read_manifest(tsv, skip_bad=True, report=report)] == ["ok", "fine"]
    assert [e.line_no for e in report.entries] == [2]


def test_a_manifest_whose_every_row_is_bad_is_an_error_naming_the_rows(tmp_path):
    tsv = make_manifest(tmp_path, "../lines/gone.png\tfirst\nno tab here\n")
    with pytest.raises(DatasetError, match=r"gt\.tsv: no usable row .*\(2 skipped: .*gt\.tsv:1: image not found.*"
                                           r"gt\.tsv:2: expected 2 tab-separated columns"):
        read_manifest(tsv, skip_bad=True)


def test_a_manifest_written_by_a_csv_writer_reads_its_quoted_texts(tmp_path):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")  # as pandas' to_csv(sep="\t") quotes
    writer.writerows([["../lines/one.png", 'He said "no"'], ["../lines/two.png", '"Hello"']])
    assert '"He said ""no"""' in buffer.getvalue()
    tsv = make_manifest(tmp_path, buffer.getvalue() + '../elsewhere/three.png\t"Hello"\n')  # typed by hand
    assert [s.text for s in read_manifest(tsv)] == ['He said "no"', '"Hello"', '"Hello"']


def test_a_text_a_csv_writer_carried_over_rows_is_a_bad_row_named_by_its_first_row(tmp_path):
    """csv and pandas quote a text holding a line break across two rows: the line had been scored
    against '"hello', and the next row reported as the broken one (a probe helper)."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerows(
        [["../lines/one.png", "hello\nthere\nworld"], ["../lines/two.png", "good day"]])
    tsv = make_manifest(tmp_path, buffer.getvalue() + '../elsewhere/three.png\t"I said\n../lines/one.png\tno"\n')
    report = SkipReport()
    samples = read_manifest(tsv, skip_bad=True, report=report)
    # A quotation opened by hand and closed on the next line's row is text, as written.
    assert [s.text for s in samples] == ["good day", '"I said', 'no"']
    assert [e.line_no for e in report.entries] == [1]
    assert "its text opens a quote that row 3 closes" in report.entries[0].reason
    with pytest.raises(DatasetError, match="gt.tsv:1: its text opens a quote"):
        read_manifest(tsv)


def test_a_manifest_with_every_field_quoted_reads_its_paths_and_texts(tmp_path):
    """The quoted path shows the writer quoted every field: a plain text's quotes are the
    writer's (they had been kept, and every reference scored and trained two characters long)."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(
        [["../lines/one.png", "plain text"], ["../lines/two.png", '"Hello"']])
    tsv = make_manifest(tmp_path, buffer.getvalue() + '../elsewhere/three.png\t"Hello"\n')  # typed by hand
    samples = read_manifest(tsv)
    assert samples[0].image.name == "one.png"
    assert [s.text for s in samples] == ["plain text", '"Hello"', '"Hello"']


def test_rows_are_split_at_line_feeds_only_not_at_breaks_inside_a_text(tmp_path):
    """str.splitlines() also splits at U+2028, NEL and form feed: the reference was cut short and
    the next physical row reported as a broken one."""
    tsv = make_manifest(tmp_path, "../lines/one.png\tcurtail\u2028laughingly\r\n../lines/two.png\tsecond\x0cpart\r\n")
    samples = read_manifest(tsv)
    assert len(samples) == 2 and "laughingly" in samples[0].text and "part" in samples[1].text
    assert samples[1].meta["line_no"] == 2


def test_utf16_without_a_byte_order_mark_is_an_error_not_text_full_of_nuls(tmp_path):
    tsv = make_manifest(tmp_path, "")
    tsv.write_bytes("../lines/one.png\tguilty\n".encode("utf-16-le"))
    with pytest.raises(DatasetError, match=r"gt\.tsv:1: holds NUL characters \(UTF-16\?\); save it as UTF-8"):
        read_manifest(tsv)
    tsv.write_bytes("../lines/one.png\tguilty\n".encode("utf-16"))  # with its byte order mark
    with pytest.raises(DatasetError, match=r"not valid UTF-8 \(byte 0xff\) \(UTF-16\?\); save it as UTF-8"):
        read_manifest(tsv)
    # --skip-bad does not read it row by row: no row of it would read.
    with pytest.raises(DatasetError, match=r"\(UTF-16\?\); save it as UTF-8"):
        read_manifest(tsv, skip_bad=True)


def test_rows_after_a_quotation_opened_by_hand_are_read_as_ever_when_no_row_closes_it(tmp_path):
    """A row without a tab after an opened quote had been taken for the quote's continuation:
    the quoted row was reported in its place and the rows after it vanished (a review)."""
    tsv = make_manifest(tmp_path, '../lines/one.png\t"Hello\n../lines/two.png   world\n\n'
                                  '../lines/two.png  again\n../elsewhere/three.png\tfine\n')
    report = SkipReport()
    assert [s.text for s in read_manifest(tsv, skip_bad=True, report=report)] == ['"Hello', "fine"]
    assert [e.line_no for e in report.entries] == [2, 4]


def test_a_quoted_text_across_rows_with_a_blank_or_hash_row_inside_is_named_by_its_first_row(tmp_path):
    tsv = make_manifest(tmp_path, '../lines/one.png\t"first\n\n# second"\n../lines/two.png\tgood day\n')
    report = SkipReport()
    assert [s.text for s in read_manifest(tsv, skip_bad=True, report=report)] == ["good day"]
    assert [(e.line_no, e.reason.split(":")[0]) for e in report.entries] == [
        (1, "its text opens a quote that row 3 closes")]
