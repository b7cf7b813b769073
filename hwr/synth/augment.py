"""Writer and scanner degradations: stroke width, slant/rotation/elastic warp, paper, ink, blur,
noise and JPEG.

Everything runs through OpenCV on images the size of one line (~100 x 1000 px), with no
per-pixel Python: the whole line costs a few milliseconds. Geometry acts on the ink-coverage
image alone (so its ink box stays known exactly); paper and scan effects come after, on gray.
"""
from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from hwr.synth.config import SynthConfig
from hwr.synth.hand import CENTRE_HEIGHT, Proportions, band_source_heights, instance_displacement
from hwr.synth.render import InkLine

# A fixed field of Gaussian noise, cropped at random offsets (and flipped): drawing fresh
# normal noise for every line would cost more than all the rest of the scan simulation.
_NOISE_SHAPE = (384, 4096)  # 6 MB: taller and wider than any line image
_NOISE_SEED = 20_240_601
_noise_tile: np.ndarray | None = None


def noise_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Standard normal noise of `shape`, float32 (a view into the shared tile when it fits)."""
    global _noise_tile
    h, w = shape
    if h > _NOISE_SHAPE[0] or w > _NOISE_SHAPE[1]:
        return rng.standard_normal(shape, dtype=np.float32)
    if _noise_tile is None:
        _noise_tile = np.random.default_rng(_NOISE_SEED).standard_normal(_NOISE_SHAPE, dtype=np.float32)
    y = int(rng.integers(0, _NOISE_SHAPE[0] - h + 1))
    x = int(rng.integers(0, _NOISE_SHAPE[1] - w + 1))
    field = _noise_tile[y: y + h, x: x + w]
    flip = int(rng.integers(4))
    if flip & 1:
        field = field[::-1]
    if flip & 2:
        field = field[:, ::-1]
    return field


def smooth_field(shape: tuple[int, ...], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field (h, w[, channels]), unit-ish amplitude, correlated over about
    `cell` pixels."""
    h, w = shape[:2]
    ny, nx = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    coarse = rng.standard_normal((ny, nx) + tuple(shape[2:]), dtype=np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(shape)


# --- strokes -----------------------------------------------------------------------------
THINNER = -1  # draw_stroke_change: erode the strokes


def adjust_stroke_width(ink: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Thicker or thinner pen: morphological dilation or erosion of the ink coverage."""
    return change_stroke_width(ink, draw_stroke_change(rng, cfg), cfg)


def draw_stroke_change(rng: np.random.Generator, cfg: SynthConfig) -> int:
    """How change_stroke_width changes a line's strokes: k >= 2 dilates by a k-pixel kernel,
    THINNER erodes, 0 keeps them. Drawn once per page for all its lines (one writer, one pen)."""
    u = rng.random()
    if u < cfg.thicken_prob:
        return int(rng.integers(2, 4))
    if u < cfg.thicken_prob + cfg.thin_prob:
        return THINNER
    return 0


def change_stroke_width(ink: np.ndarray, change: int, cfg: SynthConfig) -> np.ndarray:
    """The ink with its strokes changed as draw_stroke_change drew (see there). Thinning that
    would take too much of a line's ink leaves that line as it is, even on a thinned page."""
    if change >= 2:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE if change > 2 else cv2.MORPH_RECT, (change, change))
        return cv2.dilate(ink, kernel)
    if change == THINNER:
        thinned = cv2.erode(ink, np.ones((2, 2), np.uint8))
        # Thin fonts (and dots, commas) would vanish: keep the original when too much goes, or
        # when any one piece of ink goes (a letter thinned per instance already, an i's dot:
        # the line's total loss allowed them to fade below half, still in the label).
        before = np.count_nonzero(ink > 127)
        if before and np.count_nonzero(thinned > 127) >= (1.0 - cfg.thin_max_loss) * before \
                and _every_piece_kept(ink > 127, thinned > 127):
            return thinned
    return ink


def _every_piece_kept(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether every 8-connected piece of the `before` mask keeps a pixel in `after`."""
    count, labels = cv2.connectedComponents(before.astype(np.uint8), connectivity=8)
    return len(np.unique(labels[after & before])) == count - 1  # labels 1..count-1: the pieces


# --- geometry ------------------------------------------------------------------------------
def sample_linear_map(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Slant (shear about the baseline) then a small rotation, as one 2x2 matrix."""
    slant = min(max(rng.normal(cfg.slant_mean, cfg.slant_std), -cfg.slant_max), cfg.slant_max)
    angle = math.radians(min(max(rng.normal(0.0, cfg.rotation_std_deg), -cfg.rotation_max_deg),
                             cfg.rotation_max_deg))
    # y grows downwards, so ink above the baseline (y < 0) moves right for a positive slant.
    shear = np.array([[1.0, -slant], [0.0, 1.0]])
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return rotation @ shear


def warp_line(line: InkLine, rng: np.random.Generator, cfg: SynthConfig) -> InkLine:
    """Slant, rotation and elastic distortion in one cv2.remap.

    The inverse affine map is evaluated on a coarse grid (every warp_grid_px) with the elastic
    displacement added, then interpolated to full resolution: an affine map survives linear
    interpolation exactly, and the elastic field is smooth at that scale anyway.
    """
    ink = line.ink
    h, w = ink.shape
    xh = line.x_height * line.scale  # final pixels
    by = line.baseline[0][1]
    width, band = line.proportions
    # The writer's letter width: a horizontal scale of the whole line before slant and rotation.
    linear = sample_linear_map(rng, cfg) @ np.diag([width, 1.0]) * line.scale
    amplitude = float(rng.uniform(*cfg.elastic_amplitude_range)) * xh if rng.random() < cfg.elastic_prob else 0.0
    # Each letter's own map and bend (hand.py), evaluated on the same coarse grid.
    varied = line.instances is not None

    # Forward map about the baseline: p' = L (p - (0, by)) + t.
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) - (0.0, by)
    moved = corners @ linear.T
    # Instance maps move ink by a few tenths of an x-height at most.
    pad = math.ceil(3.0 * amplitude + (0.3 * xh if varied else 0.0) + max(0.0, band - 1.0) * xh) + 2
    t = pad - moved.min(axis=0)
    out_w, out_h = (np.ceil(moved.max(axis=0) + t).astype(int) + pad).tolist()

    grid = cfg.warp_grid_px
    if varied:
        # The coarse grid must resolve the instance maps: about two nodes per letter.
        grid = max(4, min(grid, int(cfg.instance_grid * xh)))
    nx, ny = max(2, math.ceil(out_w / grid) + 1), max(2, math.ceil(out_h / grid) + 1)
    # Node positions where cv2.resize (INTER_LINEAR, pixel-centre aligned) samples them.
    xs = (np.arange(nx) + 0.5) * out_w / nx - 0.5 - t[0]
    ys = (np.arange(ny) + 0.5) * out_h / ny - 0.5 - t[1]
    (a, b), (c, d) = linear
    inverse = np.array([[d, -b], [-c, a]]) / (a * d - b * c)
    src = np.empty((ny, nx, 2), np.float32)
    src[..., 0] = inverse[0, 0] * xs[None, :] + inverse[0, 1] * ys[:, None]
    src[..., 1] = inverse[1, 0] * xs[None, :] + inverse[1, 1] * ys[:, None] + by
    if amplitude:
        cell = cfg.elastic_cell * xh / grid
        src += amplitude * smooth_field((ny, nx, 2), cell, rng)
    if varied:
        # Source (layout) points move back by the instance displacement there: the first-order
        # inverse of p -> p + D(p), exact enough for displacements of a few pixels.
        dx, dy = instance_displacement(src[..., 0], src[..., 1], line.instances, line.x_height)
        src[..., 0] -= dx
        src[..., 1] -= dy
    if band != 1.0:
        # The writer's x-height band, about each letter's baseline (its instance centre sits
        # CENTRE_HEIGHT above it; between letters the baseline is interpolated), or about the
        # line's baseline in a line without instances.
        if varied:
            centres = line.instances[np.argsort(line.instances[:, 0], kind="stable")]
            xs, ys = centres[:, 0], centres[:, 1] + CENTRE_HEIGHT * line.x_height
        else:
            (x0, y0), (x1, y1) = line.baseline[0], line.baseline[-1]
            xs, ys = np.array([x0, x1 + 1e-3]), np.array([y0, y1])
        base = np.interp(src[..., 0], xs, ys)
        src[..., 1] = base - band_source_heights(base - src[..., 1], band, line.x_height)
    # One two-channel map (x, y interleaved): a single resize and the fastest remap input.
    xy_map = cv2.resize(src, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    warped = cv2.remap(ink, xy_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    baseline = [tuple((linear @ (np.array(p) - (0.0, by)) + t).tolist()) for p in line.baseline]
    return replace(line, ink=warped, baseline=baseline, x_height=xh * band, scale=1.0,
                   proportions=Proportions(1.0, 1.0))


def ink_box(ink: np.ndarray, threshold: int = 0) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive, of coverage above threshold; None for no ink."""
    mask = ink > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def clip_baseline(baseline: list[tuple[float, float]], box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """The baseline segment cut to the ink box: the pen's path runs past the last glyph's ink
    (and starts before the first), but a baseline should span the writing only."""
    (ax, ay), (bx, by) = baseline
    x0, y0, x1, y1 = box

    def at(x: float) -> tuple[float, float]:
        y = ay if bx == ax else ay + (by - ay) * (x - ax) / (bx - ax)
        return float(x), float(min(max(y, y0), y1 - 1))

    return [at(min(max(ax, x0), x1 - 1)), at(max(min(bx, x1 - 1), x0))]


def crop_with_margins(line: InkLine, rng: np.random.Generator,
                      cfg: SynthConfig) -> tuple[InkLine, tuple[int, int, int, int]]:
    """Cut the line to its ink plus random margins; the crop never cuts ink.

    Returns the cropped line and its ink box in the new image.
    """
    box = ink_box(line.ink) or (0, 0, 1, 1)
    x0, y0, x1, y1 = box
    xh = line.x_height
    lo = cfg.min_margin_px
    left, right = (max(lo, int(round(rng.uniform(*cfg.margin_x_range) * xh))) for _ in range(2))
    top, bottom = (max(lo, int(round(rng.uniform(*cfg.margin_y_range) * xh))) for _ in range(2))
    crop = line.ink[y0:y1, x0:x1]
    ink = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    dx, dy = left - x0, top - y0
    new_box = (left, top, left + (x1 - x0), top + (y1 - y0))
    baseline = clip_baseline([(x + dx, y + dy) for x, y in line.baseline], new_box)
    return replace(line, ink=ink, baseline=baseline), new_box


# --- paper, ink and scan -----------------------------------------------------------------
def make_paper(shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig,
               rule_ys: list[float] | None = None) -> tuple[np.ndarray, float]:
    """Paper gray levels (float32): base tone, illumination gradient, stains, ruling.

    Returns the paper and its base level (what the ink contrast is measured against)."""
    h, w = shape
    level = float(rng.uniform(*cfg.paper_level_range))
    paper = np.full((h, w), level, np.float32)
    if rng.random() < cfg.gradient_prob:
        corners = rng.normal(0.0, cfg.gradient_amplitude / 2, (2, 2)).astype(np.float32)
        paper += cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.stain_prob:
        paper -= _stains((h, w), rng, cfg)
    if rule_ys:
        rule = level * float(rng.uniform(*cfg.ruled_level_range)) / 255.0
        thickness = int(rng.integers(1, 3))
        for y in rule_ys:
            yi = int(round(y))
            if 0 <= yi < h:
                cv2.line(paper, (0, yi), (w - 1, yi), rule, thickness)
    return paper, level


def _stains(shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Soft blotches (coffee, water, foxing) drawn at 1/8 scale and blown up."""
    h, w = shape
    small = np.zeros((max(2, h // 8), max(2, w // 8)), np.float32)
    sh, sw = small.shape
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
        axes = (int(rng.integers(1, max(2, sw // 3))), int(rng.integers(1, max(2, sh))))
        cv2.ellipse(small, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    float(rng.uniform(*cfg.stain_strength_range)), -1)
    small = cv2.GaussianBlur(small, (0, 0), 1.5)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def choose_pen(rng: np.random.Generator, cfg: SynthConfig) -> str:
    pens = list(cfg.pen_weights)
    u = rng.random() * sum(cfg.pen_weights.values())
    for pen in pens:
        u -= cfg.pen_weights[pen]
        if u < 0:
            return pen
    return pens[-1]


def apply_ink(paper: np.ndarray, paper_level: float, ink: np.ndarray, rng: np.random.Generator,
              cfg: SynthConfig, pen: str | None = None) -> tuple[np.ndarray, str]:
    """Lay ink of a random pen over the paper (in place); returns gray float32 and the pen.

    pen: force an ink (a key of cfg.pen_levels), e.g. "pencil" for lines a pencil re-stroked."""
    chosen = choose_pen(rng, cfg)
    pen = pen if pen in cfg.pen_levels else chosen
    ink_level = min(float(rng.uniform(*cfg.pen_levels[pen])), paper_level - cfg.min_contrast)
    alpha = ink.astype(np.float32)
    alpha *= float(rng.uniform(*cfg.ink_opacity_range)) / 255.0
    if pen == "pencil":
        # Graphite skips over the paper grain: patchy coverage along the stroke.
        alpha *= np.clip(0.85 + 0.2 * noise_field(ink.shape, rng), 0.4, 1.0)
    # gray = paper - alpha * (paper - ink_level), in place.
    depth = paper - max(0.0, ink_level)
    depth *= alpha
    paper -= depth
    return paper, pen


def scan(gray: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Sensor noise, dust specks, optics blur and JPEG: float32 gray (modified) -> uint8."""
    h, w = gray.shape
    gray = cv2.scaleAdd(noise_field((h, w), rng), float(rng.uniform(*cfg.noise_std_range)), gray)
    if rng.random() < cfg.speck_prob:
        # Dust: single light-gray pixels, too faint and small to pass for a full stop.
        for _ in range(int(rng.poisson(h * w / 20_000)) + 1):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            gray[y, x] -= float(rng.uniform(20, 60))
    blur = rng.random() < cfg.blur_prob
    sigma = float(rng.uniform(*cfg.blur_sigma_range))
    # To uint8 before the blur: 8-bit blur is faster, and quantising first changes nothing seen.
    out = np.clip(gray, 0, 255, out=gray).astype(np.uint8)
    if blur:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_quality_range[0], cfg.jpeg_quality_range[1] + 1))
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return out
