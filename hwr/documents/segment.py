"""Page segmentation with OpenCV: a page image in, its text lines in reading order out.

Steps (all on a copy reduced to `work_max_side`, so a 600-dpi scan costs what a 150-dpi one
does; the recognizer later cuts lines from the full-resolution grayscale page):

1. Salt-and-pepper specks replaced at full resolution and strong pixel noise blurred
   (hwr.recognition.noise); solid dark parts at the page's edge (a scanner's black border,
   the table around a page, dark corners) filled with the paper around them; background
   normalisation (divide by a dilated page: shading, stains and yellowed paper go) and Otsu
   binarisation, plus whole strokes of fainter ink (a light pencil line). The binary image
   is used for segmentation only.
2. Text size `h` from the median height of ink components; every other size is a multiple
   of it, so nothing depends on dpi.
3. Deskew: the angle in +/-`max_skew_deg` that makes the horizontal ink profile sharpest
   (Postl's projection criterion, on a sample of ink pixels: cheap at 0.1 degree steps).
4. Ruling and margin rules (long thin straight runs, up to a few degrees off the writing)
   and noise specks are removed, only the rule's own rows (letters on it keep theirs);
   strokes crossing a rule keep their pixels.
5. Line cores: the ink smeared with an anisotropic Gaussian (wide along the line, narrow
   across), thresholded. The x-height band of a line is dense, ascenders and descenders are
   thin strokes, so lines whose ascenders and descenders touch still give separate cores:
   kraken's and Tesseract's users mostly complain about segmenters that merge such lines
   or cut one line into many at wide word gaps. Cores taller than two lines are split at
   the density minimum; fragments of one line (wide word gaps, indentation) are merged when
   they share a text region and lie at the same height.
6. Every ink component goes to a line: the core it overlaps, or (dots, commas, accents,
   detached descenders) the nearest line centre; a component touching two cores (a
   descender looping into the next line's ascender) is split pixel by pixel at the middle.
7. Text regions (blocks and columns) are the ink and the cores grown by a column gap; reading
   order is a recursive XY cut over the regions, then top to bottom within each region, lines
   side by side in one row (a table's cells) left to right. An upright rule (a table's inner
   border) parts the line cores on either side of it: each cell is a line. So does a gutter,
   a straight channel of paper with four lines of text or more on either side (two columns
   closer than a column gap, a margin's notes), which also parts the region it runs through
   into columns, unless the lines on either side are level with each other (a form's rows).

Per line: an envelope polygon (top and bottom of its ink in slices along the line), a
straight baseline fitted to the bottom of its core, and the bounding box, all in page pixels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from hwr.recognition.noise import smoothed, without_pepper
from hwr.records import Line


@dataclass
class SegmentConfig:
    """Every knob of the segmenter; sizes are multiples of the text size h (median ink
    component height) unless the name says px."""

    work_max_side: int = 1600  # px; analysis resolution (longest side) at most
    target_text_px: float = 14.0  # and no finer than this text size h
    # A phone photo of a loose sheet is easily 15-20 degrees off: searched to 10 degrees, 8
    # synthetic pages turned 15 degrees kept 36 of 50 lines, turned 20 degrees 28; to 25 degrees
    # 50 and 48, and the 180 upright pages of bench_segment.py come out as before.
    max_skew_deg: float = 25.0
    min_skew_deg: float = 0.1  # smaller estimates are treated as 0
    remove_rules: bool = True
    rule_min_length: float = 8.0  # a straight ink run this long (x h) is ruling, not writing
    rule_max_tilt_deg: float = 2.0  # rules up to this far off the deskewed text's axes
    rule_crossing_run: float = 0.35  # ink this long (x h) across a rule is a stroke crossing it
    speck_area: float = 0.02  # components smaller than this (x h^2) are noise
    core_sigma_x: float = 1.0  # smearing along the line
    core_sigma_y: float = 0.2  # and across it
    core_threshold: float = 0.25  # fraction of the page's dense-core level
    min_core_area: float = 0.4  # (x h^2) smaller cores are noise, not lines
    split_ratio: float = 1.7  # cores taller than this x the median core height hold 2+ lines
    # Horizontal gap (x h) between the ink of two text regions (columns, a margin's notes). Not 4:
    # that parted a layout probe's two columns 60 px apart (which 5 reads as one, each line "left
    # text ... right text"), and also a line's word gap of 5 h (test_segment's "first   far
    # away"). A gap alone cannot tell a gutter from a word gap; a gutter runs down several lines.
    column_gap: float = 5.0
    # A gutter: a straight strip of paper this wide (x h) or wider, one of gutter_heights tall,
    # with gutter_lines lines of text or more within gutter_reach on each side, parts the lines
    # and the text regions on either side (two columns closer than a column gap; notes in a
    # margin). Its length, not its width, tells it from a word gap: word gaps do not line up
    # down four lines. Three lines were too few: a synthetic archive page's word gaps lined up
    # down three and cut them in two (of 24 such pages, 168 lines matched before, 166 with
    # three, 168 with four); a layout probe's close columns read as well with four. Two heights:
    # four lines span 13 h at a tight pitch, 21 h at a pitch of 5 h.
    gutter_min_width: float = 2.0
    gutter_heights: tuple[float, ...] = (13.0, 21.0)
    gutter_reach: float = 6.0
    gutter_lines: int = 4
    attach_distance: float = 1.2  # how far (x h) a dot or comma may lie from its line centre
    min_line_ink: float = 0.25  # (x h^2) lines with less ink are dropped as noise
    # Envelope polygon resolution along the line (x h). Each slice's edge is the ink's top and
    # bottom over three slices (_envelope), so the outline follows the ink over 3 x slice_width
    # (3 h here; a transcriber's outline follows about 2 x-heights in the synthetic truth, and h is
    # an x-height or a little more for separate letters). At 2 h slices (6 h) one ascender or
    # descender held the outline's edge up over a few words, and in joined cursive, whose h (a
    # component is a word) is ~3 x-heights, over ~17 x-heights: its outlines were twice the
    # truth's area (IoU 0.47-0.50). On 180 synthetic validation pages: lines matched 1,424 -> 1,434
    # of 1,448, no page worse, no slower (0.8 h: 1,435; 2/3 h: 1,434; 0.6 h and 0.5 h: one page lost
    # a line). Not narrower: lines are cut from the page by their outline, and 20 pages read
    # end to end (bench_pages, stage 21 greedy) gave page CER 5.02% at 2 h, 5.09% at 1 h, 5.23% at
    # 2/3 h (line detection precision 0.930, 0.940, 0.933; recall 0.977, 0.987, 0.980).
    slice_width: float = 1.0
    polygon_pad: float = 0.1  # polygon margin around the ink (x h)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PageLayout:
    """What the segmenter found: lines (page coordinates) and how it got there."""

    lines: list[Line]
    skew_deg: float  # the text's measured angle, degrees (positive: lines rise to the right)
    text_height: float  # h in page pixels
    regions: list[list[int]] = field(default_factory=list)  # line indices per region, reading order
    # Degrees the page was turned clockwise to read it (hwr.documents.orientation.analyse_upright;
    # the lines are in the pixels of the page as given, their baselines along the turned text).
    turn: int = 0


def segment_page(gray: np.ndarray, config: SegmentConfig | None = None) -> list[Line]:
    """Text lines of a uint8 grayscale page, in reading order (text empty, geometry set).

    Public API: the segmenter alone, for callers that want lines without regions (the batch
    pipeline calls `analyse_page`, which also returns regions, skew and text height).

        from hwr.recognition.imaging import load_gray
        lines = segment_page(load_gray("page.png"))
    """
    return analyse_page(gray, config).lines


def analyse_page(gray: np.ndarray, config: SegmentConfig | None = None, measured: np.ndarray | None = None
                 ) -> PageLayout:
    """`measured`: the page's `measure_binary`, when the caller has it already."""
    config = config or SegmentConfig()
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"segment_page needs a uint8 grayscale image, got {gray.dtype} {gray.shape}")
    full_h, full_w = gray.shape
    # Specks go at full resolution (a reduction smears them into blots that binarise as ink);
    # callers that pass readable_gray pages have none left, and this costs them one check.
    gray = without_pepper(gray)
    # Text size first, on a cheap reduction; then work at the scale where h ~ target_text_px
    # (finer costs time and gains nothing; the work image is never larger than work_max_side).
    measured_size = text_size(measure_binary(gray) if measured is None else measured)
    if measured_size is None:
        return PageLayout([], 0.0, 0.0)
    h_measured, grainy = measured_size
    h_full = h_measured / reduction_to(MEASURE_SIDE, full_h, full_w)
    scale = min(reduction_to(config.work_max_side, full_h, full_w), config.target_text_px / h_full)
    small = _reduce(gray, scale)
    binary = binarize(small)
    # Page-long level rules go before the text is measured and the skew estimated; the rules
    # themselves are removed only after deskewing, where they are whole and nearly level (cut
    # here, a tilted rule left stubs shorter than any rule).
    measured = _without_page_rules(binary) if config.remove_rules else binary
    work_size = text_size(measured, grainy)
    if work_size is None:
        return PageLayout([], 0.0, 0.0)
    h = work_size[0]
    text = remove_specks(measured, config.speck_area * h * h)
    angle = estimate_skew(text, config.max_skew_deg)
    # Columns apart at a gutter each keep their own rows: two columns whose rows are not level
    # with each other had been "deskewed" a few degrees into line (2.4 for rows a third apart).
    # Only then: each column's profile has fewer pixels, and a ruled table's cells measured so
    # came out 0.4 degrees off where the whole page said level.
    columns = [(x0 + x1) // 2 for x0, _, x1, _ in _gutters(text, h, config).boxes]
    if columns:
        by_columns = estimate_skew(text, config.max_skew_deg, columns=columns)
        if abs(by_columns - angle) >= COLUMNS_TILTED_INTO_LINE:
            angle = by_columns
    if abs(angle) < config.min_skew_deg:
        angle = 0.0
    binary = remove_specks(binary, config.speck_area * h * h)
    to_work, size = rotation_matrix(small.shape, angle)
    work = binary if angle == 0.0 else cv2.warpAffine(binary, to_work, size, flags=cv2.INTER_NEAREST, borderValue=0)
    rules = None
    if config.remove_rules:
        ruled = work
        work = remove_rules(work, config.rule_min_length * h, config.rule_max_tilt_deg,
                            round(config.rule_crossing_run * h))
        rules = ruled & (1 - work)  # a table's inner borders among them part the lines' cores
    lines, regions = find_lines(work, h, config, rules)
    # work pixel -> page pixel: undo the rotation, then the reduction.
    back = cv2.invertAffineTransform(to_work) / scale
    page_lines = [_to_page(line, back, full_w, full_h, k, h, config) for k, line in enumerate(lines)]
    return PageLayout(page_lines, -angle, h / scale, regions)


# --- 1. binarisation and text size ---------------------------------------------------------

MEASURE_SIDE = 1000  # px: the text is first measured on a copy this size (reduction_to)


def reduction_to(side: int, height: int, width: int) -> float:
    """The scale (at most 1) that brings a page's longest side to `side` px, or, for a page more
    than twice as long as wide (a receipt, a scroll, a strip of one long line), its area to half
    a square of that side: by the longest side alone a 600 x 12,000 receipt was shrunk until its
    text was a pixel high, and read as blank. Pages up to twice as long as wide (A4, letter,
    a spread) are reduced as before."""
    return min(1.0, max(side / max(height, width), side / math.sqrt(2.0 * height * width)))


def _reduce(gray: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def measure_binary(gray: np.ndarray) -> np.ndarray:
    """The page reduced to MEASURE_SIDE (reduction_to), binarised, without its page-long rules:
    what the text is first measured on (and hwr.documents.orientation tells its direction from)."""
    height, width = gray.shape
    return _without_page_rules(binarize(_reduce(gray, reduction_to(MEASURE_SIDE, height, width))))


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


def _without_page_rules(binary: np.ndarray) -> np.ndarray:
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


# --- 3. deskew -----------------------------------------------------------------------------

COLUMNS_TILTED_INTO_LINE = 1.0  # degrees between the page's skew and its columns' that says so


def estimate_skew(binary: np.ndarray, max_deg: float, samples: int = 60_000, columns: list[int] = ()) -> float:
    """The rotation in degrees (cv2 convention, counter-clockwise positive) that makes the
    text lines horizontal: the one whose horizontal ink profile is sharpest. `columns`: x
    positions the page is parted at (gutters), each part's profile its own (their sharpness
    summed), so columns whose rows are not level with each other are not tilted into line."""
    ys, xs = np.nonzero(binary)
    if len(xs) < 50:
        return 0.0
    if len(xs) > samples:
        pick = np.random.default_rng(0).choice(len(xs), samples, replace=False)
        xs, ys = xs[pick], ys[pick]
    # Each part's rows counted apart: offset by a part's index times more rows than any span.
    part = np.searchsorted(np.sort(np.asarray(columns, np.int64)), xs) * (2 * sum(binary.shape))
    xs = xs.astype(np.float32) - binary.shape[1] / 2
    ys = ys.astype(np.float32)

    def sharpness(deg: float) -> float:
        a = math.radians(deg)
        # Row of each ink pixel after rotating the page by `deg` (cv2's rotation convention).
        rows = (-math.sin(a) * xs + math.cos(a) * ys).astype(np.int64)
        counts = np.bincount(rows - rows.min() + part)
        return float(np.dot(counts, counts))

    coarse = np.arange(-max_deg, max_deg + 1e-6, 0.5)
    best = max(coarse, key=sharpness)
    fine = np.arange(best - 0.5, best + 0.5 + 1e-6, 0.1)
    return float(round(max(fine, key=sharpness), 2))


def rotation_matrix(shape: tuple[int, int], angle_deg: float) -> tuple[np.ndarray, tuple[int, int]]:
    """2x3 rotation by angle_deg about the centre on a canvas that holds the whole page."""
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ m.T
    low = corners.min(axis=0)
    m[:, 2] -= low
    new_w, new_h = np.ceil(corners.max(axis=0) - low).astype(int).tolist()
    return m, (max(1, new_w), max(1, new_h))


# --- 4. ruling -----------------------------------------------------------------------------

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
    strokes kept in _without_page_rules too): lines found 1,477 -> 1,449, of them matching no line
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


# --- 5-7. lines ----------------------------------------------------------------------------

@dataclass
class _WorkLine:
    """A line in work (deskewed, reduced) coordinates while it is being built."""

    core: list[int]  # core component labels
    x0: int = 0
    x1: int = 0
    centre: np.ndarray | None = None  # centre row per work column (interpolated)
    region: int = 0
    pixels: tuple[np.ndarray, np.ndarray] | None = None  # ys, xs of its ink
    rows: tuple[float, float, float] = (0.0, 0.0, 0.0)  # 25th, 50th, 75th percentile of its ink's rows
    baseline: tuple[float, float] = (0.0, 0.0)  # y = a * x + b


def find_lines(binary: np.ndarray, h: float, config: SegmentConfig, rules: np.ndarray | None = None
               ) -> tuple[list[_WorkLine], list[list[int]]]:
    """Lines of a deskewed binary work image, and their regions in reading order; `rules`: the
    ruling removed from it, whose table borders no line reaches across."""
    density = cv2.GaussianBlur(binary.astype(np.float32), (0, 0), config.core_sigma_x * h,
                               sigmaY=config.core_sigma_y * h)
    inked = density[binary > 0]
    if inked.size == 0:
        return [], []
    # The dense-core level: a high percentile of the density where there is ink.
    level = float(np.percentile(inked, 95))
    core = (density > config.core_threshold * level).astype(np.uint8)
    # Text on either side of an upright rule (a table's inner border) is two cells: the smear
    # had bridged the border, or the cells' cores were merged as one line's fragments.
    upright = _upright_parts(rules, h) if rules is not None else np.zeros_like(core)
    gutters = _gutters(binary, h, config)
    upright |= gutters.mask
    # Regions are grown from the cores as they were: the cells of a form's rows, parted at the
    # gutter between labels and entries, stay one region, read row by row (_parted_at_gutters).
    whole_cores = core.copy()
    core[upright > 0] = 0
    n, core_labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= config.min_core_area * h * h]
    if not keep:
        return [], []
    core_labels, stats = _split_tall_cores(core_labels, stats, keep, density, config.split_ratio, h)
    keep = [i for i in range(1, len(stats)) if stats[i, cv2.CC_STAT_AREA] >= config.min_core_area * h * h]
    region_of = _regions(core_labels, stats, keep, h, config.column_gap, binary | whole_cores)
    lines = _merge_fragments(keep, stats, region_of, h, upright)
    if not lines:
        return [], []
    line_of_core = np.zeros(len(stats), np.int32)
    for k, line in enumerate(lines, start=1):
        for c in line.core:
            line_of_core[c] = k
    line_map = line_of_core[core_labels]
    _centres(lines, line_map, binary.shape[1])
    _assign_ink(lines, binary, line_map, h, config.attach_distance)
    lines = [line for line in lines if line.pixels is not None]
    lines = _absorb_short_lines(lines, h, upright)
    lines = [line for line in lines if len(line.pixels[0]) >= config.min_line_ink * h * h and not _is_streak(line, h)]
    for line in lines:
        _fit_baseline(line)
        line.rows = tuple(float(v) for v in np.percentile(line.pixels[0], [25, 50, 75]))
    return _reading_order(_parted_at_gutters(lines, gutters.boxes))


