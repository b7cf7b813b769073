"""Synthetic pages: several lines by one writer, laid out with varying spacing, indentation,
margins, optional ruling and a small scan skew, with each line's polygon, baseline and text
(ground truth for page segmentation).

Geometry is exact by construction: each line's ink box is known before it is pasted, lines
never overlap (a line that would touch the one above moves down, onto the next rule on ruled
paper), and the skew is one affine map applied to the page and to every polygon and baseline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from hwr.records import Line, Page
from hwr.synth import augment, capture
from hwr.synth.hand import writer_proportions
from hwr.synth.pens import ink_for, writer_pen
from hwr.synth.render import InkLine

if TYPE_CHECKING:
    from hwr.synth.synthesizer import LineSynthesizer

POLYGON_STEP = 2.0  # x-heights: the width of the columns a line's polygon follows its ink in


@dataclass
class SynthPage:
    """A rendered page, its lines in reading order, and the ink alone (for checks)."""

    image: np.ndarray  # uint8 gray
    page: Page
    ink: np.ndarray  # uint8 coverage of all lines, page coordinates
    line_meta: list[dict] = field(default_factory=list)  # font and kind per line

    def to_json(self) -> dict:
        """The page ground truth as plain JSON types (the export's pages/<id>.json)."""
        return {
            "id": self.page.id,
            "width": self.page.width,
            "height": self.page.height,
            "lines": [
                {"id": line.id, "text": line.text, "bbox": list(line.bbox),
                 "polygon": [list(p) for p in line.polygon], "baseline": [list(p) for p in line.baseline],
                 **meta}
                for line, meta in zip(self.page.lines, self.line_meta)
            ],
        }


@dataclass
class _Placed:
    line: InkLine
    crop: np.ndarray  # the line's ink box
    x: int  # top-left of crop on the page (before skew)
    y: int
    baseline: list[tuple[float, float]]  # page coordinates, before skew


def render_page(rng: np.random.Generator | int, n_lines: int | None, synthesizer: LineSynthesizer,
                page_id: str = "page", archive: bool = False) -> SynthPage:
    """Lay out n_lines lines of `synthesizer` (its config.page_lines_range if None) on one page.

    archive: an old leaf (capture.py's archive condition): aged paper, the back's writing showing
    through, faded ink, heavy grain. Without it the page is drawn exactly as before it existed.

    The synthesizer is passed in, not built here, so that this module never imports
    `hwr.synth.synthesizer` (which imports this one for `LineSynthesizer.sample_page`).
    """
    cfg = synthesizer.config
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if n_lines is None:
        n_lines = int(rng.integers(cfg.page_lines_range[0], cfg.page_lines_range[1] + 1))

    # One writer per page: one font, hand size, letter proportions and pen (lines whose text the
    # font lacks use another). Lines of one page with bodies of different sizes, or in a ballpoint
    # and a marker, are no one's page, and their ink would mislead segmentation's line height and
    # ink density.
    names = synthesizer.fonts.names
    font = names[int(rng.integers(len(names)))]
    x_height = float(rng.uniform(*cfg.x_height_range))
    proportions = writer_proportions(rng, cfg)
    pen = writer_pen(rng, cfg)
    stroke_change = augment.draw_stroke_change(rng, cfg)
    lines = [synthesizer.write_line(rng, font=font, x_height=x_height, pen=pen, proportions=proportions,
                                    stroke_change=stroke_change)
             for _ in range(n_lines)]

    ruled = rng.random() < cfg.page_ruled_prob
    placed, width, height, rules = _layout(lines, x_height, ruled, rng, cfg)

    ink = np.zeros((height, width), np.uint8)
    for p in placed:
        region = ink[p.y: p.y + p.crop.shape[0], p.x: p.x + p.crop.shape[1]]
        np.maximum(region, p.crop, out=region)

    paper, paper_level = augment.make_paper((height, width), rng, cfg, rules if ruled else None)
    if archive:
        # A child generator (spawning leaves `rng`'s stream where it was): the page's ink, pen
        # and skew are drawn as on a plain page, and only its look changes.
        gray, ink_name = capture.archive_leaf(paper, paper_level, ink, x_height, ink_for(pen), rng.spawn(1)[0],
                                              rng, cfg)
    else:
        gray, ink_name = augment.apply_ink(paper, paper_level, ink, rng, cfg, ink_for(pen))
    skew, width, height = _skew_matrix(rng, cfg, width, height)
    # An old leaf's grain is in `gray` already: repeating its edge row into the corners the skew
    # opens drew bands of vertical streaks along the top and bottom (the segmenter took them for
    # lines); mirrored, the grain goes on. A plain page's noise comes later, in the scan.
    border = cv2.BORDER_REFLECT_101 if archive else cv2.BORDER_REPLICATE
    gray = cv2.warpAffine(gray, skew, (width, height), flags=cv2.INTER_LINEAR, borderMode=border)
    ink = cv2.warpAffine(ink, skew, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    image = augment.scan(gray, rng, cfg)

    page = Page(id=page_id, source="", width=width, height=height)
    meta = []
    pad = cfg.page_polygon_pad_px
    for k, p in enumerate(placed):
        outline = _outline(p.crop, p.x, p.y, p.baseline, pad, max(8, round(POLYGON_STEP * x_height)))
        polygon = [_apply(skew, pt, width, height) for pt in outline]
        baseline = [_apply(skew, pt, width, height) for pt in p.baseline]
        xs, ys = [q[0] for q in polygon], [q[1] for q in polygon]
        bbox = (max(0, min(xs)), max(0, min(ys)), min(width, max(xs) + 1), min(height, max(ys) + 1))
        page.lines.append(Line(id=f"{page_id}-l{k:02d}", polygon=polygon, baseline=baseline, bbox=bbox,
                               text=p.line.text))
        meta.append({"font": p.line.font, "kind": p.line.kind, "pen": p.line.pen, "ink": ink_name})
    return SynthPage(image=image, page=page, ink=ink, line_meta=meta)


def _outline(crop: np.ndarray, x: int, y: int, baseline: list[tuple[float, float]], pad: int,
             step: int) -> list[tuple[float, float]]:
    """A line's polygon as a transcription tool draws it: the ink's top and bottom in columns
    `step` px wide (a staircase, upper edge left to right, then lower edge back), grown by `pad`,
    and always holding the baseline. A box around a line that rises or falls (its rotation,
    its words' drifting baselines) is mostly paper and overlaps the lines next to it, and a
    segmenter's close polygon would not match it."""
    h, w = crop.shape
    edges = np.linspace(0, w, max(1, math.ceil(w / step)) + 1).round().astype(int)
    rows = np.arange(h)
    tops, bottoms = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        inked = rows[(crop[:, a:b] > 0).any(axis=1)]
        tops.append(inked[0] if inked.size else np.nan)
        bottoms.append(inked[-1] + 1 if inked.size else np.nan)
    tops, bottoms = np.array(tops, float), np.array(bottoms, float)
    if np.isnan(tops).all():
        tops[:], bottoms[:] = 0, h
    # Columns without ink (a word gap) take the line's middle extent.
    tops[np.isnan(tops)] = np.nanmedian(tops)
    bottoms[np.isnan(bottoms)] = np.nanmedian(bottoms)
    (bx0, by0), (bx1, by1) = baseline[0], baseline[-1]

    def baseline_y(px: float) -> float:
        return by0 if bx1 == bx0 else by0 + (by1 - by0) * (px - bx0) / (bx1 - bx0)

    upper, lower = [], []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        left, right = x + a - (pad if k == 0 else 0), x + b + (pad if k == len(edges) - 2 else 0)
        # Both edges hold the baseline (a column of a descender's tail alone starts below it),
        # so neighbouring columns share it and the outline never crosses itself.
        base_low, base_high = max(baseline_y(x + a), baseline_y(x + b)), min(baseline_y(x + a), baseline_y(x + b))
        low = max(y + bottoms[k], base_low) + pad
        high = min(y + tops[k], base_high) - pad
        upper += [(left, high), (right, high)]
        lower += [(left, low), (right, low)]
    return upper + lower[::-1]


def _layout(lines: list[InkLine], x_height: float, ruled: bool, rng: np.random.Generator, cfg):
    """Positions of each line's ink box: returns placements, page size and the rule heights."""
    pitch = float(rng.uniform(*cfg.page_line_pitch_range)) * x_height
    margin = float(rng.uniform(*cfg.page_margin_range))
    widest = max(line.ink.shape[1] for line in lines)
    margin_x = int(round(margin * widest)) + cfg.page_polygon_pad_px + 2
    margin_y = margin_x
    first_rule = margin_y + 1.5 * x_height
    placed = []
    prev_bottom = None
    prev_base = None
    for line in lines:
        x0, y0, x1, y1 = augment.ink_box(line.ink) or (0, 0, 1, 1)
        crop = line.ink[y0:y1, x0:x1]
        base_in_crop = sum(y for _, y in line.baseline) / len(line.baseline) - y0
        if prev_base is None:
            base = margin_y + max(base_in_crop, 0.0)
        else:
            # Regular pitch, but never closer than min gap to the ink of the line above.
            base = max(prev_base + pitch, prev_bottom + cfg.page_min_line_gap_px + base_in_crop)
        if ruled:
            base = first_rule + math.ceil(max(0.0, base - first_rule) / pitch) * pitch
            if prev_bottom is not None and base - base_in_crop < prev_bottom + cfg.page_min_line_gap_px:
                base += pitch
        top = int(math.ceil(base - base_in_crop))
        indent = float(rng.uniform(*cfg.page_indent_range)) * x_height if rng.random() < cfg.page_indent_prob else 0.0
        left = int(round(margin_x + indent + abs(rng.normal(0.0, cfg.page_left_jitter)) * x_height))
        shift = (left - x0, top - y0)
        box = (left, top, left + crop.shape[1], top + crop.shape[0])
        baseline = augment.clip_baseline([(bx + shift[0], by + shift[1]) for bx, by in line.baseline], box)
        placed.append(_Placed(line, crop, left, top, baseline))
        prev_bottom = top + crop.shape[0]
        prev_base = base
    width = max(p.x + p.crop.shape[1] for p in placed) + margin_x
    height = int(prev_bottom + margin_y + rng.uniform(0, 3) * x_height)
    rules = [first_rule + k * pitch for k in range(int(height / pitch) + 1)] if ruled else None
    return placed, int(width), height, rules


def _skew_matrix(rng: np.random.Generator, cfg, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """A small rotation about the page centre, on a canvas grown to hold the whole rotated
    page (so no ink leaves the image); returns the 2x3 matrix and the new size."""
    angle = float(np.clip(rng.normal(0.0, cfg.page_skew_std_deg), -cfg.page_skew_max_deg, cfg.page_skew_max_deg))
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, 1.0)
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], np.float64)
    moved = corners @ matrix.T
    low = moved.min(axis=0)
    matrix[:, 2] -= low
    new_w, new_h = np.ceil(moved.max(axis=0) - low).astype(int).tolist()
    return matrix, int(new_w), int(new_h)


def _apply(matrix: np.ndarray, point: tuple[float, float], width: int, height: int) -> tuple[int, int]:
    x, y = point
    px = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    py = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return int(round(min(max(px, 0), width - 1))), int(round(min(max(py, 0), height - 1)))
