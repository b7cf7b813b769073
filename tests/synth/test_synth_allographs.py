"""hwr.synth.allographs: a writer's second forms are the same letters from another font, at the
line's size and in its pen; they mix into training lines, reproducibly, and never into
validation lines. Not tested here: how natural the mixture looks (see docs/synth-samples.png)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hwr.synth import LineSynthesizer, SynthConfig, synthesizer
from hwr.synth.allographs import STROKE_RATIO, Allographs, sample_allographs
from hwr.synth.fonts import X_HEIGHT_LETTERS
from hwr.synth.hand import vary_mask
from hwr.synth.pens import skeleton_points
from hwr.synth.render import render_word, sample_style

ALWAYS = dict(allograph_line_prob=1.0, allograph_letter_prob=1.0, instance_prob=1.0,
              condition_weights={"paper": 1.0}, kind_weights={"corpus": 1.0})


def _train_font_line_style(synth: LineSynthesizer, seed: int, pen: str | None = None):
    rng = np.random.default_rng(seed)
    style = sample_style(rng, synth.config, synth.fonts, synth.fonts.names[seed % len(synth.fonts.names)], False,
                         30.0, pen=pen)
    return style, rng


def test_second_forms_are_the_same_letter_from_another_font_at_the_line_x_height():
    synth = LineSynthesizer(SynthConfig(**ALWAYS), seed=1)
    for seed in range(6):
        style, rng = _train_font_line_style(synth, seed)
        allo = sample_allographs(rng, synth.config, synth.fonts, style.font, style.hand.x_height)
        assert allo is not None and allo.font != style.font and allo.letters == frozenset("abcdefghijklmnopqrstuvwxyz")
        heights = []
        for ch in X_HEIGHT_LETTERS:
            rows = np.flatnonzero((allo.form(ch, synth.fonts, None, rng).glyph.mask > 127).any(axis=1))
            heights.append(rows[-1] - rows[0] + 1)
        # Its x-height (as fonts.measure_font defines it: the median of these letters) is the line's.
        assert abs(np.median(heights) - style.hand.x_height) <= 0.1 * style.hand.x_height + 2


def test_a_pen_draws_second_forms_at_its_own_width():
    synth = LineSynthesizer(SynthConfig(**ALWAYS), seed=1)
    style, rng = _train_font_line_style(synth, 3, pen="marker")
    allo = sample_allographs(rng, synth.config, synth.fonts, style.font, style.hand.x_height)
    for ch in "lnoe":
        mask, grown = allo.form(ch, synth.fonts, style.pen, rng).drawn
        # A stroke's width is its ink over its length (the centre line's pixels): the marker's
        # width, however wide or thin the second font's own stroke is.
        ink = mask > 127
        width = ink.sum() / len(skeleton_points(ink.astype(np.uint8) * 255))
        assert grown > 0 and abs(width - style.pen.width) <= 0.35 * style.pen.width, (ch, width, style.pen.width)


def test_lines_keeping_the_fonts_strokes_take_a_second_font_of_like_stroke():
    synth = LineSynthesizer(SynthConfig(**ALWAYS), seed=1)
    found = 0
    for seed in range(12):
        style, rng = _train_font_line_style(synth, seed)
        allo = sample_allographs(rng, synth.config, synth.fonts, style.font, style.hand.x_height, style.pen_width)
        if allo is None:
            continue
        second = synth.fonts.stroke_width(allo.font, allo.grid_px) * allo.ratio
        assert max(second, style.pen_width) <= STROKE_RATIO * min(second, style.pen_width)
        found += 1
    assert found >= 6


def test_only_letters_with_a_second_form_draw_from_the_random_stream():
    allo = Allographs("x", 20, 1.0, 20.0, frozenset("a"), 0.5)
    rng = np.random.default_rng(0)
    assert not any(allo.takes_second(ch, rng) for ch in "bcdXYZ19 ")
    assert rng.random() == np.random.default_rng(0).random()
    taken = [allo.takes_second("a", rng) for _ in range(200)]
    assert 60 < sum(taken) < 140


def test_a_word_with_second_forms_keeps_its_letters_and_differs_in_ink():
    synth = LineSynthesizer(SynthConfig(**ALWAYS, join_line_prob=0.0, break_line_prob=0.0), seed=2)
    style, rng = _train_font_line_style(synth, 5)
    plain = render_word("banana", style, 1.0, 1.0, synth.fonts, None, np.random.default_rng(7))
    style.allographs = Allographs(*_second_of(synth, style), frozenset("an"), 1.0)
    mixed = render_word("banana", style, 1.0, 1.0, synth.fonts, None, np.random.default_rng(7))
    # One piece of ink per letter either way (no letter lost or added), the a's and n's redrawn.
    assert len(plain.pieces) == len(mixed.pieces) == 6
    assert np.array_equal(plain.pieces[0][0], mixed.pieces[0][0])  # the "b" has no second form
    assert all(not (p[0].shape == m[0].shape and np.array_equal(p[0], m[0]))
               for p, m in zip(plain.pieces[1:], mixed.pieces[1:]))


def _second_of(synth: LineSynthesizer, style) -> tuple:
    second = next(n for n in synth.fonts.names if n != style.font)
    return second, *synth.fonts.size_for_x_height(second, style.hand.x_height), style.hand.x_height


def test_a_thin_second_form_is_thinned_and_broken_by_its_own_stroke():
    """On a line that keeps the fonts' strokes, the first font's 3 px pen may lose a pixel; a
    second font of 2 px must not (a stroke one pixel wide would come apart)."""
    synth = LineSynthesizer(SynthConfig(**ALWAYS), seed=2)
    style, rng = _train_font_line_style(synth, 5)
    style.allographs = Allographs(*_second_of(synth, style), frozenset("o"), 1.0)
    form = style.allographs.form("o", synth.fonts, None, rng)
    hand = replace(style.hand, stroke=3.0, break_prob=0.0)
    thinner = vary_mask(form.drawn[0], -3.0, hand, rng, stroke=2.0)
    assert np.array_equal(thinner, form.drawn[0])
    assert (vary_mask(form.drawn[0], -3.0, hand, rng) > 127).sum() < (form.drawn[0] > 127).sum()


def test_training_lines_mix_reproducibly_and_validation_lines_never_draw_allographs(monkeypatch):
    def lines(cfg: dict, split: str) -> list:
        synth = LineSynthesizer(SynthConfig(**cfg), split=split, seed=4)
        return [synth.sample(i) for i in range(6)]

    drawn = []
    original = Allographs.form
    monkeypatch.setattr(Allographs, "form", lambda self, ch, *a: drawn.append(ch) or original(self, ch, *a))
    mixed, again = lines(ALWAYS, "train"), lines(ALWAYS, "train")
    assert all(np.array_equal(a.image, b.image) for a, b in zip(mixed, again))
    assert len(drawn) > 20 and set(drawn) <= set("abcdefghijklmnopqrstuvwxyz")

    def refuse(*args, **kwargs):
        raise AssertionError("a validation line drew allographs")

    monkeypatch.setattr(synthesizer, "sample_allographs", refuse)
    lines(ALWAYS, "val")
    with pytest.raises(AssertionError, match="validation line"):
        lines(dict(ALWAYS, allograph_validation=True), "val")
