"""Ruling: the rules of ruled paper, margin lines and table borders found and taken out of a
binary page (step 4 of hwr.documents.segment), and a table's inner borders among them, which
part the text on either side into cells.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def remove_rules(binary: np.ndarray, min_length: float, max_tilt_deg: float = 0.0, crossing_run: int = 0
                 ) -> np.ndarray:
    """Remove straight horizontal and vertical runs longer than min_length (ruled paper,
    margin lines, table borders); writing crossing a rule loses only the rule's pixels.

    max_tilt_deg: also find rules up to this far off the axes. A page's rules are rarely
    exactly parallel to its writing (photographed or loose sheets, a deskew a fraction of a
    degree off), and a one-pixel rule one degree off is a staircase of runs about 60 pixels
    long, shorter than any min_length that spares the writing.

    crossing_run: ink that runs across a rule for at least this many pixels is a stroke
    crossing it (a descender through the rule below) and keeps its pixels; without this the
    stroke is cut in two and its lower part is found as a line of its own."""
    out = binary
    for vertical in (False, True):
        image = np.ascontiguousarray(binary.T) if vertical else binary
        length = min(int(min_length), image.shape[1] // 2)
        if length < 10:
            continue
        runs = np.zeros_like(image)
        for slope in _rule_slopes(length, max_tilt_deg):
            runs |= _straight_runs(image, length, slope, slack=max_tilt_deg > 0.0)
        if max_tilt_deg > 0.0 and not vertical:
            runs |= _page_wide_rows(image, max_tilt_deg)
        if runs.any():
            runs = _rule_rows(image, cv2.dilate(runs, np.ones((3, 3), np.uint8)))
            if crossing_run > 1:
                runs &= 1 - _crossing_strokes(image, runs, crossing_run)
            out = out & (1 - (runs.T if vertical else runs))
    return out


def _rule_rows(image: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The band's ink that is the rules' own: in each piece of the band, the rows its ink takes
    in the columns where nothing else touches it (as many rows as in most of its columns, the
    rule's thickness), carried across the columns where writing overlaps it.

    The band is wider than the rule: the searches take a pixel of slack each way, and a page-wide
    row sheared across a level rule takes the ink of the rows beside it. Removed whole, it took up
    to five rows of the letters sitting on a rule (on synthetic ruled pages, a band 10-11 rows high
    round a rule 2-3 rows thick, the x-height 8-10 rows) and cut their bodies into a strip above the
    rule and a strip below it: two cores, side by side in x, which no step joins again, so a line
    came out as two. On 180 synthetic validation pages (bench/bench_segment.py; with crossing
    strokes kept in without_page_rules too): lines found 1,477 -> 1,449, of them matching no line
    57 -> 25, matched 1,420 -> 1,424 of 1,448, pages with the exact line count 155 -> 164; no page
    worse."""
    ink = image & band
    ys, xs = np.nonzero(ink)
    if ys.size == 0:
        return ink
    _, pieces = cv2.connectedComponents(band, connectivity=8)
    width = image.shape[1]
    key = pieces[ys, xs].astype(np.int64) * width + xs
    order = np.lexsort((ys, key))
    key, ys, xs = key[order], ys[order], xs[order]
    columns, first, count = np.unique(key, return_index=True, return_counts=True)
    top, bottom = ys[first], ys[first + count - 1]
    span = bottom - top + 1
    piece_of = columns // width
    low, high = np.empty(len(ys), np.float64), np.empty(len(ys), np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(piece_of)) + 1, len(columns)]
    for a, b in zip(starts[:-1], starts[1:]):
        cols = columns[a:b] % width
        thickness = int(np.bincount(span[a:b]).argmax())
        # A column a pixel thicker is still the rule's own: a tilted rule's step, a ragged edge.
        clean = span[a:b] <= thickness + 1
        pixels = slice(first[a], first[b - 1] + count[b - 1])
        # Half a pixel of slack: a rule stepping a row under a word is half-way at its middle.
        low[pixels] = np.interp(xs[pixels], cols[clean], top[a:b][clean]) - 0.5
        high[pixels] = np.interp(xs[pixels], cols[clean], bottom[a:b][clean]) + 0.5
    own = (ys >= low) & (ys <= high)
    out = np.zeros_like(ink)
    out[ys[own], xs[own]] = 1
    return out


