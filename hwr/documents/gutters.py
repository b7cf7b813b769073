"""Gutters: straight channels of paper between columns of text closer than a column gap, or
between a margin's notes and the text (hwr.documents.segment, step 7).

A gap alone cannot tell a gutter from a word gap; its length can: word gaps do not line up
down four lines. A gutter parts the line cores on either side of it (as a table's inner border
does) and the text region it runs through into columns, unless the lines on either side are
level with each other (a form's rows, read row by row).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from hwr.documents.line_order import side_by_side

if TYPE_CHECKING:
    from hwr.documents.segment import SegmentConfig, WorkLine


@dataclass
class Gutters:
    mask: np.ndarray  # uint8, 1 on the gutters' paper
    boxes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (exclusive) of each


def find_gutters(binary: np.ndarray, h: float, config: SegmentConfig) -> Gutters:
    """Straight channels of paper between text (SegmentConfig's gutter_*): in every stretch of
    gutter_heights rows, the columns without ink, once gaps narrower than gutter_min_width
    are closed along the rows, in runs at least that wide with gutter_lines lines of text within
    gutter_reach on both sides; then each runs on up and down while its columns stay clear, to
    the ends of the columns beside it. Straight: each stretch's channel is clear in every one of
    its rows, so the gaps of lines whose words happen to leave paper in a zigzag down the page
    make none."""
    ink = (binary > 0).astype(np.uint8)
    width = max(3, int(round(config.gutter_min_width * h))) | 1  # odd: the closing stays centred
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((1, width), np.uint8))
    reach = max(2, int(round(config.gutter_reach * h)))
    step = max(1, int(round(h / 2)))  # stretches overlap: a gutter's ends are found within half an h
    # Lines of text in the `reach` columns up to (from) each column.
    kernel = np.ones((1, reach), np.uint8)
    lines_up_to = _LineStarts(cv2.dilate(closed, kernel, anchor=(reach - 1, 0)), h)
    lines_from = _LineStarts(cv2.dilate(closed, kernel, anchor=(0, 0)), h)
    mask = np.zeros_like(ink)
    for tall in sorted({max(3, int(round(height * h))) for height in config.gutter_heights}):
        # Row `top`: whether each column has ink in rows top..top+tall-1.
        inked_below = cv2.dilate(closed, np.ones((tall, 1), np.uint8), anchor=(0, 0), borderValue=0)
        for top in range(0, max(1, ink.shape[0] - tall + 1), step):
            for x0, x1 in _clear_runs(inked_below[top] > 0, width):
                if x0 > 0 and x1 < ink.shape[1] \
                        and lines_up_to.count(x0 - 1, top, top + tall) >= config.gutter_lines \
                        and lines_from.count(x1, top, top + tall) >= config.gutter_lines:
                    mask[top:top + tall, x0:x1] = 1
    if not mask.any():
        return Gutters(mask, [])
    _run_on_while_clear(mask, closed)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = [(int(x), int(y), int(x + w), int(y + hh)) for x, y, w, hh in stats[1:n, :4]]
    return Gutters(mask, boxes)


class _LineStarts:
    """Lines of text beside each column: runs of inked rows at least half an h tall, counted by
    the rows they start at (a summed-area table of the starts: each count is four lookups, where
    a page turned a quarter, its lines upright, has thousands of channels to count beside)."""

    def __init__(self, inked: np.ndarray, h: float):
        rows = np.pad(inked > 0, ((1, 1), (0, 0)))
        starts = rows[1:-1] & ~rows[:-2]
        ends = rows[1:-1] & ~rows[2:]
        # Column-major, each column's starts and ends alternate: pair them into runs.
        start_x, start_y = np.nonzero(starts.T)
        _, end_y = np.nonzero(ends.T)
        self.min_rows = max(1, int(math.ceil(h / 2)))
        tall_enough = end_y - start_y + 1 >= self.min_rows
        marks = np.zeros(inked.shape, np.uint8)
        marks[start_y[tall_enough], start_x[tall_enough]] = 1
        self.summed = cv2.integral(marks)

    def count(self, x: int, y0: int, y1: int) -> int:
        """Lines starting in column x's rows y0.. with half an h of them above y1."""
        y1 = max(y0, min(y1 - self.min_rows + 1, self.summed.shape[0] - 1))
        s = self.summed
        return int(s[y1, x + 1] - s[y0, x + 1] - s[y1, x] + s[y0, x])


def _run_on_while_clear(mask: np.ndarray, closed: np.ndarray) -> None:
    """Each gutter of `mask` carried on up from its top row's columns and down from its bottom
    row's while they stay clear of ink: a column's first and last lines have too few lines
    beside them for a stretch of their own, and had been read with the text above or below."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    for k in range(1, n):
        x, y, w, hh = (int(v) for v in stats[k, :4])
        top = x + np.flatnonzero(labels[y, x:x + w] == k)
        inked = np.flatnonzero(closed[:y, top].any(axis=1))
        mask[(inked[-1] + 1 if inked.size else 0):y, top] = 1
        bottom = x + np.flatnonzero(labels[y + hh - 1, x:x + w] == k)
        inked = np.flatnonzero(closed[y + hh:, bottom].any(axis=1))
        mask[y + hh:y + hh + (inked[0] if inked.size else closed.shape[0]), bottom] = 1


def _clear_runs(inked: np.ndarray, width: int) -> list[tuple[int, int]]:
    """(start, end) of each run of False at least `width` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], inked.astype(np.int8), [1]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= width]


