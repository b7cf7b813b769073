"""A flat fill around a line image (a data set's padding, a polygon's mask) turned into its paper.

Why: line images from other tools and data sets are often padded to a size with white or black,
or cut along a polygon with white or black outside it. Against the fill, the line's own paper
is a shade of ink: the ink box took in the whole pasted rectangle, and the contrast stretch
turned its paper gray or black. On 300 lines of the harder validation set (seed 7,
hwr-en-small, greedy) padding with white raised the CER from 4.8% to 32% (phone photos 67%),
padding with black to 96%, and a black polygon mask to 22% (bench/bench_fill.py).

How: the border's most common gray level (within FILL_TOLERANCE, for JPEG) is taken for a fill
when at least MIN_BORDER_SHARE of the border is at it; the pixels at that level connected to the
border are the fill. Rows and columns of fill alone are cut off (a pad); fill left within (a
polygon's mask) is set to the paper of the rest (its 90th percentile, as
hwr.documents.linegeom.cut_line fills outside a line's polygon), so the step is gone and the
line reads as if cut from its page. Guards keep a line's own paper from being taken for a fill:
what is left must be a line with paper of its own (ink on white paper, a blot, bold letters or a
lone glyph are not), and the fill must end at a jump (MIN_EDGE_STEP), where paper that a scan
saturates at the border goes on in small steps, or along a rectangle's straight edges (a white
pad around near-white paper).
Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FILL_TOLERANCE = 2  # gray levels: a flat fill saved as JPEG stays within a level or two of its value
MIN_BORDER_SHARE = 0.25  # of the border's pixels at the fill's level
MIN_REST_DENSITY = 0.5  # of the box of what is not fill: a line's own paper (ink alone covers less)
# The median gray-level step from the fill to the pixels along its edge: a pasted fill ends at
# the line's paper or ink, where smooth paper of about the fill's level goes on in small steps.
MIN_EDGE_STEP = 8
RECTANGLE_EDGE = 0.9  # a pad's: on the harder set's paper, noise at the pad's level takes 0-5% of its edge
PAPER_PERCENTILE = 90
# What is left, when darker than the fill, must be a line, paper and ink: its paper
# (PAPER_PERCENTILE) at least this much brighter than its darkest 1%,
MIN_REST_CONTRAST = 32
# at least this share of its box within PAPER_BAND levels of that paper (on the padded and masked
# lines of the harder set 0.15 or more; bold or dense ink on white paper, whose anti-aliased
# edges are all the "paper" left, 0.01-0.06),
MIN_PAPER_SHARE = 0.1
PAPER_BAND = 24
# and at least as wide as it is tall: a glyph alone on white paper is no line in a frame.


@dataclass(frozen=True)
class Fill:
    """A flat fill connected to a line image's border: its gray `level`, its pixels (`mask`) and
    the box of the rest (x0, y0, x1, y1). The same pixels in the image inverted (at 255 - level)."""

    level: int
    mask: np.ndarray
    box: tuple[int, int, int, int]

    def inverted(self) -> Fill:
        """The same fill in the image inverted."""
        return Fill(255 - self.level, self.mask, self.box)

    def rest(self, gray: np.ndarray) -> np.ndarray:
        """The pixels of `gray` that are not fill."""
        return gray[~self.mask]

    def polarity_view(self, gray: np.ndarray) -> np.ndarray:
        """The rest's box, the fill in it set to the rest's own light (PAPER_PERCENTILE) or dark
        (the mirror percentile) level, whichever is on the fill's side of the rest's median:
        the line as its polarity is judged (imaging.light_ink_on_dark). A pad around it swayed
        the test, and so did the step from a mask to the line: a white mask above and below an
        old leaf's paper lay along it as light strokes do. The rest's median instead made the
        ground of bold letters on white paper, whose anti-aliased edges then read as light ink.
        A rest of one shade, no stroke left in it, is a ground whose strokes all joined the fill
        (binarised ink cut tight, padded as light or as dark): the fill in its box is those
        strokes, left as they are."""
        x0, y0, x1, y1 = self.box
        view = gray[y0:y1, x0:x1].copy()
        rest = self.rest(gray)
        if int(rest.max()) - int(rest.min()) < MIN_REST_CONTRAST:
            return view
        dark, middle, light = _percentiles(rest, (100 - PAPER_PERCENTILE, 50, PAPER_PERCENTILE))
        view[self.mask[y0:y1, x0:x1]] = light if self.level >= middle else dark
        return view


def find_fill(gray: np.ndarray) -> Fill | None:
    """The flat fill around a uint8 line image, dark ink on light paper or the other way round,
    or None. Its guards against the line's own paper (line_within, for one polarity) are not
    checked here: a pad whose fill is paper's own shade is told only once the polarity is known."""
    height, width = gray.shape
    if height < 3 or width < 3:
        return None
    border = _border(gray)
    counts = np.bincount(border, minlength=256)
    near_level = np.convolve(counts, np.ones(2 * FILL_TOLERANCE + 1), mode="same")
    around = int(np.argmax(near_level))
    if near_level[around] < MIN_BORDER_SHARE * border.size:
        return None
    # The commonest level itself: the busiest window of a white pad around near-white paper is
    # centred a level or two into the paper (253 for 255), which took the paper's brightest grain.
    low = max(0, around - FILL_TOLERANCE)
    level = low + int(np.argmax(counts[low: around + FILL_TOLERANCE + 1]))
    at_level = (cv2.absdiff(gray, np.full_like(gray, level)) <= FILL_TOLERANCE).astype(np.uint8)
    # The density checked below, of what is neither fill nor at the level within the box of what
    # is not fill, is at most that of the pixels off the level within their own box: most lines
    # (ink on paper of the level) end here, without labelling the image's parts.
    off_level = at_level == 0
    off_rows, off_cols = np.flatnonzero(off_level.any(axis=1)), np.flatnonzero(off_level.any(axis=0))
    if len(off_rows) == 0:
        return None  # all one level: a blank line
    off_box = (off_rows[-1] + 1 - off_rows[0]) * (off_cols[-1] + 1 - off_cols[0])
    if np.count_nonzero(off_level) < MIN_REST_DENSITY * off_box:
        return None  # ink on paper of the fill's own level
    count, labels = cv2.connectedComponents(at_level, connectivity=4)
    touching = np.zeros(count, bool)
    touching[_border(labels)] = True
    touching[0] = False  # label 0: the pixels not at the level
    fill = touching[labels]
    rest = ~fill
    rows, cols = np.flatnonzero(rest.any(axis=1)), np.flatnonzero(rest.any(axis=0))  # not empty: off_level is in it
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    # What is neither fill nor at its level (the inside of an "o" on white paper is at it).
    if (rest & off_level)[y0:y1, x0:x1].mean() < MIN_REST_DENSITY:
        return None  # ink on paper of the fill's own level
    along = cv2.dilate(fill.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & rest
    if (np.median(np.abs(gray[along].astype(np.int16) - level)) < MIN_EDGE_STEP
            and not _pasted_rectangle(rest, (x0, y0, x1, y1))):
        return None  # the paper itself, evenly lit at the border
    return Fill(level, fill, (x0, y0, x1, y1))


def _pasted_rectangle(rest: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether what is not fill is a rectangle inside the image (the fill a pad around it): its
    box leaves a margin and the box's own edges are RECTANGLE_EDGE of it or more. Near-white paper
    in a white pad ends at a step of a few levels, as paper that a scan saturates does, but
    along straight edges; saturated paper ends where the light falls off, and its box's edges
    are mostly fill. (Left in, the pad set the paper's level: the paper's grain became ink.)"""
    x0, y0, x1, y1 = box
    height, width = rest.shape
    if (x0, y0, x1, y1) == (0, 0, width, height) or x1 - x0 < 3 or y1 - y0 < 3:
        return False
    return _border(rest[y0:y1, x0:x1]).mean() >= RECTANGLE_EDGE


def line_within(gray: np.ndarray, fill: Fill) -> bool:
    """Whether what `fill` leaves of `gray` (dark ink on light paper) is a line with paper of its
    own, so the fill was pasted around it, not the paper of the line itself."""
    ink, paper = _percentiles(fill.rest(gray), (1, PAPER_PERCENTILE))
    x0, y0, x1, y1 = fill.box
    if paper >= fill.level and (paper - ink >= MIN_REST_CONTRAST or fill.mask[y0:y1, x0:x1].any()):
        # (Of one shade, brighter: paper whose ink all touched its edge, joining a fill as dark,
        # and lying in the rest's box. A solid block with none is a blot: a black box on a white
        # page, inverted, had read as a negative's ground.)
        return True
    if paper - ink < MIN_REST_CONTRAST:
        return False  # one shade darker than the fill: ink (a blot, a bar) on paper of its level
    box = gray[y0:y1, x0:x1]
    near_paper = (np.abs(box.astype(np.int16) - paper) <= PAPER_BAND) & ~fill.mask[y0:y1, x0:x1]
    return near_paper.mean() >= MIN_PAPER_SHARE and x1 - x0 >= y1 - y0  # not bold or dense letters, or a glyph alone


def around_a_line(gray: np.ndarray, fill: Fill) -> bool:
    """Whether `fill` was pasted around a line of `gray` written either way round: what it leaves
    is at least as wide as it is tall and a line with paper of its own (line_within) in `gray`
    or in `gray` inverted. (Dark letters alone on white paper pass inverted: light strokes, and
    their black "fill" is darker than any paper.)"""
    x0, y0, x1, y1 = fill.box
    return x1 - x0 >= y1 - y0 and (line_within(gray, fill) or line_within(255 - gray, fill.inverted()))


def fill_to_paper(gray: np.ndarray) -> tuple[np.ndarray, int, int]:
    """uint8 gray, dark ink on light paper -> (the image without a flat fill connected to its
    border, x and y of its first pixel in `gray`). Rows and columns of fill alone at the edges
    (padding) are cut off (what is left is the line's own image, paper and all: normalisation
    finds its margin there); fill left within (a polygon's mask) is set to the paper of the
    rest. The image itself, at (0, 0), when it has no such fill."""
    return paper_for_fill(gray, find_fill(gray))


def paper_for_fill(gray: np.ndarray, fill: Fill | None) -> tuple[np.ndarray, int, int]:
    """fill_to_paper with the fill of `gray` already found (find_fill)."""
    if fill is None or not line_within(gray, fill):
        return gray, 0, 0
    ink, paper = _percentiles(fill.rest(gray), (1, PAPER_PERCENTILE))
    x0, y0, x1, y1 = fill.box
    out = gray[y0:y1, x0:x1].copy()
    inner_fill = fill.mask[y0:y1, x0:x1]
    # A mask runs along the edges left (above and below a polygon's band); a pad leaves none, but
    # for strokes that touched the padded image's edge at the fill's level (black ink, black
    # padding), which stay ink. Ink as dark as the fill is never painted over: strokes that touch
    # a black mask join it (a binarised line read "He oWorl , a I" for "Hello World, gladly").
    if _border(inner_fill).mean() >= MIN_BORDER_SHARE and abs(ink - fill.level) > FILL_TOLERANCE:
        out[inner_fill] = paper
    return out, x0, y0


def _percentiles(values: np.ndarray, percents: tuple[float, ...]) -> list[int]:
    """Gray levels of uint8 `values` at these percentiles (the lowest level reaching each share)."""
    cumulative = np.cumsum(np.bincount(values, minlength=256))
    return [int(np.searchsorted(cumulative, percent / 100 * cumulative[-1])) for percent in percents]


def _border(image: np.ndarray) -> np.ndarray:
    """The pixels along an image's edges, each once (an image of one row or column: twice)."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
