"""Auto mode's second look (hwr.documents.reading_choice): which of an image's two readings,
its segmented lines or the whole image as one line, is the surer."""
from __future__ import annotations

import math

import pytest

from hwr.documents.reading_choice import CONFIDENCE_FLOOR, certainty, whole_reading_wins
from hwr.records import Recognition


def read(text: str, confidence: float | list[float]) -> Recognition:
    confidences = confidence if isinstance(confidence, list) else [confidence] * len(text)
    mean = sum(confidences) / len(confidences) if confidences else 1.0
    return Recognition(text, mean, char_confidences=confidences)


def test_certainty_is_the_mean_log_confidence_per_character_over_all_lines():
    score, chars = certainty([read("ab", [0.5, 1.0]), read("c", [0.25])])
    assert chars == 3 and score == pytest.approx((math.log(0.5) + 0 + math.log(0.25)) / 3)
    assert certainty([read("", [])]) == (0.0, 0)
    assert certainty([read("x", [0.0])])[0] == pytest.approx(math.log(CONFIDENCE_FLOOR))  # finite, not -inf


def test_a_line_cut_into_doubtful_fragments_is_read_whole():
    fragments = [read("thc qnick", 0.7), read("brovn fox", 0.75)]
    assert whole_reading_wins(fragments, read("the quick brown fox", 0.95))


def test_a_page_squeezed_into_one_line_is_read_as_its_lines():
    lines = [read("Dear Anna, thank you for", 0.97), read("the letter of the ninth.", 0.96)]
    assert not whole_reading_wins(lines, read("amnmsa", 0.4))
    # Blank, or one or two sure marks, are no evidence of a line: a page squeezed flat reads so.
    assert not whole_reading_wins(lines, read("", []))
    assert not whole_reading_wins(lines, read("-", 0.99))


def test_one_doubtful_character_weighs_more_than_in_the_plain_mean():
    """Arithmetic means 0.82 (whole) against 0.80 (lines); the log mean prefers the lines,
    whose characters are uniformly fairly sure over the whole's sure ones and one near 0."""
    lines = [read("abcd", 0.8), read("efgh", 0.8)]
    whole = read("abcdefgh", [0.99] * 7 + [0.0])
    assert sum(whole.char_confidences) / 8 > 0.8
    assert not whole_reading_wins(lines, whole)


def test_lines_that_read_nothing_lose_to_a_whole_reading_and_ties_keep_the_lines():
    assert whole_reading_wins([read("", []), read("", [])], read("ink", 0.5))
    assert not whole_reading_wins([read("abc", 0.9), read("def", 0.9)], read("abcdef", 0.9))


# Lines of the harder validation set (synth:hard:600) that the segmenter cuts into two or
# more lines: a whiteboard line cut in three, a tilted low-resolution line, a photographed one.
# (Line 186, a paper line split at its quotation's dash, left the list on 2026-12-05: read cut,
# its two parts now read well, 6% CER, and auto rightly keeps them. Line 87, a binarised one
# whose descenders made a second row, left it the same day: a line 13 times as long as high is
# now reduced by its area, and the segmenter keeps it whole.)
CUT_LINES = (273, 117, 80)


def test_the_shipped_model_reads_lines_the_segmenter_cut_whole(monkeypatch):
    from hwr.datasets.synthetic import hard_validation_lines
    from hwr.documents.pipeline import layout_page, transcribe_image
    from hwr.recognition.model import Recognizer
    from hwr.scoring.metrics import ErrorCounts

    monkeypatch.delenv("HWR_MODEL", raising=False)
    recognizer = Recognizer.load(device="cpu")
    lines = hard_validation_lines(600)
    cut, whole = ErrorCounts(), ErrorCounts()
    for index in CUT_LINES:
        sample = lines[index]
        page, is_line = layout_page(sample.image, "page")
        assert len(page.lines) >= 2, f"line {index} is no longer cut by the segmenter; pick another"
        as_page, _ = transcribe_image(recognizer, sample.image, "page", words=False)
        auto, is_line = transcribe_image(recognizer, sample.image, "auto", words=False)
        assert is_line and len(auto.lines) == 1, index
        cut.add(sample.text, " ".join(line.recognition.text for line in as_page.lines))
        whole.add(sample.text, auto.lines[0].recognition.text)
    assert whole.cer < 0.15 < 0.3 < cut.cer, (whole.cer, cut.cer)
