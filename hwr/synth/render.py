"""Glyph layout: a label becomes an ink-coverage image, word by word, with writer-like jitter.

Coordinates: the pen starts at (0, 0) on the baseline, y grows downwards, so glyph tops are
negative. Words are laid out from cached glyph bitmaps (or real MNIST digits) at the cached
font size nearest the writer's size ("layout pixels"); the remaining factor (InkLine.scale)
is applied later by the warp. Some words get their own size jitter (one resize each); words
are placed with jittered gaps and a drifting baseline. Ink is uint8 coverage: 0 = paper,
255 = full ink.

Spaces in the label must be visible, and nothing else may look like one: the gap between the
ink of two words is at least `min_word_gap` x-heights, whatever the font's space advance says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from hwr.synth.allographs import Allographs
from hwr.synth.config import SynthConfig
from hwr.synth.digits import MnistDigits
from hwr.synth.fonts import FontBank
from hwr.synth.hand import (
    CENTRE_HEIGHT,
    Hand,
    JoinAnchors,
    Proportions,
    instance,
    join_letters,
    max_shift_x,
    sample_hand,
    sample_word,
    vary_mask,
    writer_proportions,
)
from hwr.synth.letters import EmnistLetters
from hwr.synth.pens import FONT_PEN, WRITER_PEN_X_HEIGHT, Pen, choose_pen, restroke
from hwr.synth.strike import STRUCK_LABEL, Strike, strike_through

MNIST_FONT = "mnist"  # meta["font"] of lines written entirely with real digits
EMNIST_FONT = "emnist"  # meta["font"] of lines written entirely with real letters
# Typical cap height / x-height of handwriting, used to size digits on digit-only lines.
CAP_TO_X_HEIGHT = 1.45


@dataclass
class WriterStyle:
    """The per-line choices of one synthetic writer."""

    font: str | None  # None: real MNIST digits only
    x_height: float  # px
    font_px: float  # font size that gives x_height (0 without a font)
    tracking: float  # extra advance after each character, px
    space_px: float  # the font's space advance at font_px, times this writer's gap scale
    mnist_digits: bool  # draw digit characters from MNIST
    digit_height: float  # px of ink of an MNIST digit
    digit_gap: float  # px between consecutive MNIST digits
    digit_stroke: float  # pen width MNIST digits are thinned towards, px
    grid_px: int = 0  # cached font size the glyphs are drawn at
    scale: float = 1.0  # final size / layout size (font_px / grid_px)
    hand: Hand | None = None  # per-instance variation, joins and breaks (None: the font's glyphs)
    real_letters: bool = False  # letters come from EMNIST (font is None)
    pen: Pen | None = None  # re-stroke the font's glyphs with this pen (pens.py); None: the font's
    pen_width: float = 0.0  # layout px: the pen's width, or the font's own stroke (0: unknown)
    # Each character re-stroked once per line; its instances differ by their own maps (hand.py).
    pen_cache: dict = field(default_factory=dict, repr=False)
    allographs: Allographs | None = None  # second forms of some letters (allographs.py); only with a hand
    # The writer's letter width and x-height band (hand.Proportions): the hand's, a page writer's
    # on a line without a hand, else the font's own.
    proportions: Proportions = Proportions(1.0, 1.0)


@dataclass
class InkLine:
    """A line's ink before paper and scan effects, and where its baseline runs.

    `scale` is still to be applied (by the warp): layout happens at the cached font size, and
    the remaining factor to the writer's size rides along with slant and rotation for free.
    """

    ink: np.ndarray  # uint8 coverage, 0 = paper
    baseline: list[tuple[float, float]]  # start and end point, in ink pixel coordinates
    x_height: float  # in ink pixels (before `scale`)
    text: str
    font: str
    kind: str
    scale: float = 1.0
    # Rows of hand.instance (centres in ink pixel coordinates): the warp applies each glyph
    # instance's own map and a fine elastic bend. None: the font's exact glyphs.
    instances: np.ndarray | None = None
    pen: str = FONT_PEN  # the pen model that drew the glyphs (pens.PENS), or the font's own
    struck: bool = False  # one word is crossed out (strike.py) and labelled `#`
    neighbours: bool = False  # the crop takes in tails of the lines above/below (neighbours.py)
    # The writer's letter proportions (hand.Proportions), both applied by the warp.
    proportions: Proportions = Proportions(1.0, 1.0)


@dataclass
class WordInk:
    """A word's glyph pieces (x, y relative to its pen origin on the baseline) and extent."""

    pieces: list[tuple[np.ndarray, int, int]]
    left: int  # ink extent, relative to the pen origin
    right: int
    advance: float
    instances: list[tuple[float, ...]] = field(default_factory=list)  # hand.instance rows
    shift: float = 0.0  # the most the instance maps can move the word's ink sideways


