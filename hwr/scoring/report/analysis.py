"""Error analysis of one evaluation: confidence intervals, breakdowns, confusions.

`analyze(report)` gathers what the terminal summary, the JSON and the HTML report show, so
all three agree; `to_dict()` is the JSON form (keys documented in docs/eval-json.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwr.scoring.metrics import DELETION, INSERTION, SUBSTITUTION
from hwr.scoring.report.bootstrap import Interval, bootstrap_interval
from hwr.scoring.report.breakdown import GroupStats, by_length, by_subset, cer_histogram
from hwr.scoring.report.confusions import ErrorTally, char_error_rates, tally_errors, top_pairs

if TYPE_CHECKING:
    from hwr.scoring.evaluate import EvalReport

CONFIDENCE = 0.95
HISTOGRAM_BINS = 20


@dataclass
class ErrorAnalysis:
    cer_ci: Interval
    wer_ci: Interval
    resamples: int
    seed: int
    subsets: list[GroupStats]
    subset_key: str  # what the subsets are: "font", "form", "writer (forms.txt)", ...
    by_length: list[GroupStats]
    histogram: list[int]  # line counts per CER bin of width 1/len over [0, 1]
    tally: ErrorTally

    def top_confusions(self, n: int = 20) -> dict[str, list[dict]]:
        return {"all": top_pairs(self.tally.chars, n),
                "substitutions": top_pairs(self.tally.count(SUBSTITUTION), n),
                "deletions": top_pairs(self.tally.count(DELETION), n),
                "insertions": top_pairs(self.tally.count(INSERTION), n)}

    def to_dict(self, top: int = 20) -> dict:
        return {
            "cer_ci95": self.cer_ci.as_list(),
            "wer_ci95": self.wer_ci.as_list(),
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "confidence": CONFIDENCE, "unit": "line"},
            "subsets": {"key": self.subset_key, "groups": [g.to_dict() for g in self.subsets]},
            "by_length": [g.to_dict() for g in self.by_length],
            "cer_histogram": {"bin_width": 1 / len(self.histogram), "counts": self.histogram},
            "confusions": self.top_confusions(top),
            "char_error_rates": char_error_rates(self.tally, n=top),
            # Not "word_errors": that key is the corpus count in the same JSON object.
            "top_word_errors": top_pairs(self.tally.words, top),
        }


def analyze(report: EvalReport, resamples: int = 1000, seed: int = 0, subset_key: str = "auto") -> ErrorAnalysis:
    results = report.results
    chars = [r.chars for r in results]
    words = [r.words for r in results]
    return ErrorAnalysis(
        cer_ci=bootstrap_interval([r.char_errors for r in results], chars, resamples, CONFIDENCE, seed),
        wer_ci=bootstrap_interval([r.word_errors for r in results], words, resamples, CONFIDENCE, seed),
        resamples=resamples, seed=seed,
        subsets=by_subset(results), subset_key=subset_key,
        by_length=by_length(results),
        histogram=cer_histogram(results, HISTOGRAM_BINS),
        tally=tally_errors(results),
    )
