"""Gutters found on drawn ink. How they part columns and keep a form's rows is tested through
whole pages in test_segment.py."""
from __future__ import annotations

import numpy as np

from hwr.documents.gutters import find_gutters
from hwr.documents.segment import SegmentConfig


def test_gutters_need_text_on_both_sides_down_their_length():
    ink = np.zeros((200, 300), np.uint8)
    for top in range(10, 190, 30):  # six lines of text, a 40 px gap at x 120..160 in each
        ink[top:top + 12, 20:120] = 1
        ink[top:top + 12, 160:280] = 1
    gutters = find_gutters(ink, 12.0, SegmentConfig())
    assert len(gutters.boxes) == 1
    x0, y0, x1, y1 = gutters.boxes[0]
    assert (x0, x1) == (120, 160) and y0 <= 10 and y1 >= 180
    ink[100:112, 120:160] = 1  # one line written across the gap: no straight channel past it
    assert all(y1 <= 112 or y0 >= 100 for _, y0, _, y1 in find_gutters(ink, 12.0, SegmentConfig()).boxes)
    one_sided = ink.copy()
    one_sided[:, 160:] = 0  # a margin, not a gutter
    assert find_gutters(one_sided, 12.0, SegmentConfig()).boxes == []
