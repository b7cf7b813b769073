"""Deskew: the angle that makes a page's text lines level (step 3 of hwr.documents.segment).

Postl's projection criterion: the angle whose horizontal ink profile is sharpest, searched on a
sample of ink pixels at half a degree, then a tenth.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

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

