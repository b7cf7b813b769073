"""hwr.synth.text: labels within the charset, realistic lengths, held-out validation text."""
from __future__ import annotations

import numpy as np
import pytest

from hwr.recognition.charset import Charset, normalize_text
from hwr.synth.config import SynthConfig
from hwr.synth.text import TextSampler, clean_text, split_lines


@pytest.fixture(scope="module")
def sampler() -> TextSampler:
    return TextSampler(Charset(), "train")


def test_clean_text_normalises_filters_and_collapses():
    charset = Charset("abc ")
    assert clean_text("  a\tb\n\nc  ", charset) == "a b c"
    assert clean_text("a\u00e9 b", charset) == "a b"  # é is outside this charset: dropped
    assert clean_text("e\u0301", Charset(["\u00e9"])) == "\u00e9"  # NFC before filtering
    assert clean_text("abc abc abc", charset, max_chars=8) == "abc abc"  # cut at a word boundary
    assert clean_text("abcabcabc", charset, max_chars=4) == "abca"


def test_samples_stay_in_charset_and_in_length(sampler):
    charset = sampler.charset
    rng = np.random.default_rng(0)
    samples = [sampler.sample(rng) for _ in range(600)]
    lengths = np.array([len(text) for text, _ in samples])
    for text, kind in samples:
        assert text and not charset.missing_chars(text), (kind, text)
        assert text == normalize_text(text) == " ".join(text.split()), (kind, text)
    assert lengths.max() <= SynthConfig().max_chars
    # Only digit strings may be shorter than 5 characters (a lone "7" is a real field).
    assert np.mean(lengths >= 5) > 0.93
    assert 25 <= np.median(lengths) <= 55
    kinds = {kind for _, kind in samples}
    assert {"corpus", "words", "digits", "punctuation", "date", "price"} <= kinds


def test_rare_symbols_appear(sampler):
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(800):
        seen.update(sampler.sample(rng, kinds=("punctuation", "price", "phone", "time", "date"))[0])
    assert set("()[]{}<>\"'#@$%&*+-=/\\|~^_:;!?.,`") <= seen


def test_forced_kinds_and_custom_charset():
    sampler = TextSampler(Charset("0123456789 "), "val")
    rng = np.random.default_rng(2)
    for _ in range(30):
        text, kind = sampler.sample(rng, kinds=("digits",))
        assert kind == "digits" and set(text) <= set("0123456789 ")


def test_validation_text_is_held_out():
    lines = [f"line {i}" for i in range(100)]
    val = split_lines(lines, "val", 20)
    train = split_lines(lines, "train", 20)
    assert val == ["line 0", "line 20", "line 40", "line 60", "line 80"]
    assert not set(val) & set(train) and len(val) + len(train) == 100


def test_pickled_sampler_draws_the_same(sampler):
    import pickle

    clone = pickle.loads(pickle.dumps(sampler))
    assert clone.sample(np.random.default_rng(5)) == sampler.sample(np.random.default_rng(5))
