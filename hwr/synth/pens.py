"""Pens: re-stroke a font's glyphs along their centre lines, so one font gives many writers.

A font fixes the shape of its pen (a calligraphic nib, a felt tip, a uniform line). People write
the same letter shapes with ballpoints, markers, pencils and broad nibs, pressing harder and
lighter along a stroke. Here each cached glyph is skeletonised once (Zhang-Suen thinning, below;
OpenCV's ximgproc thinning is not in the wheels we use) into short segments between neighbouring
skeleton pixels, cached with the glyph (FontBank.skeleton). Per instance the skeleton is jittered
by a smooth displacement (a shared function of position, so strokes stay connected) and redrawn
with the line's pen:

    ballpoint  uniform thin line
    marker     uniform thick line (felt tip, whiteboard marker)
    pencil     uniform thin line; the grain comes with the pencil ink (augment.apply_ink)
    nib        broad nib: the width follows the stroke direction (thin along the nib's edge)
    pressure   ballpoint whose width swells and thins along the strokes

Variable widths are drawn as a few cv2.polylines calls, one per integer thickness (segments are
a pixel long, so the steps do not show): one call per segment would cost ten times more.

Labels stay honest: thinning preserves connectivity, every piece of ink (a dot, a full stop)
keeps at least one skeleton pixel, and the jitter is smooth and small, so every stroke and dot
of the glyph is redrawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hwr.synth.config import SynthConfig

PENS = ("ballpoint", "marker", "pencil", "nib", "pressure")
FONT_PEN = "font"  # meta["pen"] of lines drawn with the font's own strokes
# cv2 draws an anti-aliased line of thickness 1 at a fraction of full ink (a dot at 1%): 2 px is
# the thinnest stroke that shows.
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
# (dy, dx) of P2..P9: north, north-east, east, south-east, south, south-west, west, north-west.
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def thin(binary: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (1984) of a boolean image, vectorised: each sub-iteration looks up
    every pixel's neighbourhood code in a precomputed table, so a glyph thins in a few dozen
    numpy operations."""
    img = np.pad(binary.astype(np.uint8), 1)
    h, w = img.shape
    while True:
        changed = False
        for table in (_ZS_FIRST, _ZS_SECOND):
            code = np.zeros((h - 2, w - 2), np.uint8)
            for bit, (dy, dx) in enumerate(_NEIGHBOURS):
                code |= img[1 + dy: h - 1 + dy, 1 + dx: w - 1 + dx] << bit
            delete = table[code] & (img[1:-1, 1:-1] > 0)
            if delete.any():
                img[1:-1, 1:-1][delete] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1] > 0


def skeleton_segments(mask: np.ndarray) -> np.ndarray:
    """The centre lines of a glyph mask as segments (K, 4) float32 [x0, y0, x1, y1] between
    8-neighbouring skeleton pixels (pixel centres, mask coordinates). A lone pixel (a thinned
    dot) becomes a segment of length zero, which still draws a dot."""
    ink = mask > 127
    skel = thin(ink)
    _keep_every_piece(ink, skel)
    ys, xs = np.nonzero(skel)
    if ys.size == 0:
        return np.zeros((0, 4), np.float32)
    on = np.pad(skel, 1)
    py, px = ys + 1, xs + 1
    east, south = on[py, px + 1], on[py + 1, px]
    west = on[py, px - 1]
    # Diagonal links only where no orthogonal path already joins the two pixels.
    south_east = on[py + 1, px + 1] & ~east & ~south
    south_west = on[py + 1, px - 1] & ~west & ~south
    linked = east | south | south_east | south_west | west | on[py - 1, px] | on[py - 1, px - 1] | on[py - 1, px + 1]
    parts = []
    for flag, dx, dy in ((east, 1, 0), (south, 0, 1), (south_east, 1, 1), (south_west, -1, 1), (~linked, 0, 0)):
        sx, sy = xs[flag], ys[flag]
        parts.append(np.stack([sx, sy, sx + dx, sy + dy], axis=1))
    return (np.concatenate(parts).astype(np.float32) + np.float32([0.5, 0.5, 0.5, 0.5]))


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


