"""Allographs: a writer's second form of some letters, mixed into one line.

Real writers do not draw every "a" alike. Beside the small per-instance variation (hand.py),
many switch between two forms of a letter within a line (an open and a closed "a", a looped
and a plain "l", a printed and a cursive "r"), so a reader cannot learn a hand's "a" from
one shape. A line of one font never does this. A writer with allographs takes a second
form for a few lowercase letters from another font of the split, and draws each instance of
those letters in one form or the other at random: the letter's identity stays, its shape
varies within the line, and the label stays what is drawn.

The second form is scaled so its x-height is the line's, and drawn by the line's pen (its
centre line re-stroked, as for the first form), so it belongs to the same hand in size and
stroke. Only lines with a hand (per-instance variation) get allographs, and only training
lines: validation sets keep their lines from one stage to the next, as with strikes.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

import cv2
import numpy as np

from hwr.synth.config import SynthConfig
from hwr.synth.fonts import FontBank, Glyph
from hwr.synth.hand import JoinAnchors, edge_points, working_stroke
from hwr.synth.pens import Pen, restroke

LETTERS = string.ascii_lowercase
STROKE_RATIO = 1.4  # the most two forms' own strokes may differ on a line that keeps them
SECOND_FONT_TRIES = 8  # fonts tried for a stroke like the first's before the writer keeps one form


@dataclass
class SecondForm:
    """One letter's second form in the line's layout pixels."""

    glyph: Glyph  # the font's glyph scaled to the line's x-height
    drawn: tuple[np.ndarray, int]  # the mask as the line's pen draws it, and the pixels it grew by
    anchors: JoinAnchors | None  # where a join leaves and enters it (hand.edge_points)
    stroke: float  # its pen width: the line's pen, or the second font's own stroke


@dataclass
class Allographs:
    """A writer's second forms: which letters have one, from which font, how often."""

    font: str
    grid_px: int  # the second font's cached size nearest the line's layout x-height
    ratio: float  # layout pixels per pixel of that cached size
    x_height: float  # the line's x-height, layout pixels
    letters: frozenset[str]
    share: float  # chance that an instance of one of `letters` takes the second form
    # Each second form drawn once per line; its instances differ by their own maps (hand.py).
    forms: dict[str, SecondForm] = field(default_factory=dict, repr=False)

    def takes_second(self, ch: str, rng: np.random.Generator) -> bool:
        """Whether this instance of ch is drawn in its second form (draws nothing for other
        characters, so lines without them keep their random stream)."""
        return ch in self.letters and rng.random() < self.share

    def form(self, ch: str, bank: FontBank, pen: Pen | None, rng: np.random.Generator) -> SecondForm:
        if ch not in self.forms:
            self.forms[ch] = self._draw(ch, bank, pen, rng)
        return self.forms[ch]

    def _draw(self, ch: str, bank: FontBank, pen: Pen | None, rng: np.random.Generator) -> SecondForm:
        source = bank.glyph(self.font, self.grid_px, ch)
        r = self.ratio
        h, w = source.mask.shape
        size = (max(1, round(w * r)), max(1, round(h * r)))
        mask = cv2.resize(source.mask, size, interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
        glyph = Glyph(mask=mask, left=int(round(source.left * r)), top=int(round(source.top * r)),
                      advance=source.advance * r)
        if pen is None:
            drawn, stroke = (mask, 0), bank.stroke_width(self.font, self.grid_px) * r
        else:
            # The centre line scaled, not the redrawn mask: the pen keeps the line's width.
            points = bank.skeleton(self.font, self.grid_px, ch) * np.float32(r)
            drawn, stroke = restroke(points, mask.shape, pen, rng), pen.width
        anchors = edge_points(mask, glyph.left, glyph.top, self.x_height, ch)
        # What hand.vary_mask sizes this form's thinning and breaks by (as Hand.stroke is for the
        # first): a thin second font must not be thinned as if it had the first font's stroke.
        return SecondForm(glyph, drawn, anchors, working_stroke(stroke, self.x_height))


def sample_allographs(rng: np.random.Generator, cfg: SynthConfig, bank: FontBank, font: str,
                      layout_x_height: float, font_stroke: float = 0.0) -> Allographs | None:
    """A writer's second forms for one line, or None (a share of writers keep one form).

    font_stroke: the first font's own stroke width (layout pixels) when the line keeps the
    fonts' strokes; the second font must then have a stroke within STROKE_RATIO of it, or a
    thin hand would write some letters with a brush. 0: a pen redraws both forms alike.
    """
    if rng.random() >= cfg.allograph_line_prob:
        return None
    others = [name for name in bank.names if name != font]
    picked = rng.random(len(LETTERS)) < cfg.allograph_letter_prob
    letters = frozenset(ch for ch, on in zip(LETTERS, picked) if on)
    share = float(rng.uniform(*cfg.allograph_share_range))
    if not letters or not others:
        return None
    for second in rng.choice(others, size=min(SECOND_FONT_TRIES, len(others)), replace=False).tolist():
        grid_px, ratio = bank.size_for_x_height(second, layout_x_height)
        stroke = bank.stroke_width(second, grid_px) * ratio
        if not font_stroke or (stroke and max(stroke, font_stroke) <= STROKE_RATIO * min(stroke, font_stroke)):
            return Allographs(second, grid_px, ratio, layout_x_height, letters, share)
    return None