def sample_style(rng: np.random.Generator, cfg: SynthConfig, bank: FontBank | None, font: str | None,
                 has_digits: bool, x_height: float | None = None, pen: Pen | str | None = None,
                 proportions: Proportions | None = None) -> WriterStyle:
    """A writer for one line. pen: force this pen model (pens.PENS) on a font line, or this
    writer's pen (pens.writer_pen, scaled to the line's x-height); proportions: the writer's
    letter width and x-height band (hand.Proportions), else drawn."""
    drawn = float(rng.uniform(*cfg.x_height_range))
    x_height = drawn if x_height is None else x_height
    tracking = 0.0
    if rng.random() < cfg.letter_spacing_prob:
        tracking = float(rng.uniform(*cfg.letter_spacing_range)) * x_height
    gap_scale = float(rng.uniform(*cfg.word_gap_scale_range))
    digit_gap = float(rng.uniform(*cfg.digit_spacing_range)) * x_height
    if font is None:
        digit_height = x_height * CAP_TO_X_HEIGHT
        stroke = float(rng.uniform(*cfg.digit_stroke_range)) * x_height
        # Digit groups need gaps in proportion to the digits, clearly wider than between digits.
        return WriterStyle(None, x_height, 0.0, 0.0, 0.7 * digit_height * gap_scale, True, digit_height,
                           digit_gap, stroke)
    metrics = bank.metrics(font)
    font_px = min(x_height / metrics.x_height, float(bank.max_font_px))
    x_height = font_px * metrics.x_height  # after the clamp
    mnist = has_digits and rng.random() < cfg.inline_mnist_prob
    digit_height = metrics.cap_height * font_px * float(rng.uniform(*cfg.mnist_height_range))
    grid_px = bank.grid_size(font_px)
    stroke = 0.0
    if mnist:
        stroke = bank.stroke_width(font, grid_px) * font_px / grid_px or cfg.digit_stroke_range[1] * x_height
    # Pen and hand work in layout pixels (the cached grid size), where glyphs are drawn.
    layout_xh = x_height * grid_px / font_px
    if isinstance(pen, Pen):
        pen = pen.scaled(layout_xh / WRITER_PEN_X_HEIGHT)
    else:
        pen = choose_pen(rng, cfg, layout_xh, force=pen)
    pen_width = pen.width if pen else bank.stroke_width(font, grid_px)
    hand = sample_hand(rng, cfg, layout_xh, pen_width)
    if proportions is None:
        # A writer's own, drawn with the hand; a line without one keeps the font's.
        proportions = writer_proportions(rng, cfg) if hand is not None else Proportions(1.0, 1.0)
    return WriterStyle(font, x_height, font_px, tracking, metrics.space * font_px * gap_scale, mnist,
                       digit_height, digit_gap, stroke, grid_px, font_px / grid_px, hand, pen=pen, pen_width=pen_width,
                       proportions=proportions)


