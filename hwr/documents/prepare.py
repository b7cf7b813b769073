"""A page's CPU work, torch-free: pixels -> lines -> network-height uint8 line images.

`prepare_page` is what a page worker process runs (hwr.documents.workers): decode the page
(or PDF page), segment it, cut each line along its baseline and normalise it to the model's
line height. Everything it returns is plain data (numpy arrays and records), so it crosses a
process boundary without the model, and nothing here imports torch: a worker that imported
torch would pay its start-up time and memory, and on a GPU host start CUDA-sized thread pools
that fight the process that owns the network.

Line images travel as uint8 (ink 0..255), a quarter of float32's bytes through shared memory
and over the host-to-device copy; `ink_from_uint8` turns them back into the network's float
[0, 1] ink. The rounding moves a pixel by at most 1/510, far below what the scans' own
noise moves it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from hwr.documents.linegeom import cut_line
from hwr.documents.orientation import (
    analyse_upright,
    baseline_turn,
    given_turn,
    line_back,
    parse_orientation,
    turned,
)
from hwr.documents.pages import DEFAULT_DPI, PageRef, load_page
from hwr.documents.reading_choice import whole_reading_wins
from hwr.documents.segment import PageLayout, SegmentConfig
from hwr.recognition.imaging import (
    MIN_LINE_ROWS,
    LineGeometry,
    NormalizeConfig,
    blank_line,
    normalize_line_with_geometry,
    readable_gray,
)
from hwr.records import FailedInput, Line, Page, Region

log = logging.getLogger("hwr.documents.prepare")

MODES = ("auto", "page", "line")
# Auto mode: a single image with fewer segmented lines than this is read as one line image.
MIN_PAGE_LINES = 2
# The id of the extra line that holds auto mode's second reading of a single image, read whole,
# until `settle_reading` keeps one of the two readings.
WHOLE_READING_ID = "whole"
LINE_IMAGE_LINE_ID = "l001"  # the only line of an image read as one line
# Normalising a page whole costs as much as segmenting it (0.5 s for a 2,000-pixel page: paper
# flattening visits every pixel) for a reading that only a line image wins, and line images are
# rarely this tall: a taller image is read whole from a copy reduced to this height (normalised
# lines are 48 pixels high, so only ink under a tenth of the image's height loses detail).
WHOLE_READING_MAX_HEIGHT = 512


@dataclass
class PrepareSettings:
    """What a page worker needs to know; picklable, sent once to each worker process."""

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)  # the model's line normalisation
    segment: SegmentConfig | None = None  # segmenter knobs; None: its defaults
    mode: str = "auto"  # one of MODES (see layout_page)
    dpi: int = DEFAULT_DPI  # PDF rasterisation
    orientation: str = "auto"  # pages' turn (hwr.documents.orientation.ORIENTATIONS)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        self.orientation = parse_orientation(self.orientation)


@dataclass
class PreparedPage:
    """One page after its CPU work: the page record (lines without text), each line's uint8
    image at the network's height, and the geometry that maps word positions back; or, for a
    page that could not be prepared, its `failure` and no lines."""

    page_id: str
    source: str
    page: Page | None = None
    images: list[np.ndarray] = field(default_factory=list)  # uint8 (line_height, W_i), ink = 255
    geometries: list[LineGeometry] = field(default_factory=list)
    is_line: bool = False  # read whole as one line image
    # The last line is the image read whole, a second reading beside its segmented lines
    # (auto mode, `reads_both_ways`); `settle_reading` keeps one of the two once both are read.
    read_whole_too: bool = False
    failure: FailedInput | None = None
    # CPU time of the thread that prepared it (per thread: thread workers share a process with the network)
    seconds: float = 0.0

    @property
    def line_count(self) -> int:
        return len(self.images)


def ink_to_uint8(ink: np.ndarray) -> np.ndarray:
    """float ink in [0, 1] -> uint8 0..255 (rounded, not truncated: the error stays below half a step)."""
    return np.rint(ink * 255.0).astype(np.uint8)


def ink_from_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 ink -> the float32 [0, 1] the network reads."""
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def line_image_page(gray: np.ndarray, page_id: str = "page", source: str = "", turn: int = 0) -> Page:
    """The whole image as the page's only line, read turned `turn` degrees clockwise: the
    outline of the image, a baseline along its foot (the recognizer finds the ink box itself)."""
    h, w = gray.shape[:2]
    return single_line_page(w, h, turned_whole_line(w, h, turn), page_id, source, turn)


