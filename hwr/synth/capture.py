"""How a written line reaches the model: the capture condition of each synthetic line.

Real lines do not all come from a flatbed scan of white paper. The team's real-pen sets were
whiteboard/tablet captures (IAM-OnDB style: pure black, thin, uniform strokes on white, the line
small in a wide blank frame) and phone photos of ruled paper; users also upload binarised scans
and small, upscaled crops. Each condition here is one function, chosen per line by
`SynthConfig.condition_weights` and recorded in meta["condition"]:

    paper       the default scan path (augment.make_paper, apply_ink, scan)
    whiteboard  black uniform thin strokes on pure white, text small in a wide frame
    binarised   the paper path, then a local (adaptive) threshold to pure black and white
    lowres      the paper path, shrunk so the writing is 30-40 px tall, then blown up again
    photo       ruled or squared paper, uneven light, slight perspective, always JPEG
    archive     an old leaf: darkened, blotchy paper, the back's writing showing through,
                faded patchy ink and heavy grain (archive scans and photocopies)

Every function keeps the ink box (x0, y0, x1, y1) of the returned image honest: the crop never
cuts ink and the box covers all of it.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from hwr.synth.augment import apply_ink, noise_field
from hwr.synth.config import SynthConfig

CONDITIONS = ("paper", "whiteboard", "binarised", "lowres", "photo", "archive")

Box = tuple[int, int, int, int]


def choose_condition(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = [n for n, w in weights.items() if w > 0]
    p = np.array([weights[n] for n in names], np.float64)
    return names[min(int(np.searchsorted(np.cumsum(p) / p.sum(), rng.random(), side="right")), len(names) - 1)]


def check_weights(weights: dict[str, float]) -> None:
    """A typo in a condition name must fail when the config is made, not silently never draw."""
    unknown = sorted(set(weights) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown capture condition(s) {unknown}; expected some of {list(CONDITIONS)}")
    if not any(w > 0 for w in weights.values()):
        raise ValueError("condition_weights gives no condition a positive weight")


# --- whiteboard --------------------------------------------------------------------------
def whiteboard(ink: np.ndarray, box: Box, x_height: float, rng: np.random.Generator,
               cfg: SynthConfig, thin_already: bool = False) -> tuple[np.ndarray, Box]:
    """Pure black, thin, uniform strokes on pure white, the line small in a wide blank frame.

    `ink` is the line's coverage cropped with margins, `box` its ink box. Strokes are thinned
    towards `whiteboard_stroke_range` x-heights (unless `thin_already`: a thin pen re-stroked
    them) and binarised, as an online pen trace rendered at a fixed width looks.
    """
    target = float(rng.uniform(*cfg.whiteboard_stroke_range)) * x_height
    # Lines a thin pen re-stroked (pens.py) are uniform already; others (real digits and
    # letters) are thinned here.
    binary = (ink > 110).astype(np.uint8) * 255 if thin_already else uniform_thin(ink, target)
    x0, y0, x1, y1 = box
    text_h = y1 - y0
    top, bottom = (int(round(rng.uniform(*cfg.whiteboard_frame_y) * text_h)) for _ in range(2))
    left, right = (int(round(rng.uniform(*cfg.whiteboard_frame_x) * text_h)) for _ in range(2))
    crop = binary[y0:y1, x0:x1]
    framed = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    return 255 - framed, (left, top, left + crop.shape[1], top + crop.shape[0])


def uniform_thin(ink: np.ndarray, target: float) -> np.ndarray:
    """Binary ink (0/255) whose strokes are eroded towards `target` px, never losing a stroke:
    each erosion step is kept only while every connected piece of ink keeps some ink."""
    binary = (ink > 110).astype(np.uint8)
    ink_px = int(np.count_nonzero(binary))
    if not ink_px:
        return binary * 255
    # Median stroke width: twice the distance to the edge along the stroke's centre line.
    distance = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    centre = distance[distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8))]
    width = 2.0 * float(np.median(centre[centre > 0])) if centre.size else 1.0
    steps = int((width - max(1.0, target)) // 2)
    if steps <= 0:
        return binary * 255
    pieces = cv2.connectedComponents(binary, connectivity=8)[0]
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    for _ in range(min(steps, 4)):
        thinner = cv2.erode(binary, kernel)
        # The same number of pieces: no dot vanished (a piece splitting is tolerated; it only
        # happens where a stroke was thinner than the rest).
        if cv2.connectedComponents(thinner, connectivity=8)[0] < pieces:
            break
        binary = thinner
    return binary * 255


# --- binarised scan ------------------------------------------------------------------------
def binarise(image: np.ndarray, x_height: float, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """A local threshold (as scanners and document tools binarise): uneven paper stays white.

    The mean over the block (a box filter, constant time per pixel) rather than a Gaussian: at
    blocks of ~50 px the Gaussian costs milliseconds per line. The image is smoothed a little
    first, as scanner firmware does: thresholding raw sensor
    noise would salt the paper with black specks."""
    block = 2 * int(max(3, round(cfg.binarise_block * x_height))) + 1
    offset = float(rng.uniform(*cfg.binarise_offset_range))
    smooth = cv2.GaussianBlur(image, (0, 0), 0.8)
    return cv2.adaptiveThreshold(smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, offset)


# --- low resolution ------------------------------------------------------------------------
def lowres(image: np.ndarray, box: Box, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """The writing shrunk to `lowres_text_px` tall (a small camera crop, a fax, a thumbnail),
    then blown up again to the original size: the detail is gone, the size is not."""
    text_h = max(1, box[3] - box[1])
    factor = float(rng.uniform(*cfg.lowres_text_px)) / text_h
    if factor >= 1.0:
        return image
    h, w = image.shape
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    interpolation = cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
    return cv2.resize(small, (w, h), interpolation=interpolation)


# --- phone photo ---------------------------------------------------------------------------
def photo_rules(shape: tuple[int, int], baseline_y: float, x_height: float, rng: np.random.Generator,
                cfg: SynthConfig) -> tuple[list[float], list[float]]:
    """Horizontal rules under the writing and, on squared paper, vertical rules too."""
    h, w = shape
    squared = rng.random() < cfg.photo_squared_prob
    pitch_range = cfg.photo_square_pitch_range if squared else cfg.ruled_pitch_range
    pitch = float(rng.uniform(*pitch_range)) * x_height
    base = baseline_y + rng.normal(0.0, 0.05) * x_height
    rows = [base + k * pitch for k in range(-math.ceil(base / pitch) - 1, math.ceil((h - base) / pitch) + 2)]
    cols = []
    if squared:
        start = float(rng.uniform(0, pitch))
        cols = [start + k * pitch for k in range(int(w / pitch) + 1)]
    return rows, cols


def draw_columns(paper: np.ndarray, cols: list[float], level: float, rng: np.random.Generator) -> None:
    h, w = paper.shape
    rule = level * float(rng.uniform(0.62, 0.85))
    for x in cols:
        xi = int(round(x))
        if 0 <= xi < w:
            cv2.line(paper, (xi, 0), (xi, h - 1), rule, 1)


def uneven_light(gray: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Multiply by a phone's light (in place): a broad gradient, vignetting and sometimes the
    soft shadow of the phone or a hand across part of the line."""
    h, w = gray.shape
    lo, hi = cfg.photo_light_range
    corners = rng.uniform(lo, hi, (2, 3)).astype(np.float32)
    light = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.photo_shadow_prob:
        small = np.ones((8, 32), np.float32)
        edge = int(rng.integers(4, 28))
        depth = float(rng.uniform(0.55, 0.85))
        if rng.random() < 0.5:
            small[:, :edge] = depth
        else:
            small[:, edge:] = depth
        small = cv2.GaussianBlur(small, (0, 0), 2.0)
        light *= cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    gray *= light


