"""hwr.synth.warmup: glyph caches filled ahead of rendering, alike on one process or several,
and lines drawn from a warmed bank identical to lines drawn cold."""
from __future__ import annotations

import numpy as np
import pytest

from hwr.recognition.charset import DEFAULT_SYMBOLS
from hwr.synth.config import SynthConfig, default_data_dir
from hwr.synth.fonts import FontBank
from hwr.synth.synthesizer import LineSynthesizer
from hwr.synth.warmup import warm_font_bank

from unguarded_scripts import run_unguarded

FONTS_DIR = default_data_dir() / "fonts"
FONTS = ["delius", "gochi-hand"]
X_HEIGHTS = (18.0, 36.0)


def _bank() -> FontBank:
    return FontBank(FONTS_DIR, FONTS, DEFAULT_SYMBOLS)


def test_drawn_sizes_are_the_grid_sizes_of_the_x_height_range():
    bank = _bank()
    sizes = bank.drawn_sizes("delius", X_HEIGHTS)
    x_height = bank.metrics("delius").x_height
    assert sizes == sorted(set(sizes)) and len(sizes) >= 3
    drawn = {bank.grid_size(h / x_height) for h in np.linspace(*X_HEIGHTS, 200)}
    assert drawn == set(sizes)


@pytest.mark.slow
def test_several_processes_cache_the_same_glyphs_as_one():
    alone, shared = _bank(), _bank()
    assert warm_font_bank(alone, X_HEIGHTS, processes=1) == warm_font_bank(shared, X_HEIGHTS, processes=2) > 0
    for name in FONTS:
        mine, theirs = alone.cached_of(name), shared.cached_of(name)
        assert mine["glyphs"].keys() == theirs["glyphs"].keys() and mine["strokes"] == theirs["strokes"]
        for key, glyph in mine["glyphs"].items():
            other = theirs["glyphs"][key]
            assert np.array_equal(glyph.mask, other.mask) and (glyph.left, glyph.top, glyph.advance) == (
                other.left, other.top, other.advance)
        assert all(np.array_equal(points, theirs["skeletons"][key]) for key, points in mine["skeletons"].items())
        assert mine["anchors"] == theirs["anchors"]


def test_a_warmed_synthesizer_draws_the_same_lines_without_rasterising_a_glyph():
    def synthesizer() -> LineSynthesizer:
        synth = LineSynthesizer(SynthConfig(), split="train", seed=4)
        synth.fonts = FontBank(FONTS_DIR, FONTS, synth.charset.symbols, synth.config.font_size_step,
                               synth.config.max_font_px)
        return synth

    cold, warm = synthesizer(), synthesizer()
    assert warm.warm() > 0
    before = warm.fonts.glyph_misses
    for index in range(12):
        a, b = cold.sample(index), warm.sample(index)
        assert a.text == b.text and np.array_equal(a.image, b.image)
    assert cold.fonts.glyph_misses > 0 and warm.fonts.glyph_misses == before


def test_only_synthetic_data_has_a_renderer_to_warm():
    from hwr.datasets.synthetic import warm_renderer
    from hwr.records import LineSample

    assert warm_renderer([LineSample("a", "a", np.zeros((4, 4), np.uint8))], processes=1) == 0


def test_a_script_without_a_main_guard_warms_in_its_own_process(tmp_path):
    """Each warm-up process ran the main script again and started a warm-up there, which
    multiprocessing refuses: the processes died and the warm-up stopped with BrokenProcessPool."""
    last, err = run_unguarded(tmp_path, """
        from hwr.synth.config import default_data_dir
        from hwr.synth.fonts import FontBank
        from hwr.synth.warmup import warm_font_bank
        bank = FontBank(default_data_dir() / "fonts", ["delius", "gochi-hand"], "abc")
        alone = FontBank(default_data_dir() / "fonts", ["delius", "gochi-hand"], "abc")
        print(warm_font_bank(bank, (18.0, 20.0), processes=2) == warm_font_bank(alone, (18.0, 20.0)) > 0)
    """)
    assert last == "True" and "warming the glyph cache in this process" in err
