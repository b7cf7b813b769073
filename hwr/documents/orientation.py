"""Pages scanned sideways or upside down: which way the text runs, and the page read that way.

A sideways page segmented as it lies gave ten times its lines (each a few letters of one
column) and an upside-down page was read as garbage: 4 synthetic pages of 24 lines read at
2.2% CER upright, 110% turned a quarter and 91% turned half. Scanners, phones and PDFs
turn pages this way often (a landscape letter, a page fed in reversed), and Tesseract's
users have its orientation detection (OSD) for it.

`analyse_upright` decides the turn, segments the page turned upright (hwr.documents.segment)
and gives the lines back in the pixels of the page as it was given, so every output
(PAGE XML, ALTO, JSON, the UI's boxes) still lies on the user's image. Each line's baseline
then runs the way its text reads (up the page on a page turned a quarter clockwise):
`PageLayout.turn` and `Page.orientation` say so, and the line frame (hwr.documents.linegeom)
follows it to cut the line upright.

Two cues, both cheap and torch-free (a page worker decides, not the network):

- Sideways or not: text lines make the ink profile across them sharp at the scale of a
  letter (ink, then the gap between lines), while the profile along them, summed over
  several lines, is flat. `_structure` is the profile's energy against its own blur over four
  letter heights, so it does not depend on the text block's shape (a tall narrow column
  has more rows than columns). A page is turned only when the profile along the page's
  columns is SIDEWAYS_MARGIN times as sharp as along its rows.
- Upright or upside down: in Latin script more ink reaches above the x-height band
  (ascenders, capitals, digits, i-dots) than below it (descenders), so a line's ink rows
  trail off upwards from the dense band; upside down, downwards (`ascender_skew`). A page is
  turned half only when this agrees with a third cue, the margins: lines start at an aligned
  left margin and end ragged (`margin_alignment`), so a page of fewer than three lines, or of
  capitals or digits, or right-aligned, stays as it is.
"""
from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from hwr.documents.linegeom import cut_line, reading_direction
from hwr.documents.page_ink import measure_binary
from hwr.documents.rules import remove_rules
from hwr.documents.segment import PageLayout, SegmentConfig, analyse_page
from hwr.documents.skew import estimate_skew
from hwr.recognition.noise import without_pepper
from hwr.records import Line

ORIENTATIONS = ("auto", "0", "90", "180", "270")  # --orientation: clockwise degrees to turn, or auto
# On 24 synthetic validation pages (1 to 12 lines, every capture condition) the profile across
# upright text lines was at least 1.1 times as sharp as along them (median 1.8); bench_orientation
# finds every one of 180 upright pages kept and 360 turned a quarter found at this margin.
SIDEWAYS_MARGIN = 1.3
# The skewness of the lines' ink rows (ascender_skew) on 28 synthetic validation pages: upright
# -0.32 to +0.07 (median -0.08), the same pages upside down the mirror image.
UPSIDE_DOWN_SKEW = 0.08
SKEW_QUANTILE = 0.05
MIN_LINE_INK = 20  # pixels
# Margins: on 25 synthetic validation pages of 3 to 12 lines the lines' ends spread 2 to 170
# times as far as their starts (median absolute deviations, plus MARGIN_SLACK text heights).
MIN_LINES_FOR_MARGINS = 3
MARGIN_SLACK = 0.25
MARGIN_RATIO = 3.0  # ends this much more spread than starts (or the reverse) is clear evidence
FLIP_SKEW_EVIDENCE = 0.25  # the skew evidence (in units of UPSIDE_DOWN_SKEW) half a turn needs beside the margins
MAX_LINES_MEASURED = 12  # the longest lines of a page say enough of its ascenders
SIDEWAYS_MAX_ASPECT = 2.5  # width / height above which an image is never taken for sideways
SIDEWAYS_LETTER_PX = 8.0  # letter size the sideways test looks at (the measuring copy is reduced to it)
STRUCTURE_WINDOW = 4.0  # x the letter size: the blur the profiles are compared with
SKEW_SEARCH_DEG = 10.0


def parse_orientation(value: str | int) -> str:
    """An --orientation value as ORIENTATIONS spells it; ValueError naming the choices."""
    text = str(value).strip().lower()
    if text not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {', '.join(ORIENTATIONS)}, not {value!r}")
    return text


def given_turn(orientation: str) -> int:
    """The clockwise turn an --orientation value fixes; 0 for "auto" (which decides per page)."""
    orientation = parse_orientation(orientation)
    return 0 if orientation == "auto" else int(orientation)


# --- turning pixels and points --------------------------------------------------------------

