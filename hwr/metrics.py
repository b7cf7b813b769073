"""Character and word error rates, computed with `editdistance`.

Corpus-level rates are the sum of edits over the sum of reference lengths (as IAM papers
report), not the mean of per-line rates, which would over-weight short lines.
"""
from __future__ import annotations

from dataclasses import dataclass

import editdistance


def char_errors(reference: str, hypothesis: str) -> int:
    return editdistance.eval(reference, hypothesis)


def word_errors(reference: str, hypothesis: str) -> int:
    return editdistance.eval(reference.split(), hypothesis.split())


def _rate(errors: int, length: int) -> float:
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
        self.char_errors += char_errors(reference, hypothesis)
        self.chars += len(reference)
        self.word_errors += word_errors(reference, hypothesis)
        self.words += len(reference.split())
        self.lines += 1

    @property
    def cer(self) -> float:
        return _rate(self.char_errors, self.chars)

    @property
    def wer(self) -> float:
        return _rate(self.word_errors, self.words)
