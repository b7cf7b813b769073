"""hwr.synth.fonts: the split, charset coverage of every font, the glyph cache."""
from __future__ import annotations

import logging
import pickle
import shutil

import numpy as np
import pytest

from hwr.errors import MissingFileError
from hwr.recognition.charset import DEFAULT_SYMBOLS
from hwr.synth.config import default_data_dir
from hwr.synth.fonts import (
    ESSENTIAL_CHARS,
    TRAIN_FONTS_COPYING_VALIDATION,
    VALIDATION_FONTS,
    FontBank,
    font_path,
    fonts_for_split,
    missing_chars,
    read_font_list,
)

FONTS_DIR = default_data_dir() / "fonts"


def test_split_is_disjoint_and_uses_the_training_list():
    listed = read_font_list(FONTS_DIR / "train-fonts.txt")
    train, val = fonts_for_split(FONTS_DIR, "train"), fonts_for_split(FONTS_DIR, "val")
    assert len(VALIDATION_FONTS) == 12 and list(val) == list(VALIDATION_FONTS)
    assert len(listed) == 118 and len(train) == 103  # 12 validation fonts, 3 fonts they copy
    assert not set(train) & set(val)
    assert set(train) | set(val) <= set(listed)
    for name in listed:
        assert font_path(FONTS_DIR, name).is_file()
        assert (FONTS_DIR / f"{name}.LICENSE").is_file()
    with pytest.raises(ValueError):
        fonts_for_split(FONTS_DIR, "test")


def test_every_listed_font_covers_the_charset_or_is_dropped_with_a_reason(caplog):
    names = read_font_list(FONTS_DIR / "train-fonts.txt")
    bank = FontBank(FONTS_DIR, names, DEFAULT_SYMBOLS)
    with caplog.at_level(logging.INFO, logger="hwr.synth.fonts"):
        coverage = bank.coverage()
    for name in names:
        lacks = missing_chars(font_path(FONTS_DIR, name), DEFAULT_SYMBOLS)
        if lacks & ESSENTIAL_CHARS:
            assert name not in coverage and any(name in r.message and "skipped" in r.message for r in caplog.records)
        else:
            assert coverage[name] == lacks
            if lacks:
                assert any(name in r.message and "lacks" in r.message for r in caplog.records)
    # Fonts here miss at most a few symbols; none misses a letter or digit.
    assert len(coverage) == len(names)
    assert all(len(lacks) <= 3 for lacks in coverage.values())


def test_missing_glyphs_are_detected():
    path = font_path(FONTS_DIR, "covered-by-your-grace")
    # A private-use code point renders as .notdef; this font really has no percent sign.
    assert missing_chars(path, "\ue000%a ") == frozenset({"\ue000", "%"})


def test_fonts_covering_excludes_fonts_without_the_glyph():
    bank = FontBank(FONTS_DIR, fonts_for_split(FONTS_DIR, "train"), DEFAULT_SYMBOLS)
    covering = bank.fonts_covering(frozenset("%"))
    assert covering and "covered-by-your-grace" not in covering


def test_glyph_cache_and_metrics():
    bank = FontBank(FONTS_DIR, ["delius"], DEFAULT_SYMBOLS)
    size = bank.grid_size(50.0)
    glyph = bank.glyph("delius", size, "x")
    assert glyph is bank.glyph("delius", size, "x")  # cached
    assert glyph.mask.dtype == np.uint8 and glyph.mask.max() > 200 and glyph.advance > 0
    assert glyph.top < 0  # above the baseline
    assert bank.glyph("delius", size, " ").mask.size == 0
    metrics = bank.metrics("delius")
    assert 0.3 < metrics.x_height < metrics.cap_height < 1.0
    assert bank.stroke_width("delius", size) >= 1


def test_the_glyph_cache_counts_rasterisations_and_evicts_the_least_recent():
    bank = FontBank(FONTS_DIR, ["delius"], DEFAULT_SYMBOLS, cache_glyphs=2)
    size = bank.grid_size(50.0)
    for ch in "abab":
        bank.glyph("delius", size, ch)
    assert bank.glyph_misses == 2  # the second a and b came from the cache
    bank.glyph("delius", size, "c")  # evicts a, the least recently used
    bank.glyph("delius", size, "b")
    assert bank.glyph_misses == 3
    bank.glyph("delius", size, "a")
    assert bank.glyph_misses == 4
    assert pickle.loads(pickle.dumps(bank)).glyph_misses == 0  # a worker starts its own count


def test_a_corrupt_font_file_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    shutil.copy(font_path(FONTS_DIR, "short-stack"), font_path(tmp_path, "short-stack"))
    font_path(tmp_path, "delius").write_bytes(b"half a download")
    with caplog.at_level(logging.WARNING, logger="hwr.synth.fonts"):
        assert FontBank(tmp_path, ["delius", "short-stack"], "abc").names == ["short-stack"]
    assert "font delius skipped" in caplog.text and "unreadable" in caplog.text


def test_no_usable_font_is_one_error_naming_the_fonts_folder(tmp_path):
    with pytest.raises(MissingFileError, match=f"{tmp_path}: none of the 1 font asked for"):
        FontBank(tmp_path, ["delius"], "abc").names


def test_a_missing_training_font_list_is_named(tmp_path):
    with pytest.raises(MissingFileError, match="train-fonts.txt: training font list not found"):
        fonts_for_split(tmp_path, "train")


def test_no_training_font_shares_a_third_of_its_glyphs_with_a_validation_font():
    """edu-vic-wa-nt-hand (validation) had 23 of its 26 lowercase letters pixel for pixel in a
    training font: the network learnt the validation hand itself."""
    import string

    from PIL import ImageFont

    printable = string.ascii_letters + string.digits + string.punctuation

    def glyphs(name):
        font = ImageFont.truetype(str(font_path(FONTS_DIR, name)), 48)
        return {c: (font.getmask(c).size, bytes(np.asarray(font.getmask(c)))) for c in printable}

    validation = {name: glyphs(name) for name in VALIDATION_FONTS}
    for name in read_font_list(FONTS_DIR / "train-fonts.txt"):
        if name in VALIDATION_FONTS:
            continue
        own = glyphs(name)
        shared = max(sum(own[c] == theirs[c] for c in own) for theirs in validation.values())
        assert (shared >= len(printable) / 3) == (name in TRAIN_FONTS_COPYING_VALIDATION), (name, shared)
    assert not set(TRAIN_FONTS_COPYING_VALIDATION) & set(fonts_for_split(FONTS_DIR, "train"))


def test_a_rare_glyph_drawn_as_its_common_look_alike_counts_as_missing():
    """damion draws "\\" as its "/", mr-de-haviland "~" as its "-": lines labelled with the rare
    character showed the other one."""
    assert "\\" in missing_chars(font_path(FONTS_DIR, "damion"), "/\\")
    assert "/" not in missing_chars(font_path(FONTS_DIR, "damion"), "/\\")
    assert "~" in missing_chars(font_path(FONTS_DIR, "mr-de-haviland"), "-~")
    assert not missing_chars(font_path(FONTS_DIR, "short-stack"), "/\\-~")  # a font that draws all four