def compose(pieces: list[tuple[np.ndarray, int, int]]) -> tuple[np.ndarray, int, int]:
    """Paste (mask, x, y) pieces with max blending; returns the canvas and its (x0, y0)."""
    pieces = [p for p in pieces if p[0].size]
    if not pieces:
        return np.zeros((1, 1), np.uint8), 0, 0
    x0 = min(x for _, x, _ in pieces)
    y0 = min(y for _, _, y in pieces)
    x1 = max(x + m.shape[1] for m, x, _ in pieces)
    y1 = max(y + m.shape[0] for m, _, y in pieces)
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for mask, x, y in pieces:
        h, w = mask.shape
        region = canvas[y - y0: y - y0 + h, x - x0: x - x0 + w]
        np.maximum(region, mask, out=region)
    return canvas, x0, y0


def _extent(pieces: list[tuple[np.ndarray, int, int]]) -> tuple[int, int]:
    inked = [(x, x + m.shape[1]) for m, x, _ in pieces if m.size]
    if not inked:
        return 0, 0
    return min(a for a, _ in inked), max(b for _, b in inked)


def render_word(word: str, style: WriterStyle, scale: float, unit: float, bank: FontBank | None,
                digits: MnistDigits | None, rng: np.random.Generator,
                letters: EmnistLetters | None = None) -> WordInk:
    """One word in layout pixels (final pixels times `unit`), `scale` times the line's size.

    Glyphs come from the cache at the line's grid font size. With a hand, every glyph instance
    is varied on its own (the word's slant rides along in the same remap; its size and squeeze
    are drawn into the glyphs);
    without, only a word with its own size jitter (scale != 1) is composed and resized.
    """
    if style.hand is not None:
        return _render_varied_word(word, style, scale, unit, bank, digits, rng)
    pieces = []
    pen = 0.0
    digit_gap = 0.5 * style.digit_gap * unit
    for ch in word:
        if style.mnist_digits and ch.isdigit():
            height = style.digit_height * unit * rng.uniform(0.93, 1.07)
            mask = digits.glyph(ch, rng, height, stroke=style.digit_stroke * unit)
            x = pen + digit_gap
            # Bottom on the baseline, give or take a pixel or two, as a hand would.
            y = -mask.shape[0] + rng.normal(0.0, 0.03 * style.x_height * unit)
            pieces.append((mask, int(round(x)), int(round(y))))
            pen = x + mask.shape[1] + digit_gap
        elif style.real_letters:
            mask, top = letters.glyph(ch, rng, style.x_height * unit, stroke=style.digit_stroke * unit)
            x = pen + digit_gap
            y = top + rng.normal(0.0, 0.03 * style.x_height * unit)
            pieces.append((mask, int(round(x)), int(round(y))))
            pen = x + mask.shape[1] + digit_gap
        else:
            glyph = bank.glyph(style.font, style.grid_px, ch)
            mask, grown = _pen_mask(glyph.mask, style, bank, ch, rng)
            pieces.append((mask, int(round(pen + glyph.left)) - grown, glyph.top - grown))
            pen += glyph.advance + style.tracking * unit
    if scale != 1.0:
        canvas, x0, y0 = compose(pieces)
        size = (max(1, round(canvas.shape[1] * scale)), max(1, round(canvas.shape[0] * scale)))
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pieces = [(canvas, int(round(x0 * scale)), int(round(y0 * scale)))]
        pen *= scale
    left, right = _extent(pieces)
    return WordInk(pieces, left, right, pen)


