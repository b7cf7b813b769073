"""Error analysis and reports for `hwr eval`.

    bootstrap.py      confidence intervals and the paired test (lines resampled)
    breakdown.py      CER per subset (writer/form/font), per line length, histogram
    confusions.py     character confusions and word errors from the edit alignment
    bias_variance.py  train/dev/test gaps and their reading
    compare.py        two models on the same lines
    analysis.py       all of the above for one evaluation (terminal, JSON and HTML share it)
    svg.py, html.py   the self-contained HTML report
    run.py            `hwr eval` as a plain function
"""
from hwr.scoring.report.analysis import ErrorAnalysis, analyze
from hwr.scoring.report.bootstrap import Interval, PairedTest, bootstrap_interval, paired_bootstrap
from hwr.scoring.report.compare import Comparison, compare_reports

__all__ = ["Comparison", "ErrorAnalysis", "Interval", "PairedTest", "analyze", "bootstrap_interval",
           "compare_reports", "paired_bootstrap"]
