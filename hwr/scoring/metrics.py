"""Character and word error rates (via `editdistance`), scoring normalisation, edit alignment.

Corpus-level rates are the sum of edits over the sum of reference lengths (as IAM papers
report), not the mean of per-line rates, which would over-weight short lines. Lengths and
edits count Unicode code points of NFC text (the readers normalise ground truth to NFC).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields

import editdistance


def char_errors(reference: str, hypothesis: str) -> int:
    return editdistance.eval(reference, hypothesis)


def word_errors(reference: str, hypothesis: str) -> int:
    return editdistance.eval(reference.split(), hypothesis.split())


def _rate(errors: int, length: int) -> float:
    # An empty reference has no characters to get wrong: any output is all error (1.0), none
    # is perfect (0.0). Corpus rates avoid this corner by summing before dividing.
    if length == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / length


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of one line (edits / reference characters)."""
    return _rate(char_errors(reference, hypothesis), len(reference))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one line (word edits / reference words, split on whitespace)."""
    return _rate(word_errors(reference, hypothesis), len(reference.split()))


@dataclass
class ErrorCounts:
    """Running totals for corpus-level CER / WER."""

    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    lines: int = 0

    def add(self, reference: str, hypothesis: str) -> None:
        self.add_counts(char_errors(reference, hypothesis), len(reference),
                        word_errors(reference, hypothesis), len(reference.split()))

    def add_counts(self, char_errors: int, chars: int, word_errors: int, words: int) -> None:
        self.char_errors += char_errors
        self.chars += chars
        self.word_errors += word_errors
        self.words += words
        self.lines += 1

    @property
    def cer(self) -> float:
        return _rate(self.char_errors, self.chars)

    @property
    def wer(self) -> float:
        return _rate(self.word_errors, self.words)


# --- Scoring normalisation -------------------------------------------------------------
# Published IAM numbers differ in how they treat case, punctuation and IAM's tokenised
# transcriptions, so every step is opt-in, applied identically to reference and hypothesis,
# and named in every report: a CER is only comparable with its normalisation.

# IAM's lines.txt separates punctuation and contractions into words ("tomorrow . Mr."
# "Government 's", "did n't"); detokenising glues them back the way the writer wrote them.
_SPACE_BEFORE = re.compile(r" +(?=[.,;:!?)\]}]|'(?:s|t|re|ve|ll|d|m)\b|n't\b)", re.IGNORECASE)
_SPACE_AFTER = re.compile(r"(?<=[(\[{]) +")
_WHITESPACE = re.compile(r"\s+")


def _detokenize_iam(text: str) -> str:
    text = _SPACE_AFTER.sub("", _SPACE_BEFORE.sub("", text))
    return _glue_double_quotes(text)


def _glue_double_quotes(text: str) -> str:
    """IAM writes quotes as separate tokens (`" Yes , "`); odd ones open, even ones close."""
    tokens = text.split(" ")
    out: list[str] = []
    opening = True
    glue_next = False
    for token in tokens:
        if token == '"':
            if opening:
                out.append('"')
                glue_next = True
            elif out:
                out[-1] += '"'
            else:
                out.append('"')
            opening = not opening
            continue
        if glue_next and out:
            out[-1] += token
        else:
            out.append(token)
        glue_next = False
    return " ".join(out)


def _strip_punctuation(text: str) -> str:
    return "".join(c for c in text if not unicodedata.category(c).startswith("P"))


@dataclass(frozen=True)
class TextNormalization:
    """Opt-in text normalisation for scoring, applied in field order to both sides."""

    iam_detokenize: bool = False  # undo IAM's spaces before punctuation and split contractions
    casefold: bool = False  # str.casefold ("Straße" -> "strasse")
    strip_punctuation: bool = False  # drop Unicode punctuation (categories P*); spaces stay
    collapse_whitespace: bool = False  # runs of whitespace -> one space, trimmed ends

    @property
    def steps(self) -> list[str]:
        """Names of the enabled steps in the order they run ([] = raw text is scored)."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def describe(self) -> str:
        return ", ".join(self.steps) if self.steps else "none (raw text)"

    def __call__(self, text: str) -> str:
        if self.iam_detokenize:
            text = _detokenize_iam(text)
        if self.casefold:
            text = text.casefold()
        if self.strip_punctuation:
            text = _strip_punctuation(text)
        if self.collapse_whitespace:
            text = _WHITESPACE.sub(" ", text).strip()
        return text