def _upright_parts(rules: np.ndarray, h: float) -> np.ndarray:
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


@dataclass
class _Gutters:
    mask: np.ndarray  # uint8, 1 on the gutters' paper
    boxes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (exclusive) of each


def _gutters(binary: np.ndarray, h: float, config: SegmentConfig) -> _Gutters:
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
        return _Gutters(mask, [])
    _run_on_while_clear(mask, closed)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = [(int(x), int(y), int(x + w), int(y + hh)) for x, y, w, hh in stats[1:n, :4]]
    return _Gutters(mask, boxes)


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


def _parted_at_gutters(lines: list[_WorkLine], boxes: list[tuple[int, int, int, int]]) -> list[_WorkLine]:
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
        by_region: dict[int, list[_WorkLine]] = {}
        for line in lines:
            by_region.setdefault(line.region, []).append(line)
        for members in by_region.values():
            # The columns run between the lines across the gutter's middle above and below it (a
            # heading, a closing line), not only along the gutter found: a column's longest line
            # may reach into the channel and end it short.
            across = [line.rows[1] for line in members if line.x0 < middle < line.x1]
            top = max((row for row in across if row < centre), default=-math.inf)
            bottom = min((row for row in across if row >= centre), default=math.inf)
            parts: dict[str, list[_WorkLine]] = {}
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


