"""Image + ground-truth pairs: `foo.png` beside `foo.gt.txt` (kraken, Calamari, tesstrain).

The folder is searched recursively; a sample's id is the image path relative to the folder,
without its extension (`sub/foo`), so ids stay unique across sub-folders.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hwr.datasets.errors import (
    DatasetError,
    PathLike,
    SkipReport,
    read_lines,
    read_utf8,
    report_or_raise,
    text_rows,
    unique_ids,
    visible_files,
)
from hwr.fileio import is_dir, is_file, special_file_kind
from hwr.recognition.charset import normalize_text
from hwr.recognition.image_formats import IMAGE_SUFFIXES
from hwr.records import LineSample

GT_SUFFIX = ".gt.txt"


def read_pairs(folder: PathLike, skip_bad: bool = False, report: SkipReport | None = None) -> list[LineSample]:
    """All image/ground-truth pairs under `folder`, sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(folder, "not a folder")
    return read_lines(lambda seen: unique_ids(_iter_pairs(folder, skip_bad, seen), skip_bad, seen), folder,
                      f"no image with a {GT_SUFFIX} file found", report)


def gt_path(image: Path) -> Path:
    return image.with_name(image.name[: -len(image.suffix)] + GT_SUFFIX)


def _iter_pairs(folder: Path, skip_bad: bool, report: SkipReport | None) -> Iterator[LineSample]:
    files = visible_files(folder)
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    for image in images:
        try:
            yield read_pair(folder, image)
        except DatasetError as error:
            report_or_raise(error, skip_bad, report)
    # A transcription without its image is as much a hole in the data set as the reverse.
    paired = {gt_path(image) for image in images}
    for orphan in (p for p in files if p.name.endswith(GT_SUFFIX) and p not in paired):
        report_or_raise(DatasetError(orphan, "no image beside this ground truth"), skip_bad, report)


def read_pair(folder: Path, image: Path) -> LineSample:
    gt = gt_path(image)
    # The ground truth's name is the image's and 4 bytes longer: it can be too long for the file
    # system where the image's is not (is_dir, is_file: False for such a name, not an OSError).
    if is_dir(gt):
        raise DatasetError(image, f"ground truth {gt.name} is a folder, not a text file")
    if not is_file(gt):
        special = special_file_kind(gt)
        raise DatasetError(image, f"ground truth {gt.name} " + (f"is {special}, not a text file" if special
                                                                 else "not found"))
    text = read_line_text(gt)
    sample_id = image.relative_to(folder).with_suffix("").as_posix()
    return LineSample(id=sample_id, text=text, image=image, meta={"source": str(image), "gt": str(gt)})


def read_line_text(gt: Path) -> str:
    """The one line of text in a .gt.txt file; surrounding whitespace and blank lines dropped."""
    # Editors add a final newline and sometimes stray spaces; neither is part of the line. A
    # carriage return alone ends a line too (classic Mac OS files, some OCR exports): two lines
    # kept as one label with a control character inside had trained on it, with only a warning.
    rows = text_rows(read_utf8(gt))
    lines = [(no, line.strip()) for no, line in enumerate(rows, start=1) if line.strip()]
    if len(lines) > 1:
        raise DatasetError(gt, f"ground truth for one line image has {len(lines)} lines of text", lines[1][0])
    return normalize_text(lines[0][1] if lines else "")
