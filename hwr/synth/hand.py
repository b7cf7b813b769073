"""How one writer varies every letter: per-instance geometry, stroke and elastic warp, per-word
slant and squeeze, joins between letters and breaks in strokes.

A font draws every "a" the same; a person never does. Each character instance here gets its own
small map about its own centre (rotation, shear, x/y scale, vertical offset, a bow of its
strokes), its own advance, sometimes its own pen width; each word its own slant and squeeze;
each writer (line) its own letter width, from cramped to sprawling, and its own x-height
against the ascenders.

Where the maps are applied: not one warp per glyph. On this project's shared 2-core machines a
cv2 call on a 40x40 mask costs 10-20 us and building its map as much again, ~1 ms per line,
a third of the whole line budget (>= 300 lines/s per core). Instead the instance maps become
one displacement field (instance_displacement) that the line's single remap (augment.warp_line)
already evaluates on its coarse grid: the same per-instance geometry at a fraction of the cost,
and overlapping letters blend instead of tearing. Each instance's own bow of its strokes (a
quadratic term of its map) is its small local elastic warp.

Coordinates are layout pixels (the cached glyph size) relative to the word's pen origin on the
baseline (y grows down, so glyph tops are negative), as in render.py.

Labels stay honest: the field is smooth and small (no ink disappears), a break erases only a small disk
of the glyph's largest connected component (never a dot, never most of a glyph), and joins are
drawn only between neighbouring lowercase letters inside one word (never across a space).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from hwr.synth.config import SynthConfig

# The rotation/scale centre of a glyph sits this many x-heights above the baseline: letters then
# rotate about their middle and grow from near the baseline, so the line does not wobble.
CENTRE_HEIGHT = 0.35
_DILATE_KERNEL = np.ones((2, 2), np.uint8)
_REACH = 1.2  # x-heights from an instance's centre over which its own map acts in full
_JOIN_T = np.linspace(0.0, 1.0, 9)[:, None]  # curve parameter of a connecting stroke's points
# A cut component must be this many times the erased disk: the cut stays a small share of it.
_BREAK_MIN_AREA = 5.0
_BREAK_MIN_PIECE = 0.25  # no piece a cut splits off may be smaller than this share of the component
# Hands leave these letters at the top and run along the x-height into the next one (a
# "bridge": the "o" of "on", the "w" of "wa", the arm of an "r", the bar of an "f"). A connector
# from their lowest right ink instead hangs a tail on them: an "o" with a tail at the baseline is
# an "a", an "r" with one a "u" or "n", an "f" with one a "t". Joins drawn so taught the model
# those confusions (stage 16 on joined validation lines: o>a 29 where unjoined lines gave 2).
HIGH_EXIT_LETTERS = frozenset("bfvorw")
# How far below the top of its right half a bridge may leave (x-heights): the rightmost point of
# the letter's top, its shoulder, rather than the very top of the bowl.
_SHOULDER_DROP = 0.15
_BRIDGE_ENTRY_WIDTH = 0.35  # x-heights: the left part of a letter whose top a bridge enters


@dataclass(frozen=True)
class Hand:
    """One writer's variability on one line (all lengths in layout pixels)."""

    x_height: float
    stroke: float  # the font's pen width at the cached size
    variability: float  # multiplies every per-instance spread: neat to sloppy writers
    join_prob: float  # per pair of neighbouring lowercase letters
    join_break_prob: float  # a drawn join stops short (a lifted pen)
    break_prob: float  # per glyph instance: a small gap erased across a stroke
    cfg: SynthConfig


@dataclass(frozen=True)
class WordShape:
    """The per-word part of the map: slant, horizontal squeeze and overall size."""

    slant: float  # extra shear (tan of the angle) on top of the line's slant
    squeeze: float  # horizontal scale of glyphs and advances
    scale: float  # size of the word relative to the line


def working_stroke(stroke: float, x_height: float) -> float:
    """The pen width thinning and breaks are sized by: the glyph's own (0: unknown, then a
    tenth of the x-height), at least one pixel."""
    return max(1.0, stroke or 0.1 * x_height)


class Proportions(NamedTuple):
    """A writer's letter proportions against the font's: one person keeps them on every line."""

    width: float  # hand.writer_width
    band: float  # hand.writer_band


def writer_proportions(rng: np.random.Generator, cfg: SynthConfig) -> Proportions:
    return Proportions(writer_width(rng, cfg), writer_band(rng, cfg))


