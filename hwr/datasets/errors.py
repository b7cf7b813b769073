"""Dataset problems: errors that name the file and line, and the report of skipped entries.

Every reader handles a bad entry the same way: with `skip_bad=False` the first problem raises
a `DatasetError`; with `skip_bad=True` the entry is left out and recorded in a `SkipReport`,
so a long training run is not lost to one broken row, yet nothing disappears unnoticed.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hwr.errors import HwrError, name_some
from hwr.fileio import is_dir, special_file_kind
from hwr.records import LineSample

log = logging.getLogger("hwr.datasets")

PathLike = str | Path


class DatasetError(HwrError, ValueError):
    """A data set entry could not be used; the message reads `source:line: reason`.
    `image_missing`: the entry's image is not there (its ground truth may be fine), which the
    scorer's summaries count as an unreadable image, not as bad ground truth."""

    def __init__(self, source: PathLike, reason: str, line_no: int | None = None, image_missing: bool = False):
        where = f"{source}:{line_no}" if line_no is not None else f"{source}"
        super().__init__(f"{where}: {reason}")
        self.source = str(source)
        self.line_no = line_no
        self.reason = reason
        self.image_missing = image_missing


class ImageNotFound(ValueError):
    """Raised by the row parsers (whose ValueErrors become DatasetErrors naming file and line)
    for a row whose image is missing."""

    def __init__(self, image: PathLike):
        # Said as what is there: "not found" for a folder or a pipe sent the user to look for a file.
        if is_dir(image):
            super().__init__(f"image is a folder, not a file: {image}")
        elif special := special_file_kind(image):
            super().__init__(f"image is {special}, not a file: {image}")
        else:
            super().__init__(f"image not found: {image}")


def row_error(source: PathLike, exc: ValueError, line_no: int) -> DatasetError:
    """The DatasetError for a row parser's ValueError, naming the file and the row."""
    return DatasetError(source, str(exc), line_no, image_missing=isinstance(exc, ImageNotFound))


@dataclass
class SkippedEntry:
    source: str
    line_no: int | None
    reason: str
    # A line segmented but not transcribed yet (PAGE work in progress): left out, but no problem.
    untranscribed: bool = False
    image_missing: bool = False  # DatasetError.image_missing

    def __str__(self) -> str:
        where = f"{self.source}:{self.line_no}" if self.line_no is not None else self.source
        return f"{where}: {self.reason}"


@dataclass
class SkipReport:
    """Entries left out by readers running with `skip_bad=True`, in the order met."""

    entries: list[SkippedEntry] = field(default_factory=list)

    def add(self, source: PathLike, line_no: int | None, reason: str, untranscribed: bool = False,
            image_missing: bool = False) -> None:
        self.entries.append(SkippedEntry(str(source), line_no, reason, untranscribed, image_missing))

    def add_error(self, error: DatasetError) -> None:
        self.add(error.source, error.line_no, error.reason, image_missing=error.image_missing)

    @property
    def problems(self) -> list[SkippedEntry]:
        """The entries left out for a fault of the data (not lines merely untranscribed yet)."""
        return [e for e in self.entries if not e.untranscribed]

    @property
    def untranscribed(self) -> int:
        """Lines left out because nobody has transcribed them yet: work in progress, no fault."""
        return sum(e.untranscribed for e in self.entries)

    @property
    def count(self) -> int:
        # Deliberately no __len__: an empty report must stay truthy so `report or SkipReport()`
        # never swaps a caller's report for a fresh one.
        return len(self.entries)

    def log(self, since: int = 0) -> None:
        """Log the entries from `since` on: the untranscribed as info, the others as warnings."""
        for entry in self.entries[since:]:
            (log.info if entry.untranscribed else log.warning)("skipped %s", entry)

    def summary(self, max_items: int = 10) -> str:
        if not self.entries:
            return "no entries skipped"
        shown = "; ".join(str(e) for e in self.entries[:max_items])
        more = f"; ... and {self.count - max_items} more" if self.count > max_items else ""
        return f"{self.count} entries skipped: {shown}{more}"


class OutsideFolder(HwrError):
    """A data set read confined to a folder (an upload, unpacked) names a file outside it: the
    whole data set is refused, whatever --skip-bad, and before the file is looked for (whether
    it exists is none of the uploader's business)."""


def check_within(path: PathLike, folder: PathLike | None, named_in: PathLike) -> None:
    """Raise OutsideFolder when `folder` is given and `path` (named in the file `named_in`)
    resolves outside it: `..`, an absolute path, a symbolic link out."""
    if folder is None:
        return
    resolved, root = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([resolved, root]) != root:
        raise OutsideFolder(f"{named_in}: names a file outside the data set's folder ({Path(path).name}); "
                            "the data set may use only its own files")


def report_or_raise(error: DatasetError, skip_bad: bool, report: SkipReport | None) -> None:
    """The one policy for a bad entry: raise, or record it and let the reader go on."""
    if not skip_bad:
        raise error
    if report is not None:
        report.add_error(error)
    else:
        # Skipping with nowhere to record would hide the problem; the log at least shows it.
        log.warning("skipped %s", error)