def turned(gray: np.ndarray, turn: int) -> np.ndarray:
    """The image turned `turn` degrees clockwise (a multiple of 90)."""
    if turn % 360 == 0:
        return gray
    return np.ascontiguousarray(np.rot90(gray, -(turn // 90)))


def points_back(points, turn: int, width: int, height: int) -> list[tuple[int, int]]:
    """Pixels of the image turned `turn` degrees clockwise -> the same pixels in the image as
    given (`width` x `height`). Pixel centres map onto pixel centres: exact."""
    out = []
    for x, y in points:
        if turn == 90:  # turned (x', y') came from (y', height - 1 - x')
            x, y = y, height - 1 - x
        elif turn == 180:
            x, y = width - 1 - x, height - 1 - y
        elif turn == 270:
            x, y = width - 1 - y, x
        out.append((int(x), int(y)))
    return out


def line_back(line: Line, turn: int, width: int, height: int) -> Line:
    """A line found on the turned image, in the pixels of the image as given."""
    if turn == 0:
        return line
    x0, y0, x1, y1 = line.bbox
    corners = points_back([(x0, y0), (x1 - 1, y1 - 1)], turn, width, height)
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    return replace(line, polygon=points_back(line.polygon, turn, width, height),
                   baseline=points_back(line.baseline, turn, width, height),
                   bbox=(min(xs), min(ys), max(xs) + 1, max(ys) + 1))


def baseline_turn(line: Line) -> int:
    """The turn whose reading direction (linegeom.reading_direction) the line's baseline runs
    nearest to: 0 for a level line, 90 for one that reads up the page."""
    if len(line.baseline) < 2:
        return 0
    d = np.asarray(line.baseline[-1], np.float64) - np.asarray(line.baseline[0], np.float64)
    return max((0, 90, 180, 270), key=lambda turn: float(d @ reading_direction(turn)))


# --- the decision ---------------------------------------------------------------------------

def analyse_upright(gray: np.ndarray, config: SegmentConfig | None = None, orientation: str = "auto") -> PageLayout:
    """`analyse_page` of the page turned so its text reads upright (`orientation`: "auto", or
    the clockwise degrees to turn it), with the lines in the pixels of `gray` as given and
    `turn` saying how it was turned."""
    orientation = parse_orientation(orientation)
    if orientation != "auto":
        return _analysed(gray, int(orientation), config)
    # As analyse_page sees the page (which then finds no specks left): the binary image it
    # measures the text on tells the direction too, and is turned with the page, not redone.
    gray = without_pepper(gray)
    measured = measure_binary(gray)
    # An image far wider than tall is a line or a strip of them as it lies: its letters' own
    # strokes had made two line images of the harder set look sideways (a page turned a quarter
    # is at most about twice as wide as tall).
    sideways = gray.shape[1] <= SIDEWAYS_MAX_ASPECT * gray.shape[0] and looks_sideways(measured)
    layout = _analysed(gray, 90 if sideways else 0, config, measured)
    margins = margin_evidence(layout)
    if sideways:
        # Turned a quarter one way or the other: whichever reads upright, even on thin evidence
        # (as the page lies it is certainly unreadable).
        upright = skew_evidence(gray, layout) + margins >= 0.0
        return layout if upright else _analysed(gray, 270, config, measured)
    # An upright page turned by mistake is read as garbage, so half a turn needs both cues to
    # agree, on a page of MIN_LINES_FOR_MARGINS lines or more: the skew alone turned about 1 in
    # 25 upright pages of one or two lines, and the margins alone 13 of 24 pages of right-aligned
    # text (now 2; the skew of 21 of 30 upside-down pages says so clearly enough, the margins of 29).
    # The margins come from the outlines alone; the lines are cut to measure their ink's skew only
    # when the margins say upside down, not on every upright page.
    if margins <= -1.0 and skew_evidence(gray, layout) <= -FLIP_SKEW_EVIDENCE:
        return _analysed(gray, 180, config, measured)
    return layout


def skew_evidence(gray: np.ndarray, layout: PageLayout) -> float:
    """The lines' ink skew (ascender_skew) as evidence that the page reads upright as `layout`
    has it: positive upright, negative upside down, one unit clear evidence; 0 with no ink."""
    skew = ascender_skew(gray, layout.lines, layout.turn)
    return 0.0 if skew is None else float(np.clip(-skew / UPSIDE_DOWN_SKEW, -2.0, 2.0))


def margin_evidence(layout: PageLayout) -> float:
    """The margins (margin_alignment) as the same evidence; 0 under MIN_LINES_FOR_MARGINS lines."""
    margins = margin_alignment(layout.lines, layout.turn, layout.text_height)
    return 0.0 if margins is None else float(np.clip(margins / math.log(MARGIN_RATIO), -2.0, 2.0))


def margin_alignment(lines: list[Line], turn: int, text_height: float) -> float | None:
    """log(spread of the lines' ends / spread of their starts) along the reading direction:
    positive on a page written from an aligned left margin with a ragged right one (the
    spread is the median absolute deviation, so an indented first line or a short last one
    does not count). None under MIN_LINES_FOR_MARGINS lines."""
    if len(lines) < MIN_LINES_FOR_MARGINS:
        return None
    u = reading_direction(turn)
    along = [np.asarray(line.polygon, np.float64).reshape(-1, 2) @ u for line in lines]
    starts = np.array([a.min() for a in along])
    ends = np.array([a.max() for a in along])
    slack = MARGIN_SLACK * max(text_height, 1.0)  # a scan's own jitter: aligned margins differ by this much
    return math.log((_spread(ends) + slack) / (_spread(starts) + slack))


def _spread(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def _analysed(gray: np.ndarray, turn: int, config: SegmentConfig | None, measured: np.ndarray | None = None
              ) -> PageLayout:
    layout = analyse_page(turned(gray, turn), config, None if measured is None else turned(measured, turn))
    height, width = gray.shape[:2]
    return replace(layout, lines=[line_back(line, turn, width, height) for line in layout.lines], turn=turn)


def looks_sideways(binary: np.ndarray) -> bool:
    """Whether the text lines of a page's binary image (page_ink.measure_binary) run down it
    (turned a quarter) rather than across."""
    size = letter_size(binary)
    if size is None:
        return False
    # At SIDEWAYS_LETTER_PX letters still make their lines' profile, and rule removal costs a
    # tenth of what it does on the measuring copy (the whole test ~18 ms a page). At 5 px, one of
    # 48 sideways pages and a tenth of the short ones were no longer found.
    scale = min(1.0, SIDEWAYS_LETTER_PX / size)
    if scale < 1.0:
        h, w = binary.shape
        small = cv2.resize(binary * np.uint8(255), (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        binary, size = (small > 64).astype(np.uint8), size * scale
    binary = without_long_strokes(binary, size)
    across = _structure(_sharpest_profile(binary), size)
    along = _structure(_sharpest_profile(np.ascontiguousarray(binary.T)), size)
    return along > SIDEWAYS_MARGIN * across


def letter_size(binary: np.ndarray) -> float | None:
    """The median of the ink components' smaller side: a letter's size whichever way the page
    lies (the height alone is a whole word's length on a sideways page of joined writing)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    heights, widths, areas = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_AREA]
    keep = (areas >= 12) & (np.maximum(heights, widths) >= 4)
    return float(np.median(np.minimum(heights, widths)[keep])) if keep.any() else None


def without_long_strokes(binary: np.ndarray, size: float) -> np.ndarray:
    """The binary image without rules, found as the segmenter finds them once it has deskewed
    (up to a few degrees off the axes): a margin line a degree or two off plumb (measure_binary
    removes only level and plumb ones) made the profile along it the sharpest, and an upright
    page was turned."""
    config = SegmentConfig()
    return remove_rules(binary, config.rule_min_length * size, config.rule_max_tilt_deg,
                        round(config.rule_crossing_run * size))


def _sharpest_profile(binary: np.ndarray) -> np.ndarray:
    """The row profile of the ink, deskewed (the text may lie a few degrees off the axes)."""
    angle = estimate_skew(binary, SKEW_SEARCH_DEG)
    if angle != 0.0:
        h, w = binary.shape
        matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
        binary = cv2.warpAffine(binary, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    return binary.sum(axis=1).astype(np.float64)


def _structure(profile: np.ndarray, size: float) -> float:
    """The profile's energy over that of its blur across STRUCTURE_WINDOW letters: how much of
    it is line-sized peaks and gaps."""
    k = max(3, int(round(STRUCTURE_WINDOW * size)) | 1)
    blurred = np.convolve(profile, np.full(k, 1.0 / k), mode="same")
    return float(profile @ profile) / max(float(blurred @ blurred), 1e-9)


def ascender_skew(gray: np.ndarray, lines: list[Line], turn: int) -> float | None:
    """How far the page's lines' ink leans down (positive) or up (negative, upright Latin
    text) from its middle row: the quantile skewness of each line's ink rows, weighted by its
    ink, over the page's longest lines cut upright (None: no line with ink)."""
    longest = sorted(lines, key=lambda line: -max(line.bbox[2] - line.bbox[0], line.bbox[3] - line.bbox[1]))
    skews, weights = [], []
    for line in longest[:MAX_LINES_MEASURED]:
        measured = _row_skew(cut_line(gray, line, turn=turn))
        if measured is not None:
            skews.append(measured[0])
            weights.append(measured[1])
    return float(np.average(skews, weights=weights)) if skews else None


def _row_skew(crop: np.ndarray) -> tuple[float, float] | None:
    """(Bowley's skewness of the ink's rows between their SKEW_QUANTILE and 1 - SKEW_QUANTILE
    quantiles, the ink's pixel count); None for a line with too little ink to say. Quantiles,
    not moments: a neighbour's descender caught in the outline must not decide."""
    _, ink = cv2.threshold(crop, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    profile = ink.sum(axis=1).astype(np.float64)
    total = profile.sum()
    if total < MIN_LINE_INK:
        return None
    cumulative = np.cumsum(profile) / total
    low, middle, high = np.searchsorted(cumulative, [SKEW_QUANTILE, 0.5, 1.0 - SKEW_QUANTILE])
    if high - low < 2:
        return None
    return float(high + low - 2 * middle) / float(high - low), float(total)
