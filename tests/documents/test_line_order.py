"""The XY cut's order of region boxes. Lines' order within regions is tested through whole pages
in test_segment.py."""
from __future__ import annotations

from hwr.documents.line_order import xy_cut


def test_xy_cut_orders_header_then_columns():
    boxes = {0: (600, 200, 1000, 800), 1: (0, 200, 500, 800), 2: (0, 0, 1000, 100), 3: (0, 900, 1000, 1000)}
    assert xy_cut(boxes) == [2, 1, 0, 3]
