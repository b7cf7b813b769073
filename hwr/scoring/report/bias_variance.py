"""Bias / variance / data mismatch from the CERs of train, dev and test splits.

Following the design notes (after Ng, "Machine Learning Yearning"): avoidable bias is the
train CER above human level (or above 0 when no human CER is known), variance is dev minus
train, and data mismatch is test minus dev. The largest gap says what to work on next.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hwr.scoring.report.bootstrap import Interval

DEV_NAMES = ("dev", "val", "valid", "validation")

# What each diagnosis usually calls for (one line, printed under the table).
ADVICE = {
    "avoidable_bias": "the model underfits: train longer, use a bigger network, lower regularisation",
    "variance": "the model overfits: more or more varied training data, stronger augmentation, regularisation",
    "data_mismatch": "test differs from dev: make dev look like test (same writers/scans) or add such training data",
}
NAMES = {"avoidable_bias": "avoidable bias", "variance": "variance", "data_mismatch": "data mismatch"}


@dataclass
class SplitScore:
    name: str
    # None when the split has no CER: no line was scored (all left out as bad) or the references
    # hold no characters. A CER of 0 there would read as a perfect split and make up a gap.
    cer: float | None
    interval: Interval | None
    lines: int

    @property
    def why_undefined(self) -> str:
        """Why the split has no CER ("" when it has one)."""
        if self.cer is not None:
            return ""
        return "no line scored" if self.lines == 0 else "no reference characters"

    def to_dict(self) -> dict:
        return {"name": self.name, "cer": self.cer, "cer_ci95": self.interval.as_list() if self.interval else None,
                "lines": self.lines}


@dataclass
class Diagnosis:
    splits: list[SplitScore]
    gaps: dict[str, float] = field(default_factory=dict)  # avoidable_bias, variance, data_mismatch
    noisy: list[str] = field(default_factory=list)  # gaps smaller than the bootstrap noise
    human_cer: float | None = None
    target_cer: float | None = None
    reading: str = ""

    @property
    def undefined(self) -> list[SplitScore]:
        """The splits without a CER: shown, but no gap is drawn from them."""
        return [s for s in self.splits if s.cer is None]

    def to_dict(self) -> dict:
        return {"splits": [s.to_dict() for s in self.splits], "gaps": self.gaps, "within_noise": self.noisy,
                "cer_undefined": [s.name for s in self.undefined], "human_cer": self.human_cer,
                "target_cer": self.target_cer, "reading": self.reading}


def _find(splits: list[SplitScore], names: tuple[str, ...]) -> SplitScore | None:
    return next((s for s in splits if s.name.lower() in names), None)


def diagnose(splits: list[SplitScore], human_cer: float | None = None,
             target_cer: float | None = None) -> Diagnosis:
    """Gaps between the named splits (train, dev/val, test; any may be missing) and a reading.
    A split without a CER counts as missing: it is listed, and the reading names it."""
    scored = [s for s in splits if s.cer is not None]
    train, dev, test = _find(scored, ("train",)), _find(scored, DEV_NAMES), _find(scored, ("test",))
    diagnosis = Diagnosis(splits, human_cer=human_cer, target_cer=target_cer)
    pairs = {"variance": (train, dev), "data_mismatch": (dev, test)}
    if train is not None:
        diagnosis.gaps["avoidable_bias"] = train.cer - (human_cer or 0.0)
    for name, (low, high) in pairs.items():
        if low is not None and high is not None:
            diagnosis.gaps[name] = high.cer - low.cer
            # Two splits' intervals barely overlapping is a conservative test; a gap inside
            # the wider half-width is not worth acting on.
            if abs(diagnosis.gaps[name]) < max(low.interval.half_width, high.interval.half_width):
                diagnosis.noisy.append(name)
    diagnosis.reading = _reading(diagnosis, dev or test or train)
    return diagnosis


def _reading(d: Diagnosis, headline: SplitScore | None) -> str:
    prefix = "".join(f"{s.name} has no CER ({s.why_undefined}), so no gap is drawn from it; " for s in d.undefined)
    if d.target_cer is not None and headline is not None:
        verdict = "meets" if headline.cer <= d.target_cer else "misses"
        prefix += f"{headline.name} CER {headline.cer:.2%} {verdict} the target {d.target_cer:.2%}; "
    if not d.gaps:
        return prefix + "no gap to read (it needs a train split, or dev and test, with a CER)"
    meaningful = {k: v for k, v in d.gaps.items() if k not in d.noisy and v > 0}
    if not meaningful:
        return prefix + "no gap stands out from the bootstrap noise; evaluate on more lines"
    largest = max(meaningful, key=meaningful.get)
    return prefix + f"largest gap: {NAMES[largest]} ({meaningful[largest] * 100:.1f} points), so {ADVICE[largest]}"


def format_table(d: Diagnosis) -> str:
    """Splits side by side, then the gaps and the reading, for the terminal."""
    rows = [f"  {'split':<10} {'lines':>7} {'CER':>8}  95% CI"]
    rows += [f"  {s.name:<10} {s.lines:>7} {'n/a':>8}  ({s.why_undefined})" if s.cer is None else
             f"  {s.name:<10} {s.lines:>7} {s.cer:>8.2%}  [{s.interval.low:.2%}, {s.interval.high:.2%}]"
             for s in d.splits]
    base = f"human {d.human_cer:.2%}" if d.human_cer is not None else "0 (no --human-cer)"
    labels = {"avoidable_bias": f"avoidable bias (train - {base})", "variance": "variance (dev - train)",
              "data_mismatch": "data mismatch (test - dev)"}
    for name, gap in d.gaps.items():
        note = "  (within bootstrap noise)" if name in d.noisy else ""
        rows.append(f"  {labels[name]:<42} {gap * 100:+.2f} points{note}")
    rows.append(f"  reading: {d.reading}")
    return "\n".join(rows)
