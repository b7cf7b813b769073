"""bench/bench_desk.py: its photos are what it says they are. Not tested here: how a model reads
them (the bench's run)."""
from __future__ import annotations

import numpy as np
import pytest

from hwr.recognition import imaging

from helpers import bench_script


@pytest.fixture(scope="module")
def bench():
    with bench_script("bench_desk", ("bench_fill",)) as module:  # it reuses bench_fill's arguments
        yield module


def slip(height: int = 60, width: int = 600) -> np.ndarray:
    line = np.full((height, width), 250, np.uint8)
    line[height // 3: 2 * height // 3: 3, width // 10: -width // 10] = 20  # ruled strokes: ink, not desk
    return line


@pytest.mark.parametrize(("width_share", "aspect"), [(0.5, 4 / 3), (0.3, 16 / 9), (0.7, 4 / 3), (0.9, 3 / 4)])
def test_the_slip_lies_on_a_grainy_desk_in_a_photo_of_that_shape(bench, width_share, aspect):
    line = slip()
    photo = bench.on_desk(line, 4, width_share, aspect)
    assert photo.shape[1] == int(line.shape[1] / width_share)
    assert abs(photo.shape[1] / photo.shape[0] - aspect) < 0.01
    top, left = (photo.shape[0] - line.shape[0]) // 2, (photo.shape[1] - line.shape[1]) // 4
    assert np.array_equal(photo[top:top + line.shape[0], left:left + line.shape[1]], line)
    desk = photo[:top]
    assert abs(np.median(desk) - (bench.DESK_LEVELS[4 % 3] + 12.5)) < 3 and desk.std() > 6
    assert np.array_equal(bench.on_desk(line, 4, width_share, aspect), photo)  # the same photo each run
    # The crop the line path reads is the slip.
    x0, y0, x1, y1 = imaging.sheet_on_dark_ground(photo)
    assert abs(x0 - left) <= 1 and abs(y0 - top) <= 1 and abs(x1 - left - line.shape[1]) <= 1


def test_the_card_is_three_times_the_line_high_and_the_band_reaches_the_edges(bench):
    line = slip()
    card = bench.card(line)
    assert card.shape == (3 * line.shape[0], line.shape[1]) and np.array_equal(card[line.shape[0]:-line.shape[0]], line)
    assert (card[: line.shape[0]] == 250).all()
    banded = bench.FORMS["banded"](line, 0)
    assert (banded[-line.shape[0] // 3:] == bench.DESK_LEVELS[0]).all() and imaging.sheet_on_dark_ground(banded) is None