def sample_hand(rng: np.random.Generator, cfg: SynthConfig, x_height: float, stroke: float) -> Hand | None:
    """A writer's variability for one line, or None (this line keeps the font's exact glyphs)."""
    if rng.random() >= cfg.instance_prob:
        return None
    variability = float(rng.uniform(*cfg.instance_variability_range))
    join_prob = float(rng.uniform(*cfg.join_prob_range)) if rng.random() < cfg.join_line_prob else 0.0
    break_prob = cfg.break_glyph_prob if rng.random() < cfg.break_line_prob else 0.0
    return Hand(x_height, working_stroke(stroke, x_height), variability, join_prob, cfg.join_break_prob,
                break_prob, cfg)


def writer_width(rng: np.random.Generator, cfg: SynthConfig) -> float:
    """How much narrower or wider than the font this writer forms letters: one horizontal scale
    of the whole line (augment.warp_line), letters, spacing and all. (Not in the instance maps:
    a scale shared by neighbouring instances cancels where their maps blend.)
    Fonts are drawn at one width each; people write from cramped to sprawling, and a model that
    saw only the fonts' widths reads lines a fifth narrower a quarter to 40% worse (stage 17: the
    harder set 6.2% -> 7.8%, its paper lines of corpus text 3.9% -> 5.5%;
    `bench/bench_narrow.py`). Not scaled by the writer's variability: a neat hand may be narrow."""
    lo, hi = cfg.writer_width_range
    return float(np.clip(math.exp(rng.normal(0.0, cfg.writer_width_std)), lo, hi))


def writer_band(rng: np.random.Generator, cfg: SynthConfig) -> float:
    """How much taller or shorter than the font's this writer draws the x-height band (the
    bodies of a, e, n, o), the ascenders' and descenders' own lengths kept (augment.warp_line
    moves them with the band's edge). Stage 17 read lines with the band at 0.75 or 1.3 times
    the font's 24% and 18% worse. 1.0 without a draw when cfg.writer_band_std is 0."""
    if cfg.writer_band_std <= 0:
        return 1.0
    lo, hi = cfg.writer_band_range
    return float(np.clip(math.exp(rng.normal(0.0, cfg.writer_band_std)), lo, hi))


def band_source_heights(heights: np.ndarray, band: float, x_height: float) -> np.ndarray:
    """The inverse of the band map, as the warp evaluates it: for points `heights` above the
    baseline in the banded line, their heights in the font's layout. The band [0, x_height]
    becomes [0, band * x_height]; ink above it moves by the band's growth, ink below the
    baseline stays."""
    top = band * x_height
    return np.where(heights <= 0, heights, np.where(heights < top, heights / band, heights - (top - x_height)))


def sample_word(rng: np.random.Generator, hand: Hand, scale: float = 1.0) -> WordShape:
    cfg = hand.cfg
    slant, squeeze = rng.normal(0.0, 1.0, 2)
    return WordShape(
        slant=_clamp(float(slant) * cfg.word_slant_std * hand.variability, 0.3),
        squeeze=math.exp(_clamp(float(squeeze) * cfg.word_squeeze_std * hand.variability, 0.3)),
        scale=scale,
    )


def instance(z: list[float], hand: Hand, word: WordShape, cx: float, cy: float) -> tuple[float, ...]:
    """One glyph instance's own map, as the displacement the line warp applies around it.

    z: 8 standard normal draws for this instance. Returns (cx, cy, m00, m01, m10, m11, ty, bend_x,
    bend_y): the displacement at a point p near the instance is M (p - c) + (0, ty) plus a bow
    of its strokes, bend_x * dy^2 sideways and bend_y * dx^2 up or down (dx, dy = p - c in
    x-heights), where M = A - I and A = rotation @ shear @ diag(sx, sy) about the centre c.
    """
    cfg = hand.cfg
    v = hand.variability
    xh = hand.x_height
    angle = math.radians(_clamp(z[0] * cfg.instance_rotation_std_deg * v, 8.0))
    shear = word.slant + _clamp(z[1] * cfg.instance_shear_std * v, 0.25)
    # The word's size and squeeze are not part of it: render draws the glyphs at them (a scale
    # shared by neighbouring instances would cancel where their maps blend).
    sx = math.exp(_clamp(z[2] * cfg.instance_scale_std * v, 0.25))
    sy = math.exp(_clamp(z[3] * cfg.instance_scale_std * v, 0.25))
    c, s = math.cos(angle), math.sin(angle)
    # Shear moves ink above the centre (dy < 0) to the right, as a right-leaning hand does.
    a00, a01 = c * sx, (-c * shear - s) * sy
    a10, a11 = s * sx, (-s * shear + c) * sy
    ty = z[4] * cfg.instance_offset_std * v * xh
    bend = cfg.instance_bend_std * v * xh
    return (cx, cy, a00 - 1.0, a01, a10, a11 - 1.0, ty, _clamp(z[5] * bend, 3 * bend),
            _clamp(z[6] * bend, 3 * bend))