def _rows_across(left: list[_WorkLine], right: list[_WorkLine]) -> bool:
    fewer, more = sorted((left, right), key=len)
    paired = sum(any(_side_by_side(a.rows, b.rows) for b in more) for a in fewer)
    return paired >= SIDE_BY_SIDE_SHARE * len(fewer)


def _level_rule_at(rules: np.ndarray, x: int, width: int, row: int, reach: int) -> bool:
    """Whether rule pixels run `reach` or more beside columns x..x+width, near `row`."""
    band = rules[max(0, row - 2):row + 3]
    left = band[:, max(0, x - reach):x].any(axis=0).sum()
    right = band[:, x + width:x + width + reach].any(axis=0).sum()
    return max(left, right) >= reach


def _is_streak(line: _WorkLine, h: float) -> bool:
    """A "line" whose ink is thin level streaks: what is left of rules that are not quite
    straight (their ends, past the part rule removal took), one or the ends of neighbouring
    rules taken together. Writing is an x-height tall."""
    ys, xs = line.pixels
    low, high = np.percentile(ys, [5, 95])
    if high - low < 0.3 * h:
        return xs.max() - xs.min() >= 1.5 * h
    y0, x0 = ys.min(), xs.min()
    ink = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), np.uint8)
    ink[ys - y0, xs - x0] = 1
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    pieces = stats[1:]
    thin = (pieces[:, cv2.CC_STAT_HEIGHT] < 0.3 * h) & (pieces[:, cv2.CC_STAT_WIDTH] >= 1.5 * h)
    # Nearly all the ink in such pieces: a speck or two beside the rules' ends does not make writing.
    return pieces[thin, cv2.CC_STAT_AREA].sum() >= 0.95 * len(ys)


