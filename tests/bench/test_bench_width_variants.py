"""bench/bench_width_variants.py: its variant lists and that a reading is scored per line as
`hwr eval` scores it. Not tested here: which widths read better (the bench's run)."""
from __future__ import annotations

import pytest

from helpers import bench_script


@pytest.fixture(scope="module")
def bench():
    with bench_script("bench_width_variants", ("bench_lm",)) as module:  # it reuses bench_lm's second set
        yield module


def test_variant_lists_parse_into_factor_tuples(bench):
    assert bench.parse_variants("1.3") == [(1.3,)]
    assert bench.parse_variants("1.3;1.15,1.3;") == [(1.3,), (1.15, 1.3)]


def test_a_reading_is_scored_line_by_line_with_its_speed(bench, untrained_model):
    from hwr.recognition.model import Recognizer
    from hwr.records import LineSample

    from helpers import render_line

    recognizer = Recognizer.load(untrained_model, device="cpu", width_variants=[1.3])
    samples = [LineSample(id=f"l{k}", text=t, image=render_line(t)) for k, t in enumerate(["ab", "the cat"])]
    lines = [recognizer.preprocess(s.image) for s in samples]
    report, lines_per_s = bench.read(recognizer, samples, lines)
    assert [r.id for r in report.results] == ["l0", "l1"] and lines_per_s > 0
    assert report.chars == len("ab") + len("the cat")
