"""What goes wrong: character confusions and word errors from the edit alignment.

Only lines with errors are aligned (a correct line adds nothing), which keeps a corpus of
10,000 lines to about a second.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hwr.scoring.metrics import DELETION, INSERTION, MATCH, SUBSTITUTION, edit_script

if TYPE_CHECKING:
    from hwr.scoring.evaluate import LineResult

EMPTY = ""  # the missing side of an insertion or deletion


@dataclass
class ErrorTally:
    """Counts of (reference, hypothesis) edit pairs; EMPTY stands for the missing side."""

    chars: Counter = field(default_factory=Counter)  # (ref char, hyp char) over S/D/I
    words: Counter = field(default_factory=Counter)  # (ref word, hyp word) over S/D/I
    reference_chars: Counter = field(default_factory=Counter)  # how often each char is in references

    def add(self, reference: str, hypothesis: str) -> None:
        self.reference_chars.update(reference)
        if reference == hypothesis:
            return
        self.chars.update((r, h) for op, r, h in edit_script(reference, hypothesis) if op != MATCH)
        self.words.update((r, h) for op, r, h in edit_script(reference.split(), hypothesis.split()) if op != MATCH)

    def count(self, kind: str) -> Counter:
        """Character edits of one kind: SUBSTITUTION, DELETION or INSERTION."""
        return Counter({pair: n for pair, n in self.chars.items() if _kind(pair) == kind})


def _kind(pair: tuple[str, str]) -> str:
    ref, hyp = pair
    if ref == EMPTY:
        return INSERTION
    return DELETION if hyp == EMPTY else SUBSTITUTION


_KIND_NAMES = {SUBSTITUTION: "substitution", DELETION: "deletion", INSERTION: "insertion"}


def tally_errors(results: Iterable[LineResult]) -> ErrorTally:
    tally = ErrorTally()
    for r in results:
        tally.add(r.reference, r.hypothesis)
    return tally


def top_pairs(counter: Counter, n: int = 20) -> list[dict]:
    """The n most frequent edit pairs as {type, reference, hypothesis, count}."""
    return [{"type": _KIND_NAMES[_kind(pair)], "reference": pair[0], "hypothesis": pair[1], "count": count}
            for pair, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:n]]


def char_error_rates(tally: ErrorTally, min_count: int = 5, n: int = 20) -> list[dict]:
    """Reference characters most often misread (deleted or substituted) per occurrence.

    Rare characters (digits, capitals, punctuation) often top this list while hardly showing
    in the raw confusion counts; min_count keeps one-off characters from dominating.
    """
    missed = Counter()
    for (ref, hyp), count in tally.chars.items():
        if ref != EMPTY:
            missed[ref] += count
    rows = [{"char": c, "occurrences": total, "errors": missed[c], "error_rate": missed[c] / total}
            for c, total in tally.reference_chars.items() if total >= min_count and missed[c]]
    return sorted(rows, key=lambda row: (-row["error_rate"], -row["errors"], row["char"]))[:n]


def confusion_matrix(tally: ErrorTally, size: int = 20) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows: reference chars, columns: hypothesis chars, of the `size` chars most often in
    an error; EMPTY is a row (insertions) and a column (deletions). Cells count edits only."""
    involvement = Counter()
    for (ref, hyp), count in tally.chars.items():
        for c in (ref, hyp):
            if c != EMPTY:
                involvement[c] += count
    chars = [c for c, _ in sorted(involvement.items(), key=lambda item: (-item[1], item[0]))[:size]]
    rows, cols = chars + [EMPTY], chars + [EMPTY]
    matrix = [[tally.chars.get((r, h), 0) if r != h else 0 for h in cols] for r in rows]
    return rows, cols, matrix
