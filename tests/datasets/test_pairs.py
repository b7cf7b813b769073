"""Image + .gt.txt pairs reader: recursion, ids, ordering and the bad cases."""
from pathlib import Path

import pytest
from PIL import Image

from hwr.datasets import DatasetError, SkipReport, read_pairs


def add_pair(folder: Path, name: str, text: str | None, suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{name}{suffix}"
    Image.new("L", (8, 4), 255).save(image)
    if text is not None:
        (folder / f"{name}.gt.txt").write_text(text, encoding="utf-8")
    return image


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    root = tmp_path / "pairs"
    add_pair(root, "b", "second line\n")
    add_pair(root, "a", "  first line \r\n")
    add_pair(root / "nested", "c", "e\u0301t\u00e9", suffix=".jpg")  # decomposed e + accent
    add_pair(root / ".ipynb_checkpoints", "a", "a stale copy")
    return root


def test_reads_sorted_recursive_pairs_with_relative_ids(pairs):
    samples = read_pairs(pairs)
    assert [s.id for s in samples] == ["a", "b", "nested/c"]
    assert [s.text for s in samples] == ["first line", "second line", "\u00e9t\u00e9"]  # NFC
    assert samples[2].image == pairs / "nested" / "c.jpg"


def test_image_without_ground_truth_is_an_error_or_skipped(pairs):
    add_pair(pairs, "lonely", None)
    with pytest.raises(DatasetError, match=r"lonely\.png: ground truth lonely\.gt\.txt not found"):
        read_pairs(pairs)
    report = SkipReport()
    assert [s.id for s in read_pairs(pairs, skip_bad=True, report=report)] == ["a", "b", "nested/c"]
    assert report.count == 1 and "lonely.png" in report.summary()


def test_ground_truth_that_is_a_folder_is_named_as_one(pairs):
    add_pair(pairs, "odd", None)
    (pairs / "odd.gt.txt").mkdir()
    with pytest.raises(DatasetError, match=r"odd\.png: ground truth odd\.gt\.txt is a folder, not a text file"):
        read_pairs(pairs)


def test_ground_truth_without_image_is_reported(pairs):
    (pairs / "orphan.gt.txt").write_text("no picture", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"orphan\.gt\.txt: no image"):
        read_pairs(pairs)


def test_multi_line_ground_truth_names_the_second_line(pairs):
    add_pair(pairs, "two", "one line\n\nanother line\n")
    with pytest.raises(DatasetError, match=r"two\.gt\.txt:3: .* 2 lines of text"):
        read_pairs(pairs)


def test_a_lone_carriage_return_ends_a_line_as_a_line_feed_does(tmp_path):
    add_pair(tmp_path, "mac", "one line\r")  # a classic Mac OS file: its line ends in CR
    add_pair(tmp_path, "dos", "one line\r\n")
    assert [s.text for s in read_pairs(tmp_path)] == ["one line", "one line"]
    add_pair(tmp_path, "two", "one line\ranother line\r")
    with pytest.raises(DatasetError, match=r"two\.gt\.txt:2: .* 2 lines of text"):
        read_pairs(tmp_path)


def test_undecodable_ground_truth_names_file_and_line(pairs):
    add_pair(pairs, "latin1", None)
    (pairs / "latin1.gt.txt").write_bytes(b"ok\n\xe9t\xe9")
    with pytest.raises(DatasetError, match=r"latin1\.gt\.txt:2: not valid UTF-8"):
        read_pairs(pairs)


def test_undecodable_ground_truth_after_a_byte_order_mark_names_its_own_line_and_byte(pairs):
    add_pair(pairs, "bom", None)
    (pairs / "bom.gt.txt").write_bytes(b"\xef\xbb\xbfa\nb\xe9\n")
    with pytest.raises(DatasetError, match=r"bom\.gt\.txt:2: not valid UTF-8 \(byte 0xe9\)"):
        read_pairs(pairs)


def test_same_stem_twice_is_a_duplicate_id(pairs):
    add_pair(pairs, "a", "first line", suffix=".tif")
    with pytest.raises(DatasetError, match=r"a\.tif: duplicate id 'a' \(first at .*a\.png\)"):
        read_pairs(pairs)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no image"):
        read_pairs(tmp_path)


def test_a_folder_whose_every_pair_is_bad_says_why_it_has_no_line(tmp_path):
    add_pair(tmp_path, "a", "two\nlines\n")  # a pair there is, but skipped as bad
    report = SkipReport()
    with pytest.raises(DatasetError, match=r"no image with a \.gt\.txt file found \(1 skipped: .*a\.gt\.txt:2: "
                                           r"ground truth for one line image has 2 lines"):
        read_pairs(tmp_path, skip_bad=True, report=report)
    assert report.count == 1


def test_utf16_ground_truth_is_named_not_scored_as_text_full_of_nuls(pairs):
    add_pair(pairs, "wide", None)
    (pairs / "wide.gt.txt").write_bytes("guilty".encode("utf-16-le"))
    with pytest.raises(DatasetError, match=r"wide\.gt\.txt:1: holds NUL characters \(UTF-16\?\)"):
        read_pairs(pairs)


def test_an_image_whose_ground_truth_name_is_too_long_for_the_file_system_is_skipped_alone(tmp_path):
    """The .gt.txt name is the image's and 4 bytes longer: with a 254-byte image name it cannot
    be looked up, and pathlib's OSError stopped the whole set, --skip-bad or not."""
    add_pair(tmp_path, "good", "fine")
    image = add_pair(tmp_path, "q" * 250, None)
    with pytest.raises(DatasetError, match=r"q+\.png.*ground truth q+\.gt\.txt not found"):
        read_pairs(tmp_path)
    report = SkipReport()
    assert [s.text for s in read_pairs(tmp_path, skip_bad=True, report=report)] == ["fine"]
    assert [e.source for e in report.entries] == [str(image)]