def max_shift_x(instances: list[tuple[float, ...]], x_height: float) -> float:
    """The most any of these instances' maps can move ink sideways (instance_displacement never
    moves a point further: its offsets are clipped to REACH). Word gaps are widened by it, so a
    space in the label stays a gap in the ink."""
    reach = _REACH * x_height
    return max((abs(r[2]) + abs(r[3])) * reach + abs(r[7]) * _REACH * _REACH for r in instances) if instances else 0.0


def instance_displacement(px: np.ndarray, py: np.ndarray, instances: np.ndarray,
                          x_height: float) -> tuple[np.ndarray, np.ndarray]:
    """The displacement field of a line's instances at points (px, py) of the layout.

    Between two neighbouring instance centres the two maps blend linearly in x, so every
    instance is rotated, sheared, scaled and bent about its own centre while the field stays
    continuous: overlapping letters (kerning, cursive) never tear or leave ghosts, which
    separate per-glyph warps of overlapping pieces could not promise.
    """
    # Columns, each sorted by centre x (gathering single columns is much cheaper than rows).
    cols = instances[np.argsort(instances[:, 0], kind="stable")].T.copy()
    n = cols.shape[1]
    if n == 1:
        k0 = k1 = np.zeros(px.shape, np.intp)
        w = np.zeros(px.shape, np.float32)
    else:
        k1 = np.searchsorted(cols[0], px)
        np.clip(k1, 1, n - 1, out=k1)
        k0 = k1 - 1
        c0, c1 = cols[0][k0], cols[0][k1]
        w = np.clip((px - c0) / np.maximum(c1 - c0, 1e-3), 0.0, 1.0)
    inv_xh = 1.0 / max(x_height, 1.0)
    reach = _REACH * x_height

    def one(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cx, cy, m00, m01, m10, m11, ty, bx, by = (c[k] for c in cols)
        # Beyond REACH x-heights from its centre (ascenders, descenders, swashes) an instance's
        # map stops growing: neighbours rotated apart would otherwise fold tall strokes over.
        dx = np.clip(px - cx, -reach, reach)
        dy = np.clip(py - cy, -reach, reach)
        ux2, uy2 = np.square(dx * inv_xh), np.square(dy * inv_xh)
        return m00 * dx + m01 * dy + bx * uy2, m10 * dx + m11 * dy + ty + by * ux2

    dx0, dy0 = one(k0)
    dx1, dy1 = one(k1)
    return dx0 + w * (dx1 - dx0), dy0 + w * (dy1 - dy0)


def vary_mask(mask: np.ndarray, z_stroke: float, hand: Hand, rng: np.random.Generator,
              stroke: float | None = None) -> np.ndarray:
    """The instance's own pen (a pixel more or less when |z| is large) and, for a writer who
    breaks strokes, sometimes a small gap. Returns the cached mask itself when untouched.

    stroke: the glyph's own pen width when it is not the line's (a second form drawn with
    another font's strokes, allographs.py): thinning and breaks are sized by it."""
    stroke = hand.stroke if stroke is None else stroke
    if abs(z_stroke) > hand.cfg.instance_stroke_z:
        mask = _change_stroke(mask, thicker=z_stroke > 0, stroke=stroke)
    if hand.break_prob and rng.random() < hand.break_prob:
        mask = mask.copy()
        break_stroke(mask, stroke, rng)
    return mask


def _clamp(x: float, limit: float) -> float:
    return -limit if x < -limit else limit if x > limit else x


def _change_stroke(mask: np.ndarray, thicker: bool, stroke: float) -> np.ndarray:
    """One pixel more or less pen. Thinning only fonts whose pen is >= 3 px, so no stroke and
    no dot of this glyph can vanish."""
    if thicker:
        return cv2.dilate(mask, _DILATE_KERNEL)
    if stroke >= 3.0:
        return cv2.erode(mask, _DILATE_KERNEL)
    return mask


def break_stroke(mask: np.ndarray, stroke: float, rng: np.random.Generator) -> bool:
    """Erase a short gap across a stroke of the glyph's largest component, in place.

    Only a component at least `_BREAK_MIN_AREA` disks big is cut, so dots, commas and tiny
    glyphs are never touched, and the cut removes a small share of the glyph's ink. A cut that
    would split off a piece smaller than `_BREAK_MIN_PIECE` of the component is not made: the tip of
    an "l" cut off is the dot of an "i" (stage 16 on validation lines with every other glyph
    broken: l>i 13 times in 250 lines, 7 with this rule, CER 3.65% -> 3.16%, 2.83% unbroken).
    No other point is tried, which would only split more stems in the middle; about half the
    cuts drawn are not made, so `break_glyph_prob` now breaks about half as many glyphs.
    Returns whether a gap was cut.
    """
    ink = (mask > 127).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n < 2:
        return False
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    radius = 0.5 * stroke + 0.5  # the disk's diameter just spans the stroke
    disk_area = math.pi * radius * radius
    if stats[largest, cv2.CC_STAT_AREA] < _BREAK_MIN_AREA * disk_area:
        return False
    component = (labels == largest).astype(np.uint8)
    ys, xs = np.nonzero(component)
    k = int(rng.integers(len(xs)))
    centre = (int(xs[k]), int(ys[k]))
    cv2.circle(component, centre, int(round(radius)), 0, -1, cv2.LINE_8)
    pieces = cv2.connectedComponentsWithStats(component, connectivity=8)[2][1:, cv2.CC_STAT_AREA]
    if not pieces.size or pieces.min() < _BREAK_MIN_PIECE * pieces.sum():
        return False
    cv2.circle(mask, centre, int(round(radius)), 0, -1, cv2.LINE_8)
    return True


def join_letters(here: JoinAnchors, here_x: float, after: JoinAnchors, after_x: float, hand: Hand,
                 rng: np.random.Generator) -> tuple[np.ndarray, int, int] | None:
    """A short connecting stroke from one letter's exit to the next letter's entry (`here_x`,
    `after_x`: the word x its anchors are relative to); None when the letters are too far apart
    or already touch. A cup-shaped stroke from the letter's lowest right ink into the middle of
    the next one's left side, or from a high exit (HIGH_EXIT_LETTERS) a nearly level bridge along
    the x-height into its top. Sometimes the stroke stops short: the writer lifted the pen."""
    xh = hand.x_height
    bridge = here.bridge
    x0, y0 = here.exit_x + here_x, here.exit_y
    if bridge:
        x2, y2 = after.bridge_entry_x + after_x, after.bridge_entry_y
    else:
        x2, y2 = after.entry_x + after_x, after.entry_y
    gap = x2 - x0
    if gap < 2.0 or gap > hand.cfg.join_max_gap * xh:
        return None
    sag, end_draw, end, width = rng.random(4).tolist()
    if bridge:
        # A bridge arches a little above its two ends, never down towards the baseline.
        x1, y1 = (x0 + x2) / 2.0, min(y0, y2) - 0.12 * sag * xh
    else:
        # A cup-shaped connector, as cursive hands draw it: it sags towards the baseline.
        x1, y1 = (x0 + x2) / 2.0, min(max(y0, y2) + 0.25 * sag * xh, 0.1 * xh)
    t = _JOIN_T if end_draw >= hand.join_break_prob else _JOIN_T * (0.3 + 0.35 * end)
    points = ((1 - t) ** 2) * (x0, y0) + (2 * (1 - t) * t) * (x1, y1) + (t ** 2) * (x2, y2)
    thickness = max(1, int(round(hand.stroke * (0.7 + 0.3 * width))))
    pad = thickness + 2
    bx, by = int(math.floor(min(x0, x1, x2))) - pad, int(math.floor(min(y0, y1, y2))) - pad
    bw = int(math.ceil(max(x0, x1, x2))) + pad - bx
    bh = int(math.ceil(max(y0, y1, y2))) + pad - by
    canvas = np.zeros((bh, bw), np.uint8)
    # Fixed-point coordinates (shift=4) keep the curve's sub-pixel position.
    fixed = ((points - (bx, by)) * 16).astype(np.int32)
    cv2.polylines(canvas, [fixed], False, 255, thickness, cv2.LINE_AA, shift=4)
    return canvas, bx, by


class JoinAnchors(NamedTuple):
    """Where joins leave and enter one glyph, relative to its pen origin (edge_points) or, once
    scaled to the size a word draws it at, to its centre."""

    exit_x: float
    exit_y: float
    entry_x: float
    entry_y: float  # a cup join enters the middle of the leftmost ink,
    bridge_entry_x: float  # a bridge the top of its left part
    bridge_entry_y: float
    bridge: bool  # the glyph is left at the top (HIGH_EXIT_LETTERS)

    def scaled(self, about_x: float, fx: float, fy: float) -> JoinAnchors:
        """These anchors on the glyph drawn fx wider and fy taller about x = about_x (and the
        baseline), relative to about_x."""
        return self._replace(exit_x=(self.exit_x - about_x) * fx, exit_y=self.exit_y * fy,
                             entry_x=(self.entry_x - about_x) * fx, entry_y=self.entry_y * fy,
                             bridge_entry_x=(self.bridge_entry_x - about_x) * fx,
                             bridge_entry_y=self.bridge_entry_y * fy)


def edge_points(mask: np.ndarray, left: int, top: int, x_height: float, ch: str) -> JoinAnchors | None:
    """Where a join leaves glyph `ch` and where one enters it, relative to its pen origin, or
    None for a glyph with no ink near the baseline.

    Exit: the rightmost ink between half an x-height and the baseline (its lowest pixel there);
    for HIGH_EXIT_LETTERS the shoulder: of the right half's columns whose top ink lies within
    _SHOULDER_DROP x-heights of the highest, the rightmost, at its top (no column whose ink runs
    on above the x-height; without one, the letter is left low like the others). Entry: the leftmost ink
    between the x-height and the baseline (the middle of its run); for a bridge the highest ink
    of the main strokes' left part (_BRIDGE_ENTRY_WIDTH x-heights from their leftmost ink).
    Computed once per cached glyph (FontBank.anchors).
    """
    def band(y_top: float, y_bottom: float) -> tuple[int, np.ndarray] | None:
        r0 = max(0, int(math.floor(y_top)) - top)
        r1 = min(mask.shape[0], int(math.ceil(y_bottom)) - top)
        if r1 <= r0:
            return None
        return r0, mask[r0:r1] > 127

    lower = band(-0.5 * x_height, 0.08 * x_height)
    body = band(-1.05 * x_height, 0.08 * x_height)
    if lower is None or body is None:
        return None
    (r_exit, exit_band), (r_entry, entry_band) = lower, body
    exit_cols = np.flatnonzero(exit_band.any(axis=0))
    entry_cols = np.flatnonzero(entry_band.any(axis=0))
    if exit_cols.size == 0 or entry_cols.size == 0:
        return None
    cn = int(entry_cols[0])
    entry_rows = np.flatnonzero(entry_band[:, cn])
    entry_y = top + r_entry + int(entry_rows[len(entry_rows) // 2]) + 0.5
    # A bridge runs level into the top of the letter's left part (a third of an x-height wide):
    # past a script font's lead-in stroke that starts at the baseline, into the top of the "n";
    # its main strokes only, those reaching the band's lower half, never the dot of an "i".
    main = _main_strokes(entry_band, r_exit - r_entry)
    main_cols = np.flatnonzero(main.any(axis=0))
    left_part = main_cols[main_cols < main_cols[0] + _BRIDGE_ENTRY_WIDTH * x_height]
    left_tops = main[:, left_part].argmax(axis=0)  # each column's first inked row
    highest = int(left_tops.argmin())
    entry_top = (left + int(left_part[highest]) + 0.5, top + r_entry + int(left_tops[highest]) + 0.5)
    # An ascender that runs on above the band (a script "b"'s loop, an "f"'s hook) is no shoulder.
    runs_on = mask[r_entry - 1] > 127 if r_entry > 0 else np.zeros(mask.shape[1], bool)
    right = entry_cols[(entry_cols >= (entry_cols[0] + entry_cols[-1]) / 2.0) & ~runs_on[entry_cols]]
    bridge = ch in HIGH_EXIT_LETTERS and right.size > 0
    if bridge:
        tops = entry_band[:, right].argmax(axis=0)
        shoulder = np.flatnonzero(tops <= tops.min() + _SHOULDER_DROP * x_height)[-1]
        ce, exit_y = int(right[shoulder]), top + r_entry + int(tops[shoulder]) + 0.5
    else:
        ce = int(exit_cols[-1])
        exit_y = top + r_exit + int(np.flatnonzero(exit_band[:, ce])[-1]) + 0.5
    return JoinAnchors(left + ce + 0.5, exit_y, left + cn + 0.5, entry_y, *entry_top, bridge)


def _main_strokes(band: np.ndarray, lower_row: int) -> np.ndarray:
    """The band's ink in pieces that reach down to `lower_row` (a letter's body, not its dot)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(band.astype(np.uint8), connectivity=8)
    reaching = np.flatnonzero(stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] > lower_row)
    return np.isin(labels, reaching[reaching > 0])
