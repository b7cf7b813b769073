"""bench/bench_lm.py's second set: the harder set's writers with text from outside the LMs'
corpora. Not tested here: which LM reads better (the bench's run)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_lm.py"


@pytest.fixture(scope="module")
def bench_lm():
    spec = importlib.util.spec_from_file_location("bench_lm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_lm"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_lm", None)


def test_prose_lines_are_printable_wrapped_sentences_in_a_seeded_order(bench_lm):
    text = ("The quick brown fox jumps over the lazy dog near the river bank today. "
            "x = f(a[0]) + g(b[1]) * 3 >> 2; y = {k: v}. "  # code: left out
            "Caf\u00e9 owners open early in the morning and close late at night in summer.")
    lines = bench_lm.prose_lines([text], 50, seed=3)
    assert lines == bench_lm.prose_lines([text], 50, seed=3)
    assert lines and all(line.isascii() and line.isprintable() for line in lines)
    low, high = bench_lm.LINE_CHARS
    assert all(bench_lm.MIN_LINE_CHARS <= len(line) <= high for line in lines)
    joined = " ".join(lines)
    assert "lazy dog" in joined and "Caf owners" in joined and "f(a[0])" not in joined


def test_the_other_text_set_draws_the_harder_sets_writers_with_the_given_words(bench_lm):
    from hwr.datasets.synthetic import hard_validation_lines
    from hwr.synth.fonts import VALIDATION_FONTS

    given = ["licences grant the freedom", "to share and change it", "of the work in source form"]
    samples = bench_lm.lines_with_text(given)
    assert [s.text for s in samples] == given  # the label is the given line
    assert all(s.meta["font"] in VALIDATION_FONTS and s.meta["split"] == "val" for s in samples)
    harder = hard_validation_lines(3)
    assert [s.meta["condition"] for s in samples] == [harder[i].meta["condition"] for i in range(3)]
