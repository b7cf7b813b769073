import pytest

from hwr.scoring.evaluate import score_texts
from hwr.scoring.report.compare import compare_reports, format_comparison

REFS = [f"line number {i} of the page" for i in range(60)]


def test_compare_finds_the_better_model_and_lists_disagreements():
    ids = [f"l{i}" for i in range(60)]
    a = score_texts(ids, REFS, [r.replace("e", "c") for r in REFS])  # a misreads every e
    b = score_texts(ids, REFS, [r.replace("the", "tho") for r in REFS[:30]] + REFS[30:])
    c = compare_reports(a, b, "A", "B", resamples=300)
    assert c.cer_b < c.cer_a and c.test.delta < 0 and c.test.p_value < 0.01
    assert c.b_better == 60 and c.a_better == 0
    assert len(c.disagreements) == 60
    first = c.disagreements[0]
    assert first.hypothesis_a != first.hypothesis_b and first.char_errors_a - first.char_errors_b >= 3
    assert "B is better" in c.reading()
    text = format_comparison(c, rows=2)
    assert "paired bootstrap p <" in text and "largest disagreements (2 of 60)" in text
    assert c.to_dict()["disagreements"][0]["id"] == first.id


def test_compare_pairs_by_id_and_rejects_different_references():
    a = score_texts(["x", "y"], ["ab", "cd"], ["ab", "cx"])
    b = score_texts(["y"], ["cd"], ["cd"])  # one line missing on b's side (e.g. skipped)
    c = compare_reports(a, b, resamples=50)
    assert c.a_better + c.b_better + c.same_errors == 1 and c.b_better == 1
    other = score_texts(["x"], ["AB"], ["AB"])
    with pytest.raises(ValueError, match="different references"):
        compare_reports(a, other)
