import random

import editdistance
import pytest

from hwr.scoring.metrics import (
    DELETION,
    INSERTION,
    MATCH,
    SUBSTITUTION,
    ErrorCounts,
    TextNormalization,
    cer,
    edit_script,
    wer,
    word_errors,
)


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


# --- Empty lines, Unicode, normalisation, alignment (issue 9) ---------------------------------


def test_empty_reference_and_hypothesis():
    assert cer("", "") == 0.0 and wer("", "") == 0.0
    assert cer("", "abc") == 1.0 and wer("", "a b") == 1.0  # any output for an empty line is all wrong
    assert cer("ab", "") == 1.0 and wer("a b", "") == 1.0
    counts = ErrorCounts()
    counts.add("", "xyz")  # 3 insertions, no reference characters
    counts.add("abcd", "abcd")
    assert counts.cer == pytest.approx(3 / 4)  # summed: the empty line's edits still count
    empty = ErrorCounts()
    assert empty.cer == 0.0 and empty.wer == 0.0


def test_unicode_beyond_latin():
    assert cer("日本語", "日本") == pytest.approx(1 / 3)
    assert cer("Straße", "Strasse") == pytest.approx(2 / 6)  # ß -> s plus one inserted s
    assert cer("a😀b", "ab") == pytest.approx(1 / 3)  # an emoji is one code point
    assert word_errors("ça va", "ca va") == 1


def test_normalisation_is_opt_in_and_named():
    raw = TextNormalization()
    assert raw("  Hello ,  World ! ") == "  Hello ,  World ! " and raw.steps == [] and "none" in raw.describe()
    assert TextNormalization(casefold=True)("Straße") == "strasse"
    assert TextNormalization(strip_punctuation=True)("Hi, you!") == "Hi you"
    assert TextNormalization(collapse_whitespace=True)(" a \t b  ") == "a b"
    both = TextNormalization(casefold=True, collapse_whitespace=True)
    assert both.steps == ["casefold", "collapse_whitespace"]


def test_iam_detokenisation_undoes_lines_txt_spacing():
    iam = TextNormalization(iam_detokenize=True)
    assert iam("tomorrow . Mr. Gaitskell") == "tomorrow. Mr. Gaitskell"
    assert iam("the Government 's plan , did n't it ?") == "the Government's plan, didn't it?"
    assert iam('he said " Yes , we will " and left') == 'he said "Yes, we will" and left'
    assert iam("a ( small ) cost ; then") == "a (small) cost; then"


def test_edit_script_hand_computed():
    assert edit_script("kitten", "sitting") == [
        (SUBSTITUTION, "k", "s"), (MATCH, "i", "i"), (MATCH, "t", "t"), (MATCH, "t", "t"),
        (SUBSTITUTION, "e", "i"), (MATCH, "n", "n"), (INSERTION, "", "g")]
    assert edit_script("", "ab") == [(INSERTION, "", "a"), (INSERTION, "", "b")]
    assert edit_script("ab", "") == [(DELETION, "a", ""), (DELETION, "b", "")]
    assert edit_script("the cat sat".split(), "the hat sat on".split()) == [
        (MATCH, "the", "the"), (SUBSTITUTION, "cat", "hat"), (MATCH, "sat", "sat"), (INSERTION, "", "on")]


def test_edit_script_is_a_minimum_alignment():
    rng = random.Random(0)
    for _ in range(500):
        a = "".join(rng.choice("ab c") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("ab c") for _ in range(rng.randint(0, 12)))
        ops = edit_script(a, b)
        assert sum(op != MATCH for op, _, _ in ops) == editdistance.eval(a, b)
        assert "".join(r for _, r, _ in ops) == a and "".join(h for _, _, h in ops) == b


def test_edit_script_keeps_matches_on_ties():
    # "sat" -> "st!" costs 2 either way; the alignment that keeps "t" matched is the readable one.
    assert edit_script("sat", "st!") == [(MATCH, "s", "s"), (DELETION, "a", ""), (MATCH, "t", "t"),
                                         (INSERTION, "", "!")]