def _split_tall_cores(labels: np.ndarray, stats: np.ndarray, keep: list[int], density: np.ndarray, ratio: float,
                      h: float):
    """Cut cores that span several lines (very tight spacing) at their density minima."""
    heights = stats[keep, cv2.CC_STAT_HEIGHT]
    # One line's core is about a text height tall; the median says so too unless most
    # lines of the page are merged (tight spacing), hence the cap.
    typical = min(float(np.median(heights)), 1.5 * h)
    # Tall in its box and in two lines' width of its columns (with slack: two touching lines'
    # columns are a little shorter than their box; a sloping line's columns are one line tall).
    tall = [i for i in keep if stats[i, cv2.CC_STAT_HEIGHT] > ratio * typical
            and _tall_columns(labels, stats, i, 0.8 * ratio * typical) >= 2 * typical]
    if not tall:
        return labels, stats
    labels = labels.copy()
    new_stats = [row for row in stats]
    for i in tall:
        x, y, w, hh = stats[i, :4]
        mask = labels[y:y + hh, x:x + w] == i
        profile = (density[y:y + hh, x:x + w] * mask).sum(axis=1)
        cuts = _profile_minima(profile, typical)
        if not cuts:
            continue
        bounds = [0, *cuts, hh]
        for a, b in zip(bounds[1:-1], bounds[2:]):
            new = len(new_stats)
            part = mask[a:b]
            labels[y + a:y + b, x:x + w][part] = new
            ys, xs = np.nonzero(part)
            if len(xs) == 0:
                new_stats.append(np.array([0, 0, 0, 0, 0], stats.dtype))
                continue
            new_stats.append(np.array([x + xs.min(), y + a + ys.min(), xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1, len(xs)], stats.dtype))
        ys, xs = np.nonzero(mask[:cuts[0]])
        new_stats[i] = np.array([x + xs.min(), y + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1,
                                 len(xs)], stats.dtype) if len(xs) else np.zeros(5, stats.dtype)
    return labels, np.stack(new_stats)


