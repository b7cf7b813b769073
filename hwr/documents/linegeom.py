"""The coordinate frame of a text line on its page: where a line image comes from, and where
a position in that image lies on the page.

A line's image is the page region of its polygon, rotated so that its baseline (first point
to last point) runs horizontally. x in that image is the distance along the baseline from
the polygon's leftmost point, y the distance across it from the polygon's top. The pipeline
cuts line images with this frame and the writers place word boxes (`WordBox.x0/x1`, in
line-image pixels) back on the page with it, so the two always agree, on skewed pages too.

On a page read turned (`Page.orientation`, hwr.documents.orientation) "left" and "top" are
the turned page's: the baseline runs up, down or right to left across the image as given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hwr.records import Line


@dataclass
class LineFrame:
    origin: np.ndarray  # page point of line-image pixel (0, 0)
    u: np.ndarray  # unit vector along the baseline (line-image x axis), page coordinates
    width: int  # line-image size in pixels
    height: int

    @classmethod
    def of(cls, line: Line, turn: int = 0) -> LineFrame:
        """The frame of a line on a page read turned `turn` degrees clockwise (Page.orientation)."""
        polygon = np.asarray(line.polygon, np.float64).reshape(-1, 2)
        u = reading_direction(turn)
        if len(line.baseline) >= 2:
            d = np.asarray(line.baseline[-1], np.float64) - np.asarray(line.baseline[0], np.float64)
            # A baseline against the page's reading direction (listed right to left in an imported
            # PAGE file) keeps the page's axes: following it would cut the line upside down.
            if np.hypot(*d) > 1e-6 and d @ u > 0:
                u = d / np.hypot(*d)
        n = np.array([-u[1], u[0]])
        along, across = polygon @ u, polygon @ n
        origin = along.min() * u + across.min() * n
        width = max(1, int(math.ceil(along.max() - along.min())) + 1)
        height = max(1, int(math.ceil(across.max() - across.min())) + 1)
        return cls(origin, u, width, height)

    @property
    def n(self) -> np.ndarray:
        return np.array([-self.u[1], self.u[0]])

    @property
    def angle_deg(self) -> float:
        """Baseline angle; positive when the line rises to the right on the page."""
        return -math.degrees(math.atan2(self.u[1], self.u[0]))

    def page_to_line(self) -> np.ndarray:
        """2x3 affine matrix: page pixel -> line-image pixel (for cv2.warpAffine)."""
        u, n = self.u, self.n
        return np.array([[u[0], u[1], -self.origin @ u], [n[0], n[1], -self.origin @ n]], np.float64)

    def to_page(self, points) -> np.ndarray:
        """Line-image points (N, 2) -> page points (N, 2), float."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return self.origin + pts[:, :1] * self.u + pts[:, 1:] * self.n

    def to_line(self, points) -> np.ndarray:
        pts = np.asarray(points, np.float64).reshape(-1, 2) - self.origin
        return np.stack([pts @ self.u, pts @ self.n], axis=1)


def reading_direction(turn: int) -> np.ndarray:
    """The unit vector, in page pixels, along which text reads on a page read turned `turn`
    degrees clockwise (the turned page's +x; y points down the page)."""
    return {0: np.array([1.0, 0.0]), 90: np.array([0.0, -1.0]), 180: np.array([-1.0, 0.0]),
            270: np.array([0.0, 1.0])}[turn % 360]


def cut_line(gray: np.ndarray, line: Line, paper: float | None = None, turn: int = 0) -> np.ndarray:
    """The line's image: its polygon cut from the page along the baseline, paper outside it
    (`turn`: the page's Page.orientation).

    Pixels outside the polygon become paper (not white), so neighbouring lines' ascenders
    and descenders vanish without a white frame that contrast stretching would read as ink.
    """
    frame = LineFrame.of(line, turn)
    crop = cv2.warpAffine(gray, frame.page_to_line(), (frame.width, frame.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros(crop.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(frame.to_line(line.polygon)).astype(np.int32)], 1)
    if paper is None:
        inside = crop[mask > 0]
        paper = float(np.percentile(inside, 90)) if inside.size else 255.0
    crop[mask == 0] = int(round(paper))
    return crop


def word_polygons(line: Line, spans, turn: int = 0) -> list[list[tuple[int, int]]]:
    """Page polygons of several (x0, x1) spans of one line (its word boxes), the line's frame
    computed once: the writers place every word of a page through here (`turn`: the page's
    Page.orientation).

    The line polygon is clipped to the band x0 <= x <= x1 of the line frame; if the band
    misses the polygon (a box outside the ink), the band's rectangle across the frame is used.
    """
    frame = LineFrame.of(line, turn)
    local = frame.to_line(line.polygon)
    polygons = []
    for x0, x1 in spans:
        x0, x1 = float(x0), float(x1)
        clipped = _clip_band(local, x0, x1)
        if len(clipped) < 3:
            clipped = np.array([[x0, 0], [x1, 0], [x1, frame.height - 1], [x0, frame.height - 1]], np.float64)
        polygons.append([(int(x), int(y)) for x, y in np.round(frame.to_page(clipped))])
    return polygons


def _clip_band(polygon: np.ndarray, x0: float, x1: float) -> np.ndarray:
    """Sutherland-Hodgman clipping of a polygon (N, 2) to x0 <= x <= x1.

    Plain Python over lists: line polygons have tens of points, where numpy's per-call
    overhead costs more than the loop (this runs once per word of every page written)."""
    pts = polygon.reshape(-1, 2).tolist()
    for edge, keep_right in ((x0, True), (x1, False)):
        if not pts:
            break
        out = []
        px, py = pts[-1]
        prev_in = px >= edge if keep_right else px <= edge
        for cx, cy in pts:
            cur_in = cx >= edge if keep_right else cx <= edge
            if cur_in != prev_in:  # the edge from the previous vertex crosses x = edge
                out.append((edge, py + (edge - px) / (cx - px) * (cy - py)))
            if cur_in:
                out.append((cx, cy))
            px, py, prev_in = cx, cy, cur_in
        pts = out
    return np.array(pts, np.float64).reshape(-1, 2)
