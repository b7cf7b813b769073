"""Line rendering end to end: determinism, and labels that equal what is drawn."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from hwr.recognition.charset import normalize_text
from hwr.synth import LineSynthesizer, SynthConfig
from hwr.synth.augment import ink_box
from hwr.synth.letters import EMNIST_LETTERS
from hwr.synth.render import EMNIST_FONT, MNIST_FONT

from helpers import count_gaps


@pytest.fixture(scope="module")
def synth() -> LineSynthesizer:
    return LineSynthesizer(seed=7)


def test_same_seed_and_index_give_the_same_line(synth):
    a, b = synth.sample(3), LineSynthesizer(seed=7).sample(3)
    assert a.text == b.text and a.meta == b.meta and np.array_equal(a.image, b.image)
    clone = pickle.loads(pickle.dumps(synth))  # what a DataLoader worker gets
    assert np.array_equal(clone.sample(3).image, a.image)


def test_other_index_seed_or_split_give_other_lines(synth):
    base = synth.sample(3)
    for other in (synth.sample(4), LineSynthesizer(seed=8).sample(3), LineSynthesizer(seed=7, split="val").sample(3)):
        assert other.text != base.text or not np.array_equal(other.image, base.image)


def test_line_images_are_gray_uint8_dark_ink_on_light_paper(synth):
    for i in range(12):
        sample = synth.sample(i)
        image = sample.image
        assert image.dtype == np.uint8 and image.ndim == 2
        assert 20 <= image.shape[0] <= 400
        # Paper dominates; the darkest pixels are ink.
        assert np.median(image) > np.percentile(image, 1) + 40
        assert sample.meta["kind"] and sample.meta["font"]


def test_labels_match_what_is_drawn(synth):
    coverage = synth.fonts.coverage()
    cfg = synth.config
    for i in range(40):
        line = synth.render(synth.rng(i))
        h, w = line.image.shape
        x0, y0, x1, y1 = line.ink_box
        # The crop never cuts ink: a margin of paper all around the ink box.
        assert cfg.min_margin_px <= x0 < x1 <= w - cfg.min_margin_px
        assert cfg.min_margin_px <= y0 < y1 <= h - cfg.min_margin_px
        assert line.text == normalize_text(line.text) and not synth.charset.missing_chars(line.text)
        assert line.text == " ".join(line.text.split())
        if line.font == MNIST_FONT:
            assert set(line.text) <= set("0123456789 ")
        elif line.font == EMNIST_FONT:
            assert set(line.text) <= EMNIST_LETTERS | {" "}
        else:
            assert not coverage[line.font] & set(line.text), (line.font, line.text)


def test_ink_box_is_the_real_ink(synth):
    rng = synth.rng(11)
    ink_line = synth.write_line(rng)
    box = ink_box(ink_line.ink)
    assert box is not None
    x0, y0, x1, y1 = box
    ink = ink_line.ink
    assert ink[y0:y1, x0:x1].any() and ink.sum() == ink[y0:y1, x0:x1].sum()


def test_every_space_is_a_visible_gap():
    # Upright, undistorted lines, so gaps can be read off the column profile.
    cfg = SynthConfig(slant_mean=0.0, slant_std=0.0, rotation_std_deg=0.0, elastic_prob=0.0)
    synth = LineSynthesizer(cfg, seed=3)
    for i in range(25):
        line = synth.write_line(synth.rng(i))
        # Thickening may eat 2 px of a gap; the warp's interpolation 1 px more.
        needed = int(cfg.min_word_gap * line.x_height) - 3
        assert count_gaps(line.ink, needed) >= line.text.count(" "), (line.text, line.font)


def test_digit_lines_use_real_digits():
    synth = LineSynthesizer(split="val", seed=1, kinds=("digits",))
    for i in range(5):
        sample = synth.sample(i)
        assert sample.meta["font"] == MNIST_FONT and sample.meta["kind"] == "digits"
        assert sample.text and set(sample.text) <= set("0123456789 ")