def perspective(gray: np.ndarray, box: Box, points: list[tuple[float, float]], x_height: float,
                rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, Box, list[tuple[float, float]]]:
    """A slightly tilted camera: each corner moves up to `photo_tilt` x-heights. The image is
    padded first, so no ink leaves it; the new box bounds the moved box corners, and `points`
    (the baseline) move with the image."""
    h, w = gray.shape
    shift = cfg.photo_tilt * x_height
    pad = int(math.ceil(shift)) + 2
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    src = np.float32([[pad, pad], [pad + w, pad], [pad + w, pad + h], [pad, pad + h]])
    dst = src + rng.uniform(-shift, shift, (4, 2)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(padded, matrix, (w + 2 * pad, h + 2 * pad), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = box
    corners = np.float32([[[x0 + pad, y0 + pad]], [[x1 + pad, y0 + pad]], [[x1 + pad, y1 + pad]],
                          [[x0 + pad, y1 + pad]]])
    moved = cv2.perspectiveTransform(corners, matrix).reshape(-1, 2)
    H, W = warped.shape
    # One pixel of slack for the interpolation's spread.
    nx0, ny0 = np.floor(moved.min(axis=0)).astype(int) - 1
    nx1, ny1 = np.ceil(moved.max(axis=0)).astype(int) + 2
    new_points = cv2.perspectiveTransform(np.float32([[[x + pad, y + pad]] for x, y in points]), matrix)
    moved_points = [(float(x), float(y)) for x, y in new_points.reshape(-1, 2)]
    return warped, (max(0, int(nx0)), max(0, int(ny0)), min(W, int(nx1)), min(H, int(ny1))), moved_points


# --- archive ---------------------------------------------------------------------------------
def age_paper(paper: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> float:
    """Darken the paper (in place) as old paper yellows and greys, with broad soft blotches;
    returns how much its base level fell, so the ink's contrast is measured against the old tone."""
    h, w = paper.shape
    darken = float(rng.uniform(*cfg.archive_darken_range))
    # A coarse random grid blown up smoothly: blotches a few line heights across.
    grid = rng.standard_normal((3, max(3, round(3 * w / max(h, 1) / 2)))).astype(np.float32)
    blotches = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    paper -= darken + float(rng.uniform(*cfg.archive_blotch_range)) * np.abs(blotches)
    return darken


def show_through(paper: np.ndarray, ink: np.ndarray, x_height: float, rng: np.random.Generator,
                 cfg: SynthConfig, max_depth: float = 255.0) -> None:
    """The writing on the back of the leaf seen through it (in place): mirrored, soft, faint and
    offset from the front's lines, at most `max_depth` gray levels dark. The line's own ink,
    mirrored, stands in for the back's: it costs one flip instead of a second line, and mirrored
    it reads as no word of the front (an o or an l reads the same mirrored, so the back must stay
    clearly fainter than the front: the caller's max_depth)."""
    h, w = ink.shape
    dx = float(rng.uniform(-0.3, 0.3)) * w
    dy = float(rng.uniform(-1.0, 1.0)) * x_height
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    back = cv2.warpAffine(cv2.flip(ink, 1), shift, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    back = cv2.GaussianBlur(back, (0, 0), max(0.5, float(rng.uniform(*cfg.archive_show_blur_range)) * x_height))
    depth = min(float(rng.uniform(*cfg.archive_show_depth_range)), max_depth)
    paper -= back.astype(np.float32) * (depth / 255.0)


def fade(ink: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Faded ink: the coverage scaled down, unevenly along the strokes (float32, 0-255)."""
    strength = float(rng.uniform(*cfg.archive_fade_range))
    patchy = np.clip(strength + 0.2 * noise_field(ink.shape, rng), 0.25, 1.0)
    return ink.astype(np.float32) * patchy


def grain(gray: np.ndarray, contrast: float, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Heavy sensor or photocopy grain: Gaussian noise of `archive_noise_range` gray levels,
    sometimes in 2 px grains (a copy of a copy), added to float32 gray.

    contrast: how far the strokes lie below the paper under them. The grain and the scan's own
    noise (`scan`, up to noise_std_range's top) together stay under a third of it, so faded
    writing is hard to read but never gone: the label must still match what is visible."""
    h, w = gray.shape
    room = (max(contrast, 0.0) / 3.0) ** 2 - cfg.noise_std_range[1] ** 2
    sigma = min(float(rng.uniform(*cfg.archive_noise_range)), math.sqrt(max(room, 0.0)))
    if rng.random() < 0.5:
        noise = noise_field((h, w), rng)
    else:
        # Blown up 2x the grains are coarser; linear interpolation lowers their spread ~1.5x,
        # which the factor restores.
        small = noise_field(((h + 1) // 2, (w + 1) // 2), rng)
        noise = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        sigma *= 1.5
    return cv2.scaleAdd(noise, sigma, gray)


def archive_leaf(paper: np.ndarray, paper_level: float, ink: np.ndarray, x_height: float, pen: str | None,
                 aged: np.random.Generator, ink_rng: np.random.Generator,
                 cfg: SynthConfig) -> tuple[np.ndarray, str]:
    """The writing `ink` laid on `paper` (made by augment.make_paper, changed in place) as an old
    leaf: aged paper, faded ink, the back showing through and grain. Returns gray (float32, for
    `augment.scan`) and the ink's name, as apply_ink does.

    aged: the generator of the leaf's look; ink_rng: apply_ink's (the same for a line; a page
    keeps its own stream there, so only its look changes)."""
    paper_level -= age_paper(paper, aged, cfg)
    blank = paper.copy()  # apply_ink writes over the paper
    gray, ink_name = apply_ink(paper, paper_level, fade(ink, aged, cfg), ink_rng, cfg, pen)
    return after_ink(gray, blank, ink, x_height, aged, cfg), ink_name


def after_ink(gray: np.ndarray, paper: np.ndarray, ink: np.ndarray, x_height: float, rng: np.random.Generator,
              cfg: SynthConfig) -> np.ndarray:
    """An old leaf once its faded ink is laid: the back showing through, then grain; float32.

    paper: the leaf before the ink (aged, blotched, stained), so the strokes' depth is measured
    against the paper under each of them, not its base tone. The back stays under half that depth
    and the grain under a third."""
    strokes = ink > 160
    depth = float((paper[strokes] - gray[strokes]).mean()) if strokes.any() else 0.0
    if rng.random() < cfg.archive_show_prob:
        show_through(gray, ink, x_height, rng, cfg, max_depth=0.5 * depth)
    return grain(gray, depth, rng, cfg)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else image