def turned_whole_line(w: int, h: int, turn: int, line_id: str = LINE_IMAGE_LINE_ID) -> Line:
    """`whole_image_line` of a w x h image turned `turn` clockwise, in the image's own pixels."""
    tw, th = (w, h) if turn % 180 == 0 else (h, w)
    return line_back(whole_image_line(tw, th, line_id), turn, w, h)


def whole_image_line(w: int, h: int, line_id: str = LINE_IMAGE_LINE_ID) -> Line:
    """A line that is the whole w x h image: its outline, and a baseline along its foot."""
    return Line(id=line_id, polygon=[(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)],
                baseline=[(0, h - 1), (w - 1, h - 1)], bbox=(0, 0, w, h))


def single_line_page(width: int, height: int, line: Line, page_id: str = "page", source: str = "",
                     orientation: int = 0) -> Page:
    """A page of `width` x `height` whose only line is `line` (read turned `orientation`)."""
    return Page(id=page_id, source=source, width=width, height=height, lines=[line],
                regions=[Region("r1", [line.id])], orientation=orientation)


def regions_of(layout: PageLayout) -> list[Region]:
    """The segmenter's regions in reading order, as records naming their lines."""
    return [Region(f"r{k + 1}", [layout.lines[i].id for i in members])
            for k, members in enumerate(layout.regions) if members]


def layout_page(gray: np.ndarray, mode: str = "auto", page_id: str = "page", source: str = "",
                is_document_page: bool = False, segment_config: SegmentConfig | None = None,
                orientation: str = "auto") -> tuple[Page, bool]:
    """The page record (lines and regions, no text yet) and whether it is read as one line image.

    The one place that decides what each mode means (with `reads_both_ways` and
    `settle_reading` for auto mode's second reading): "line" reads every image whole; "page"
    segments every image; "auto" segments a page of a PDF or multi-page TIFF
    (`is_document_page`) and an image where the segmenter finds MIN_PAGE_LINES lines or
    more, and reads any other image whole, exactly as "line" would. Such a segmented single
    image is read whole as well (`reads_both_ways`; from a reduced copy when it is taller than
    WHOLE_READING_MAX_HEIGHT), and `settle_reading` keeps the surer.

    Pages are read turned by `orientation`: clockwise degrees, or "auto", as a segmented page's
    text reads upright (hwr.documents.orientation); auto never turns an image read whole."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    whole_turn = given_turn(orientation)
    if mode == "line":
        return line_image_page(gray, page_id, source, whole_turn), True
    layout = analyse_upright(gray, segment_config, orientation)
    if mode == "auto" and not is_document_page and len(layout.lines) < MIN_PAGE_LINES:
        return line_image_page(gray, page_id, source, whole_turn), True
    page = Page(id=page_id, source=source, width=gray.shape[1], height=gray.shape[0], lines=layout.lines,
                regions=regions_of(layout), orientation=layout.turn)
    return page, False


def reads_both_ways(mode: str, is_document_page: bool, is_line: bool) -> bool:
    """Whether auto mode also reads an image it segmented into lines whole, keeping the surer
    reading (hwr.documents.reading_choice): only for a single image, since a page of a PDF or
    multi-page TIFF is always a page."""
    return mode == "auto" and not is_document_page and not is_line


def add_whole_reading(gray: np.ndarray, page: Page, arrays: list, geometries: list,
                      normalize_config: NormalizeConfig, turn: int = 0) -> None:
    """Append the whole image, read turned `turn` clockwise, as one more line of `page` (id
    WHOLE_READING_ID), with its network input and geometry: the second reading that
    `settle_reading` weighs."""
    reduced, scale = whole_reading_image(turned(gray, turn))
    array, geometry = normalize_line_with_geometry(reduced, normalize_config)
    if scale < 1.0:  # the reduced copy's geometry in the image's own pixels (word boxes map back through it)
        geometry = LineGeometry(geometry.x_offset / scale, geometry.y_offset / scale, geometry.x_scale * scale,
                                geometry.y_scale * scale)
    page.lines.append(turned_whole_line(gray.shape[1], gray.shape[0], turn, WHOLE_READING_ID))
    arrays.append(array)
    geometries.append(geometry)


def whole_reading_image(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """The pixels the whole reading reads, and their scale: the image itself, or a copy reduced
    to WHOLE_READING_MAX_HEIGHT when it is taller."""
    scale = min(1.0, WHOLE_READING_MAX_HEIGHT / gray.shape[0])
    if scale == 1.0:
        return gray, 1.0
    size = (max(1, round(gray.shape[1] * scale)), WHOLE_READING_MAX_HEIGHT)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA), scale


def settle_reading(page: Page, geometries: list) -> tuple[Page, list, bool]:
    """Once every line of a page from `add_whole_reading` is read: (page, geometries, is_line)
    of the surer reading, the segmented lines or the image read whole as one line."""
    if not page.lines or page.lines[-1].id != WHOLE_READING_ID:
        raise ValueError(f"{page.source or page.id}: no whole reading to settle")
    whole, whole_geometry = page.lines.pop(), geometries.pop()
    if not whole_reading_wins([line.recognition for line in page.lines], whole.recognition):
        return page, geometries, False
    whole.id = LINE_IMAGE_LINE_ID
    return (single_line_page(page.width, page.height, whole, page.id, page.source, baseline_turn(whole)),
            [whole_geometry], True)


def page_inputs(gray: np.ndarray, page: Page, is_line: bool, mode: str, is_document_page: bool,
                normalize_config: NormalizeConfig, orientation: str = "auto") -> tuple[list, list, bool]:
    """`line_inputs`, and in auto mode the image read whole after them when `reads_both_ways`
    (`add_whole_reading`, turned as `orientation` gives, never by "auto"): (arrays, geometries,
    whether the last is the whole reading)."""
    arrays, geometries = line_inputs(gray, page, is_line, normalize_config)
    read_whole_too = reads_both_ways(mode, is_document_page, is_line)
    if read_whole_too:
        add_whole_reading(gray, page, arrays, geometries, normalize_config, given_turn(orientation))
    return arrays, geometries, read_whole_too


def line_inputs(gray: np.ndarray, page: Page, is_line: bool, normalize_config: NormalizeConfig):
    """Network inputs of a page's lines: (normalised float arrays, geometries), in line order."""
    if is_line:  # the image is the line: one too thin to hold one is refused (ImageError)
        prepared = [normalize_line_with_geometry(turned(gray, page.orientation), normalize_config)]
    else:  # a segmented line too thin to read is blank, not the page's failure
        crops = [cut_line(gray, line, turn=page.orientation) for line in page.lines]
        prepared = [blank_line(normalize_config) if crop.shape[0] < MIN_LINE_ROWS
                    else normalize_line_with_geometry(crop, normalize_config) for crop in crops]
    return [a for a, _ in prepared], [g for _, g in prepared]


