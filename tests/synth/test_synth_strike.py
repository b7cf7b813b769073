"""Struck-out words: drawn over the word's ink, labelled `#`, in training lines and the struck
validation set only, and without moving any other line's pixels."""
from __future__ import annotations

import numpy as np
import pytest

from hwr.datasets import open_dataset
from hwr.synth import LineSynthesizer, SynthConfig
from hwr.synth.strike import STRUCK_LABEL, choose_strike, strike_through


def test_the_strike_spans_the_word_inside_its_x_height_band():
    for seed in range(30):
        mask, x, y = strike_through(100.0, 220.0, 20.0, 3.0, np.random.default_rng(seed))
        ys, xs = np.nonzero(mask > 127)
        assert xs.size
        # From the word's left edge to its right edge, give or take a quarter x-height and the pen.
        assert 100 - 8 <= x + xs.min() <= 100 + 4 and 220 - 4 <= x + xs.max() <= 220 + 8
        # Through the letters' body: between a bit above the x-height and a bit below the baseline.
        assert -20 * 1.3 - 5 <= y + ys.min() and y + ys.max() <= 5


def test_the_same_generator_draws_the_same_strike():
    a = strike_through(0.0, 80.0, 16.0, 2.0, np.random.default_rng(4))
    b = strike_through(0.0, 80.0, 16.0, 2.0, np.random.default_rng(4))
    assert a[1:] == b[1:] and np.array_equal(a[0], b[0])


def test_choosing_a_strike_leaves_the_lines_own_generator_where_it_was():
    rng, untouched = np.random.default_rng([1, 2]), np.random.default_rng([1, 2])
    strike = choose_strike(rng, ["a", "quick", "fox"], 1.0)
    assert strike is not None and strike.word in (1, 2)  # "a" has too few letters to cross out
    assert rng.random() == untouched.random()
    assert choose_strike(rng, ["alone"], 1.0) is None  # one word: nothing else to read
    assert choose_strike(rng, ["12", "34"], 1.0) is None  # no word of letters
    assert choose_strike(rng, ["many", "words"], 0.0) is None


@pytest.fixture(scope="module")
def lines():
    """The same training lines with every eligible line struck, and with none."""
    config = dict(condition_weights={"paper": 1.0})
    struck = LineSynthesizer(SynthConfig(struck_word_prob=1.0, **config), split="train", seed=5)
    plain = LineSynthesizer(SynthConfig(struck_word_prob=0.0, **config), split="train", seed=5)
    return [(struck.sample(i), plain.sample(i)) for i in range(24)]


def test_a_struck_line_is_labelled_with_one_hash_in_place_of_the_crossed_word(lines):
    struck_lines = 0
    for struck, plain in lines:
        a, b = struck.text.split(" "), plain.text.split(" ")
        assert len(a) == len(b)
        changed = [k for k in range(len(a)) if a[k] != b[k]]
        if changed:
            struck_lines += 1
            assert len(changed) == 1 and a[changed[0]] == STRUCK_LABEL
            assert sum(ch.isalpha() for ch in b[changed[0]]) >= 2
            if struck.image.shape == plain.image.shape:
                assert not np.array_equal(struck.image, plain.image)
    assert struck_lines >= 12  # font lines of two words or more: most of them


def test_lines_without_a_strike_keep_every_pixel(lines):
    kept = [(s, p) for s, p in lines if s.text == p.text]
    assert kept  # digit-only and one-word lines are never struck
    for struck, plain in kept:
        assert np.array_equal(struck.image, plain.image)


def test_validation_lines_are_struck_only_when_the_config_says_so():
    config = dict(condition_weights={"paper": 1.0})
    struck = LineSynthesizer(SynthConfig(struck_word_prob=1.0, **config), split="val", seed=2)
    plain = LineSynthesizer(SynthConfig(struck_word_prob=0.0, **config), split="val", seed=2)
    for i in range(6):
        a, b = struck.sample(i), plain.sample(i)
        assert a.text == b.text and np.array_equal(a.image, b.image)
        assert not a.meta["struck"]
    opted_in = LineSynthesizer(SynthConfig(struck_word_prob=1.0, strike_validation=True, **config), split="val", seed=2)
    assert any(opted_in.sample(i).meta["struck"] for i in range(6))


def test_the_struck_set_is_the_harder_set_plus_strikes():
    struck, hard = open_dataset("synth:struck:24"), open_dataset("synth:hard:24")
    flagged = 0
    for i in range(len(struck)):
        a, b = struck[i], hard[i]
        assert not b.meta["struck"]
        if a.meta["struck"]:
            flagged += 1
            assert a.text.split(" ").count(STRUCK_LABEL) == 1 and len(a.text.split(" ")) == len(b.text.split(" "))
        else:
            # Every unstruck line is the harder set's line, pixel for pixel.
            assert a.text == b.text and np.array_equal(a.image, b.image)
    assert 3 <= flagged <= 18  # half of the eligible font lines


def test_a_charset_without_the_struck_label_gets_no_struck_words():
    """A model of --charset data from text without "#" (hwr adapt renders its rehearsal lines in
    the model's charset) had been given labels it cannot encode."""
    from hwr.recognition.charset import DEFAULT_SYMBOLS, Charset

    charset = Charset("".join(s for s in DEFAULT_SYMBOLS if s != STRUCK_LABEL))
    synth = LineSynthesizer(SynthConfig(struck_word_prob=1.0, condition_weights={"paper": 1.0}), split="train",
                            seed=5, charset=charset)
    assert not any(STRUCK_LABEL in synth.sample(i).text for i in range(8))