def _render_varied_word(word: str, style: WriterStyle, scale: float, unit: float, bank: FontBank | None,
                        digits: MnistDigits | None, rng: np.random.Generator) -> WordInk:
    """render_word with a hand: each instance its own map (hand.instance, applied later by the
    line warp), advance, pen and breaks; then joins between neighbouring lowercase letters."""
    hand = style.hand
    shape = sample_word(rng, hand, scale)
    xh = hand.x_height
    advance_std = hand.cfg.instance_advance_std * hand.variability * xh
    cy = -CENTRE_HEIGHT * xh * shape.scale
    size_x = shape.scale * shape.squeeze  # the word's horizontal scale of glyphs and advances
    pieces: list[tuple[np.ndarray, int, int]] = []
    instances: list[tuple[float, ...]] = []
    joins: list[tuple[JoinAnchors, float] | None] = []  # each character's anchors and the word x they are about
    pen = 0.0
    digit_gap = 0.5 * style.digit_gap * unit * scale
    z_all = rng.standard_normal((len(word), 8)).tolist()  # one draw for the whole word
    for ch, z in zip(word, z_all):
        if style.mnist_digits and ch.isdigit():
            height = style.digit_height * unit * scale * (1.0 + 0.035 * _clamp(z[0], 2.0))
            mask = digits.glyph(ch, rng, height, stroke=style.digit_stroke * unit)
            x = pen + digit_gap
            y = -mask.shape[0] + z[4] * 0.03 * style.x_height * unit
            pieces.append((mask, int(round(x)), int(round(y))))
            joins.append(None)
            pen = x + mask.shape[1] + digit_gap
            continue
        glyph = bank.glyph(style.font, style.grid_px, ch)
        second = None
        if style.allographs is not None and style.allographs.takes_second(ch, rng):
            second = style.allographs.form(ch, bank, style.pen, rng)
            glyph = second.glyph
        anchors = None
        if glyph.mask.size:
            w = glyph.mask.shape[1]
            # The glyph's centre goes where the word's size and squeeze put it, and the glyph itself
            # is drawn at that size and squeeze here: shared by the word's letters, a scale in their
            # instance maps would be blended away between the letters' centres (hand.py).
            cx = pen + (glyph.left + w / 2.0) * size_x
            mask, grown = second.drawn if second else _pen_mask(glyph.mask, style, bank, ch, rng)
            if hand.break_prob or abs(z[7]) > hand.cfg.instance_stroke_z:
                mask = vary_mask(mask, z[7], hand, rng, second.stroke if second else None)
            drawn = _resized(mask, size_x, shape.scale)
            fx, fy = drawn.shape[1] / mask.shape[1], drawn.shape[0] / mask.shape[0]
            x = int(round(cx - drawn.shape[1] / 2.0))
            pieces.append((drawn, x, int(round((glyph.top - grown) * fy))))
            instances.append(instance(z, hand, shape, cx, cy))
            if hand.join_prob and _joinable(ch):
                anchors = second.anchors if second else bank.anchors(style.font, style.grid_px, ch)
                if anchors is not None:
                    # Anchors about the glyph's centre, at the size drawn; `shift` puts that centre.
                    anchors = anchors.scaled(glyph.left + w / 2.0, fx, fy)
                    shift = x + drawn.shape[1] / 2.0
        joins.append((anchors, shift) if anchors is not None else None)
        step = glyph.advance * size_x + style.tracking * unit
        # Own advance per instance, never so short that letters pile onto each other.
        pen += max(0.6 * step, step + z[5] * advance_std)
    if hand.join_prob:
        for here, after in zip(joins, joins[1:]):
            if here is not None and after is not None and rng.random() < hand.join_prob:
                stroke = join_letters(*here, *after, hand, rng)
                if stroke is not None:
                    pieces.append(stroke)
    left, right = _extent(pieces)
    return WordInk(pieces, left, right, pen, instances, max_shift_x(instances, xh))


def _pen_mask(mask: np.ndarray, style: WriterStyle, bank: FontBank, ch: str, rng: np.random.Generator
              ) -> tuple[np.ndarray, int]:
    """The glyph as the line's pen draws it, and how many pixels it grew on each side."""
    if style.pen is None or not mask.size:
        return mask, 0
    drawn = style.pen_cache.get(ch)
    if drawn is None:
        drawn = style.pen_cache[ch] = restroke(bank.skeleton(style.font, style.grid_px, ch), mask.shape, style.pen,
                                               rng)
    return drawn


