"""IAM lines.txt reader on a tiny IAM-shaped tree built in tmp_path."""
from pathlib import Path

import pytest
from PIL import Image

from hwr.datasets import DatasetError, SkipReport, read_iam

LINES_TXT = """\
#--- lines.txt ---------------------------------------------------------------#
# a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from
a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell
a01-000u-01 err 156 19 395 932 1850 105 tomorrow|.|Mr.|Foot
a01-000x-00 ok 154 8 345 750 1800 80 Caf\u00e9|au|lait
b02-010-03 ok 170 5 300 400 1500 90 nominating|any|more
"""
IDS = ["a01-000u-00", "a01-000u-01", "a01-000x-00", "b02-010-03"]


def make_iam(root: Path, lines_txt: str = LINES_TXT) -> Path:
    (root / "ascii").mkdir(parents=True)
    (root / "ascii" / "lines.txt").write_text(lines_txt, encoding="utf-8")
    for row in lines_txt.splitlines():
        fields = row.split()
        if row.startswith("#") or len(fields) < 9:
            continue
        line_id = fields[0]
        writer, form, _ = line_id.split("-")
        folder = root / "lines" / writer / f"{writer}-{form}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 4), 255).save(folder / f"{line_id}.png")
    return root


def test_reads_rows_in_order_with_text_meta_and_image_path(tmp_path):
    samples = read_iam(make_iam(tmp_path))
    assert [s.id for s in samples] == IDS
    first, err_row, accented = samples[0], samples[1], samples[2]
    assert first.text == "A MOVE to stop Mr. Gaitskell"
    assert first.image == tmp_path / "lines" / "a01" / "a01-000u" / "a01-000u-00.png"
    assert first.meta["form"] == "a01-000u" and first.meta["segmentation"] == "ok"
    # err rows have a doubtful word segmentation only; the line text is valid and kept.
    assert err_row.meta["segmentation"] == "err" and err_row.text == "tomorrow . Mr. Foot"
    assert accented.text == "Caf\u00e9 au lait"


def test_words_are_what_the_bars_separate():
    """A doubled or edge `|` (a hand-edited lines.txt) had been scored as spaces the image never
    held, and a transcription of `|` alone escaped the empty-reference warning (a probe helper)."""
    from hwr.datasets.iam import parse_row

    row = "a01-000u-00 ok 154 19 408 746 1661 89 |top||of|the|hill|"
    assert parse_row(row, Path("/iam")).text == "top of the hill"
    assert parse_row("a01-000u-01 ok 154 19 408 746 1661 89 |", Path("/iam")).text == ""
    assert parse_row("a01-000u-02 ok 154 19 408 746 1661 89 A|MOVE|to stop", Path("/iam")).text == "A MOVE to stop"


def test_split_file_accepts_form_ids_and_line_ids(tmp_path):
    root = make_iam(tmp_path / "iam")
    split = tmp_path / "split.txt"
    split.write_text("a01-000u\n\nb02-010-03\n", encoding="utf-8")
    samples = read_iam(root, split_file=split)
    assert [s.id for s in samples] == ["a01-000u-00", "a01-000u-01", "b02-010-03"]


@pytest.mark.parametrize("line_end", ["\r", "\r\n"])
def test_rows_and_split_ids_end_at_a_lone_carriage_return_as_at_a_line_feed(tmp_path, line_end):
    """An old Mac editor's lines.txt ends rows with CR alone: read as one row, its first line's
    reference had held every row after it, and a split file had kept its first id only."""
    root = make_iam(tmp_path / "iam", LINES_TXT.replace("\n", line_end))
    split = tmp_path / "split.txt"
    split.write_bytes(line_end.join(["a01-000u", "b02-010-03", ""]).encode())
    samples = read_iam(root, split_file=split)
    assert [s.id for s in samples] == ["a01-000u-00", "a01-000u-01", "b02-010-03"]
    assert samples[0].text == "A MOVE to stop Mr. Gaitskell"


def test_an_indented_comment_is_a_comment(tmp_path):
    root = make_iam(tmp_path / "iam", "  # a note, indented\n" + LINES_TXT)
    assert [s.id for s in read_iam(root)] == IDS


