"""Bootstrap confidence intervals for corpus error rates, resampling whole lines.

Lines are the independent unit (a writer's slant or a bad label affects every character of a
line together), so resamples draw lines with replacement and recompute the corpus rate
(sum of edits / sum of reference lengths) of each resample. Percentile intervals; seeded, so
a report is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Resamples are drawn in blocks so that 1,000 resamples of 100,000 lines stay within
# ~100 MB of index arrays instead of one 800 MB matrix.
_BLOCK_CELLS = 10_000_000


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _index_blocks(n_lines: int, resamples: int, rng: np.random.Generator):
    block = max(1, _BLOCK_CELLS // max(n_lines, 1))
    for start in range(0, resamples, block):
        yield rng.integers(0, n_lines, size=(min(block, resamples - start), n_lines))


def _ratio(errors: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    # Same convention as metrics._rate: no reference characters and no edits is a perfect 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lengths > 0, errors / np.maximum(lengths, 1), np.where(errors > 0, 1.0, 0.0))


def resampled_rates(errors, lengths, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Corpus rate of each bootstrap resample of the lines (shape: resamples)."""
    errors = np.asarray(errors, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if errors.size == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    rates = [_ratio(errors[idx].sum(1), lengths[idx].sum(1)) for idx in _index_blocks(errors.size, resamples, rng)]
    return np.concatenate(rates)


def bootstrap_interval(errors, lengths, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the corpus rate sum(errors) / sum(lengths)."""
    rates = resampled_rates(errors, lengths, resamples, seed)
    if rates.size == 0:
        return Interval(0.0, 0.0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(rates, [tail, 100 - tail])
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class PairedTest:
    """Paired bootstrap of two systems on the same lines: delta = rate(b) - rate(a)."""

    delta: float
    interval: Interval
    p_value: float  # two-sided: how often a resample's delta falls on the other side of 0
    resamples: int

    def p_text(self) -> str:
        # A p of 0 only means no resample crossed zero: the bound is 1 / resamples.
        if self.p_value == 0 and self.resamples:
            return f"p < {1 / self.resamples:.3g}"
        return f"p = {self.p_value:.3f}"

    def to_dict(self) -> dict:
        return {"delta": self.delta, "delta_ci": self.interval.as_list(), "p_value": self.p_value,
                "resamples": self.resamples}


def paired_bootstrap(errors_a, errors_b, lengths, resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> PairedTest:
    """Is system b's corpus rate different from a's on these lines? (Koehn 2004, paired).

    Both systems are scored on the same resampled lines, so per-line difficulty cancels out
    and the test is far more sensitive than comparing two unpaired intervals.
    """
    ea, eb = np.asarray(errors_a, dtype=np.int64), np.asarray(errors_b, dtype=np.int64)
    n = np.asarray(lengths, dtype=np.int64)
    if not (ea.size == eb.size == n.size):
        raise ValueError("paired bootstrap needs the same lines for both systems")
    delta = float(_ratio(eb.sum(), n.sum()) - _ratio(ea.sum(), n.sum()))
    if n.size == 0:
        return PairedTest(0.0, Interval(0.0, 0.0), 1.0, 0)
    rng = np.random.default_rng(seed)
    deltas = np.concatenate([_ratio(eb[idx].sum(1), n[idx].sum(1)) - _ratio(ea[idx].sum(1), n[idx].sum(1))
                             for idx in _index_blocks(n.size, resamples, rng)])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    # Share of resamples at or beyond zero on the far side, doubled for a two-sided test.
    far_side = np.mean(deltas <= 0) if delta > 0 else np.mean(deltas >= 0)
    p_value = float(min(1.0, 2 * far_side)) if delta != 0 else 1.0
    return PairedTest(delta, Interval(float(low), float(high)), p_value, int(deltas.size))