def choose_pen(rng: np.random.Generator, cfg: SynthConfig, x_height: float, force: str | None = None) -> Pen | None:
    """The line's pen (None: the font's own strokes). force: a pen name, e.g. the thin uniform
    pen of a whiteboard capture."""
    if force is None:
        if rng.random() >= cfg.restroke_prob:
            return None
        names = list(cfg.restroke_pens)
        p = np.array([cfg.restroke_pens[n] for n in names], np.float64)
        force = names[int(np.searchsorted(np.cumsum(p) / p.sum(), rng.random(), side="right").clip(0, len(names) - 1))]
    if force not in PENS:
        raise ValueError(f"unknown pen {force!r}; expected one of {list(PENS)}")
    lo, hi = cfg.pen_width_ranges[force]
    width = max(1.0, float(rng.uniform(lo, hi)) * x_height)
    thin_width = max(1.0, width * float(rng.uniform(0.2, 0.45)))
    angle = math.radians(float(rng.uniform(*cfg.nib_angle_range_deg)))
    direction = float(rng.uniform(0, 2 * math.pi))
    k = 2 * math.pi / (float(rng.uniform(0.6, 1.6)) * x_height)
    wave = (k * math.cos(direction), k * math.sin(direction), float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(0.25, 0.5)))
    jitter = float(rng.uniform(*cfg.restroke_jitter_range)) * x_height
    return Pen(force, width, thin_width, angle, wave, jitter, float(rng.uniform(0.8, 1.6)) * x_height)


def restroke(segments: np.ndarray, shape: tuple[int, int], pen: Pen, rng: np.random.Generator
             ) -> tuple[np.ndarray, int]:
    """Redraw a glyph's skeleton with `pen`, jittered smoothly; returns the new mask and the pad
    (px) it grew by on every side (its top-left moves by -pad)."""
    h, w = shape
    pad = int(math.ceil(pen.width / 2 + 2.5 * pen.jitter)) + 2
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    if not len(segments):
        return canvas, pad
    pts = segments.reshape(-1, 2) + np.float32(pad)  # endpoints, (2K, 2)
    if pen.jitter > 0:
        # A smooth displacement, a function of position: shared endpoints move together, so
        # strokes bend but never come apart.
        u = rng.uniform(-1.0, 1.0, 4)
        k = 2 * math.pi / pen.jitter_wavelength
        kx, ky, phase_x, phase_y = u[0] * k, u[1] * k, u[2] * math.pi, u[3] * math.pi
        pts[:, 0] += pen.jitter * np.sin(kx * pts[:, 1] + ky * pts[:, 0] + phase_x)
        pts[:, 1] += pen.jitter * np.sin(ky * pts[:, 1] - kx * pts[:, 0] + phase_y)
    lines = np.round(pts * 16).astype(np.int32).reshape(-1, 2, 2)  # fixed point, shift=4
    if pen.name in ("ballpoint", "marker", "pencil"):
        cv2.polylines(canvas, lines, False, 255, max(_MIN_THICKNESS, int(round(pen.width))), cv2.LINE_AA, shift=4)
        return canvas, pad
    if pen.name == "nib":
        # Width ~ |sin| of the angle between the stroke and the nib's edge.
        d = pts[1::2] - pts[0::2]
        theta = np.arctan2(d[:, 1], d[:, 0])
        widths = pen.thin_width + (pen.width - pen.thin_width) * np.abs(np.sin(theta - pen.angle))
    else:  # pressure: a slow wave of pressure along the writing
        kx, ky, phase, amplitude = pen.wave
        mid = (pts[0::2] + pts[1::2]) * 0.5
        widths = pen.width * (1.0 + amplitude * np.sin(kx * mid[:, 0] + ky * mid[:, 1] + phase))
    thickness = np.maximum(_MIN_THICKNESS, np.round(widths)).astype(np.int32)
    for value in np.unique(thickness):
        cv2.polylines(canvas, lines[thickness == value], False, 255, int(value), cv2.LINE_AA, shift=4)
    return canvas, pad
