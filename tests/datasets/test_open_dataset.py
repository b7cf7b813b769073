"""open_dataset: format detection, explicit prefixes and the synth: hook."""
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from hwr.datasets import DatasetError, detect_format, open_dataset
from hwr.records import LineSample


def blank_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 4), 255).save(path)


def make_iam(root: Path) -> Path:
    (root / "ascii").mkdir(parents=True)
    (root / "ascii" / "lines.txt").write_text(
        "# comment\na01-000u-00 ok 154 19 408 746 1661 89 A|MOVE\na01-001-00 ok 154 19 408 746 1661 89 to|stop\n",
        encoding="utf-8",
    )
    blank_png(root / "lines" / "a01" / "a01-000u" / "a01-000u-00.png")
    blank_png(root / "lines" / "a01" / "a01-001" / "a01-001-00.png")
    return root


def make_pairs(folder: Path) -> Path:
    blank_png(folder / "x.png")
    (folder / "x.gt.txt").write_text("pair text", encoding="utf-8")
    return folder


def make_page(folder: Path) -> Path:
    blank_png(folder / "p.png")
    xml = folder / "p.xml"
    xml.write_text(
        '<PcGts><Page imageFilename="p.png"><TextLine id="t"><Coords points="0,0 7,0 7,3 0,3"/>'
        "<TextEquiv><Unicode>page text</Unicode></TextEquiv></TextLine></Page></PcGts>",
        encoding="utf-8",
    )
    return xml


def test_detects_each_format(tmp_path):
    iam = make_iam(tmp_path / "iam")
    pairs = make_pairs(tmp_path / "pairs")
    page = make_page(tmp_path / "page")
    tsv = tmp_path / "gt.tsv"
    tsv.write_text("pairs/x.png\ttsv text\n", encoding="utf-8")
    assert detect_format(iam) == ("iam", iam)
    assert detect_format(iam / "ascii" / "lines.txt") == ("iam", iam)
    assert detect_format(pairs) == ("pairs", pairs)
    assert detect_format(page) == ("pagexml", page)
    assert detect_format(page.parent) == ("pagexml", page.parent)
    assert detect_format(tsv) == ("manifest", tsv)
    assert [s.text for s in open_dataset(iam)] == ["A MOVE", "to stop"]
    assert [s.text for s in open_dataset(pairs)] == ["pair text"]
    assert [s.text for s in open_dataset(page.parent)] == ["page text"]
    assert [s.text for s in open_dataset(str(tsv))] == ["tsv text"]


def test_gt_files_win_over_stray_xml(tmp_path, caplog):
    folder = make_pairs(tmp_path)
    (folder / "notes.xml").write_text("<notes/>", encoding="utf-8")
    with caplog.at_level("WARNING", logger="hwr.datasets"):
        assert detect_format(folder)[0] == "pairs"
    assert not caplog.records  # stray XML is not PAGE


def test_page_xml_beside_pairs_is_named_as_not_read(tmp_path, caplog):
    """A folder exported with both kinds read as pairs: the PAGE files' lines had been left out
    without a word."""
    folder = make_pairs(tmp_path)
    make_page(folder / "page")
    (folder / "page" / "p.gt.txt").write_text("the whole page", encoding="utf-8")
    with caplog.at_level("WARNING", logger="hwr.datasets"):
        assert sorted(s.text for s in open_dataset(folder)) == ["pair text", "the whole page"]
    [record] = caplog.records
    assert "1 PAGE XML file(s)" in record.getMessage() and "p.xml" in record.getMessage()
    assert f"pagexml:{folder}" in record.getMessage()
    assert [s.text for s in open_dataset(f"pagexml:{folder}")] == ["page text"]


def test_explicit_prefix_and_split_file(tmp_path):
    iam = make_iam(tmp_path / "iam")
    split = tmp_path / "test.txt"
    split.write_text("a01-001\n", encoding="utf-8")
    assert [s.id for s in open_dataset(f"iam:{iam}", split_file=split)] == ["a01-001-00"]
    pairs = make_pairs(tmp_path / "pairs")
    with pytest.raises(DatasetError, match="split files apply to IAM"):
        open_dataset(f"pairs:{pairs}", split_file=split)
    with pytest.raises(DatasetError, match="split files apply to IAM"):  # had scored the whole set
        open_dataset("synth:val:3", split_file=split)


def test_unknown_layout_and_missing_path_are_clear_errors(tmp_path):
    blank_png(tmp_path / "only.png")
    with pytest.raises(DatasetError, match="cannot tell the data set format"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_dataset(tmp_path / "absent")


def test_synth_spec_uses_the_synthetic_engine(monkeypatch):
    calls = []

    class FakeLines:
        """Stands in for hwr.datasets.synthetic so this test checks only the spec parsing."""

        def __init__(self, n, split="train", seed=0):
            calls.append((n, split, seed))
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return LineSample(id=f"synth-{i}", text="x", image=Image.new("L", (4, 4), 255))

    monkeypatch.setitem(sys.modules, "hwr.datasets.synthetic", types.SimpleNamespace(SyntheticLines=FakeLines))
    lines = open_dataset("synth:val:3")
    # Lazy: nothing is rendered until a line is indexed.
    assert [lines[i].id for i in range(len(lines))] == ["synth-0", "synth-1", "synth-2"]
    open_dataset("synth:train:2:7")
    assert calls == [(3, "val", 0), (2, "train", 7)]
    with pytest.raises(DatasetError, match=r"expected synth:<split>:<count>"):
        open_dataset("synth:val")
    # Refused up front: they had failed only when a line was rendered, with numpy's traceback.
    with pytest.raises(DatasetError, match=r"a seed of 0 or more"):
        open_dataset("synth:val:2:-1")
    with pytest.raises(DatasetError, match=r"unknown split 'foo'; expected one of train, val, hard, struck"):
        open_dataset("synth:foo:3")


def test_synth_without_engine_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "hwr.datasets.synthetic", None)  # makes the import fail
    with pytest.raises(DatasetError, match="synthetic engine is unavailable"):
        open_dataset("synth:val:5")


def test_every_format_returns_one_type_and_only_read_lines_are_known(tmp_path):
    """open_dataset's one return type is LineDataset; `known_lines` tells read lists from lines
    rendered on demand, without rendering any."""
    from hwr.datasets import LineDataset, known_lines

    blank_png(tmp_path / "pairs" / "a.png")
    (tmp_path / "pairs" / "a.gt.txt").write_text("a\n")
    read = open_dataset(tmp_path / "pairs")
    rendered = open_dataset("synth:val:3")
    assert isinstance(read, LineDataset) and isinstance(rendered, LineDataset)
    assert known_lines(read) == [read[0]] and known_lines(rendered) is None


def test_synth_archive_is_the_harder_sets_writing_on_old_leaves():
    archive, hard = open_dataset("synth:archive:3"), open_dataset("synth:hard:3")
    assert len(archive) == 3
    for i in range(3):
        old, new = archive[i], hard[i]
        assert old.meta["condition"] == "archive" and old.meta["split"] == "val"
        assert old.text == new.text and old.meta["font"] == new.meta["font"]
