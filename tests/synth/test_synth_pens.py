"""hwr.synth.pens: thinning, skeletons that keep every dot, and pens that draw differently.
Not tested: how natural each pen looks (see docs/synth-samples.png)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hwr.recognition.charset import DEFAULT_SYMBOLS
from hwr.synth import LineSynthesizer, SynthConfig
from hwr.synth.config import default_data_dir
from hwr.synth.fonts import FontBank
from hwr.synth.pens import (
    FONT_PEN,
    PENS,
    WRITER_PEN_X_HEIGHT,
    Pen,
    choose_pen,
    restroke,
    skeleton_points,
    thin,
    writer_pen,
)
from hwr.synth.render import sample_style

FONTS_DIR = default_data_dir() / "fonts"


def _pieces(mask: np.ndarray) -> tuple[int, np.ndarray]:
    return cv2.connectedComponents((mask > 127).astype(np.uint8), connectivity=8)


def test_thinning_leaves_one_pixel_wide_connected_centre_lines():
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 12, 255, 5)
    bar = np.zeros((20, 40), bool)
    bar[6:13, 4:36] = True
    skel_ring, skel_bar = thin(ring > 0), thin(bar)
    # The ring stays one closed loop (one piece with one hole); the bar becomes a line.
    assert _pieces(skel_ring.astype(np.uint8) * 255)[0] - 1 == 1
    outside = cv2.connectedComponents((~skel_ring).astype(np.uint8), connectivity=4)[0] - 1
    assert outside == 2
    assert skel_bar.sum(axis=0).max() == 1 and skel_bar.sum() >= 20


@pytest.mark.parametrize("font", ["delius", "borel", "finger-paint"])
def test_restroked_glyphs_keep_every_piece_of_ink(font):
    bank = FontBank(FONTS_DIR, [font], DEFAULT_SYMBOLS)
    rng = np.random.default_rng(0)
    for size in (20, 50):
        size = bank.grid_size(size)
        for ch in "ij.:;!?%\"=ABgx":
            glyph = bank.glyph(font, size, ch)
            n, labels = _pieces(glyph.mask)
            points = skeleton_points(glyph.mask)
            for name in PENS:
                pen = choose_pen(rng, SynthConfig(), 0.5 * size, force=name)
                mask, pad = restroke(points, glyph.mask.shape, pen, rng)
                inked = mask[pad: pad + glyph.mask.shape[0], pad: pad + glyph.mask.shape[1]] > 60
                near = cv2.dilate(inked.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                for k in range(1, n):  # every stroke and dot is redrawn where it was
                    assert near[labels == k].any(), (font, size, ch, name, k)


def _bar_widths(pen: Pen) -> tuple[float, float]:
    """Ink per unit length of a horizontal and a vertical stroke drawn by `pen`."""
    h = np.zeros((60, 60), np.uint8)
    h[29:31, 10:50] = 255
    v = h.T.copy()
    rng = np.random.default_rng(0)
    out = []
    for mask in (h, v):
        drawn, _ = restroke(skeleton_points(mask), mask.shape, pen, rng)
        out.append((drawn > 127).sum() / 40.0)
    return out[0], out[1]


def test_pens_draw_differently():
    still = dict(jitter=0.0, jitter_wavelength=20.0, wave=(0.0, 0.0, 0.0, 0.0))
    ballpoint = Pen("ballpoint", 2.0, 2.0, 0.0, **still)
    marker = Pen("marker", 7.0, 7.0, 0.0, **still)
    # A nib whose edge runs horizontally: horizontal strokes thin, vertical strokes broad.
    nib = Pen("nib", 8.0, 2.0, 0.0, **still)
    assert _bar_widths(marker)[0] > 2.5 * _bar_widths(ballpoint)[0]
    horizontal, vertical = _bar_widths(nib)
    assert vertical > 2.5 * horizontal


def test_lines_record_their_pen_and_pencil_lines_use_pencil_ink():
    cfg = SynthConfig(restroke_prob=1.0, restroke_pens={"pencil": 1.0}, condition_weights={"paper": 1.0},
                      kind_weights={"corpus": 1.0})
    synth = LineSynthesizer(cfg, seed=2)
    meta = [synth.sample(i).meta for i in range(3)]
    assert all(m["pen"] == "pencil" and m["ink"] == "pencil" for m in meta)
    plain = LineSynthesizer(SynthConfig(restroke_prob=0.0, condition_weights={"paper": 1.0},
                                        kind_weights={"corpus": 1.0}), seed=2)
    assert all(plain.sample(i).meta["pen"] == "font" for i in range(3))
    with pytest.raises(ValueError, match="quill"):
        SynthConfig(restroke_pens={"quill": 1.0})


def test_restroking_changes_the_ink_and_is_reproducible():
    cfg = dict(condition_weights={"paper": 1.0}, kind_weights={"corpus": 1.0})
    pen_synth = LineSynthesizer(SynthConfig(restroke_prob=1.0, **cfg), seed=5)
    a = pen_synth.write_line(pen_synth.rng(0))
    b = LineSynthesizer(SynthConfig(restroke_prob=1.0, **cfg), seed=5).write_line(pen_synth.rng(0))
    assert np.array_equal(a.ink, b.ink) and a.pen in PENS
    font_synth = LineSynthesizer(SynthConfig(restroke_prob=0.0, **cfg), seed=5)
    c = font_synth.write_line(font_synth.rng(0))
    assert c.text == a.text and c.pen == "font"
    assert a.ink.shape != c.ink.shape or not np.array_equal(a.ink, c.ink)


def test_a_forced_pen_holds_on_every_line_the_font_pen_included():
    """One writer's lines keep one pen: write_line(pen=...) forces a pen model or, with
    FONT_PEN, the font's own strokes, whatever restroke_prob would draw."""
    cfg = SynthConfig(restroke_prob=1.0, condition_weights={"paper": 1.0}, kind_weights={"corpus": 1.0})
    synth = LineSynthesizer(cfg, seed=3)
    assert {synth.write_line(synth.rng(i), pen=FONT_PEN).pen for i in range(4)} == {FONT_PEN}
    assert {synth.write_line(synth.rng(i), pen="marker").pen for i in range(4)} == {"marker"}
    assert FONT_PEN not in {synth.write_line(synth.rng(i)).pen for i in range(4)}  # the check can fail


