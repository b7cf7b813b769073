"""The Evaluate tab's summary: skipped entries named, untranscribed lines counted apart."""
from pathlib import Path

from hwr.datasets import SkipReport
from hwr.records import FailedInput
from hwr.scoring.evaluate import score_texts
from hwr_ui.evaluation import summary_markdown


def test_untranscribed_lines_are_counted_apart_from_unusable_entries(tmp_path: Path):
    folder = tmp_path / "in" / "dataset"
    report = score_texts(["a"], ["the cat"], ["the cot"])
    report.failures = [FailedInput(str(folder / "b.png"), "read", "not a readable image")]
    skipped = SkipReport()
    skipped.add(folder / "page.xml", 4, "TextLine l2 has no text", untranscribed=True)
    skipped.add(folder / "c.gt.txt", 1, "not valid UTF-8")
    text = summary_markdown(report, skipped, folder)
    assert "Skipped 2 unusable entries" in text and "b.png" in text and "c.gt.txt" in text
    assert "l2" not in text and "Not scored: 1 line without a transcription yet" in text
    assert str(folder) not in text  # the user knows files by their path in the zip


def test_a_rate_with_empty_references_is_undefined_not_100_percent(tmp_path: Path):
    text = summary_markdown(score_texts(["a"], [""], ["abc"]), SkipReport(), tmp_path)
    assert "**CER undefined**: the references hold no characters (3 characters inserted)" in text
    assert "%" not in text
    assert "**CER 14.29%** (1 / 7 characters)" in summary_markdown(score_texts(["a"], ["the cat"], ["the cot"]),
                                                                 SkipReport(), tmp_path)
