"""`hwr.scoring.report.run` helpers that need no model. Whole runs are tested through the CLI
(tests/scoring/test_evaluate.py, tests/test_cli.py), not here."""
import logging

from hwr.records import LineSample
from hwr.scoring.report.run import warn_invisible_characters


def test_references_with_invisible_characters_are_named_in_a_warning(caplog):
    samples = [LineSample("plain", "the cat", "a.png"), LineSample("zwsp", "the\u200bcat", "b.png"),
               LineSample("nbsp", "the\u00a0cat", "c.png")]
    with caplog.at_level(logging.WARNING, logger="hwr.scoring.eval"):
        assert warn_invisible_characters(samples) == ["zwsp", "nbsp"]
    assert "2 references" in caplog.text and "b.png (ZWSP)" in caplog.text and "c.png (NBSP)" in caplog.text