def test_a_writers_pen_keeps_its_width_nib_and_jitter_on_every_line_scaled_to_the_hand():
    # Drawn by name alone, each line of a page got its own width, nib angle and jitter.
    cfg = SynthConfig(restroke_prob=1.0)
    synth = LineSynthesizer(cfg, seed=3)
    rng = np.random.default_rng(4)
    pen = writer_pen(rng, cfg)
    assert isinstance(pen, Pen) and pen.width > 1.0
    styles = [sample_style(np.random.default_rng(i), cfg, synth.fonts, "delius", False, 30.0, pen) for i in range(3)]
    assert styles[0].pen == styles[1].pen == styles[2].pen != pen
    layout_xh = styles[0].x_height / styles[0].scale
    assert styles[0].pen.width == pytest.approx(pen.width * layout_xh / WRITER_PEN_X_HEIGHT)
    bigger = sample_style(np.random.default_rng(0), cfg, synth.fonts, "delius", False, 45.0, pen).pen
    assert bigger.width > styles[0].pen.width and bigger.angle == styles[0].pen.angle
    assert {sample_style(np.random.default_rng(i), cfg, synth.fonts, "delius", False, 30.0).pen.width
            for i in range(3)} != {styles[0].pen.width}  # pens drawn per line differ (the check can fail)
    assert writer_pen(rng, SynthConfig(restroke_prob=0.0)) == FONT_PEN


def test_a_scaled_pen_is_the_same_pen_for_a_bigger_or_smaller_hand():
    pen = Pen("pressure", 8.0, 2.0, 0.5, (0.1, -0.2, 1.0, 0.3), 1.5, 40.0)
    half = pen.scaled(0.5)
    assert (half.width, half.thin_width, half.jitter, half.jitter_wavelength) == (4.0, 1.0, 0.75, 20.0)
    assert half.wave == (0.2, -0.4, 1.0, 0.3) and half.angle == 0.5 and half.name == "pressure"
    assert pen.scaled(0.1).width == 1.0  # never thinner than a pixel