def parted_at_gutters(lines: list[WorkLine], boxes: list[tuple[int, int, int, int]]) -> list[WorkLine]:
    """Each region a gutter runs through, with lines on both sides of it that are not side by
    side, parted in four: the lines above the gutter, left of it, right of it and below it (the
    lines across its middle and those beyond them, by their middle rows; the rest by their
    centres), so the XY cut reads a heading over two columns, each
    column whole, then what runs on below them. The regions had been joined around the gutter's
    ends. Lines side by side across it (most of the shorter side's have a partner at the same
    height: a form's labels and entries, a diary's dates, a table's cells) stay one region, read
    row by row: their rows are the records."""
    next_region = max((line.region for line in lines), default=0) + 1
    for x0, y0, x1, y1 in boxes:
        middle, centre = (x0 + x1) / 2, (y0 + y1) / 2
        by_region: dict[int, list[WorkLine]] = {}
        for line in lines:
            by_region.setdefault(line.region, []).append(line)
        for members in by_region.values():
            # The columns run between the lines across the gutter's middle above and below it (a
            # heading, a closing line), not only along the gutter found: a column's longest line
            # may reach into the channel and end it short.
            across = [line.rows[1] for line in members if line.x0 < middle < line.x1]
            top = max((row for row in across if row < centre), default=-math.inf)
            bottom = min((row for row in across if row >= centre), default=math.inf)
            parts: dict[str, list[WorkLine]] = {}
            for line in members:
                row, crosses = line.rows[1], line.x0 < middle < line.x1
                side = "above" if row <= top or (row < centre and crosses) else \
                    "below" if row >= bottom or crosses else \
                    "left" if (line.x0 + line.x1) / 2 < middle else "right"
                parts.setdefault(side, []).append(line)
            if "left" not in parts or "right" not in parts or _rows_across(parts["left"], parts["right"]):
                continue
            for side in ("left", "right", "below"):
                for line in parts.get(side, []):
                    line.region = next_region
                next_region += 1
    return lines


SIDE_BY_SIDE_SHARE = 0.6  # of the shorter side's lines with a partner level with them: rows, not columns


def _rows_across(left: list[WorkLine], right: list[WorkLine]) -> bool:
    fewer, more = sorted((left, right), key=len)
    paired = sum(any(side_by_side(a.rows, b.rows) for b in more) for a in fewer)
    return paired >= SIDE_BY_SIDE_SHARE * len(fewer)