# --- Edit alignment ---------------------------------------------------------------------
# editdistance returns only the distance, and difflib's SequenceMatcher finds matching
# blocks, not a minimum-cost edit script (its "replace" spans need not be substitutions and
# its opcodes do not sum to the Levenshtein distance). Confusion tables and character diffs
# need the real alignment, so this small Levenshtein backtrace supplies it. The distance
# itself still comes from editdistance.

MATCH, SUBSTITUTION, DELETION, INSERTION = "=", "S", "D", "I"
EditOp = tuple  # (op, reference token or "", hypothesis token or "")


def edit_script(reference: Sequence, hypothesis: Sequence) -> list[EditOp]:
    """A minimum-cost alignment of two sequences (strings or word lists) as (op, ref, hyp).

    Ops are MATCH, SUBSTITUTION, DELETION (reference token missing from the hypothesis) and
    INSERTION (extra hypothesis token); the non-match count equals the edit distance.
    """
    n, m = len(reference), len(hypothesis)
    head = 0
    while head < n and head < m and reference[head] == hypothesis[head]:
        head += 1
    tail = 0
    while tail < n - head and tail < m - head and reference[n - 1 - tail] == hypothesis[m - 1 - tail]:
        tail += 1
    ops = [(MATCH, t, t) for t in reference[:head]]
    ops += _align(reference[head : n - tail], hypothesis[head : m - tail])
    ops += [(MATCH, t, t) for t in reference[n - tail :]]
    return ops


def _align(a: Sequence, b: Sequence) -> list[EditOp]:
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return [(DELETION, t, "") for t in a] + [(INSERTION, "", t) for t in b]
    # Among the alignments of minimum edit count, take one with the most matches: "sat" ->
    # "st!" is then a deletion and an insertion around a matched "t", not two substitutions
    # ("a"->"t", "t"->"!") that no reader would see. One integer carries both criteria: every
    # edit costs `weight` (more than any number of matches could win back), a match -1.
    weight = min(n, m) + 1
    rows = _banded_cost_rows(a, b, editdistance.eval(a, b), weight)
    return _backtrace(rows, a, b, weight)


def _banded_cost_rows(a: Sequence, b: Sequence, band: int, weight: int) -> list[list[int]]:
    """Alignment DP restricted to |i - j| <= band (the known distance, from editdistance).

    A path through a cell off that band takes more edits than the distance, so the band holds
    every optimal path; on well-recognised lines it is a few cells wide instead of m.
    """
    n, m = len(a), len(b)
    inf = (n + m + 1) * weight
    prev = [j * weight if j <= band else inf for j in range(m + 1)]
    rows = [prev]
    for i in range(1, n + 1):
        cur = [inf] * (m + 1)
        lo = max(1, i - band)
        if i <= band:
            cur[0] = i * weight
        ai = a[i - 1]
        for j in range(lo, min(m, i + band) + 1):
            best = prev[j - 1] + (-1 if ai == b[j - 1] else weight)
            if prev[j] + weight < best:
                best = prev[j] + weight
            if cur[j - 1] + weight < best:
                best = cur[j - 1] + weight
            cur[j] = best
        rows.append(cur)
        prev = cur
    return rows


def _backtrace(rows: list[list[int]], a: Sequence, b: Sequence, weight: int) -> list[EditOp]:
    # On a remaining tie the diagonal wins, so a wrong character reads as a substitution
    # rather than a deletion plus an insertion.
    i, j = len(a), len(b)
    ops: list[EditOp] = []
    while i > 0 or j > 0:
        here = rows[i][j]
        if i > 0 and j > 0 and here == rows[i - 1][j - 1] + (-1 if a[i - 1] == b[j - 1] else weight):
            ops.append((MATCH if a[i - 1] == b[j - 1] else SUBSTITUTION, a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and here == rows[i - 1][j] + weight:
            ops.append((DELETION, a[i - 1], ""))
            i -= 1
        else:
            ops.append((INSERTION, "", b[j - 1]))
            j -= 1
    ops.reverse()
    return ops


def undefined_rate(errors: int, unit: str) -> str:
    """Why a rate has no value, as the terminal, the HTML report and the UI all say it."""
    return f"the references hold no {unit} ({errors} {unit} inserted)"
