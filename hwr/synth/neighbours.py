"""Neighbouring lines: the tails of the lines above and below that a line's crop takes in.

A line cut from a page by its bounding box (IAM's line images, a segmenter's boxes, a user's
own crops) often carries the descenders of the line above along its top edge and the
ascenders and capitals of the line below along its bottom edge. A model that never saw them
reads them as letters or lets them pull the line's own letters astray.

The neighbours are written in the line's font, x-height and pen (their slant, rotation and
letter widths drawn anew, as lines of one page vary) a line pitch away, and the crop is
widened to take in a band of them. Their ink is kept only outside the line's own band (above
its ascenders, below its descenders: SynthConfig.neighbour_own_band, or its ink box if
taller) with a clearance, so no tail can pass for an apostrophe, comma or dot of the line, and
the label stays the line's own text.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from hwr.synth.config import SynthConfig
from hwr.synth.render import InkLine

WriteNeighbour = Callable[[np.random.Generator, InkLine], InkLine]
_DIRECTIONS = {"above": (-1,), "below": (1,), "both": (-1, 1)}  # SynthConfig.neighbour_sides


def add_neighbours(line: InkLine, box: tuple[int, int, int, int], rng: np.random.Generator,
                   cfg: SynthConfig, write_neighbour: WriteNeighbour) -> tuple[InkLine, tuple[int, int, int, int]]:
    """The cropped line (augment.crop_with_margins) widened above and/or below and with the
    neighbours' tails in the new margins; returns the line and its own ink box there.

    write_neighbour(rng, line): another line's ink by the same writer (LineSynthesizer.write_line).
    """
    sides = list(cfg.neighbour_sides)
    weights = np.array([cfg.neighbour_sides[name] for name in sides], np.float64)
    side = sides[int(rng.choice(len(sides), p=weights / weights.sum()))]
    directions = _DIRECTIONS[side]  # -1: the line above, 1: the line below
    xh = line.x_height
    x0, y0, x1, y1 = box
    h, w = line.ink.shape
    # Widen the crop: the band of neighbour ink beyond the line's own ink box.
    pad_top = pad_bottom = 0
    if -1 in directions:
        pad_top = max(0, int(round(rng.uniform(*cfg.neighbour_reach_range) * xh)) - y0)
    if 1 in directions:
        pad_bottom = max(0, int(round(rng.uniform(*cfg.neighbour_reach_range) * xh)) - (h - y1))
    ink = cv2.copyMakeBorder(line.ink, pad_top, pad_bottom, 0, 0, cv2.BORDER_CONSTANT, value=0)
    baseline = [(x, y + pad_top) for x, y in line.baseline]
    box = (x0, y0 + pad_top, x1, y1 + pad_top)
    clear = cfg.neighbour_clearance * xh
    own_above, own_below = cfg.neighbour_own_band

    # Per column, where the line's own band starts and ends (its baseline may tilt).
    (bx0, by0), (bx1, by1) = baseline[0], baseline[-1]
    cols = np.arange(w, dtype=np.float64)
    base_y = np.interp(cols, [bx0, bx1 + 1e-3], [by0, by1])
    own_top = np.minimum(box[1], base_y - own_above * xh) - clear
    own_bottom = np.maximum(box[3], base_y + own_below * xh) + clear
    rows = np.arange(ink.shape[0], dtype=np.float64)[:, None]
    for direction in directions:
        pitch = float(rng.uniform(*cfg.neighbour_pitch_range)) * xh
        other = write_neighbour(rng, line)
        (ox0, oy0), (ox1, oy1) = other.baseline[0], other.baseline[-1]
        dy = (by0 + by1) / 2 + direction * pitch - (oy0 + oy1) / 2
        # Lines of a page start near one margin: the neighbour's first letter near the line's.
        dx = box[0] + rng.normal(0.0, 1.5) * xh - min(ox0, ox1)
        placed = cv2.warpAffine(other.ink, np.float32([[1, 0, dx], [0, 1, dy]]), (w, ink.shape[0]),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        outside = rows < own_top[None, :] if direction < 0 else rows >= own_bottom[None, :]
        np.maximum(ink, np.where(outside, placed, 0).astype(np.uint8), out=ink)
    return replace(line, ink=ink, baseline=baseline, neighbours=True), box
