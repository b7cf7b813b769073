"""Page segmentation with OpenCV: a page image in, its text lines in reading order out.

Steps (all on a copy reduced to `work_max_side`, so a 600-dpi scan costs what a 150-dpi one
does; the recognizer later cuts lines from the full-resolution grayscale page):

1. Salt-and-pepper specks replaced at full resolution and strong pixel noise blurred
   (hwr.recognition.noise); solid dark parts at the page's edge (a scanner's black border,
   the table around a page, dark corners) filled with the paper around them; background
   normalisation (divide by a dilated page: shading, stains and yellowed paper go) and Otsu
   binarisation, plus whole strokes of fainter ink (a light pencil line). The binary image
   is used for segmentation only (hwr.documents.page_ink).
2. Text size `h` from the median height of ink components; every other size is a multiple
   of it, so nothing depends on dpi (page_ink.text_size).
3. Deskew: the angle in +/-`max_skew_deg` that makes the horizontal ink profile sharpest
   (Postl's projection criterion, on a sample of ink pixels: cheap at 0.1 degree steps;
   hwr.documents.skew).
4. Ruling and margin rules (long thin straight runs, up to a few degrees off the writing)
   and noise specks are removed, only the rule's own rows (letters on it keep theirs);
   strokes crossing a rule keep their pixels (hwr.documents.rules).
5. Line cores: the ink smeared with an anisotropic Gaussian (wide along the line, narrow
   across), thresholded. The x-height band of a line is dense, ascenders and descenders are
   thin strokes, so lines whose ascenders and descenders touch still give separate cores:
   kraken's and Tesseract's users mostly complain about segmenters that merge such lines
   or cut one line into many at wide word gaps. Cores taller than two lines are split at
   the density minimum, unless they are one line of large writing (a heading); fragments
   of one line (wide word gaps, indentation) are merged when they share a text region and
   lie at the same height.
6. Every ink component goes to a line: the core it overlaps, or (dots, commas, accents,
   detached descenders) the nearest line centre; a component touching two cores (a
   descender looping into the next line's ascender) is split pixel by pixel at the middle.
7. Text regions (blocks and columns) are the ink and the cores grown by a column gap; reading
   order is a recursive XY cut over the regions, then top to bottom within each region, lines
   side by side in one row (a table's cells) left to right. An upright rule (a table's inner
   border) parts the line cores on either side of it: each cell is a line. So does a gutter,
   a straight channel of paper with four lines of text or more on either side (two columns
   closer than a column gap, a margin's notes), which also parts the region it runs through
   into columns, unless the lines on either side are level with each other (a form's rows;
   hwr.documents.gutters). The order itself: hwr.documents.line_order.

Steps 5-6 and the lines' geometry are this module's. Per line: an envelope polygon (top and
bottom of its ink in slices along the line), a straight baseline fitted to the bottom of its
core, and the bounding box, all in page pixels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from hwr.documents.gutters import find_gutters, parted_at_gutters
from hwr.documents.line_order import reading_order
from hwr.documents.page_ink import (
    MEASURE_SIDE,
    binarize,
    measure_binary,
    reduced,
    reduction_to,
    remove_specks,
    text_size,
    without_page_rules,
)
from hwr.documents.rules import remove_rules, table_borders
from hwr.documents.skew import COLUMNS_TILTED_INTO_LINE, estimate_skew, rotation_matrix
from hwr.recognition.noise import without_pepper
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
    small = reduced(gray, scale)
    binary = binarize(small)
    # Page-long level rules go before the text is measured and the skew estimated; the rules
    # themselves are removed only after deskewing, where they are whole and nearly level (cut
    # here, a tilted rule left stubs shorter than any rule).
    measured = without_page_rules(binary) if config.remove_rules else binary
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
    columns = [(x0 + x1) // 2 for x0, _, x1, _ in find_gutters(text, h, config).boxes]
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


# --- 5-7. lines ----------------------------------------------------------------------------

@dataclass
class WorkLine:
    """A line in work (deskewed, reduced) coordinates while it is being built."""

    core: list[int]  # core component labels
    x0: int = 0
    x1: int = 0
    centre: np.ndarray | None = None  # centre row per work column (interpolated)
    region: int = 0
    pixels: tuple[np.ndarray, np.ndarray] | None = None  # ys, xs of its ink
    rows: tuple[float, float, float] = (0.0, 0.0, 0.0)  # 25th, 50th, 75th percentile of its ink's rows
    baseline: tuple[float, float] = (0.0, 0.0)  # y = a * x + b
    large: bool = False  # of large writing (a heading): a core _split_tall_cores judged so, or a piece of one


def find_lines(binary: np.ndarray, h: float, config: SegmentConfig, rules: np.ndarray | None = None
               ) -> tuple[list[WorkLine], list[list[int]]]:
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
    upright = table_borders(rules, h) if rules is not None else np.zeros_like(core)
    gutters = find_gutters(binary, h, config)
    upright |= gutters.mask
    # Regions are grown from the cores as they were: the cells of a form's rows, parted at the
    # gutter between labels and entries, stay one region, read row by row (parted_at_gutters).
    whole_cores = core.copy()
    core[upright > 0] = 0
    n, core_labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= config.min_core_area * h * h]
    if not keep:
        return [], []
    # The ink's pieces, measured once: tall cores are judged by them, and ink goes to lines by them.
    pieces = cv2.connectedComponentsWithStats(binary, connectivity=8)
    core_labels, stats, large = _split_tall_cores(core_labels, stats, keep, density, config.split_ratio, h,
                                                  pieces[1:3])
    keep = [i for i in range(1, len(stats)) if stats[i, cv2.CC_STAT_AREA] >= config.min_core_area * h * h]
    region_of = _regions(core_labels, stats, keep, h, config.column_gap, binary | whole_cores)
    lines = _merge_fragments(keep, stats, region_of, h, upright)
    for line in lines:
        line.large = not large.isdisjoint(line.core)
    if not lines:
        return [], []
    line_of_core = np.zeros(len(stats), np.int32)
    for k, line in enumerate(lines, start=1):
        for c in line.core:
            line_of_core[c] = k
    line_map = line_of_core[core_labels]
    _centres(lines, line_map, binary.shape[1])
    _assign_ink(lines, binary, pieces, line_map, h, config.attach_distance)
    lines = [line for line in lines if line.pixels is not None]
    lines = _absorb_short_lines(lines, h, upright)
    lines = [line for line in lines if len(line.pixels[0]) >= config.min_line_ink * h * h and not _is_streak(line, h)]
    for line in lines:
        _fit_baseline(line)
        line.rows = tuple(float(v) for v in np.percentile(line.pixels[0], [25, 50, 75]))
    return reading_order(parted_at_gutters(lines, gutters.boxes))


def _is_streak(line: WorkLine, h: float) -> bool:
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
                      h: float, pieces: tuple[np.ndarray, np.ndarray]):
    """Cut cores that span several lines (very tight spacing) at their density minima, but not
    through one line of large writing (_large_writing, _strokes_run_across); `pieces`: the page's
    ink components (labels, stats). Returns the labels, the stats and the cores of large writing."""
    heights = stats[keep, cv2.CC_STAT_HEIGHT]
    # One line's core is about a text height tall; the median says so too unless most
    # lines of the page are merged (tight spacing), hence the cap.
    typical = min(float(np.median(heights)), 1.5 * h)
    # Tall in its box and in two lines' width of its columns (with slack: two touching lines'
    # columns are a little shorter than their box; a sloping line's columns are one line tall).
    tall = [i for i in keep if stats[i, cv2.CC_STAT_HEIGHT] > ratio * typical
            and _tall_columns(labels, stats, i, 0.8 * ratio * typical) >= 2 * typical]
    if not tall:
        return labels, stats, set()
    labels = labels.copy()
    new_stats = [row for row in stats]
    large = set()
    for i in tall:
        x, y, w, hh = stats[i, :4]
        mask = labels[y:y + hh, x:x + w] == i
        profile = (density[y:y + hh, x:x + w] * mask).sum(axis=1)
        cuts = _profile_minima(profile, typical)
        ink = pieces[0][y:y + hh, x:x + w] > 0
        is_large = _large_writing(ink, mask, pieces, (x, y), h)
        if is_large:  # kept whole, but where its strokes leave a gap: two lines of large writing
            cuts = [cut for cut in cuts if not _strokes_run_across(ink, mask, cut, h)]
            large.add(i)
        if not cuts:
            continue
        bounds = [0, *cuts, hh]
        for a, b in zip(bounds[1:-1], bounds[2:]):
            new = len(new_stats)
            if is_large:
                large.add(new)
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
    return labels, np.stack(new_stats), large


# A heading or a signature written at two or three times the body's size made a core taller than
# two body lines, and it was cut at the density minima inside its letters (the tops and bottoms of
# its bowls are denser than their sides), each piece read as a line. Such a line's pieces of ink
# are tall (their median height LARGE_WRITING_HEIGHT x h or more) and its strokes run on across the
# cut (ink crossing the rows a quarter of an h either side of it in LARGE_WRITING_CROSSING of the
# core's columns or more). Measured: headings 2.1-3.5 h and 27% (a layout probe's, and drawn ones of
# 2.4-3.5 times the body's size); the cuts between touching lines of 180 clean synthetic pages at
# most 1.76 h and 4% (never both); 2 of 1,546 cuts on grainy archive leaves, whose text height is
# measured small, have both.
LARGE_WRITING_HEIGHT = 1.9
LARGE_WRITING_CROSSING = 0.15


def _large_writing(ink: np.ndarray, mask: np.ndarray, pieces: tuple[np.ndarray, np.ndarray],
                   origin: tuple[int, int], h: float) -> bool:
    """Whether a core (`mask`, its box's `ink`, at `origin` in the page) is written in pieces of
    ink LARGE_WRITING_HEIGHT x h tall or more (median); `pieces`: the page's ink components
    (labels, stats)."""
    labels, stats = pieces
    x, y = origin
    inside = labels[y:y + mask.shape[0], x:x + mask.shape[1]][mask & ink]
    heights = stats[np.unique(inside[inside > 0]), cv2.CC_STAT_HEIGHT]
    return bool(heights.size) and float(np.median(heights)) >= LARGE_WRITING_HEIGHT * h


def _strokes_run_across(ink: np.ndarray, mask: np.ndarray, cut: int, h: float) -> bool:
    """Whether ink crosses row `cut` of a core and a quarter of an h either side of it in
    LARGE_WRITING_CROSSING of the core's columns or more: strokes of one line of writing, not the
    gap between two."""
    reach = max(2, int(round(h / 4)))
    band = ink[max(0, cut - reach):cut + reach + 1]
    columns = mask.any(axis=0)
    return bool((band.all(axis=0) & columns).sum() >= LARGE_WRITING_CROSSING * columns.sum())


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
                     upright: np.ndarray | None = None) -> list[WorkLine]:
    """Group cores into lines: same region, overlapping heights, side by side, no table border
    or gutter (`upright`, _rule_between) between them."""
    cores = sorted(keep, key=lambda i: stats[i, cv2.CC_STAT_LEFT])
    lines: list[WorkLine] = []
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
            lines.append(WorkLine(core=[i], x0=x, x1=x + w, region=region_of[i]))
            spans.append((y, y + hh))
    return lines


def _rule_between(upright: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> bool:
    """Whether a table's inner border (`table_borders`) or a gutter (`find_gutters`), as marked in
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


def _centres(lines: list[WorkLine], line_map: np.ndarray, width: int) -> None:
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


def _assign_ink(lines: list[WorkLine], binary: np.ndarray, pieces, line_map: np.ndarray, h: float,
                attach: float) -> None:
    """`pieces`: the binary image's connected components (cv2.connectedComponentsWithStats)."""
    n, comp, stats, centroids = pieces
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


def _absorb_short_lines(lines: list[WorkLine], h: float, parted: np.ndarray) -> list[WorkLine]:
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
            share = 1.0 if not short.core and _within_ink_of(short, other, h) else \
                float(np.mean((ys >= centre - 1.5 * h) & (ys <= centre + below)))
            if share > best_share:
                best, best_share = j, share
        if best is not None:
            target = lines[best]
            target.pixels = (np.r_[target.pixels[0], ys], np.r_[target.pixels[1], xs])
            target.x0, target.x1 = min(target.x0, short.x0), max(target.x1, short.x1)
            absorbed.add(k)
    return [line for k, line in enumerate(lines) if k not in absorbed]


DOT_SHARE = 1 / 3  # of its letters' height: a dot or an accent is no taller


def _within_ink_of(short: WorkLine, other: WorkLine, h: float) -> bool:
    """Whether a piece with no core of its own lies within the rows of another line's ink beside
    it (a quarter of an h of slack) and within its ends: the dot of an i or an accent of large writing
    (a heading), which sits further from its line's centre than the band a body line's dots keep
    to, and had been read as a line of its own."""
    ys, xs = short.pixels
    if not (other.x0 <= xs.min() and xs.max() < other.x1):
        return False
    # Its rows over the piece's own columns (and an h either side): one long descender or flourish
    # elsewhere on the line does not reach the next line's short words.
    near = (other.pixels[1] >= xs.min() - h) & (other.pixels[1] <= xs.max() + h)
    rows = other.pixels[0][near]
    if not rows.size:
        return False
    top, bottom = int(rows.min()), int(rows.max())
    tall = bottom - top + 1
    # A dot sits above its letter's stem, up to about half the letters' height: above large writing
    # a small piece (a third of its letters' height at most, not a digit or a short word) may lie
    # that far above them. Not above every line: on grainy leaves grain went into the lines.
    dot = other.large and ys.max() - ys.min() + 1 <= DOT_SHARE * tall
    above = max(h / 4, tall / 2) if dot else h / 4
    return top - above <= ys.min() and ys.max() <= bottom + h / 4


def _orphan_lines(owner, stats, comp, ys, xs, cids, lines: list[WorkLine], h: float) -> list[WorkLine]:
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
        found.append(WorkLine(core=[], x0=int(gx.min()), x1=int(gx.max()) + 1, region=region, pixels=(gy, gx),
                               centre=np.full(comp.shape[1], float(gy.mean()))))
    return found


def _fit_baseline(line: WorkLine) -> None:
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


# --- geometry back to the page -------------------------------------------------------------

def _to_page(line: WorkLine, back: np.ndarray, width: int, height: int, index: int, h: float,
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


def _envelope(line: WorkLine, pad: float, slice_width: float) -> np.ndarray:
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
