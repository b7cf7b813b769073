"""IAM Handwriting Database, line level: `ascii/lines.txt` plus `lines/<a01>/<form>/<line>.png`.

A lines.txt row reads
    a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from
i.e. line id, segmentation status, graylevel, number of components, x y w h, transcription
with `|` between words. IAM tokenises punctuation as words ("tomorrow|.|Mr."), so the text
carries a space before punctuation; that is the convention the published IAM CERs use.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from hwr.datasets.errors import (
    DatasetError,
    ImageNotFound,
    PathLike,
    SkipReport,
    comment_row,
    read_lines,
    read_utf8,
    read_utf8_rows,
    report_or_raise,
    row_error,
    text_rows,
    unique_ids,
)
from hwr.errors import name_some
from hwr.recognition.charset import normalize_text
from hwr.records import LineSample

LINES_TXT = Path("ascii") / "lines.txt"
MIN_FIELDS = 9
# Rows marked "err" have a doubtful word segmentation, but their line box and line text are
# valid, so they are kept; the status goes to meta for anyone who wants to filter.
STATUSES = ("ok", "err")

log = logging.getLogger("hwr.datasets.iam")


def read_iam(
    root: PathLike,
    split_file: PathLike | None = None,
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> list[LineSample]:
    """All lines of an IAM tree (root holds `ascii/` and `lines/`), optionally one split only.

    A split file lists form ids (`a01-000u`) or line ids (`a01-000u-00`), one per line; a
    line is kept when either its own id or its form id is listed. Listed ids that lines.txt
    lacks are logged as a warning; a split file none of whose ids is there is a DatasetError.
    """
    root = Path(root)
    lines_txt = root / LINES_TXT
    if not lines_txt.is_file():
        raise DatasetError(root, f"not an IAM tree: {LINES_TXT} not found")
    # Read once: the split check and the lines both use it. With --skip-bad a row that is not
    # UTF-8 (one Latin-1 edit) is a bad entry where it is read, as a manifest's is: it had
    # stopped the whole set. Its id still places it in or out of a split.
    undecodable: dict[int, DatasetError] = {}
    rows = read_utf8_rows(lines_txt, skip_bad, None, undecodable)
    wanted = read_split_ids(Path(split_file)) if split_file is not None else None
    if wanted is not None:
        check_split_ids(Path(split_file), wanted, listed_ids(rows), lines_txt)
    # No line from a split file is almost always the wrong split file for this tree.
    source, none_found = ((split_file, f"none of its ids matches a usable line of {lines_txt}") if wanted is not None
                          else (lines_txt, "no usable line"))
    return read_lines(lambda seen: unique_ids(_iter_lines(root, lines_txt, rows, wanted, skip_bad, seen, undecodable),
                                              skip_bad, seen), source, none_found, report)


def read_split_ids(path: Path) -> set[str]:
    """Ids listed in a split file: one per line, blank lines and `#` comments ignored."""
    ids = set()
    for raw in text_rows(read_utf8(path)):
        line = raw.strip()
        if line and not comment_row(line):
            ids.add(line.split()[0])
    return ids


def check_split_ids(split_file: Path, wanted: set[str], listed: set[str], lines_txt: Path) -> None:
    """Warn naming the split file when some of its ids are not in lines.txt (their lines would
    silently not be read, and a CER on fewer lines compared as if on the full split); a
    DatasetError when none is: a split file of another tree or another IAM release."""
    if not wanted:
        raise DatasetError(split_file, "lists no ids (one form or line id per line)")
    missing = sorted(wanted - listed)
    examples = name_some(missing, 3, ", ")
    if len(missing) == len(wanted):
        raise DatasetError(split_file, f"none of its ids is in {lines_txt} (e.g. {examples}); "
                                       "is it a split file of this IAM tree?")
    if missing:
        log.warning("%s: %d of its %d ids are not in %s, so their lines are left out (e.g. %s)",
                    split_file, len(missing), len(wanted), lines_txt, examples)


def listed_ids(rows: list[str]) -> set[str]:
    """The line ids of lines.txt's rows and their form ids: what a split file's ids may name.
    Taken from each row's first field, so a malformed row's id counts as listed (the row itself
    is reported as bad when read)."""
    ids = set()
    for raw in rows:
        if raw.strip() and not comment_row(raw):
            line_id = raw.split()[0]
            ids.update((line_id, line_id.rpartition("-")[0]))
    return ids


def _iter_lines(
    root: Path, lines_txt: Path, rows: list[str], wanted: set[str] | None, skip_bad: bool, report: SkipReport | None,
    undecodable: dict[int, DatasetError] | None = None,
) -> Iterator[LineSample]:
    """`undecodable`: rows that are not UTF-8 (read_utf8_rows), bad entries where they are read."""
    for line_no, raw in enumerate(rows, start=1):
        if not raw.strip() or comment_row(raw):
            continue
        # A row outside the split is not read at all: a malformed row of the training split
        # must not fail (or count as skipped in) the scoring of the test split.
        if wanted is not None and not wanted.intersection(listed_ids([raw])):
            continue
        if undecodable and line_no in undecodable:
            report_or_raise(undecodable[line_no], skip_bad, report)
            continue
        try:
            sample = parse_row(raw, root)
            sample.meta.update(source=str(lines_txt), line_no=line_no)
            if not Path(sample.image).is_file():
                raise ImageNotFound(sample.image)
        except ValueError as exc:
            report_or_raise(row_error(lines_txt, exc, line_no), skip_bad, report)
            continue
        yield sample


def parse_row(raw: str, root: Path) -> LineSample:
    """One lines.txt row -> LineSample; ValueError says what is wrong with the row."""
    fields = raw.split()
    if len(fields) < MIN_FIELDS:
        raise ValueError(f"expected at least {MIN_FIELDS} fields, got {len(fields)}")
    line_id, status = fields[0], fields[1]
    if status not in STATUSES:
        raise ValueError(f"segmentation status must be 'ok' or 'err', got {status!r}")
    parts = line_id.split("-")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"line id {line_id!r} is not of the form a01-000u-00")
    try:
        x, y, w, h = (int(v) for v in fields[4:8])
    except ValueError:
        raise ValueError(f"bounding box must be 4 integers, got {' '.join(fields[4:8])!r}") from None
    form_id = f"{parts[0]}-{parts[1]}"
    # IAM has no spaces inside a transcription, but joining the tail keeps a hand-edited
    # lines.txt with stray spaces readable instead of silently truncated. Words are what `|`
    # separates: a doubled or edge `|` (a hand edit) had scored as spaces the image never held.
    text = " ".join(word for part in fields[8:] for word in part.split("|") if word)
    image = root / "lines" / parts[0] / form_id / f"{line_id}.png"
    meta = {"form": form_id, "segmentation": status, "bbox": (x, y, w, h)}
    return LineSample(id=line_id, text=normalize_text(text), image=image, meta=meta)
