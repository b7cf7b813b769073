"""Reading order of a page's lines (hwr.documents.segment, step 7): text regions by recursive
XY cut, then each region's lines top to bottom, lines side by side in one row (a table's cells,
a form's label and entry) left to right.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwr.documents.segment import WorkLine


def reading_order(lines: list[WorkLine]) -> tuple[list[WorkLine], list[list[int]]]:
    """Regions by XY cut (top band first, then columns left to right), lines top to bottom."""
    by_region: dict[int, list[WorkLine]] = {}
    for line in lines:
        by_region.setdefault(line.region, []).append(line)
    boxes = {}
    for region, members in by_region.items():
        x0 = min(int(m.pixels[1].min()) for m in members)
        x1 = max(int(m.pixels[1].max()) for m in members) + 1
        y0 = min(int(m.pixels[0].min()) for m in members)
        y1 = max(int(m.pixels[0].max()) for m in members) + 1
        boxes[region] = (x0, y0, x1, y1)
    ordered: list[WorkLine] = []
    groups: list[list[int]] = []
    for region in xy_cut(boxes):
        members = _rows_left_to_right(by_region[region])
        groups.append(list(range(len(ordered), len(ordered) + len(members))))
        ordered.extend(members)
    return ordered, groups


def _rows_left_to_right(lines: list[WorkLine]) -> list[WorkLine]:
    """Lines top to bottom by their middle row, with those side by side in one row (a table's
    cells, parted by its rule) left to right: each line's middle lies within the other's core
    rows. Lines one above the other never do, so a column of text keeps its order."""
    order = sorted(range(len(lines)), key=lambda k: lines[k].rows[1])
    for end in range(len(order) - 1, 0, -1):  # a bubble pass per line: rows hold a few cells
        swapped = False
        for k in range(end):
            a, b = order[k], order[k + 1]
            if lines[b].x0 < lines[a].x0 and side_by_side(lines[a].rows, lines[b].rows):
                order[k], order[k + 1], swapped = b, a, True
        if not swapped:
            break
    return [lines[k] for k in order]


def side_by_side(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Whether two lines' (25th, 50th, 75th percentile) rows put each one's middle in the other's."""
    return a[0] <= b[1] <= a[2] and b[0] <= a[1] <= b[2]


def xy_cut(boxes: dict[int, tuple[int, int, int, int]]) -> list[int]:
    """Reading order of boxes by recursive XY cut: split at horizontal gaps (top to bottom)
    first, then at vertical gaps (left to right); unsplittable groups go top to bottom."""
    keys = list(boxes)
    if len(keys) <= 1:
        return keys
    for axis in (1, 0):  # 1: cut across y (bands), 0: cut across x (columns)
        groups = _gap_groups(keys, boxes, axis)
        if len(groups) > 1:
            return [k for g in groups for k in xy_cut({k: boxes[k] for k in g})]
    return sorted(keys, key=lambda k: (boxes[k][1], boxes[k][0]))


def _gap_groups(keys, boxes, axis) -> list[list[int]]:
    lo, hi = (0, 2) if axis == 0 else (1, 3)
    groups: list[list[int]] = []
    end = -math.inf
    for k in sorted(keys, key=lambda k: boxes[k][lo]):
        if boxes[k][lo] >= end:
            groups.append([k])
        else:
            groups[-1].append(k)
        end = max(end, boxes[k][hi])
    return groups


