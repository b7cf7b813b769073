"""Neighbouring lines' tails: only outside the line's own band, by the same writer, in training
lines and the neighbours set only, and reproducible."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hwr.datasets import open_dataset
from hwr.synth import LineSynthesizer, SynthConfig, augment
from hwr.synth.neighbours import add_neighbours
from hwr.synth.render import InkLine

FAST = dict(min_chars=5, max_chars=30)


def _line() -> tuple[InkLine, tuple]:
    """A line of 20 px x-height, a block of ink from the x-height to the baseline (y 25), in a
    tight crop: 5 px of margin above and below."""
    ink = np.zeros((30, 200), np.uint8)
    ink[5:25, 10:190] = 255
    line = InkLine(ink=ink, baseline=[(10.0, 25.0), (190.0, 25.0)], x_height=20.0, text="x", font="f",
                   kind="corpus")
    return line, (10, 5, 190, 25)


def _solid_neighbour(rng, line: InkLine) -> InkLine:
    # A neighbour that is ink everywhere: whatever survives shows exactly where tails may go.
    ink = np.full((400, 400), 200, np.uint8)
    return replace(line, ink=ink, baseline=[(0.0, 200.0), (399.0, 200.0)])


def test_neighbour_ink_stays_outside_the_lines_own_band():
    cfg = SynthConfig(neighbour_clearance=0.15, neighbour_own_band=(1.5, 0.6))
    tails = 0
    for seed in range(12):
        line, box = _line()
        out, out_box = add_neighbours(line, box, np.random.default_rng(seed), cfg, _solid_neighbour)
        pad_top = out_box[1] - box[1]
        assert out_box == (10, 5 + pad_top, 190, 25 + pad_top) and out.baseline[0][1] == 25.0 + pad_top
        assert out.ink.shape[0] > line.ink.shape[0]  # the crop was widened
        # The line's own band (ascenders 1.5 x-heights above the baseline, descenders 0.6
        # below, plus the clearance of 3 px) holds exactly the line's ink.
        top = max(0, int(np.floor(25 + pad_top - 1.5 * 20 - 3)))
        bottom = int(np.ceil(25 + pad_top + 0.6 * 20 + 3))
        own = np.pad(line.ink, ((pad_top, out.ink.shape[0] - pad_top - 30), (0, 0)))
        assert np.array_equal(out.ink[top:bottom], own[top:bottom])
        tails += out.ink[:top].any() + out.ink[bottom:].any()
    assert tails >= 6  # and beyond the band, neighbour ink


@pytest.fixture(scope="module")
def synth() -> LineSynthesizer:
    return LineSynthesizer(SynthConfig(**FAST), seed=3)


def test_real_neighbours_change_only_pixels_outside_the_band(synth):
    cfg = synth.config
    changed = 0
    for i in range(4):
        rng = synth.rng(i)
        line, box = augment.crop_with_margins(synth.write_line(rng), rng, cfg)
        out, out_box = add_neighbours(line, box, rng, cfg, synth._write_neighbour)
        pad_top = out_box[1] - box[1]
        before = np.zeros_like(out.ink)
        before[pad_top:pad_top + line.ink.shape[0]] = line.ink
        ys, xs = np.nonzero(out.ink != before)
        changed += ys.size
        (bx0, by0), (bx1, by1) = out.baseline[0], out.baseline[-1]
        base = np.interp(xs, [bx0, bx1 + 1e-3], [by0, by1])
        clear = cfg.neighbour_clearance * out.x_height
        own_above, own_below = cfg.neighbour_own_band
        above = ys < np.minimum(out_box[1], base - own_above * out.x_height) - clear + 1
        below = ys >= np.maximum(out_box[3], base + own_below * out.x_height) + clear - 1
        assert np.all(above | below)
    assert changed  # some tails were drawn


def test_validation_lines_draw_no_neighbours_unless_asked(monkeypatch):
    val = LineSynthesizer(SynthConfig(neighbour_prob=1.0, **FAST), split="val", seed=2)
    plain = [val.sample(i) for i in range(3)]
    assert not any(line.meta["neighbours"] for line in plain)
    # Asked, the decision comes from a child generator: a line that draws none keeps every
    # pixel (had it come from the line's own stream, the paper and ink after it would move).
    monkeypatch.setattr(val.config, "neighbour_validation", True)
    monkeypatch.setattr(val.config, "neighbour_prob", 0.0)
    for i, a in enumerate(plain):
        b = val.sample(i)
        assert a.text == b.text and np.array_equal(a.image, b.image)


def test_the_neighbours_set_is_the_harder_sets_writing_with_tails():
    tails, hard = open_dataset("synth:neighbours:8"), open_dataset("synth:hard:8")
    taller = 0
    for i in range(8):
        a, b = tails[i], hard[i]
        # Line for line the harder set's: the tails come from a child generator, so ink, pen and
        # capture are drawn as there.
        for key in ("font", "kind", "pen", "ink", "condition"):
            assert a.meta[key] == b.meta[key]
        assert a.text == b.text and not b.meta["neighbours"]
        if a.meta["condition"] == "whiteboard":  # a blank frame: no neighbours there
            assert np.array_equal(a.image, b.image) and not a.meta["neighbours"]
        else:
            assert a.meta["neighbours"]
            taller += a.image.shape[0] > b.image.shape[0]
        if i < 2:
            assert np.array_equal(a.image, open_dataset("synth:neighbours:8")[i].image)
    assert taller >= 3


def test_training_lines_carry_neighbours_at_their_share(synth, monkeypatch):
    monkeypatch.setattr(synth, "condition_weights", {"paper": 1.0})
    monkeypatch.setattr(synth.config, "neighbour_prob", 0.0)
    without = [synth.sample(i) for i in range(4)]
    monkeypatch.setattr(synth.config, "neighbour_prob", 1.0)
    grown = 0
    for i, b in enumerate(without):
        a = synth.sample(i)
        assert a.text == b.text  # the text is drawn first: the label is the line's own
        grown += a.image.shape[0] > b.image.shape[0]
    assert grown >= 2