def _tall_columns(labels: np.ndarray, stats: np.ndarray, i: int, height: float) -> int:
    """How many of core i's columns it fills over more than `height` rows: a line that slopes or
    steps down across the page makes a core whose box is tall, each column of it a line high
    (cut at the box's profile minima it fell into two overlapping halves); lines that touch
    stand tall wherever they overlap, if only for a short line's few words."""
    x, y, w, hh = stats[i, :4]
    mask = labels[y:y + hh, x:x + w] == i
    top = np.argmax(mask, axis=0)
    bottom = hh - np.argmax(mask[::-1], axis=0)
    return int(np.count_nonzero(mask.any(axis=0) & (bottom - top > height)))


def _profile_minima(profile: np.ndarray, typical: float) -> list[int]:
    """Rows where a core should be cut: minima between density peaks a line apart."""
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
    peaks = [r for r in range(1, len(smooth) - 1) if smooth[r] >= smooth[r - 1] and smooth[r] > smooth[r + 1]]
    top = []
    for r in sorted(peaks, key=lambda r: -smooth[r]):
        if all(abs(r - t) >= 0.6 * typical for t in top) and smooth[r] > 0.15 * smooth.max():
            top.append(r)
    top.sort()
    return [a + int(np.argmin(smooth[a:b])) for a, b in zip(top, top[1:])]


def _regions(labels: np.ndarray, stats: np.ndarray, keep: list[int], h: float, column_gap: float,
             ink: np.ndarray) -> dict[int, int]:
    """Region id per core: the ink and the cores grown by half a column gap sideways and a line
    gap up and down.

    The ink, not only the cores: thin strokes make small cores far apart, and the gaps between
    the cores of one line of a fine pen ("be given t|o them") had been wider than a column gap,
    the line cut in two regions and its halves read in the wrong order. Measured on the ink, the
    gap between columns is their gutter."""
    mask = (np.isin(labels, keep) | (ink > 0)).astype(np.uint8)
    kw, kh = max(3, int(column_gap * h)) | 1, max(3, int(2.5 * h)) | 1
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (kw, kh)))
    _, regions = cv2.connectedComponents(grown, connectivity=8)
    # A core lies whole in one region: read it at the core's first pixel in raster order, the
    # leftmost of its top row, found within its bounding box (not by sorting the page's labels).
    out = {}
    for i in keep:
        x, y, w = (int(v) for v in stats[i, :3])
        first = x + int(np.argmax(labels[y, x : x + w] == i))
        out[i] = int(regions[y, first])
    return out


def _merge_fragments(keep: list[int], stats: np.ndarray, region_of: dict[int, int], h: float,
                     upright: np.ndarray | None = None) -> list[_WorkLine]:
    """Group cores into lines: same region, overlapping heights, side by side, no table border
    or gutter (`upright`, _rule_between) between them."""
    cores = sorted(keep, key=lambda i: stats[i, cv2.CC_STAT_LEFT])
    lines: list[_WorkLine] = []
    spans: list[tuple[int, int]] = []  # y-range of each line's most recent core
    for i in cores:
        x, y, w, hh = (int(v) for v in stats[i, :4])
        best, best_overlap = None, 0.0
        for k, line in enumerate(lines):
            if line.region != region_of[i] or line.x1 > x + 0.5 * h:
                continue  # another region, or stacked above/below rather than beside
            top, bottom = spans[k]
            overlap = (min(bottom, y + hh) - max(top, y)) / max(1, min(bottom - top, hh))
            if not _continues(overlap, x - line.x1, h):
                continue
            if upright is not None and _rule_between(upright, line.x1, x, max(top, y), min(bottom, y + hh)):
                continue
            if overlap > best_overlap:
                best, best_overlap = k, overlap
        if best is not None:
            lines[best].core.append(i)
            lines[best].x1 = max(lines[best].x1, x + w)
            spans[best] = (y, y + hh)
        else:
            lines.append(_WorkLine(core=[i], x0=x, x1=x + w, region=region_of[i]))
            spans.append((y, y + hh))
    return lines


