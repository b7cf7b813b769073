"""Struck-out words: a writer crosses a word out, and the transcription says `#`.

Real pages carry corrections: a word written, then struck through with a line or two, or
scribbled over. IAM transcribes every such word as `#` (one character for the whole word),
and so does this engine: a model that has never seen one reads the crossed letters as
letters, several errors where the label has one character.

The word is drawn as usual and the strike goes on top, in the line's pen, spanning the word's
ink: one line through the x-height band (most often), two lines, or a zig-zag scribble.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

STRUCK_LABEL = "#"  # IAM's transcription of a struck-out word
STYLES = ("line", "double", "scribble")
_STYLE_WEIGHTS = np.array([0.6, 0.2, 0.2])


@dataclass(frozen=True)
class Strike:
    """Which word of a line is struck out, and the generator that draws its strike (a child
    of the line's generator, so lines without a strike keep every pixel they had)."""

    word: int
    rng: np.random.Generator


def choose_strike(rng: np.random.Generator, words: list[str], prob: float) -> Strike | None:
    """A word of at least two letters to strike out, with probability `prob` per line; None
    for a line of fewer than two words (a line of one crossed word would teach little)."""
    if prob <= 0.0 or len(words) < 2:
        return None
    child = rng.spawn(1)[0]  # spawning leaves `rng`'s own stream where it was
    if child.random() >= prob:
        return None
    candidates = [k for k, word in enumerate(words) if sum(ch.isalpha() for ch in word) >= 2]
    if not candidates:
        return None
    return Strike(candidates[int(child.integers(len(candidates)))], child)


def strike_through(left: float, right: float, x_height: float, stroke: float, rng: np.random.Generator
                   ) -> tuple[np.ndarray, int, int]:
    """The strike over a word whose ink spans [left, right) (pen-origin coordinates on the
    baseline, y grows down): (uint8 coverage, x, y of its top-left)."""
    style = STYLES[int(np.searchsorted(np.cumsum(_STYLE_WEIGHTS), rng.random() * _STYLE_WEIGHTS.sum()))]
    overshoot = x_height * rng.uniform(-0.05, 0.25, 2)  # a line starts and ends near the word's edges
    x0, x1 = left - overshoot[0], right + overshoot[1]
    if style == "scribble":
        # Up and down across the x-height band, a stroke every ~0.3 x-heights.
        n = max(3, int(round((x1 - x0) / (0.3 * x_height))))
        xs = np.linspace(x0, x1, n) + rng.normal(0.0, 0.05 * x_height, n)
        ys = np.where(np.arange(n) % 2 == 0, -0.9, -0.1) * x_height + rng.normal(0.0, 0.08 * x_height, n)
        paths = [np.stack([xs, ys], axis=1)]
    else:
        heights = [-0.5] if style == "line" else [-0.65, -0.3]
        paths = []
        for h in heights:
            n = 7
            xs = np.linspace(x0, x1, n)
            tilt = rng.normal(0.0, 0.04)  # slope of the stroke
            wave = rng.normal(0.0, 0.04 * x_height) * np.sin(np.linspace(0, math.pi * rng.uniform(1, 3), n))
            ys = (h + rng.normal(0.0, 0.08)) * x_height + tilt * (xs - x0) + wave
            paths.append(np.stack([xs, ys], axis=1))
    thickness = max(1, int(round(stroke * rng.uniform(0.8, 1.3))))
    points = np.concatenate(paths)
    pad = thickness + 2
    bx, by = int(math.floor(points[:, 0].min())) - pad, int(math.floor(points[:, 1].min())) - pad
    bw = int(math.ceil(points[:, 0].max())) + pad - bx
    bh = int(math.ceil(points[:, 1].max())) + pad - by
    canvas = np.zeros((bh, bw), np.uint8)
    # Fixed-point coordinates (shift=4) keep the strokes' sub-pixel positions.
    fixed = [((path - (bx, by)) * 16).astype(np.int32) for path in paths]
    cv2.polylines(canvas, fixed, False, 255, thickness, cv2.LINE_AA, shift=4)
    return canvas, bx, by