def read_lines(lines: Callable[[SkipReport], Iterable[LineSample]], source: PathLike, none_found: str,
               report: SkipReport | None) -> list[LineSample]:
    """Every line a reader yields (`lines(report)` records the entries it skips in the report
    given), or a DatasetError naming `source` when none is left. When bad entries were skipped
    the error says which: with --skip-bad every entry may have been, and "no lines" alone would
    hide why. Without a caller's `report`, the skipped entries are logged."""
    seen = report if report is not None else SkipReport()
    before = seen.count
    samples = list(lines(seen))
    skipped = seen.entries[before:]
    if not samples:
        problems = [e for e in skipped if not e.untranscribed]
        why = f" ({len(problems)} skipped: {name_some(problems, 3)})" if problems else ""
        raise DatasetError(source, none_found + why)
    if report is None:
        seen.log(before)
    return samples


def read_utf8(path: Path) -> str:
    """A text file as str; a bad byte raises a DatasetError naming the file and its line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(path, f"cannot read file ({exc.strerror or exc})") from None
    try:
        # utf-8-sig: files saved by Windows editors often start with a byte order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # exc.object, not data: utf-8-sig counts exc.start from after the byte order mark.
        line_no = _row_of(exc.object, exc.start)
        raise DatasetError(path, f"not valid UTF-8 (byte {exc.object[exc.start]:#04x}){_utf16_hint(data)}",
                           line_no) from None
    if "\x00" in text:
        # UTF-16 without a byte order mark is valid UTF-8, every other byte a NUL: scored as
        # text, each reference would be twice its length and every line read "wrong".
        line_no = _row_of(data, data.index(b"\x00"))
        raise DatasetError(path, f"holds NUL characters{_utf16_hint(data)}", line_no)
    return text


def _utf16_hint(data: bytes) -> str:
    """What to tell about a file that looks like UTF-16 ("Unicode" in Windows editors)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        return " (UTF-16?); save it as UTF-8"
    return ""


def text_rows(text: str) -> list[str]:
    """A text file's rows: split at line feeds, CR LF and lone carriage returns (old Mac
    editors' line ends, which had merged a whole lines.txt into one row whose reference held
    the next rows), not at the other breaks str.splitlines() knows (U+2028, NEL, form feed...),
    which are text inside a row."""
    rows = _ROW_END.split(text)
    return rows[:-1] if rows and rows[-1] == "" else rows


def byte_rows(data: bytes) -> list[bytes]:
    """`text_rows` of a file read as bytes (its rows' encodings to be told one by one)."""
    return _ROW_END_BYTES.split(data)


def comment_row(row: str) -> bool:
    """A `#` comment row of a list or table file, indented or not (an indented one had been read
    as a short data row)."""
    return row.lstrip().startswith("#")


_ROW_END = re.compile(r"\r\n|\r|\n")
_ROW_END_BYTES = re.compile(rb"\r\n|\r|\n")  # the same rule, for a file read row by row as bytes


def _row_of(data: bytes, offset: int) -> int:
    """The row (from 1, as `text_rows` splits them) that holds byte `offset` of `data`."""
    return len(_ROW_END_BYTES.findall(data, 0, offset)) + 1


def read_utf8_rows(path: Path, skip_bad: bool, report: SkipReport | None,
                   undecodable: dict[int, DatasetError] | None = None) -> list[str]:
    """A list file's rows (a manifest's). With `skip_bad`, a row that is not valid UTF-8 (a
    Latin-1 name pasted in) is a bad entry named by its line, and reads as blank so the rows
    after it keep their line numbers; the other rows are read. Without it, the first such row
    is the error, as `read_utf8` says. `undecodable` given: such a row is not reported but kept
    there by line number, and read with its bad bytes replaced (its id may still say whether
    the caller reads it at all: IAM's lines outside a split)."""
    try:
        return text_rows(read_utf8(path))
    except DatasetError as error:
        if not skip_bad or error.line_no is None:
            raise
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        if _utf16_hint(data):  # a UTF-16 file is wrong as a whole: no row of it would read
            raise
    rows = []
    for line_no, raw in enumerate(byte_rows(data), start=1):
        try:
            rows.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            error = DatasetError(path, f"not valid UTF-8 (byte {raw[exc.start]:#04x})", line_no)
            if undecodable is None:
                report_or_raise(error, skip_bad, report)
                rows.append("")
            else:
                undecodable[line_no] = error
                rows.append(raw.decode("utf-8", errors="replace"))
    return rows


def unique_ids(
    samples: Iterable[LineSample], skip_bad: bool, report: SkipReport | None
) -> Iterator[LineSample]:
    """Pass samples through, treating a repeated id as a bad entry that names both sources.

    Ids key predictions, breakdowns and splits, so two lines sharing one would silently
    overwrite each other's results downstream.
    """
    first_seen: dict[str, str] = {}
    for sample in samples:
        # meta "source" (with line_no) names a row of a list file (IAM lines.txt, a manifest);
        # readers without one (PAGE: `page.xml#line`) are named by the sample's file.
        source, line_no = str(sample.meta.get("source") or sample.where), sample.meta.get("line_no")
        if sample.id in first_seen:
            error = DatasetError(source, f"duplicate id {sample.id!r} (first at {first_seen[sample.id]})", line_no)
            report_or_raise(error, skip_bad, report)
            continue
        first_seen[sample.id] = f"{source}:{line_no}" if line_no is not None else source
        yield sample


def visible_files(folder: Path) -> list[Path]:
    """The files of a folder and its subfolders, sorted, outside hidden trees (.git, editor
    backups, .ipynb_checkpoints): those hold copies or junk, never lines to train on or score."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