def _rule_between(upright: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> bool:
    """Whether a table's inner border (`_upright_parts`) or a gutter (`_gutters`), as marked in
    `upright`, crosses the middle half of rows y0..y1 between columns x0 and x1."""
    if x1 <= x0 or y1 <= y0:
        return False
    quarter = (y1 - y0) // 4
    return bool(upright[y0 + quarter:y1 - quarter, x0:x1].any())


def _continues(overlap: float, gap: float, h: float) -> bool:
    """Whether a core `gap` px right of a line's end (negative: overlapping it in x, by half an
    h at most), sharing `overlap` of the smaller height with the line's last core, continues
    that line: half the height in common, or a smaller share (a baseline drifting by half a
    line within a line) for a fragment that starts after the line's end and within an h of
    it. Cores overlapping further in x are not merged however level: in tightly spaced lines,
    a line that starts under the end of the line above is level with it."""
    return overlap >= 0.5 or (overlap >= 0.2 and 0.0 <= gap <= h)


def _centres(lines: list[_WorkLine], line_map: np.ndarray, width: int) -> None:
    """Centre row of each line's core per column, interpolated across gaps, flat beyond ends."""
    ys, xs = np.nonzero(line_map)
    ids = line_map[ys, xs]
    columns = np.arange(width)
    for k, line in enumerate(lines, start=1):
        sel = ids == k
        lx, ly = xs[sel], ys[sel].astype(np.float64)
        sums = np.bincount(lx, weights=ly, minlength=width)
        counts = np.bincount(lx, minlength=width)
        have = counts > 0
        line.centre = np.interp(columns, columns[have], sums[have] / counts[have])


def _assign_ink(lines: list[_WorkLine], binary: np.ndarray, line_map: np.ndarray, h: float, attach: float) -> None:
    n, comp, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    centres = np.stack([line.centre for line in lines])  # (L, W)
    spans = np.array([(line.x0, line.x1) for line in lines], np.float64)
    ys, xs = np.nonzero(binary)
    cids = comp[ys, xs]
    touching = line_map[ys, xs]
    # Which lines each component overlaps (pairs of component, line with shared pixels).
    pairs = np.unique(cids[touching > 0].astype(np.int64) * (len(lines) + 1) + touching[touching > 0])
    overlaps: dict[int, list[int]] = {}
    for p in pairs:
        overlaps.setdefault(int(p // (len(lines) + 1)), []).append(int(p % (len(lines) + 1)) - 1)
    owner = np.full(n, -1, np.int64)  # line per component; -2: split pixel-wise
    for c in range(1, n):
        hit = overlaps.get(c)
        if hit and len(hit) == 1:
            owner[c] = hit[0]
        elif hit:
            owner[c] = -2
        else:
            cx, cy = centroids[c]
            x = int(min(max(cx, 0), binary.shape[1] - 1))
            # A word gap (up to ~3 h) may separate a capital or a short word from its line.
            near = (spans[:, 0] - 3 * h <= cx) & (cx <= spans[:, 1] + 3 * h)
            if not near.any():
                continue
            top = stats[c, cv2.CC_STAT_TOP]
            bottom = top + stats[c, cv2.CC_STAT_HEIGHT]
            # Distance from the line centre to the nearest row of the component.
            gap = np.maximum(0.0, np.maximum(top - centres[:, x], centres[:, x] - bottom))
            dist = np.where(near, gap, np.inf)
            k = int(np.argmin(dist))
            # Dots, commas and accents may sit off the line; a letter-sized piece must reach
            # into the line's band, else it is a short line of its own (see _orphan_lines).
            letter = stats[c, cv2.CC_STAT_HEIGHT] >= 0.5 * h and stats[c, cv2.CC_STAT_AREA] >= 0.1 * h * h
            if dist[k] <= (0.5 if letter else attach) * h:
                owner[c] = k
    pixel_owner = owner[cids]
    split = pixel_owner == -2
    if split.any():
        sx, sy, sc = xs[split], ys[split], cids[split]
        candidates = np.full((len(lines), len(sx)), np.inf)
        for c in np.unique(sc):
            members = sc == c
            for k in overlaps[int(c)]:
                candidates[k, members] = np.abs(centres[k, sx[members]] - sy[members])
        pixel_owner[split] = np.argmin(candidates, axis=0)
    for k, line in enumerate(lines):
        sel = pixel_owner == k
        line.pixels = (ys[sel], xs[sel]) if sel.any() else None
    lines.extend(_orphan_lines(owner, stats, comp, ys, xs, cids, lines, h))


# (x h) How far a short line's middle may lie above / below a longer line's centre and still be
# a part of it (a capital, a word whose core stood apart, a descender's tail, a rule's remnant
# under the letters: within 1.3 h below on the synthetic pages). Further away it is the line
# before or after: lines are about 1.5 h apart or more, and a short one written alone
# ("16h13", "class", "9") lay 1.4-2.1 h from its neighbour's centre, within the band the descender
# allowance below reaches. On 180 synthetic validation pages: lines matched 1,416 -> 1,420 of
# 1,448, exact line counts 153 -> 155.
SHORT_LINE_ABOVE, SHORT_LINE_BELOW = 1.2, 1.6


def _absorb_short_lines(lines: list[_WorkLine], h: float, parted: np.ndarray) -> list[_WorkLine]:
    """A short "line" (a flourished capital, a tall word) that sits inside a longer line's
    x-range and mostly within its band is part of it: over-segmentation is the other
    failure users of line segmenters complain about. Never across a table's border or a
    gutter (`parted`, as find_lines parts cores): a column's short line beside the other's."""
    longest = sorted(range(len(lines)), key=lambda k: -(lines[k].x1 - lines[k].x0))
    absorbed = set()
    for k in reversed(longest):
        short = lines[k]
        if short.x1 - short.x0 > 4 * h or k in absorbed:
            continue
        ys, xs = short.pixels
        cx, cy = int(np.median(xs)), float(np.median(ys))
        # A piece no wider than a letter or two may also be a descender's tail that a faint stroke
        # cut off its letter (pencil, thin pens): descenders reach further below a line's
        # centre than anything reaches above it.
        below = 2.2 * h if short.x1 - short.x0 <= 2.5 * h else 1.5 * h
        best, best_share = None, 0.5
        for j in longest:
            other = lines[j]
            if j == k or j in absorbed or other.x1 - other.x0 <= short.x1 - short.x0:
                continue
            # Beside the line within a wide word gap (digit strings are written spaced out).
            if not (other.x0 - 5 * h <= cx <= other.x1 + 5 * h) or (short.core and other.region != short.region):
                continue
            gap = (other.x1, short.x0) if short.x0 >= other.x1 else (short.x1, other.x0)
            if _rule_between(parted, *gap, max(0, int(cy - h)), int(cy + h)):
                continue
            centre = other.centre[min(max(cx, 0), len(other.centre) - 1)]
            # A short line with a dense core of its own, its middle a line pitch away, is the next
            # or previous line (SHORT_LINE_ABOVE/BELOW), though most of its ink lies in the band.
            if short.core and not -SHORT_LINE_ABOVE * h <= cy - centre <= SHORT_LINE_BELOW * h:
                continue
            share = float(np.mean((ys >= centre - 1.5 * h) & (ys <= centre + below)))
            if share > best_share:
                best, best_share = j, share
        if best is not None:
            target = lines[best]
            target.pixels = (np.r_[target.pixels[0], ys], np.r_[target.pixels[1], xs])
            target.x0, target.x1 = min(target.x0, short.x0), max(target.x1, short.x1)
            absorbed.add(k)
    return [line for k, line in enumerate(lines) if k not in absorbed]


def _orphan_lines(owner, stats, comp, ys, xs, cids, lines: list[_WorkLine], h: float) -> list[_WorkLine]:
    """Letter-sized ink far from every line is a short line of its own ("8", "7.", a
    signature): its smeared density was too low for a core. Side-by-side pieces join."""
    big = [c for c in range(1, len(owner)) if owner[c] == -1 and stats[c, cv2.CC_STAT_HEIGHT] >= 0.5 * h
           and stats[c, cv2.CC_STAT_AREA] >= 0.1 * h * h]
    groups: list[list[int]] = []
    for c in sorted(big, key=lambda c: stats[c, cv2.CC_STAT_LEFT]):
        x, y, w, hh = (int(v) for v in stats[c, :4])
        for g in groups:
            gx1 = max(stats[d, 0] + stats[d, 2] for d in g)
            gy0 = min(stats[d, 1] for d in g)
            gy1 = max(stats[d, 1] + stats[d, 3] for d in g)
            if x - gx1 < 2 * h and min(gy1, y + hh) - max(gy0, y) > 0.3 * min(gy1 - gy0, hh):
                g.append(c)
                break
        else:
            groups.append([c])
    boxes = {}
    for line in lines:
        if line.pixels is not None:
            b = boxes.get(line.region, (np.inf, np.inf, -np.inf, -np.inf))
            boxes[line.region] = (min(b[0], line.pixels[1].min()), min(b[1], line.pixels[0].min()),
                                  max(b[2], line.pixels[1].max()), max(b[3], line.pixels[0].max()))
    next_region = max((line.region for line in lines), default=0) + 1
    found = []
    for g in groups:
        sel = np.isin(cids, g)
        gy, gx = ys[sel], xs[sel]
        cx, cy = float(gx.mean()), float(gy.mean())
        region = next((r for r, b in boxes.items() if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]), None)
        if region is None:
            region, next_region = next_region, next_region + 1
        found.append(_WorkLine(core=[], x0=int(gx.min()), x1=int(gx.max()) + 1, region=region, pixels=(gy, gx),
                               centre=np.full(comp.shape[1], float(gy.mean()))))
    return found


def _fit_baseline(line: _WorkLine) -> None:
    """Straight baseline: a robust fit to the lower edge of the line's dense band."""
    ys, xs = line.pixels
    # Lower edge of the x-height band per slice: the 75th percentile of ink rows, which
    # ignores descenders (few pixels) but not the letter bodies that sit on the line.
    width = int(xs.max() - xs.min() + 1)
    step = max(4, width // 24)
    bins = (xs - xs.min()) // step
    order = np.lexsort((ys, bins))
    counts = np.bincount(bins)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    full = counts >= 4
    px = (np.bincount(bins, weights=xs) / np.maximum(counts, 1))[full].tolist()
    py = ys[order][(starts + (0.75 * (counts - 1)).astype(int))[full]].astype(float).tolist()
    if len(px) >= 2:
        a, b = np.polyfit(px, py, 1)
        residual = np.abs(np.polyval((a, b), px) - np.array(py))
        inliers = residual <= max(2.0, np.median(residual) * 2)
        if inliers.sum() >= 2:
            a, b = np.polyfit(np.array(px)[inliers], np.array(py)[inliers], 1)
    else:
        a, b = 0.0, float(np.percentile(ys, 75))
    line.baseline = (float(a), float(b))


def _reading_order(lines: list[_WorkLine]) -> tuple[list[_WorkLine], list[list[int]]]:
    """Regions by XY cut (top band first, then columns left to right), lines top to bottom."""
    by_region: dict[int, list[_WorkLine]] = {}
    for line in lines:
        by_region.setdefault(line.region, []).append(line)
    boxes = {}
    for region, members in by_region.items():
        x0 = min(int(m.pixels[1].min()) for m in members)
        x1 = max(int(m.pixels[1].max()) for m in members) + 1
        y0 = min(int(m.pixels[0].min()) for m in members)
        y1 = max(int(m.pixels[0].max()) for m in members) + 1
        boxes[region] = (x0, y0, x1, y1)
    ordered: list[_WorkLine] = []
    groups: list[list[int]] = []
    for region in xy_cut(boxes):
        members = _rows_left_to_right(by_region[region])
        groups.append(list(range(len(ordered), len(ordered) + len(members))))
        ordered.extend(members)
    return ordered, groups


def _rows_left_to_right(lines: list[_WorkLine]) -> list[_WorkLine]:
    """Lines top to bottom by their middle row, with those side by side in one row (a table's
    cells, parted by its rule) left to right: each line's middle lies within the other's core
    rows. Lines one above the other never do, so a column of text keeps its order."""
    order = sorted(range(len(lines)), key=lambda k: lines[k].rows[1])
    for end in range(len(order) - 1, 0, -1):  # a bubble pass per line: rows hold a few cells
        swapped = False
        for k in range(end):
            a, b = order[k], order[k + 1]
            if lines[b].x0 < lines[a].x0 and _side_by_side(lines[a].rows, lines[b].rows):
                order[k], order[k + 1], swapped = b, a, True
        if not swapped:
            break
    return [lines[k] for k in order]


def _side_by_side(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
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


# --- geometry back to the page -------------------------------------------------------------

def _to_page(line: _WorkLine, back: np.ndarray, width: int, height: int, index: int, h: float,
             config: SegmentConfig) -> Line:
    polygon = _envelope(line, max(1.0, config.polygon_pad * h), config.slice_width * h)
    a, b = line.baseline
    ys, xs = line.pixels
    # To the right edge of the last ink column (as the polygon): a line one column wide had a
    # baseline of one point, which PAGE XML does not allow.
    x0, x1 = float(xs.min()), float(xs.max()) + 1.0
    baseline = np.array([[x0, a * x0 + b], [x1, a * x1 + b]])
    polygon_page = _apply(back, polygon, width, height)
    baseline_page = _apply(back, baseline, width, height)
    px = [p[0] for p in polygon_page]
    py = [p[1] for p in polygon_page]
    bbox = (min(px), min(py), max(px) + 1, max(py) + 1)
    if len(baseline_page) < 2:  # both ends held to the page's last column: along the box instead
        baseline_page = [(bbox[0], baseline_page[0][1]), (bbox[2] - 1, baseline_page[0][1])]
    return Line(id=f"l{index + 1:03d}", polygon=polygon_page, baseline=baseline_page, bbox=bbox)


def _envelope(line: _WorkLine, pad: float, slice_width: float) -> np.ndarray:
    """Staircase polygon around the line's ink: per slice along x, the top and bottom of the
    ink in that slice and its two neighbours (so every ink pixel is inside and the outline
    does not dip between letters), bridged across empty slices (word gaps)."""
    ys, xs = line.pixels
    step = max(2, int(round(slice_width)))
    x0, x1 = int(xs.min()), int(xs.max()) + 1
    n = max(1, int(math.ceil((x1 - x0) / step)))
    bins = np.minimum((xs - x0) // step, n - 1)
    top = np.full(n, np.inf)
    bottom = np.full(n, -np.inf)
    np.minimum.at(top, bins, ys)
    np.maximum.at(bottom, bins, ys)
    have = np.isfinite(top)
    centres = np.arange(n, dtype=np.float64)
    top = np.interp(centres, centres[have], top[have])
    bottom = np.interp(centres, centres[have], bottom[have])
    top = np.minimum(top, np.minimum(np.r_[top[:1], top[:-1]], np.r_[top[1:], top[-1:]])) - pad
    bottom = np.maximum(bottom, np.maximum(np.r_[bottom[:1], bottom[:-1]], np.r_[bottom[1:], bottom[-1:]])) + pad + 1
    lefts = x0 + np.arange(n) * step - pad
    rights = np.minimum(x0 + (np.arange(n) + 1) * step, x1) + pad
    lefts[1:] += pad
    rights[:-1] -= pad
    upper = [pt for k in range(n) for pt in ((lefts[k], top[k]), (rights[k], top[k]))]
    lower = [pt for k in reversed(range(n)) for pt in ((rights[k], bottom[k]), (lefts[k], bottom[k]))]
    return np.array(upper + lower, np.float64)


def _apply(matrix: np.ndarray, points: np.ndarray, width: int, height: int) -> list[tuple[int, int]]:
    pts = np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]
    pts[:, 0] = np.clip(np.round(pts[:, 0]), 0, width - 1)
    pts[:, 1] = np.clip(np.round(pts[:, 1]), 0, height - 1)
    out: list[tuple[int, int]] = []
    for x, y in pts.astype(int).tolist():
        if not out or out[-1] != (x, y):
            out.append((x, y))
    if len(out) > 1 and out[-1] == out[0]:
        out.pop()
    return out
