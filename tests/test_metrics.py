import pytest

from hwr.metrics import ErrorCounts, cer, wer


def test_line_rates_hand_computed():
    assert cer("abcd", "abxd") == pytest.approx(0.25)
    assert cer("abc", "") == 1.0
    assert cer("", "") == 0.0
    assert cer("", "x") == 1.0
    assert wer("the cat sat", "the hat sat") == pytest.approx(1 / 3)
    assert wer("a b", "a b c") == pytest.approx(0.5)


def test_corpus_rates_are_summed_not_averaged():
    counts = ErrorCounts()
    counts.add("a", "b")  # 1 error / 1 char
    counts.add("abcdefghij", "abcdefghij")  # 0 / 10
    assert counts.cer == pytest.approx(1 / 11)
    assert counts.lines == 2 and counts.chars == 11
    assert counts.wer == pytest.approx(1 / 2)


def test_unicode_counts_code_points():
    assert cer("naïve", "naive") == pytest.approx(0.2)
