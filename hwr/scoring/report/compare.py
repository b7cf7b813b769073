"""Two models on the same lines: paired bootstrap on CER and the lines where they disagree."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from hwr.fileio import escape_line_controls
from hwr.scoring.report.bootstrap import PairedTest, paired_bootstrap

if TYPE_CHECKING:
    from hwr.scoring.evaluate import EvalReport


@dataclass
class Disagreement:
    id: str
    reference: str
    hypothesis_a: str
    hypothesis_b: str
    char_errors_a: int
    char_errors_b: int


@dataclass
class Comparison:
    model_a: str
    model_b: str
    cer_a: float
    cer_b: float
    test: PairedTest
    a_better: int  # lines where a makes fewer character errors
    b_better: int
    same_errors: int  # same error count (the texts may still differ)
    disagreements: list[Disagreement] = field(default_factory=list)  # hypotheses differ

    def reading(self, alpha: float = 0.05) -> str:
        better = self.model_b if self.test.delta < 0 else self.model_a
        if self.test.p_value >= alpha:
            return f"no significant CER difference ({self.test.p_text()})"
        return f"{better} is better by {abs(self.test.delta) * 100:.2f} CER points ({self.test.p_text()})"

    def to_dict(self) -> dict:
        return {"model_a": self.model_a, "model_b": self.model_b, "cer_a": self.cer_a, "cer_b": self.cer_b,
                **self.test.to_dict(), "a_better": self.a_better, "b_better": self.b_better,
                "same_errors": self.same_errors, "reading": self.reading(),
                "disagreements": [asdict(d) for d in self.disagreements]}


def compare_reports(a: EvalReport, b: EvalReport, model_a: str = "a", model_b: str = "b",
                    resamples: int = 1000, seed: int = 0) -> Comparison:
    """Pair the two reports' lines by id (lines only one side read, e.g. skipped, are left out)."""
    by_id = {r.id: r for r in b.results}
    pairs = [(ra, by_id[ra.id]) for ra in a.results if ra.id in by_id]
    if any(ra.reference != rb.reference for ra, rb in pairs):
        raise ValueError("the two reports score different references for the same ids (different normalisation?)")
    test = paired_bootstrap([ra.char_errors for ra, _ in pairs], [rb.char_errors for _, rb in pairs],
                            [ra.chars for ra, _ in pairs], resamples=resamples, seed=seed)
    diffs = [rb.char_errors - ra.char_errors for ra, rb in pairs]
    disagreements = [Disagreement(ra.id, ra.reference, ra.hypothesis, rb.hypothesis, ra.char_errors, rb.char_errors)
                     for ra, rb in pairs if ra.hypothesis != rb.hypothesis]
    # Largest swings first: those lines show what one model learned that the other did not.
    disagreements.sort(key=lambda d: (-abs(d.char_errors_b - d.char_errors_a), d.id))
    chars = sum(ra.chars for ra, _ in pairs)
    cer_a = sum(ra.char_errors for ra, _ in pairs) / chars if chars else 0.0
    cer_b = sum(rb.char_errors for _, rb in pairs) / chars if chars else 0.0
    return Comparison(model_a, model_b, cer_a, cer_b, test, sum(d > 0 for d in diffs), sum(d < 0 for d in diffs),
                      sum(d == 0 for d in diffs), disagreements)


def format_comparison(c: Comparison, rows: int = 10) -> str:
    lines = [f"  A {c.model_a}: CER {c.cer_a:.2%}", f"  B {c.model_b}: CER {c.cer_b:.2%}",
             f"  B - A: {c.test.delta * 100:+.2f} points, 95% CI [{c.test.interval.low * 100:+.2f}, "
             f"{c.test.interval.high * 100:+.2f}]; paired bootstrap {c.test.p_text()}",
             f"  lines: A better {c.a_better}, B better {c.b_better}, same error count {c.same_errors}",
             f"  reading: {c.reading()}"]
    if c.disagreements and rows:
        lines.append(f"  largest disagreements ({min(rows, len(c.disagreements))} of {len(c.disagreements)}):")
        for d in c.disagreements[:rows]:
            lines += [f"    {d.id}  errors A {d.char_errors_a}, B {d.char_errors_b}",
                      f"      ref: {escape_line_controls(d.reference)}",
                      f"      A:   {escape_line_controls(d.hypothesis_a)}",
                      f"      B:   {escape_line_controls(d.hypothesis_b)}"]
    return "\n".join(lines)
