"""Where the errors are: CER per subset (writer, form, font ...), per line length, histogram.

A line's subset comes from a lookup table (an IAM `ascii/forms.txt` maps forms to writers),
a metadata field the reader filled in (`form` for IAM, `font`/`kind` for synthetic lines,
`page` for PAGE XML) or a regular expression over the line id.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hwr.datasets.errors import comment_row, text_rows
from hwr.errors import ConfigError, MissingFileError, counted, where_not_utf8
from hwr.fileio import special_file_kind
from hwr.records import LineSample

if TYPE_CHECKING:
    from hwr.scoring.evaluate import LineResult

log = logging.getLogger(__name__)

# Tried in order by `--group-by auto`: the most informative subset a reader provides.
AUTO_FIELDS = ("writer", "font", "form", "page")
# Reference lengths in characters; the last bin is open-ended. Short lines get their own bins
# because a single error there moves the line CER by 10% or more.
LENGTH_EDGES = (0, 1, 11, 21, 31, 41, 51, 61, 81)
NO_SUBSET = "(none)"


@dataclass
class GroupStats:
    name: str
    lines: int = 0
    chars: int = 0
    char_errors: int = 0
    words: int = 0
    word_errors: int = 0

    def add(self, r: LineResult) -> None:
        self.lines += 1
        self.chars += r.chars
        self.char_errors += r.char_errors
        self.words += r.words
        self.word_errors += r.word_errors

    @property
    def cer(self) -> float:
        return self.char_errors / self.chars if self.chars else float(self.char_errors > 0)

    @property
    def wer(self) -> float:
        return self.word_errors / self.words if self.words else float(self.word_errors > 0)

    def to_dict(self) -> dict:
        return {"name": self.name, "lines": self.lines, "chars": self.chars, "char_errors": self.char_errors,
                "cer": self.cer, "words": self.words, "word_errors": self.word_errors, "wer": self.wer}


# --- Naming a line's subset ---------------------------------------------------------------

def read_group_table(path: str | Path, option: str = "--groups-file") -> dict[str, str]:
    """`key value` rows (tab or space separated, `#` comments): line id or form id -> subset.

    IAM's `ascii/forms.txt` ("a01-000u 000 2 prt 7 5 52 36") has this shape, with the writer
    id second, so it gives a per-writer breakdown as it is. A missing or unreadable table is a
    user error naming `option` (MissingFileError, ConfigError).
    """
    if not Path(path).is_file():
        special = special_file_kind(path)
        if Path(path).is_dir():
            special = "a folder"
        raise MissingFileError(f"{option} {path}: " + (f"is {special}, not a text file" if special else "no such file"))
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{option} {path}: not UTF-8 ({where_not_utf8(exc)}); save the table as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read the file ({exc.strerror or exc})") from None
    table: dict[str, str] = {}
    first_row: dict[str, int] = {}
    no_subset, conflicts = [], []
    for line_no, raw in enumerate(text_rows(text), 1):
        if not raw.strip() or comment_row(raw):
            continue
        parts = raw.split("\t") if "\t" in raw else raw.split()
        key = parts[0].strip()
        if len(parts) < 2 or not parts[1].strip():
            no_subset.append(line_no)
            continue
        if key in table and table[key] != parts[1].strip():
            conflicts.append(f"{key!r} (lines {first_row[key]} and {line_no})")
        table[key] = parts[1].strip()
        first_row.setdefault(key, line_no)
    # Rows the table cannot use are said, not dropped in silence: a line they meant to place
    # would land in another subset, or none.
    if no_subset:
        log.warning("%s %s: %s without a subset column (line %s): left out", option, path,
                    counted(len(no_subset), "row"), ", ".join(map(str, no_subset[:10])))
    if conflicts:
        log.warning("%s %s: %s given two subsets; the later row counts: %s", option, path,
                    counted(len(conflicts), "id"), "; ".join(conflicts[:5]))
    if not table:
        raise ConfigError(f"{path}: no 'id subset' rows found")
    return table


def _table_lookup(table: Mapping[str, str], sample: LineSample) -> str | None:
    form = sample.meta.get("form") or sample.id.rpartition("-")[0]
    return table.get(sample.id) or table.get(form)


def _auto_subset(sample: LineSample) -> str:
    for name in AUTO_FIELDS:
        if sample.meta.get(name):
            return str(sample.meta[name])
    # Pairs data sets kept in one folder per writer or source name the subset by folder.
    folder, sep, _ = sample.id.rpartition("/")
    return folder if sep else NO_SUBSET


def subset_resolver(group_by: str = "auto", table: Mapping[str, str] | None = None
                    ) -> Callable[[LineSample], str]:
    """A function naming a sample's subset: auto, none, a metadata field, or id:REGEX."""
    if group_by == "none":
        return lambda sample: ""
    if group_by.startswith("id:"):
        pattern = re.compile(group_by[3:])
        fallback = lambda sample: _id_match(pattern, sample.id)  # noqa: E731
    elif group_by == "auto":
        fallback = _auto_subset
    else:
        fallback = lambda sample: str(sample.meta.get(group_by, NO_SUBSET))  # noqa: E731
    if table is None:
        return fallback
    return lambda sample: _table_lookup(table, sample) or fallback(sample)


def _id_match(pattern: re.Pattern, line_id: str) -> str:
    match = pattern.search(line_id)
    if match is None:
        return NO_SUBSET
    if not pattern.groups:
        return match.group(0)
    # A first group that takes no part in the match (`(a)|(line)`) is no subset: it had been
    # None, which crashed the HTML report and was written "None" in the CSV (a probe helper).
    return match.group(1) if match.group(1) is not None else NO_SUBSET


# --- Grouping scored lines ----------------------------------------------------------------

def group_by(results: Iterable[LineResult], key: Callable[[LineResult], str]) -> dict[str, GroupStats]:
    groups: dict[str, GroupStats] = {}
    for r in results:
        name = key(r)
        groups.setdefault(name, GroupStats(name)).add(r)
    return groups


def by_subset(results: Iterable[LineResult]) -> list[GroupStats]:
    """Subsets worst first, so the hands (or fonts) that need work lead the table."""
    groups = group_by(results, lambda r: r.subset or NO_SUBSET)
    return sorted(groups.values(), key=lambda g: (-g.cer, -g.lines, g.name))


def length_bin(length: int, edges: tuple[int, ...] = LENGTH_EDGES) -> str:
    for low, high in zip(edges, edges[1:]):
        if length < high:
            return str(low) if high - low == 1 else f"{low}-{high - 1}"
    return f"{edges[-1]}+"


def by_length(results: Iterable[LineResult], edges: tuple[int, ...] = LENGTH_EDGES) -> list[GroupStats]:
    """CER per reference length bin (in characters), shortest first; empty bins omitted."""
    groups = group_by(results, lambda r: length_bin(r.chars, edges))
    order = {length_bin(e, edges): i for i, e in enumerate(edges)}
    return sorted(groups.values(), key=lambda g: order[g.name])


def cer_histogram(results: Iterable[LineResult], bins: int = 20) -> list[int]:
    """Line counts per line-CER bin of width 1/bins over [0, 1]; CER >= 1 goes in the last."""
    counts = [0] * bins
    for r in results:
        counts[min(int(r.cer * bins), bins - 1)] += 1
    return counts