def test_split_matching_nothing_is_an_error(tmp_path):
    root = make_iam(tmp_path / "iam")
    split = tmp_path / "split.txt"
    split.write_text("z99-999\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="none of its ids"):
        read_iam(root, split_file=split)


def test_split_ids_missing_from_lines_txt_are_counted_and_named_in_a_warning(tmp_path, caplog):
    root = make_iam(tmp_path / "iam")
    split = tmp_path / "split.txt"
    split.write_text("a01-000u\nz99-999\nb02-010-07\n", encoding="utf-8")
    samples = read_iam(root, split_file=split)
    assert [s.id for s in samples] == ["a01-000u-00", "a01-000u-01"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(split) in warning and "2 of its 3 ids are not in" in warning
    assert "b02-010-07, z99-999" in warning


def test_a_split_whose_ids_are_all_in_lines_txt_warns_nothing(tmp_path, caplog):
    root = make_iam(tmp_path / "iam", LINES_TXT + "c03-001 ok 12\n")  # a malformed row still lists its id
    split = tmp_path / "split.txt"
    split.write_text("a01-000x\nc03-001\n", encoding="utf-8")
    assert [s.id for s in read_iam(root, split_file=split, skip_bad=True, report=SkipReport())] == ["a01-000x-00"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_split_file_naming_no_line_of_lines_txt_or_no_id_is_an_error_naming_it(tmp_path):
    root = make_iam(tmp_path / "iam")
    split = tmp_path / "other-release.txt"
    split.write_text("z99-999\nz99-998-00\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"other-release\.txt: none of its ids is in .*lines\.txt "
                                           r"\(e\.g\. z99-998-00, z99-999\)"):
        read_iam(root, split_file=split)
    split.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"other-release\.txt: lists no ids"):
        read_iam(root, split_file=split)


def test_malformed_row_names_file_and_line(tmp_path):
    root = make_iam(tmp_path, LINES_TXT + "c03-001 ok 12\n")
    with pytest.raises(DatasetError, match=r"lines\.txt:7: expected at least 9 fields, got 3"):
        read_iam(root)


def test_skip_bad_reports_malformed_row_and_missing_image(tmp_path):
    root = make_iam(tmp_path, LINES_TXT + "c03-001 ok 12\n")
    (root / "lines" / "b02" / "b02-010" / "b02-010-03.png").unlink()
    report = SkipReport()
    samples = read_iam(root, skip_bad=True, report=report)
    assert [s.id for s in samples] == IDS[:3]
    assert [(e.line_no, e.reason.split(":")[0]) for e in report.entries] == [
        (6, "image not found"), (7, "expected at least 9 fields, got 3")
    ]
    assert report.summary().startswith("2 entries skipped")


def test_a_row_that_is_not_utf8_is_one_bad_entry_with_skip_bad(tmp_path):
    """One Latin-1 edit in a 13,000-line lines.txt had stopped the whole set, --skip-bad or not."""
    root = make_iam(tmp_path)
    path = root / "ascii" / "lines.txt"
    rows = path.read_bytes().split(b"\n")
    rows[4] = rows[4].replace(b"Caf\xc3\xa9", b"Caf\xe9")  # the a01-000x-00 row, saved as Latin-1
    path.write_bytes(b"\n".join(rows))
    with pytest.raises(DatasetError, match=r"lines\.txt:5: not valid UTF-8 \(byte 0xe9\)"):
        read_iam(root)
    report = SkipReport()
    samples = read_iam(root, skip_bad=True, report=report)
    assert [s.id for s in samples] == [IDS[0], IDS[1], IDS[3]]
    assert [(e.line_no, e.reason) for e in report.entries] == [(5, "not valid UTF-8 (byte 0xe9)")]
    # Outside the split it is not read, so not counted; its id still names it for a split.
    other = tmp_path / "other.txt"
    other.write_text("b02-010\n", encoding="utf-8")
    report = SkipReport()
    assert [s.id for s in read_iam(root, other, skip_bad=True, report=report)] == [IDS[3]] and not report.entries
    other.write_text("a01-000x-00\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"none of its ids matches a usable line .*1 skipped: .*not valid UTF-8"):
        read_iam(root, other, skip_bad=True)


def test_a_lines_file_not_utf8_throughout_says_so_with_skip_bad(tmp_path):
    rows = [row if row.startswith("#") else row + "|caf\u00e9" for row in LINES_TXT.splitlines()]
    root = make_iam(tmp_path, "\n".join(rows) + "\n")
    path = root / "ascii" / "lines.txt"
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(DatasetError, match=r"no usable line \(4 skipped: .*lines\.txt:3: not valid UTF-8"):
        read_iam(root, skip_bad=True)


def test_a_malformed_row_outside_the_split_neither_fails_nor_counts_against_it(tmp_path):
    root = make_iam(tmp_path / "iam", LINES_TXT + "c03-001-02 ok 154 1 408 746 1661 89\n")  # 8 fields
    split = tmp_path / "test.lst"
    split.write_text("a01-000u-00\n", encoding="utf-8")
    report = SkipReport()
    assert [s.id for s in read_iam(root, split_file=split)] == ["a01-000u-00"]
    assert [s.id for s in read_iam(root, split_file=split, skip_bad=True, report=report)] == ["a01-000u-00"]
    assert not report.entries
    split.write_text("c03-001\n", encoding="utf-8")  # the split that holds it still names it
    with pytest.raises(DatasetError, match=r"lines\.txt:7: expected at least 9 fields, got 8"):
        read_iam(root, split_file=split)


def test_missing_image_raises_without_skip_bad(tmp_path):
    root = make_iam(tmp_path)
    (root / "lines" / "a01" / "a01-000x" / "a01-000x-00.png").unlink()
    with pytest.raises(DatasetError, match=r"lines\.txt:5: image not found"):
        read_iam(root)


def test_bad_status_and_duplicate_ids_are_errors(tmp_path):
    bad_status = make_iam(tmp_path / "a", LINES_TXT.replace(" err ", " maybe "))
    with pytest.raises(DatasetError, match=r":4: segmentation status"):
        read_iam(bad_status)
    duplicated = make_iam(tmp_path / "b", LINES_TXT + LINES_TXT.splitlines()[2] + "\n")
    with pytest.raises(DatasetError, match=r"lines\.txt:7: duplicate id 'a01-000u-00' \(first at .*lines\.txt:3\)"):
        read_iam(duplicated)


def test_not_an_iam_tree(tmp_path):
    with pytest.raises(DatasetError, match="not an IAM tree"):
        read_iam(tmp_path)


def test_a_lines_file_whose_every_row_is_bad_is_an_error_naming_the_rows(tmp_path):
    root = make_iam(tmp_path, "a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE\n")
    (root / "lines" / "a01" / "a01-000u" / "a01-000u-00.png").unlink()
    with pytest.raises(DatasetError, match=r"lines\.txt: no usable line \(1 skipped: .*lines\.txt:1: image not found"):
        read_iam(root, skip_bad=True)
