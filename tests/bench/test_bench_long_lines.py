"""bench/bench_long_lines.py: how it joins lines and what a reading reports. Not tested here:
how windowed and squeezed readings compare (the bench's run)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import bench_script


@pytest.fixture(scope="module")
def bench():
    # It reuses bench_width_variants' arguments (which reuses bench_lm's second set).
    with bench_script("bench_long_lines", ("bench_width_variants", "bench_lm")) as module:
        yield module


def test_joined_lines_keep_each_line_s_height_and_width_with_a_gap_between(bench):
    lines = [np.full((10, width), 1.0, np.float32) for width in (20, 30, 40, 50, 60)]
    images, texts = bench.joined_lines(lines, ["a", "b", "c", "d", "e"], 2, height=10)
    assert texts == ["a b", "c d"]  # the fifth line alone is no pair: left out
    assert [image.shape for image in images] == [(10, 20 + 6 + 30), (10, 40 + 6 + 50)]
    assert images[0].dtype == np.uint8 and (images[0][:, 20:26] == 255).all() and (images[0][:, :20] == 0).all()


def test_a_reading_reports_its_scores_speed_and_widest_line(bench, untrained_model):
    from hwr.recognition.model import Recognizer

    recognizer = Recognizer.load(untrained_model, device="cpu")
    images = [np.full((40, 300), 255, np.uint8) for _ in range(3)]
    for image in images:
        image[10:30, 20:280] = 0
    report, lines_per_s, widest = bench.read(recognizer, images, ["x", "y", "z"], batch_size=2)
    assert len(report.results) == 3 and lines_per_s > 0 and widest > 0
