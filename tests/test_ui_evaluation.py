"""The Evaluate tab's summary: skipped entries named, untranscribed lines counted apart."""
from pathlib import Path

from hwr.datasets import SkipReport
from hwr.records import FailedInput
from hwr.scoring.evaluate import score_texts
from hwr_ui.evaluation import summary_markdown, write_skipped_csv


def test_untranscribed_lines_are_counted_apart_from_unusable_entries(tmp_path: Path):
    folder = tmp_path / "in" / "dataset"
    report = score_texts(["a"], ["the cat"], ["the cot"])
    report.failures = [FailedInput(str(folder / "b.png"), "read", "not a readable image")]
    skipped = SkipReport()
    skipped.add(folder / "page.xml", 4, "TextLine l2 has no text", untranscribed=True)
    skipped.add(folder / "c.gt.txt", 1, "not valid UTF-8")
    text = summary_markdown(report, skipped, folder)
    assert "Skipped 2 unusable entries" in text and "b.png" in text and "c.gt.txt" in text
    assert "l2" not in text and "Not scored: 1 line without a transcription yet" in text
    assert str(folder) not in text  # the user knows files by their path in the zip


def test_every_skipped_entry_is_in_the_csv_when_the_summary_names_only_five(tmp_path: Path):
    """The summary named five and a count; the rest were listed nowhere in the web app."""
    import csv

    folder = tmp_path / "in" / "dataset"
    report = score_texts(["a"], ["the cat"], ["the cot"])
    report.failures = [FailedInput(str(folder / "b.png"), "read", "not a readable image")]
    skipped = SkipReport()
    for k in range(7):
        skipped.add(folder / "ascii" / "lines.txt", 10 + k, f"image not found: {folder}/lines/x{k}.png")
    skipped.add(folder / "=c.gt.txt", None, "not valid UTF-8")
    skipped.add(folder / "page.xml", 4, "TextLine l2 has no text", untranscribed=True)  # no fault: not listed
    assert "every one in the skipped-entries CSV" in summary_markdown(report, skipped, folder)
    path = tmp_path / "skipped.csv"
    assert write_skipped_csv(report, skipped, folder, path)
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows[0] == ["entry", "row", "reason"] and len(rows) == 1 + 1 + 7 + 1
    assert rows[1] == ["b.png", "", "not a readable image"]
    assert rows[8] == ["ascii/lines.txt", "16", "image not found: lines/x6.png"]  # no server path
    assert rows[9] == ["'=c.gt.txt", "", "not valid UTF-8"]  # no formula
    assert not write_skipped_csv(score_texts(["a"], ["x"], ["x"]), SkipReport(), folder, tmp_path / "none.csv")
    assert not (tmp_path / "none.csv").exists()


def test_a_rate_with_empty_references_is_undefined_not_100_percent(tmp_path: Path):
    text = summary_markdown(score_texts(["a"], [""], ["abc"]), SkipReport(), tmp_path)
    assert "**CER undefined**: the references hold no characters (3 characters inserted)" in text
    assert "%" not in text
    assert "**CER 14.29%** (1 / 7 characters)" in summary_markdown(score_texts(["a"], ["the cat"], ["the cot"]),
                                                                 SkipReport(), tmp_path)


