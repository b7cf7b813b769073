"""Paper and ink: a page binarised for segmentation, and the size of its writing.

Step 1-2 of hwr.documents.segment: solid dark parts at the page's edge (a scanner's border, a
desk) filled with the paper around them, the background evened out and Otsu's split (plus whole
strokes of fainter ink), page-long rules taken out before the text is measured, and the text
size `h` every other size of the segmenter is a multiple of.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from hwr.documents.rules import remove_rules
from hwr.recognition.noise import smoothed

MEASURE_SIDE = 1000  # px: the text is first measured on a copy this size (reduction_to)


def reduction_to(side: int, height: int, width: int) -> float:
    """The scale (at most 1) that brings a page's longest side to `side` px, or, for a page more
    than twice as long as wide (a receipt, a scroll, a strip of one long line), its area to half
    a square of that side: by the longest side alone a 600 x 12,000 receipt was shrunk until its
    text was a pixel high, and read as blank. Pages up to twice as long as wide (A4, letter,
    a spread) are reduced as before."""
    return min(1.0, max(side / max(height, width), side / math.sqrt(2.0 * height * width)))


def reduced(gray: np.ndarray, scale: float) -> np.ndarray:
    """The page scaled down by `scale` (area interpolation); as it is for a scale of 1 or more."""
    if scale >= 1.0:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def measure_binary(gray: np.ndarray) -> np.ndarray:
    """The page reduced to MEASURE_SIDE (reduction_to), binarised, without its page-long rules:
    what the text is first measured on (and hwr.documents.orientation tells its direction from)."""
    height, width = gray.shape
    return without_page_rules(binarize(reduced(gray, reduction_to(MEASURE_SIDE, height, width))))


DARK_INK = 2.0  # x Otsu's threshold: ink this dark is a page's typical ink, not a faint line


def binarize(gray: np.ndarray) -> np.ndarray:
    """uint8 0/1 ink mask: background normalised by a dilated (ink-free) page, then Otsu."""
    gray = without_dark_borders(smoothed(gray))
    side = min(gray.shape)
    k = max(15, (side // 60) | 1)
    # A grey dilation wider than any stroke removes the ink and keeps the paper's shading. Taken
    # over a 5 x 5 median, not the pixels: on a grainy leaf the dilation found the brightest
    # grain in every window, the paper measured a grain's height too bright, so all of it read
    # as faintly dark and Otsu split the grain (12 synthetic archive pages, 89 lines: 1,300 lines
    # found, 36 right; with the median 511 and 67; 180 clean pages: 1,435 of 1,448 lines matched
    # against 1,436, 163 exact line counts against 166).
    background = cv2.dilate(cv2.medianBlur(gray, 5), cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    background = cv2.blur(background, (k, k))
    darkness = 1.0 - gray.astype(np.float32) / np.maximum(background.astype(np.float32), 1.0)
    darkness = np.clip(darkness * 255.0, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(darkness, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    floor = _ink_floor(darkness)
    threshold = max(otsu, floor)
    ink = darkness > threshold
    # Otsu splits paper from the page's typical ink, and a line in fainter ink (a light pencil,
    # a drying pen) fell apart into the few pieces above it. Ink up to a quarter fainter is
    # added where it forms pieces with no clearly dark ink (DARK_INK): whole faint strokes,
    # never the soft edges of dark ones, which would join touching lines. On 36 synthetic
    # validation pages this step takes the pages whose lines are counted exactly from 21 to
    # 23 and the lines matched from 256 to 259 of 280.
    faint = (darkness > max(0.75 * otsu, floor)).astype(np.uint8)
    if faint.sum() > ink.sum():
        _, pieces, stats, _ = cv2.connectedComponentsWithStats(faint, connectivity=8)
        # Not added: pieces with dark ink, and thin streaks (pieces of a faint printed rule,
        # which rule removal would not see whole).
        heights, widths = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
        skip = (heights < 4) | (widths > 8 * heights)
        skip[pieces[darkness > DARK_INK * otsu]] = True
        ink |= (pieces > 0) & ~skip[pieces]
    return ink.astype(np.uint8)


BORDER_DARKNESS = 0.5  # x the paper's brightness: darker is a scanner's border or the table around a page
BORDER_DIM = 0.8  # x the paper's brightness: a border reaches on into what is this dark (a desk lit unevenly)
BORDER_SOLID = 0.01  # x the shorter side: dark parts this thick throughout are not pen strokes
BORDER_INK_STEP = 24  # grey levels (and a quarter of its ground) below its ground: writing in a dark part
BORDER_MAX_WRITING = 0.005  # share of a dark part that may look like writing for it to be filled
PAPER_MIN_SHARE = 0.02  # the light side of a photo's tones, when it is this much of it, can be a page on a desk


def paper_level(gray: np.ndarray) -> float:
    """The paper's brightness: the 90th percentile of the image, or where the light side of its
    tones (above Otsu's split) is under a fifth of it but at least PAPER_MIN_SHARE, the median
    of that side if brighter. The 90th percentile of a photo in which a page is under a tenth
    measured the desk the page lies on."""
    sample = np.ascontiguousarray(gray[::4, ::4])
    level = float(np.percentile(sample, 90))
    split, _ = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = sample[sample > split]
    if light.size >= PAPER_MIN_SHARE * sample.size:
        level = max(level, float(np.median(light)))
    return level


def without_dark_borders(gray: np.ndarray) -> np.ndarray:
    """The (reduced) page with the solid dark parts that touch its edge filled with paper: a
    scanner's black border, the bed or the table around a page, the dark corners of a page
    scanned askew, the band beyond a book's edge. Each had been binarised as one huge piece of
    ink, and cut into lines with whatever writing touched it: on 12 synthetic validation pages
    (89 lines) a black frame 3% of the page wide gave 203 lines, 69 of them right; dark corners
    210 (81); dark bands on both sides 121 (83); now 89 (89) each. Six pages read by the shipped
    stage (greedy): page CER 34.9% framed, 25.3% with dark corners; now 3.0%, as clean.

    Solid means the part survives an opening as thick as BORDER_SOLID of the page's shorter
    side, which no pen stroke is at the scale the segmenter works at; and it must hold no
    writing (a shadow, a grey page, a coloured band written on stay as they were). Such a part
    darker than BORDER_DARKNESS of the paper reaches on into the solid unwritten parts beside it
    down to BORDER_DIM: a desk lit unevenly crossed the first line somewhere, and the step
    between the part filled and the part left was cut into a column of short lines (12 pages on
    a desk 40-60 grey levels lighter by 25 across: 125 lines found for 89)."""
    height, width = gray.shape
    paper = paper_level(gray)
    side = max(3, round(BORDER_SOLID * min(height, width)) | 1)
    dark = cv2.compare(gray, BORDER_DARKNESS * paper, cv2.CMP_LT)
    border = _unwritten_solid_parts(gray, dark, side, at_edge=True)
    if not border.any():
        return gray
    # Only across even tone: a sheet's edge (a step over 5 px, the reduction blurs it) stops it,
    # so that a shadow on the sheet, written on, is not judged with the desk, whose area its
    # writing would vanish in.
    # That edge cuts the strokes out of written paper too, so writing is looked for in all the
    # dim pixels each part joins (a review: a grey page beside a white one, its text cut out,
    # had looked unwritten and been painted over; a soft shadow's unwritten strips had been
    # painted, and the steps left beside its lines cut them).
    dim = cv2.compare(gray, BORDER_DIM * paper, cv2.CMP_LT)
    even = dim.copy()
    even[cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > BORDER_INK_STEP] = 0
    border = cv2.bitwise_or(border, _unwritten_solid_parts(gray, even, side, touching=border, judged_in=dim))
    dark = cv2.bitwise_or(dark, cv2.bitwise_and(dim, border))
    # Grown back into the dark pixels it lost to the opening (a corner's thin tips, a frame's
    # inner corners) and by 2 px or a third of the opening all round (its soft edge, blurred by the
    # reduction): those were left as short lines of their own.
    tips = cv2.bitwise_and(cv2.dilate(border, np.ones((2 * side + 1,) * 2, np.uint8)), dark)
    border = cv2.bitwise_or(cv2.dilate(border, np.ones((max(5, side // 3 * 2 + 1),) * 2, np.uint8)), tips)
    # Filled with the paper around it, not one grey: the page's shading ran into a sheer step
    # at the border, which binarisation took for ink along it.
    own_paper = cv2.bitwise_not(cv2.bitwise_or(border, dark)).astype(np.float32) / 255.0
    fill = paper_behind(gray.astype(np.float32), own_paper, paper)
    out = gray.copy()
    out[border > 0] = np.clip(np.round(fill[border > 0]), 0, 255).astype(np.uint8)
    return out


def _unwritten_solid_parts(gray: np.ndarray, dark: np.ndarray, side: int, at_edge: bool = False,
                           touching: np.ndarray | None = None, judged_in: np.ndarray | None = None) -> np.ndarray:
    """uint8 0/255: the parts of `dark` that survive an opening `side` px wide, hold no writing,
    and touch the image's edge (at_edge) or the mask `touching`. `judged_in`: writing is looked
    for in all of this mask's pixels connected to each part (but for those within 3 px of a
    pixel outside it: a sheet's blurred edge, lighter than the ground beside it, is no writing),
    and counted against the part's own area, so that a large part cannot hide its neighbour's."""
    height, width = gray.shape
    solid = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    if not solid.any():
        return solid
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    keep = np.ones(count, bool)
    if at_edge:
        x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        x1, y1 = x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]
        keep &= (x0 == 0) | (y0 == 0) | (x1 == width) | (y1 == height)
    if touching is not None:
        keep &= np.bincount(labels[touching > 0], minlength=count) > 0
    keep[0] = False
    if not keep.any():
        return np.zeros_like(solid)
    # Only parts with no writing in them: paper in a shadow, a grey page beside a white one, a
    # dark band written on are dark too, and filled they had lost their text (a helper's review:
    # a shadow over 40% of a page, CER 7.7% -> 57.5%). Writing is ink darker than the darkest
    # part's own ground around it, where a scanner's border or a table is even in tone.
    # Looked for 2 px inside the part: its edge, blurred into the paper by the reduction, would
    # be lighter ground beside dark.
    if judged_in is None:
        core = cv2.erode(solid, np.ones((5, 5), np.uint8))
    else:
        core = cv2.erode(judged_in, np.ones((7, 7), np.uint8))
    ground = cv2.dilate(cv2.bitwise_and(gray, core), np.ones((max(7, 2 * side + 1),) * 2, np.uint8))
    below = cv2.subtract(ground, gray).astype(np.float32)
    writing = (below > np.maximum(BORDER_INK_STEP, 0.25 * ground.astype(np.float32))) & (core > 0)
    if judged_in is None:
        written = np.bincount(labels[writing], minlength=count)
    else:
        groups, grouped = cv2.connectedComponents(judged_in, connectivity=8)
        group_of = np.zeros(count, np.int64)
        group_of[labels[solid > 0]] = grouped[solid > 0]  # a part lies within one group: judged_in holds it
        written = np.bincount(grouped[writing], minlength=groups)[group_of]
    keep &= written <= BORDER_MAX_WRITING * stats[:, cv2.CC_STAT_AREA]
    return keep[labels].astype(np.uint8) * 255


def paper_behind(gray: np.ndarray, known: np.ndarray, fallback: float) -> np.ndarray:
    """A smooth guess of the paper everywhere from the pixels where `known` is 1 (push-pull: each
    coarser level of a Gaussian pyramid averages the known pixels, and fills in, blended by how
    much of it was known, what the finer level lacked). A blur of one width left a step where
    it stopped reaching the paper."""
    levels = [(gray * known, known)]
    while min(levels[-1][1].shape) > 2 and levels[-1][1].min() < 0.5:
        values, weights = levels[-1]
        levels.append((cv2.pyrDown(values), cv2.pyrDown(weights)))
    values, weights = levels[-1]
    estimate = np.where(weights > 1e-3, values / np.maximum(weights, 1e-3), fallback).astype(np.float32)
    for values, weights in reversed(levels[:-1]):
        coarse = cv2.pyrUp(estimate, dstsize=(values.shape[1], values.shape[0]))
        weights = np.clip(weights, 0.0, 1.0)
        own = np.where(weights > 1e-3, values / np.maximum(weights, 1e-3), coarse)
        estimate = own * weights + coarse * (1 - weights)
    return estimate


def _ink_floor(darkness: np.ndarray) -> float:
    """The faintest darkness taken for ink whatever Otsu says: on a blank or nearly blank page
    Otsu splits the paper's noise. Ink is at least four times as dark as the paper's noise (its
    80th percentile: most of a page is paper), at least 8% darker than the paper (20 of 255),
    and always counts from 16% darker (40). A fixed 16% cut faint pencil strokes on clean paper
    into dashes (their middle is 12-20% darker), and the text height measured from the dashes
    split each line into several: on 180 synthetic validation pages, lines counted exactly on
    144 pages before and 153 after, lines matched 1,400 -> 1,416 of 1,448."""
    noise = float(np.percentile(darkness[::4, ::4], 80))
    return min(40.0, max(20.0, 4.0 * noise))


GRAIN_RATIO = 2.0  # the ink-weighted height over the median height beyond which grain is counted
GRAIN_PIECES = 50  # and the fewest pieces under half the ink-weighted height that can be grain
GRAIN_MAX_HEIGHT = 8  # px at MEASURE_SIDE: grain clumps are a few pixels whatever the page's size
GRAIN_PIECES_OF_TEXT = 10  # the fewest taller pieces that can be the text among the grain


def text_size(binary: np.ndarray, grainy: bool | None = None) -> tuple[float, bool] | None:
    """Median height of the ink components that can be letters or words (None: no text), and
    whether grain was counted out of it; `grainy`: that decision as taken on another copy of the
    page (its measurement), else taken here."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    widths = stats[1:, cv2.CC_STAT_WIDTH]
    areas = stats[1:, cv2.CC_STAT_AREA]
    # Rules, underlines and margin lines (long and thin, either way) say nothing of text size.
    keep = (heights >= 4) & (areas >= 12) & (widths < 15 * heights) & (heights < 15 * widths)
    if not keep.any():
        return None
    heights, areas = heights[keep], areas[keep]
    typical = float(np.median(heights))
    # On a grainy leaf, clumps of grain that binarise as ink outnumber the letters, and the
    # median was a clump's height (6 px for letters 22 px high: the page fell into 272 "lines").
    # The letters still hold most of the ink, so there the median is taken over the pieces at
    # least half as tall as the height below which half the ink lies. Only where that looks
    # like grain (the GRAIN_* limits): a line of joined writing read as a page (a few long
    # words and a dot), or a signature, a drawn circle or a large heading holding half a clean
    # page's ink, is not grain, and taken for it their lines merged or the page read blank.
    # The decision is taken where the page is measured: at the finer work scale grain smooths
    # into fewer pieces. Figures: README, "Whole pages of old, faded leaves".
    order = np.argsort(heights, kind="stable")
    ink_below = np.cumsum(areas[order])
    inky = float(heights[order][np.searchsorted(ink_below, ink_below[-1] / 2)])
    tall = heights >= inky / GRAIN_RATIO
    skewed = inky > GRAIN_RATIO * typical
    if grainy is None:
        grainy = (skewed and typical <= GRAIN_MAX_HEIGHT and np.count_nonzero(~tall) >= GRAIN_PIECES
                  and np.count_nonzero(tall) >= GRAIN_PIECES_OF_TEXT)
    if grainy and skewed:
        typical = float(np.median(heights[tall]))
    return float(max(4.0, typical)), bool(grainy)


MEASURE_CROSSING_RUN = 3  # px


def without_page_rules(binary: np.ndarray) -> np.ndarray:
    """Rules as long as a quarter of the page, removed before the text is measured (letters
    touching a rule would otherwise form one page-wide component).

    Strokes crossing a rule keep their pixels here too: a rule through the letters' bodies cut
    each in two, and the strips under it, counted as letters, took the median height down (to
    11 px for letters 19 px high on a Pillow-drawn page, whose lines then fell in two). The text
    size is not known yet; MEASURE_CROSSING_RUN px is a stroke at the scales this runs at."""
    return remove_rules(binary, max(binary.shape) / 4, crossing_run=MEASURE_CROSSING_RUN)


def remove_specks(binary: np.ndarray, min_area: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < max(2.0, min_area)
    small[0] = False
    if not small[1:].any():
        return binary
    out = binary.copy()
    out[small[labels]] = 0
    return out


