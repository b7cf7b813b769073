"""Scoring: recognised text against references.

- `metrics`: edit-distance CER/WER (editdistance does the counting)
- `evaluate`: `hwr eval` over a data set, through the `Recognizer`
- `report/`: bootstrap confidence intervals, breakdowns, confusions, HTML reports, comparisons
"""