def _zip(path: Path, members: dict[str, str]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_an_uploaded_data_set_cannot_read_or_probe_files_outside_it(tmp_path: Path):
    """A PAGE XML or manifest in the zip naming a server path: Evaluate had shown that image's
    lines (and "not found" told whether a file exists)."""
    import numpy as np
    import pytest
    from PIL import Image

    from hwr_ui.evaluation import open_uploaded_dataset
    from hwr_ui.uploads import UploadError, ZipLimits

    secret = tmp_path / "secret" / "private.png"
    secret.parent.mkdir()
    Image.fromarray(np.full((30, 40), 255, np.uint8)).save(secret)
    page = ('<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">'
            '<Page imageFilename="{}" imageWidth="40" imageHeight="30"><TextRegion id="r">'
            '<TextLine id="l"><Coords points="1,1 30,1 30,20 1,20"/><TextEquiv><Unicode>x</Unicode></TextEquiv>'
            '</TextLine></TextRegion></Page></PcGts>')
    uploads = {"absolute": {"page.xml": page.format(secret)},
               "climbing": {"page.xml": page.format("../../../secret/private.png")},
               "missing": {"page.xml": page.format("/nowhere/at/all.png")}}
    messages = []
    for k, (name, members) in enumerate(uploads.items()):
        work = tmp_path / f"work{k}"
        work.mkdir()
        with pytest.raises(UploadError, match="names a file outside the data set's folder") as caught:
            open_uploaded_dataset(_zip(tmp_path / f"{name}.zip", members), work, ZipLimits())
        messages.append(str(caught.value))
    assert all(str(secret.parent) not in m and "not found" not in m for m in messages)


def test_a_manifest_read_confined_to_its_folder_refuses_a_row_naming_a_file_outside(tmp_path: Path):
    import pytest

    from hwr.datasets import OutsideFolder, open_dataset

    (tmp_path / "upload").mkdir()
    manifest = tmp_path / "upload" / "lines.tsv"
    manifest.write_text("../elsewhere.png\tx\n", encoding="utf-8")
    with pytest.raises(OutsideFolder, match=r"lines\.tsv:1: names a file outside"):
        open_dataset(f"manifest:{manifest}", skip_bad=True, confined_to=manifest.parent)


def test_an_uploaded_data_set_holding_a_zip_is_refused_naming_it(tmp_path: Path):
    import pytest

    from hwr_ui.evaluation import open_uploaded_dataset
    from hwr_ui.uploads import UploadError, ZipLimits

    inner = _zip(tmp_path / "inner.zip", {"l.gt.txt": "x"}).read_bytes()
    (tmp_path / "work").mkdir()
    with pytest.raises(UploadError, match="exports.zip: doc1.zip: a zip inside a zip is not unpacked"):
        open_uploaded_dataset(_zip(tmp_path / "exports.zip", {"doc1.zip": inner}), tmp_path / "work", ZipLimits())


def test_an_uploaded_zip_of_two_data_sets_or_two_kinds_is_refused_naming_them(tmp_path: Path):
    """Only one had been read: the second IAM tree, the pairs beside an IAM tree or the PAGE XML
    beside pairs were left out with nothing said but a line count (a probe helper)."""
    import pytest

    from hwr_ui.evaluation import dataset_root
    from hwr_ui.uploads import UploadError

    page = ('<?xml version="1.0"?><PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">'
            "<Page/></PcGts>")
    for folder in ("one", "two"):
        (tmp_path / "iams" / folder / "ascii").mkdir(parents=True)
        (tmp_path / "iams" / folder / "ascii" / "lines.txt").write_text("")
    with pytest.raises(UploadError, match=r"sets.zip holds 2 IAM data sets \(one, two\); upload one per zip"):
        dataset_root(tmp_path / "iams", "sets.zip")
    (tmp_path / "mixed").mkdir()
    for name in ("a", "b"):
        (tmp_path / "mixed" / f"{name}.gt.txt").write_text("x")
    (tmp_path / "mixed" / "p.XML").write_text(page)
    (tmp_path / "mixed" / "notes.xml").write_text("<notes/>")  # no PAGE: no second kind
    with pytest.raises(UploadError, match=r"mixed.zip holds image \+ .gt.txt pairs \(2 files\) and PAGE XML pages: "
                                          "one kind is read"):
        dataset_root(tmp_path / "mixed", "mixed.zip")
    (tmp_path / "mixed" / "p.XML").unlink()
    assert dataset_root(tmp_path / "mixed", "mixed.zip") == tmp_path / "mixed"
    (tmp_path / "mixed" / ".backup").mkdir()  # hidden: no reader reads it, so no second kind
    (tmp_path / "mixed" / ".backup" / "p.xml").write_text(page)
    assert dataset_root(tmp_path / "mixed", "mixed.zip") == tmp_path / "mixed"
    assert dataset_root(tmp_path / "iams" / "one", "one.zip") == tmp_path / "iams" / "one"