def _page_wide_rows(image: np.ndarray, max_tilt_deg: float, coverage: float = 0.6) -> np.ndarray:
    """Ink of rows (straight, up to max_tilt_deg off level) inked across most of the page's
    width: the rules of ruled paper, however binarisation cut them. A thin rule a fraction of a
    degree off the page's axes is grey where it steps from one pixel row to the next (two rows
    at half its darkness) and falls into pieces there, each shorter than any rule; a row of
    writing never covers most of a page's width."""
    h, w = image.shape
    out = np.zeros_like(image)
    ys, xs = np.nonzero(image)
    if ys.size == 0:
        return out
    # Slopes one row's drift over the page's width apart, each at two phases of its steps: a
    # rule's own steps fall within a quarter of a column period of one of them, so at least
    # three quarters of it lands in one row.
    n = int(math.tan(math.radians(max_tilt_deg)) * w)
    # Rows are looked for in every fourth column (a rule covers those as it covers the others),
    # at a quarter of the cost; their ink is then taken in every column.
    sampled = xs % 4 == 0
    sample_ys, sample_xs = ys[sampled], xs[sampled].astype(np.float32) / w
    columns = len(range(0, w, 4))
    for k in range(-n, n + 1):
        for phase in (0.0, 0.5):
            rows = sample_ys - np.floor(sample_xs * k + phase).astype(np.int64) + n + 1
            ruled = np.flatnonzero(np.bincount(rows) >= coverage * columns)  # one pixel per column and row
            if ruled.size:
                all_rows = ys - np.floor(xs.astype(np.float32) / w * k + phase).astype(np.int64) + n + 1
                hit = np.isin(all_rows, ruled)
                out[ys[hit], xs[hit]] = 1
    return out


def _rule_slopes(length: int, max_tilt_deg: float) -> list[float]:
    """Slopes to search: two pixels apart over a run of `length` (_straight_runs tolerates a
    rule one pixel off), 0 alone when no tilt is allowed."""
    if max_tilt_deg <= 0.0:
        return [0.0]
    step = 2.0 / length
    n = int(math.tan(math.radians(max_tilt_deg)) / step)
    return [k * step for k in range(-n, n + 1)]


def _crossing_strokes(image: np.ndarray, band: np.ndarray, run: int) -> np.ndarray:
    """The band's ink that continues, straight up or down, a stroke reaching at least `run`
    pixels beyond the band, however thick the rule (ink running `run` pixels across the band
    alone would keep a rule of that thickness whole)."""
    outside = image & (1 - band)
    strokes = cv2.morphologyEx(outside, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, run)))
    inside = image & band
    grown, step = np.zeros_like(inside), np.ones((3, 1), np.uint8)
    # Grow from the strokes into the band's ink a row at a time (a rule is a few rows thick).
    for _ in range(4 * run):
        nxt = cv2.dilate(strokes | grown, step) & inside
        if np.array_equal(nxt, grown):
            break
        grown = nxt
    return grown


def _straight_runs(image: np.ndarray, length: int, slope: float, slack: bool = False) -> np.ndarray:
    """Pixels of horizontal-ish runs at least `length` long along `slope` (rows per column)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    h, w = image.shape
    # Shear the rows so that a rule of this slope runs horizontally: y' = y - slope * x + offset.
    offset = max(0.0, slope * (w - 1))
    shear = np.float32([[1, 0, 0], [-slope, 1, offset]])
    size = (w, h + int(math.ceil(abs(slope) * (w - 1))))
    sheared = cv2.warpAffine(image, shear, size, flags=cv2.INTER_NEAREST) if slope else image
    if slack:
        # A rule a pixel off the searched slope is a staircase of one step, and the nearest-
        # pixel shear drops the odd column: a pixel of slack each way joins it; the image's
        # own pixels within that slack of the run are kept. (The slack can take a few
        # baseline pixels of a long cursive word too; a narrower one left pieces of faint
        # rules on the ruled pencil test page.)
        slack_px = np.ones((3, 3), np.uint8)
        runs = cv2.morphologyEx(cv2.dilate(sheared, slack_px), cv2.MORPH_OPEN, kernel)
        runs = cv2.dilate(runs, slack_px) & sheared
    else:
        runs = cv2.morphologyEx(sheared, cv2.MORPH_OPEN, kernel)
    if not slope:
        return runs
    return cv2.warpAffine(runs, shear, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)


def table_borders(rules: np.ndarray, h: float) -> np.ndarray:
    """A table's inner borders among the rules removed from a page, a pixel wider on each side:
    upright runs two text heights tall or more (an opening with a column) whose both ends meet a
    level rule, as a ruled table's do. A notebook's margin rule runs on past the writing, and
    text written across it stays one line; level rules may run through letters, and stay out."""
    widened = cv2.dilate(rules.astype(np.uint8), np.ones((1, 3), np.uint8))
    upright = cv2.morphologyEx(widened, cv2.MORPH_OPEN, np.ones((max(3, int(2 * h)), 1), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(upright, connectivity=8)
    reach = max(2, int(h))
    boxed = np.zeros(n, np.uint8)
    for k in range(1, n):
        x, y, w, hh = (int(v) for v in stats[k, :4])
        boxed[k] = all(_level_rule_at(rules, x, w, row, reach) for row in (y, y + hh - 1))
    return boxed[labels]


def _level_rule_at(rules: np.ndarray, x: int, width: int, row: int, reach: int) -> bool:
    """Whether rule pixels run `reach` or more beside columns x..x+width, near `row`."""
    band = rules[max(0, row - 2):row + 3]
    left = band[:, max(0, x - reach):x].any(axis=0).sum()
    right = band[:, x + width:x + width + reach].any(axis=0).sum()
    return max(left, right) >= reach