def _resized(mask: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """The glyph's mask scaled by (fx, fy), to whole pixels; itself when both are 1."""
    if fx == 1.0 and fy == 1.0:
        return mask
    h, w = mask.shape
    return cv2.resize(mask, (max(1, round(w * fx)), max(1, round(h * fy))), interpolation=cv2.INTER_LINEAR)


def _clamp(x: float, limit: float) -> float:
    return -limit if x < -limit else limit if x > limit else x


def _joinable(ch: str) -> bool:
    """Cursive hands join lowercase letters; capitals, digits and marks stand alone."""
    return "a" <= ch <= "z"


def layout_line(text: str, style: WriterStyle, cfg: SynthConfig, bank: FontBank | None,
                digits: MnistDigits | None, rng: np.random.Generator, kind: str = "",
                letters: EmnistLetters | None = None, strike: Strike | None = None) -> InkLine:
    """Place the words of `text` left to right with jittered size, gaps and baseline.

    strike: cross out that word (strike.py); the line's label then has `#` in its place."""
    unit = 1.0 / style.scale  # final pixels -> layout pixels
    xh = style.x_height * unit
    pieces = []
    instances: list[tuple[float, ...]] = []
    pen = 0.0
    prev_right = None
    prev_shift = 0.0
    drift = 0.0
    words = text.split(" ")
    for k, word in enumerate(words):
        scale = 1.0
        if rng.random() < cfg.word_size_jitter_prob:
            scale = math.exp(rng.normal(0.0, cfg.word_size_jitter))
        word_ink = render_word(word, style, scale, unit, bank, digits, rng, letters)
        if strike is not None and k == strike.word:
            _cross_out(word_ink, style, xh, strike)
            words[k] = STRUCK_LABEL
        drift = min(max(drift + rng.normal(0.0, cfg.baseline_walk) * xh, -0.3 * xh), 0.3 * xh)
        dy = int(round(drift + rng.normal(0.0, cfg.word_baseline_jitter) * xh))
        if prev_right is None:
            x = 0.0
        else:
            gap = style.space_px * unit * max(0.4, 1.0 + rng.normal(0.0, cfg.word_gap_jitter))
            # Ink-to-ink minimum: the label's space must show on the page, even after the
            # instance maps (hand.py) move both words' ink towards each other.
            reserve = 2.0 * max(prev_shift, word_ink.shift)
            # The warp scales the line by the writer's width: the minimum gap holds after it.
            x = max(pen + gap, prev_right + cfg.min_word_gap * xh / style.proportions.width + reserve - word_ink.left)
        dx = int(round(x))
        pieces.extend((mask, px + dx, py + dy) for mask, px, py in word_ink.pieces)
        instances.extend((cx + dx, cy + dy, *rest) for cx, cy, *rest in word_ink.instances)
        prev_right = dx + word_ink.right
        prev_shift = word_ink.shift
        pen = x + word_ink.advance
    canvas, x0, y0 = compose(pieces)
    baseline = [(0.0 - x0, 0.0 - y0), (max(pen, float(prev_right or 0)) - x0, 0.0 - y0)]
    varied = None
    if style.hand is not None and instances:
        varied = np.array(instances, np.float32)
        varied[:, 0] -= x0
        varied[:, 1] -= y0
    font = style.font or (EMNIST_FONT if style.real_letters else MNIST_FONT)
    return InkLine(canvas, baseline, xh, " ".join(words), font, kind, scale=style.scale,
                   instances=varied, pen=style.pen.name if style.pen else FONT_PEN, struck=strike is not None,
                   proportions=style.proportions)


def _cross_out(word_ink: WordInk, style: WriterStyle, x_height: float, strike: Strike) -> None:
    """Add a strike over the word's ink, in the line's pen, and widen the word's extent to
    it (so the gaps to its neighbours stay clear)."""
    mask, x, y = strike_through(word_ink.left, word_ink.right, x_height, style.pen_width or 0.1 * x_height,
                                strike.rng)
    word_ink.pieces.append((mask, x, y))
    word_ink.left = min(word_ink.left, x)
    word_ink.right = max(word_ink.right, x + mask.shape[1])
