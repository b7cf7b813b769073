"""Pens: re-stroke a font's glyphs along their centre lines, so one font gives many writers.

A font fixes the shape of its pen (a calligraphic nib, a felt tip, a uniform line). People write
the same letter shapes with ballpoints, markers, pencils and broad nibs, pressing harder and
lighter along a stroke. Here each cached glyph is skeletonised once (Zhang-Suen thinning, below;
OpenCV's ximgproc thinning is not in the wheels we use) into its centre-line pixels, cached with
the glyph (FontBank.skeleton). Per instance the skeleton is jittered
by a smooth displacement (a shared function of position, so strokes stay connected) and redrawn
with the line's pen:

    ballpoint  uniform thin line
    marker     uniform thick line (felt tip, whiteboard marker)
    pencil     uniform thin line; the grain comes with the pencil ink (augment.apply_ink)
    nib        broad nib: the width follows the stroke direction (thin along the nib's edge)
    pressure   ballpoint whose width swells and thins along the strokes

Drawing is one dilation by the pen's footprint (a disk, or the nib's line) or, for pressure, one
distance transform per glyph: drawing the skeleton's segments with cv2.polylines cost ten times
more. Within a line, each character is re-stroked once and its instances share it
(render.py); the instance maps make them differ.

Labels stay honest: thinning preserves connectivity, every piece of ink (a dot, a full stop)
keeps at least one skeleton pixel, and the jitter is smooth and small, so every stroke and dot
of the glyph is redrawn.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from hwr.synth.config import SynthConfig

PENS = ("ballpoint", "marker", "pencil", "nib", "pressure")
FONT_PEN = "font"  # meta["pen"] of lines drawn with the font's own strokes
# The thinnest pen drawn, px: thinner strokes would be faint, and a pixel-wide gap that the
# skeleton jitter can open must stay inside the stroke.
_MIN_THICKNESS = 2


# --- skeleton ------------------------------------------------------------------------------
def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each 8-neighbourhood code (bit i = neighbour P(i+2), clockwise from north), whether
    Zhang-Suen's first and second sub-iteration delete the centre pixel."""
    first = np.zeros(256, bool)
    second = np.zeros(256, bool)
    for code in range(256):
        p = [(code >> i) & 1 for i in range(8)]  # P2..P9
        b = sum(p)
        a = sum(1 for i in range(8) if p[i] == 0 and p[(i + 1) % 8] == 1)
        p2, p3, p4, p5, p6, p7, p8, p9 = p
        if 2 <= b <= 6 and a == 1:
            first[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
            second[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


_ZS_FIRST, _ZS_SECOND = _zhang_suen_tables()


# Weights of the eight neighbours in a 3x3 correlation: bit i for P(i+2), so one cv2.filter2D
# gives every pixel's neighbourhood code.
_CODE_KERNEL = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)


def thin(binary: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (1984) of a boolean image, vectorised: each sub-iteration computes
    every pixel's neighbourhood code with one correlation and looks the deletions up in a
    precomputed table."""
    img = np.pad(binary.astype(np.uint8), 1)
    while True:
        changed = False
        for table in (_ZS_FIRST, _ZS_SECOND):
            code = cv2.filter2D(img, cv2.CV_16S, _CODE_KERNEL, borderType=cv2.BORDER_CONSTANT)
            delete = table[code] & (img > 0)
            if delete.any():
                img[delete] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1] > 0


def skeleton_points(mask: np.ndarray) -> np.ndarray:
    """The centre lines of a glyph mask: the (x, y) pixel indices (M, 2) float32 of its
    Zhang-Suen skeleton, plus one pixel for every piece of ink thinning erased."""
    ink = mask > 127
    skel = thin(ink)
    _keep_every_piece(ink, skel)
    ys, xs = np.nonzero(skel)
    return np.stack([xs, ys], axis=1).astype(np.float32)


def _keep_every_piece(ink: np.ndarray, skel: np.ndarray) -> None:
    """Zhang-Suen erases some small blobs (a 2x2 full stop, a round dot) entirely: give every
    piece of ink that lost all its skeleton one pixel, its innermost, so the pen draws a dot."""
    n, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return
    kept = np.zeros(n, bool)
    kept[labels[skel]] = True
    missing = np.flatnonzero(~kept[1:]) + 1
    if missing.size == 0:
        return
    depth = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    for label in missing:
        inside = np.flatnonzero(labels.ravel() == label)
        skel.ravel()[inside[np.argmax(depth.ravel()[inside])]] = True


# --- pens ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pen:
    """One line's pen, in layout pixels."""

    name: str
    width: float  # nominal stroke width
    thin_width: float  # nib: the width along the nib's edge; pressure: the lightest width
    angle: float  # nib: the direction of its edge (radians)
    wave: tuple[float, float, float, float]  # pressure: k_x, k_y (radians/px), phase, amplitude
    jitter: float  # std of the smooth skeleton displacement, px
    jitter_wavelength: float  # px

    def scaled(self, factor: float) -> Pen:
        """The same pen for a hand `factor` times the size (a page's pen on each line's layout)."""
        k_x, k_y, phase, amplitude = self.wave
        return Pen(self.name, max(1.0, self.width * factor), max(1.0, self.thin_width * factor), self.angle,
                   (k_x / factor, k_y / factor, phase, amplitude), self.jitter * factor,
                   self.jitter_wavelength * factor)


def draw_pen_name(rng: np.random.Generator, cfg: SynthConfig) -> str:
    """A pen model by the config's odds: FONT_PEN (no re-stroking) or one of cfg.restroke_pens."""
    if rng.random() >= cfg.restroke_prob:
        return FONT_PEN
    names = list(cfg.restroke_pens)
    p = np.array([cfg.restroke_pens[n] for n in names], np.float64)
    return names[int(np.searchsorted(np.cumsum(p) / p.sum(), rng.random(), side="right").clip(0, len(names) - 1))]


# A writer's pen (writer_pen) is drawn for a hand of this x-height, px, and scaled to each
# line's (always smaller): large enough that a pen's width is never clamped at one pixel before
# the scaling (a ballpoint's thin width can be, and only a nib draws with it).
WRITER_PEN_X_HEIGHT = 100.0


def writer_pen(rng: np.random.Generator, cfg: SynthConfig) -> Pen | str:
    """One writer's pen for all their lines (a page): a Pen at WRITER_PEN_X_HEIGHT, which
    render.sample_style scales to each line's x-height, or FONT_PEN. Drawn by name alone, each
    line would get its own width, nib angle and jitter: a page in several pens."""
    name = draw_pen_name(rng, cfg)
    return choose_pen(rng, cfg, WRITER_PEN_X_HEIGHT, force=name) or FONT_PEN


def ink_for(pen: Pen | str | None) -> str | None:
    """The ink augment.apply_ink lays for ink drawn with this pen (a Pen or a pen model's name):
    a pencil's is pencil (gray, grainy); other pens any ink (None)."""
    name = pen.name if isinstance(pen, Pen) else pen
    return "pencil" if name == "pencil" else None


def choose_pen(rng: np.random.Generator, cfg: SynthConfig, x_height: float, force: str | None = None) -> Pen | None:
    """The line's pen (None: the font's own strokes). force: a pen name, e.g. the thin uniform
    pen of a whiteboard capture, or FONT_PEN for the font's own strokes (one writer's lines)."""
    if force is None:
        force = draw_pen_name(rng, cfg)
    if force == FONT_PEN:
        return None
    if force not in PENS:
        raise ValueError(f"unknown pen {force!r}; expected one of {list(PENS)}")
    lo, hi = cfg.pen_width_ranges[force]
    width = max(1.0, float(rng.uniform(lo, hi)) * x_height)
    thin_width = max(1.0, width * float(rng.uniform(0.12, 0.3)))
    angle = math.radians(float(rng.uniform(*cfg.nib_angle_range_deg)))
    direction = float(rng.uniform(0, 2 * math.pi))
    k = 2 * math.pi / (float(rng.uniform(0.6, 1.6)) * x_height)
    wave = (k * math.cos(direction), k * math.sin(direction), float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(0.25, 0.5)))
    jitter = float(rng.uniform(*cfg.restroke_jitter_range)) * x_height
    return Pen(force, width, thin_width, angle, wave, jitter, float(rng.uniform(0.8, 1.6)) * x_height)


def restroke(points: np.ndarray, shape: tuple[int, int], pen: Pen, rng: np.random.Generator
             ) -> tuple[np.ndarray, int]:
    """Redraw a glyph's skeleton with `pen`, jittered smoothly; returns the new mask and the pad
    (px) it grew by on every side (its top-left moves by -pad).

    Uniform pens dilate the centre line by a disk of the pen's width. The broad nib dilates it
    by the nib itself, a short line at the nib's angle: the Minkowski sum of path and nib is what
    a nib leaves on paper, so the width follows the stroke's direction by construction. Pressure
    thresholds one distance transform against a smoothly varying half-width.
    """
    h, w = shape
    pad = int(math.ceil(pen.width / 2 + 2.5 * pen.jitter)) + 2
    H, W = h + 2 * pad, w + 2 * pad
    if not len(points):
        return np.zeros((H, W), np.uint8), pad
    pts = points + np.float32(pad)
    if pen.jitter > 0:
        # A smooth displacement, a function of position: neighbouring skeleton pixels move
        # together, so strokes bend but do not come apart (a gap of a pixel is inside the pen).
        u0, u1, u2, u3 = rng.uniform(-1.0, 1.0, 4).tolist()
        k = 2 * math.pi / pen.jitter_wavelength
        x, y = pts[:, 0].copy(), pts[:, 1]
        pts[:, 0] += pen.jitter * np.sin(u0 * k * y + u1 * k * x + u2 * math.pi)
        pts[:, 1] += pen.jitter * np.sin(u1 * k * y - u0 * k * x + u3 * math.pi)
    # Rounding to pixels; the pad keeps every jittered point inside the canvas.
    xi = (pts[:, 0] + 0.5).astype(np.intp)
    yi = (pts[:, 1] + 0.5).astype(np.intp)
    if pen.name == "pressure":
        # Round pen of varying width: every pixel within half the local width of the centre
        # line, a one-pixel anti-aliased edge; one distance transform serves any width field.
        field = np.full((H, W), 255, np.uint8)
        field[yi, xi] = 0
        distance = cv2.distanceTransform(field, cv2.DIST_L2, cv2.DIST_MASK_3)
        kx, ky, phase, amplitude = pen.wave
        columns = kx * np.arange(W, dtype=np.float32)
        wave = np.sin(columns[None, :] + (ky * np.arange(H, dtype=np.float32) + phase)[:, None])
        half = np.maximum(0.5 * _MIN_THICKNESS, 0.5 * pen.width * (1.0 + amplitude * wave))
        coverage = np.subtract(half + 0.5, distance, out=distance)
        np.clip(coverage, 0.0, 1.0, out=coverage)
        return (coverage * 255.0).astype(np.uint8), pad
    centre = np.zeros((H, W), np.uint8)
    centre[yi, xi] = 255
    if pen.name == "nib":
        kernel = _nib_kernel(int(math.ceil(pen.width)), max(1, int(round(pen.thin_width))), round(pen.angle, 1))
    else:
        kernel = _round_kernel(max(_MIN_THICKNESS, int(round(pen.width))))
    # Dilating the centre line by the pen's footprint draws the stroke; a slight blur gives the
    # anti-aliased edge a real pen has.
    return cv2.GaussianBlur(cv2.dilate(centre, kernel), (3, 3), 0.6), pad


@functools.lru_cache(maxsize=64)
def _round_kernel(width: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))


@functools.lru_cache(maxsize=512)
def _nib_kernel(width: int, thin_width: int, angle: float) -> np.ndarray:
    """The nib's footprint: a line `width` long at `angle` (radians), `thin_width` thick."""
    size = width | 1
    kernel = np.zeros((size, size), np.uint8)
    c = size // 2
    dx, dy = 0.5 * (size - 1) * math.cos(angle), -0.5 * (size - 1) * math.sin(angle)
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1,
             thin_width)
    return kernel
