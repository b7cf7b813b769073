"""Charset / codec: text <-> CTC label ids, with the blank at id 0.

The charset is saved with every model, so a model always decodes with the symbols it was
trained on. Characters that the charset lacks are reported, never silently dropped.
"""
from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hwr.errors import ConfigError, MissingFileError, counted, name_some, where_not_utf8

BLANK_ID = 0
BLANK_SYMBOL = "<blank>"
# Printable ASCII: space plus 0x21..0x7E (95 symbols). Tabs/newlines are not line content.
DEFAULT_SYMBOLS = " " + "".join(ch for ch in string.printable if ch.isprintable() and ch != " ")


def normalize_text(text: str) -> str:
    """The one Unicode normalisation used for ground truth, synthetic labels and output (NFC)."""
    return unicodedata.normalize("NFC", text)


# Typographic characters and the ASCII a model of printable ASCII writes for them (Charset.folded).
LOOK_ALIKES = {**dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u02bc", "'"),
               **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
               **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
               "\u2026": "...", "\u2039": "<", "\u203a": ">", "\u00d7": "x", "\u00ad": "-",
               **dict.fromkeys("\t\u00a0\u2002\u2003\u2007\u2009\u200a\u202f", " ")}


class UnknownCharacterError(ValueError):
    """Ground truth contains characters the charset cannot encode."""


@dataclass
class CoverageReport:
    """Characters seen in ground truth that the charset lacks: counts and example line ids."""

    missing: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    lines_affected: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self, max_chars: int = 20) -> str:
        if self.ok:
            return "all characters covered by the charset"
        parts = []
        for ch, n in self.missing.most_common(max_chars):
            ids = ", ".join(self.examples.get(ch, [])[:3])
            parts.append(f"{ch!r} x{n} (e.g. {ids})")
        return (
            f"{counted(sum(self.missing.values()), 'occurrence')} of {counted(len(self.missing), 'character')} "
            f"missing from the charset in {counted(self.lines_affected, 'line')}: " + "; ".join(parts)
        )


# A symbol a network outputs goes into text files, PAGE and ALTO XML, JSON and the terminal:
# a control character (NUL, ESC, a tab, a carriage return), a line or paragraph separator, or a
# lone surrogate (which no UTF-8 output can encode) is none a transcription should hold. A
# charset of one refuses surrogates; a model an older hwr trained on labels holding the others
# (`--charset data` learnt them) still loads, with a warning (hwr.recognition.model).
def unwritable_symbol(symbol: str) -> bool:
    return unicodedata.category(symbol) in ("Cc", "Cs", "Zl", "Zp")


class Charset:
    """Ordered symbols; label id = index + 1 because id 0 is the CTC blank."""

    def __init__(self, symbols: Iterable[str] = DEFAULT_SYMBOLS):
        self.symbols: list[str] = [normalize_text(s) for s in symbols]
        duplicates = sorted(s for s, n in Counter(self.symbols).items() if n > 1)
        if duplicates:
            raise ValueError(f"charset has duplicate symbols: {name_some(map(repr, duplicates), 5, sep=', ')}")
        longer = [s for s in self.symbols if len(s) != 1]
        if longer:
            raise ValueError("charset symbols must be single characters, not "
                             f"{name_some(map(repr, longer), 5, sep=', ')}")
        surrogates = [s for s in self.symbols if unicodedata.category(s) == "Cs"]
        if surrogates:  # no UTF-8 output can hold one: a batch stopped at its first line reading it
            raise ValueError("charset symbols must be characters a text can hold, not lone surrogates: "
                             f"{name_some(map(ascii, surrogates), 5, sep=', ')}")
        self._ids = {s: i + 1 for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        """Number of network outputs: symbols plus the blank."""
        return len(self.symbols) + 1

    def __contains__(self, ch: str) -> bool:
        return ch in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Charset) and other.symbols == self.symbols

    def encode(self, text: str) -> list[int]:
        text = normalize_text(text)
        missing = sorted({ch for ch in text if ch not in self._ids})
        if missing:
            raise UnknownCharacterError(f"characters not in charset: {missing!r} in {text!r}")
        return [self._ids[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Label ids (no CTC collapsing) to text; the blank is skipped."""
        return "".join(self.symbols[i - 1] for i in ids if i != BLANK_ID)

    def missing_chars(self, text: str) -> set[str]:
        return {ch for ch in normalize_text(text) if ch not in self._ids}

    def folded(self, text: str) -> str:
        """`text` with each character this charset lacks written as it can write what looks
        alike: typographic quotes, dashes, ellipses and spaces as their ASCII forms (a phone's
        keyboard types ’ for every apostrophe), an accented letter as its bare letter (é as e).
        A character with no such form stays as it is."""
        out = []
        for ch in normalize_text(text):
            if ch in self._ids:
                out.append(ch)
                continue
            alike = LOOK_ALIKES.get(ch)
            if alike is None:
                # Not a spacing accent (¨ is a space and a combining mark): it would leave a space.
                alike = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)).strip()
            out.append(alike if alike and all(c in self._ids for c in alike) else ch)
        return "".join(out)

    def coverage(self, lines: Iterable[tuple[str, str]], max_examples: int = 5) -> CoverageReport:
        """Check (where, text) pairs against the charset; `where` (a line's file or id) names the examples."""
        report = CoverageReport()
        for line_id, text in lines:
            missing = [ch for ch in normalize_text(text) if ch not in self._ids]
            if not missing:
                continue
            report.lines_affected += 1
            report.missing.update(missing)
            for ch in set(missing):
                ex = report.examples.setdefault(ch, [])
                if len(ex) < max_examples:
                    ex.append(line_id)
        return report

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Charset:
        """A charset of every character in the texts (sorted), for custom training data."""
        chars = set()
        for t in texts:
            chars.update(normalize_text(t))
        # A stray tab or ESC in a label is an error of the data, no symbol to learn to write.
        return cls(sorted(ch for ch in chars if not unwritable_symbol(ch)))

    def to_json(self) -> list[str]:
        return list(self.symbols)

    @classmethod
    def from_json(cls, symbols: list[str]) -> Charset:
        return cls(symbols)


def read_charset_file(path: str | Path) -> Charset:
    """The charset a symbols file lists: its characters in order of first appearance, one per
    line or all on one line. ConfigError (MissingFileError) naming the file when it cannot be
    read or lists no symbol.

    Line breaks are never symbols: a file saved on Windows ends its lines in CR LF, and a lone
    CR would become an output the network can never be taught. A byte order mark is dropped
    too. Each character is NFC-normalised on its own, as `Charset` does (never the text as a
    whole, which would fuse a listed combining mark with the letter before it), and two that
    normalise alike (the Angstrom sign and "Å") are one symbol, not a duplicate."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: charset file not found (use ascii, data or a path)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = "is a folder, not a charset file" if path.is_dir() else f"cannot read ({exc.strerror or exc})"
        raise ConfigError(f"{path}: {reason}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: charset file is not UTF-8 ({where_not_utf8(exc)}); save it as UTF-8") from None
    symbols = dict.fromkeys(normalize_text(ch) for ch in text if ch not in "\r\n")
    if not symbols:
        raise ConfigError(f"{path}: charset file lists no symbols")
    try:
        return Charset(list(symbols))
    except ValueError as exc:  # a character whose NFC form is two
        raise ConfigError(f"{path}: unusable charset file ({exc})") from None