def prepare_page(ref: PageRef, settings: PrepareSettings) -> PreparedPage:
    """One page -> PreparedPage. Never raises for a bad page: the failure comes back as data,
    with the stage it happened in."""
    if ref.error:  # the input could not even be listed or its pages counted
        return failed(ref, ref.error_stage, ref.error)
    started = time.thread_time()
    stage = "read"
    try:
        gray = readable_gray(load_page(ref, settings.dpi))
        stage = "segment"
        page, is_line = layout_page(gray, settings.mode, ref.page_id, ref.source, ref.is_document_page,
                                    settings.segment, settings.orientation)
        stage = "recognize"  # normalising a line is the recognizer's first step
        arrays, geometries, read_whole_too = page_inputs(gray, page, is_line, settings.mode, ref.is_document_page,
                                                         settings.normalize, settings.orientation)
        prepared = PreparedPage(ref.page_id, ref.source, page, [ink_to_uint8(a) for a in arrays], geometries,
                                is_line, read_whole_too)
    except Exception as exc:  # noqa: BLE001 - one broken page never stops a batch
        log.debug("page %s failed", ref.source, exc_info=True)
        prepared = failed(ref, stage, failure_reason(exc))
    prepared.seconds = time.thread_time() - started
    return prepared


def failed(ref: PageRef, stage: str, message: str) -> PreparedPage:
    return PreparedPage(ref.page_id, ref.source, failure=FailedInput(ref.source, stage, message, ref.page_id))


def failure_reason(exc: BaseException) -> str:
    """The reason to report: an ImageError's own (the record names the file), else type and message."""
    reason = getattr(exc, "reason", None)
    return reason or f"{type(exc).__name__}: {exc}"
