"""Manifest: a TSV of `path<TAB>text`, one line image per row.

Relative paths are resolved against the TSV's folder, so a data set can be moved as a whole.
A sample's id is the path as written, without its extension (`lines/foo`).
`#` comment lines and blank lines are ignored. A field quoted as Python's csv module, pandas
and spreadsheets write a tab-separated file (in quotes, each quote inside doubled) reads as
its text; a text merely in quotes (a quotation typed by hand) is kept as written, unless its
row's path is in quotes too (a writer that quotes every field).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path, PurePath

from hwr.datasets.errors import (
    DatasetError,
    ImageNotFound,
    PathLike,
    SkipReport,
    check_within,
    comment_row,
    read_lines,
    read_utf8_rows,
    report_or_raise,
    row_error,
    unique_ids,
)
from hwr.fileio import file_in_any_unicode_form, is_file, special_file_kind
from hwr.recognition.charset import normalize_text
from hwr.records import LineSample

log = logging.getLogger("hwr.datasets.manifest")


def read_manifest(tsv_path: PathLike, skip_bad: bool = False, report: SkipReport | None = None,
                  confined_to: PathLike | None = None) -> list[LineSample]:
    """All rows of a `path<TAB>text` manifest, in file order. `confined_to`: a row naming an
    image outside this folder raises OutsideFolder (an upload's manifest)."""
    tsv_path = Path(tsv_path)
    if not tsv_path.is_file():
        special = special_file_kind(tsv_path)
        raise DatasetError(tsv_path, f"is {special}, not a manifest file" if special else "manifest not found")
    return read_lines(lambda seen: unique_ids(_iter_rows(tsv_path, skip_bad, seen, confined_to), skip_bad, seen),
                      tsv_path, "no usable row (path<TAB>text) in this manifest", report)


def _iter_rows(tsv_path: Path, skip_bad: bool, report: SkipReport | None,
               confined_to: PathLike | None = None) -> Iterator[LineSample]:
    # A row whose text opens a CSV quote it does not close is held back, with the rows after it
    # that have no tab, until one of them closes the quote: a CSV writer carried the text over
    # those rows (a line break inside the field), and the line had been scored against its
    # text's first row with the next row named as the fault. A row with a tab, or the end,
    # before any closes it: the text was typed so (a quotation opened by hand), and every row
    # held is read as it would have been.
    held: tuple[int, LineSample] | None = None
    carried: list[tuple[int, str]] = []  # the rows without a tab since the held one
    for line_no, raw in enumerate(read_utf8_rows(tsv_path, skip_bad, report), start=1):
        if held is not None and "\t" not in raw:
            carried.append((line_no, raw))
            if _closes_quote(raw):
                why = ValueError(f"its text opens a quote that row {line_no} closes: a text written across rows (a "
                                 "line break inside a CSV field); a line's text holds no line break")
                report_or_raise(row_error(tsv_path, why, held[0]), skip_bad, report)
                held, carried = None, []
            continue
        if held is not None:  # a row with a tab: nothing closed the quote
            yield held[1]
            yield from _read_rows(carried, tsv_path, skip_bad, report, confined_to)
            held, carried = None, []
        for sample in _read_rows([(line_no, raw)], tsv_path, skip_bad, report, confined_to):
            if _opens_quote(raw.split("\t")[1].strip()):
                held = line_no, sample
            else:
                yield sample
    if held is not None:
        yield held[1]
        yield from _read_rows(carried, tsv_path, skip_bad, report, confined_to)


def _read_rows(rows: list[tuple[int, str]], tsv_path: Path, skip_bad: bool, report: SkipReport | None,
               confined_to: PathLike | None) -> Iterator[LineSample]:
    """The samples of (row number, row) pairs read one by one: comments and blank rows passed
    over, a bad row reported (or raised)."""
    for line_no, raw in rows:
        if comment_row(raw):
            _warn_if_an_image(raw, tsv_path, line_no)
            continue
        if not raw.strip():
            continue
        try:
            yield parse_row(raw, tsv_path, line_no, confined_to)
        except ValueError as exc:
            report_or_raise(row_error(tsv_path, exc, line_no), skip_bad, report)


def _opens_quote(field: str) -> bool:
    """A field a CSV writer began to quote and did not close on this row (quotes inside a quoted
    field are doubled, so the quotes left after removing pairs are odd). A text typed by hand
    that opens a quotation goes on the next row's way too; that row has its own tab, so the
    text is read as written."""
    return field.startswith('"') and field.replace('""', "").count('"') % 2 == 1


def _closes_quote(row: str) -> bool:
    return row.replace('""', "").count('"') % 2 == 1


def _warn_if_an_image(comment: str, tsv_path: Path, line_no: int) -> None:
    """A comment row whose first column names an image there (`#2.png<TAB>text`) is said, not
    dropped in silence: the row is most likely data, and `./#2.png` reads it."""
    path = comment.split("\t")[0].strip()
    try:
        an_image = "\t" in comment and is_file(tsv_path.parent / path)
    except (OSError, ValueError):  # a comment is not checked as a path: it names nothing then
        an_image = False
    if an_image:
        log.warning("%s:%d: read as a comment (it begins with #), though %s is an image there; write ./%s to read "
                    "the row", tsv_path, line_no, path, path)


def parse_row(raw: str, tsv_path: Path, line_no: int, confined_to: PathLike | None = None) -> LineSample:
    """One `path<TAB>text` row -> LineSample; ValueError says what is wrong with the row."""
    columns = raw.split("\t")
    if len(columns) != 2:
        # A tab is never line content, so a third column means a broken row, not odd text.
        raise ValueError(f"expected 2 tab-separated columns (path, text), got {len(columns)}")
    path_field = columns[0].strip()
    written = unquoted(path_field, quoted_alone=True)
    # A path in quotes says the writer quoted every field (csv.QUOTE_ALL, pandas, spreadsheets):
    # the text's quotes are then the writer's too, not a quotation.
    text = unquoted(columns[1].strip(), quoted_alone=written != path_field)
    if not written:
        raise ValueError("empty image path")
    check_within(tsv_path.parent / written, confined_to, f"{tsv_path}:{line_no}")
    image = file_in_any_unicode_form(tsv_path.parent / written)  # an absolute `written` replaces the folder
    if image is None:
        raise ImageNotFound(tsv_path.parent / written)
    sample_id = PurePath(written).with_suffix("").as_posix()
    meta = {"source": str(tsv_path), "line_no": line_no}
    return LineSample(id=sample_id, text=normalize_text(text), image=image, meta=meta)


def unquoted(field: str, quoted_alone: bool = False) -> str:
    """A CSV-quoted field's text: only a field that must have been quoted by a CSV writer (in
    quotes, with doubled quotes inside and no lone one), so a quotation written by hand stays.
    `quoted_alone`: a field merely in quotes counts too (a path, which a writer quoting every
    field puts in quotes, and no file name is)."""
    inner = field[1:-1]
    csv_quoted = len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in inner.replace('""', "")
    if csv_quoted and (quoted_alone or '""' in inner):
        return inner.replace('""', '"')
    return field
