"""hwr.synth.hand: every instance its own shape, joins inside words only, breaks that never erase
a glyph. Not tested here: how natural the variation looks (see docs/synth-samples.png)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hwr.recognition.charset import DEFAULT_SYMBOLS
from hwr.synth import LineSynthesizer, SynthConfig, augment, render
from hwr.synth.config import default_data_dir
from hwr.synth.fonts import FontBank, read_font_list
from hwr.synth.hand import (
    Hand,
    Proportions,
    WordShape,
    band_source_heights,
    break_stroke,
    instance_displacement,
    writer_band,
    writer_width,
)
from hwr.synth.render import compose, layout_line, render_word, sample_style

from helpers import count_gaps

FONTS_DIR = default_data_dir() / "fonts"
# Upright lines without the line-level warp, so each instance's own map is all that moves ink.
STILL = dict(slant_mean=0.0, slant_std=0.0, rotation_std_deg=0.0, elastic_prob=0.0, thicken_prob=0.0,
             thin_prob=0.0, word_size_jitter_prob=0.0, condition_weights={"paper": 1.0}, restroke_prob=0.0)


def _word_crops(ink: np.ndarray) -> list[np.ndarray]:
    """Binary crops of the ink between empty column runs (one per word here)."""
    inked = (ink > 127).any(axis=0)
    edges = np.flatnonzero(np.diff(np.r_[0, inked.astype(np.int8), 0]))
    crops = []
    for a, b in zip(edges[::2], edges[1::2]):
        part = ink[:, a:b] > 127
        rows = np.flatnonzero(part.any(axis=1))
        crops.append(part[rows[0]: rows[-1] + 1])
    return crops


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    pa, pb = np.zeros((h, w), bool), np.zeros((h, w), bool)
    pa[: a.shape[0], : a.shape[1]] = a
    pb[: b.shape[0], : b.shape[1]] = b
    return float((pa & pb).sum() / max(1, (pa | pb).sum()))


def _line_ink(cfg: SynthConfig, text: str, seed: int) -> np.ndarray:
    synth = LineSynthesizer(cfg, seed=seed)
    rng = synth.rng(0)
    style = sample_style(rng, cfg, synth.fonts, "delius", False, 30.0)
    from hwr.synth import augment
    from hwr.synth.render import layout_line

    line = layout_line(text, style, cfg, synth.fonts, synth.digits, rng)
    return augment.warp_line(line, rng, cfg).ink


def _slope(crop: np.ndarray) -> float:
    """How far the ink leans (dx per dy) from its second moments: a rotated or sheared "l"."""
    m = cv2.moments(crop.astype(np.uint8), binaryImage=True)
    return m["mu11"] / m["mu02"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_instances_of_a_letter_in_a_line_differ(seed):
    cfg = SynthConfig(instance_prob=1.0, join_line_prob=0.0, break_line_prob=0.0, **STILL)
    crops = _word_crops(_line_ink(cfg, "l l l l l l", seed=seed))
    assert len(crops) == 6
    for i in range(6):
        for j in range(i + 1, 6):
            assert crops[i].shape != crops[j].shape or not np.array_equal(crops[i], crops[j])
    # Each "l" leans its own way; without a hand they lean alike (resampling noise only).
    plain = _word_crops(_line_ink(SynthConfig(instance_prob=0.0, **STILL), "l l l l l l", seed=seed))
    varied_spread = np.std([_slope(c) for c in crops])
    assert varied_spread > 0.01 and varied_spread > 5 * np.std([_slope(c) for c in plain])


def test_instance_variation_changes_the_line_but_not_its_label():
    on = LineSynthesizer(SynthConfig(instance_prob=1.0, **STILL), seed=4)
    off = LineSynthesizer(SynthConfig(instance_prob=0.0, **STILL), seed=4)
    for i in range(4):
        a, b = on.render(on.rng(i)), off.render(off.rng(i))
        assert a.text == b.text
        assert a.image.shape != b.image.shape or not np.array_equal(a.image, b.image)


def test_every_space_is_a_visible_gap_with_joins_and_breaks():
    cfg = SynthConfig(instance_prob=1.0, join_line_prob=1.0, join_prob_range=(1.0, 1.0), break_line_prob=1.0,
                      break_glyph_prob=0.5, **STILL)
    synth = LineSynthesizer(cfg, seed=3)
    for i in range(20):
        line = synth.write_line(synth.rng(i))
        needed = int(cfg.min_word_gap * line.x_height) - 3
        assert count_gaps(line.ink, needed) >= line.text.count(" "), (line.text, line.font)


def _components(mask: np.ndarray) -> int:
    return cv2.connectedComponents((mask > 127).astype(np.uint8), connectivity=8)[0] - 1


def test_joins_connect_lowercase_letters_inside_a_word():
    synth = LineSynthesizer(SynthConfig(**STILL), seed=0)
    rng = np.random.default_rng(0)
    style = sample_style(rng, synth.config, synth.fonts, "delius", False, 30.0)
    counts = {}
    for join_prob in (0.0, 1.0):
        hand = Hand(style.hand.x_height, style.hand.stroke, 1.0, join_prob, 0.0, 0.0, synth.config)
        style.hand = hand
        word = render_word("minimum", style, 1.0, 1.0, synth.fonts, None, np.random.default_rng(5))
        counts[join_prob] = (len(word.pieces), _components(compose(word.pieces)[0]))
    # Seven letters; the joins add strokes and fuse letters into fewer pieces of ink.
    assert counts[0.0][0] == 7 and counts[1.0][0] > 7
    assert counts[1.0][1] < counts[0.0][1]



def _upright_ink(text: str, width: float = 1.0, band: float = 1.0, **config) -> tuple[np.ndarray, float]:
    """`text` in an upright delius line by a writer of these proportions: its ink and x-height."""
    cfg = SynthConfig(**(STILL | config))
    synth = LineSynthesizer(cfg, seed=0)
    rng = np.random.default_rng(3)
    style = sample_style(rng, cfg, synth.fonts, "delius", False, 30.0)
    style.proportions = Proportions(width, band)
    line = augment.warp_line(layout_line(text, style, cfg, synth.fonts, synth.digits, rng), rng, cfg)
    return line.ink, line.x_height


def _ink_extent(text: str, **proportions) -> tuple[int, int, float]:
    """Width and height of `text`'s ink (_upright_ink), and the line's x-height."""
    ink, x_height = _upright_ink(text, **proportions)
    inked = ink > 127
    cols, rows = np.flatnonzero(inked.any(axis=0)), np.flatnonzero(inked.any(axis=1))
    return cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1, x_height


def test_writer_widths_span_cramped_to_sprawling_within_the_range():
    cfg = SynthConfig()
    rng = np.random.default_rng(0)
    widths = np.array([writer_width(rng, cfg) for _ in range(4000)])
    lo, hi = cfg.writer_width_range
    assert widths.min() >= lo and widths.max() <= hi
    assert abs(float(np.median(widths)) - 1.0) < 0.02
    # About one writer in eight is a sixth or more narrower than the font (log-normal, std 0.14).
    assert 0.08 < float(np.mean(widths < 0.85)) < 0.18
    assert writer_width(np.random.default_rng(5), cfg) == writer_width(np.random.default_rng(5), cfg)


def test_a_narrow_writer_draws_the_same_word_narrower_not_shorter():
    extents = {width: _ink_extent("minimum", width=width)[:2] for width in (0.7, 1.0, 1.3)}
    (narrow_w, narrow_h), (w, h), (wide_w, wide_h) = extents[0.7], extents[1.0], extents[1.3]
    assert 0.62 < narrow_w / w < 0.78 and 1.2 < wide_w / w < 1.4, extents
    assert abs(narrow_h - h) <= 2 and abs(wide_h - h) <= 2, extents


def test_a_narrow_writer_draws_each_letter_narrower_not_only_closer():
    # Not only the letters' centres: every "o" itself (the instance maps of letters sharing one
    # scale blend it away between their centres, so a squeeze done there moved letters only).
    def letter_widths(width: float) -> list[int]:
        ink, _ = _upright_ink("o o o", width=width)
        n, _, stats, _ = cv2.connectedComponentsWithStats((ink > 127).astype(np.uint8), connectivity=8)
        return sorted(stats[1:, cv2.CC_STAT_WIDTH].tolist())

    narrow, plain = letter_widths(0.7), letter_widths(1.0)
    assert len(narrow) == len(plain) == 3
    assert all(0.6 < a / b < 0.8 for a, b in zip(narrow, plain)), (narrow, plain)


def test_a_word_squeeze_and_size_reach_each_letter_not_only_its_place(monkeypatch):
    # As the writer's width: a squeeze or size in the instance maps, shared by a word's letters,
    # was blended away between their centres (letters moved closer, each stayed as wide).
    def letter_boxes(squeeze: float, scale: float) -> list[tuple[int, int]]:
        monkeypatch.setattr(render, "sample_word", lambda rng, hand, size=1.0: WordShape(0.0, squeeze, scale))
        ink, _ = _upright_ink("ooo", instance_prob=1.0, join_line_prob=0.0, break_line_prob=0.0)
        n, _, stats, _ = cv2.connectedComponentsWithStats((ink > 127).astype(np.uint8), connectivity=8)
        return sorted(zip(stats[1:, cv2.CC_STAT_WIDTH].tolist(), stats[1:, cv2.CC_STAT_HEIGHT].tolist()))

    plain, squeezed, large = letter_boxes(1.0, 1.0), letter_boxes(0.75, 1.0), letter_boxes(1.0, 1.25)
    assert len(plain) == len(squeezed) == len(large) == 3
    for (w, h), (sw, sh), (lw, lh) in zip(plain, squeezed, large):
        assert 0.65 < sw / w < 0.85 and abs(sh - h) <= 2, (plain, squeezed)
        assert 1.15 < lw / w < 1.35 and 1.15 < lh / h < 1.35, (plain, large)


def test_writer_bands_stay_in_range_and_draw_nothing_when_off():
    rng = np.random.default_rng(1)
    assert writer_band(rng, SynthConfig(writer_band_std=0.0)) == 1.0
    assert rng.random() == np.random.default_rng(1).random()  # no draw: lines as without bands
    cfg = SynthConfig()
    bands = np.array([writer_band(np.random.default_rng(seed), cfg) for seed in range(2000)])
    lo, hi = cfg.writer_band_range
    assert bands.min() >= lo and bands.max() <= hi and 0.2 < float(np.mean(bands < 0.92)) < 0.35


def test_the_band_map_scales_the_x_height_and_moves_what_is_above_it():
    heights = np.array([-5.0, 0.0, 13.0, 26.0, 30.0, 50.0])  # x-height 20, band 1.3: top at 26
    source = band_source_heights(heights, 1.3, 20.0)
    np.testing.assert_allclose(source, [-5.0, 0.0, 10.0, 20.0, 24.0, 44.0])
    assert np.all(np.diff(band_source_heights(np.linspace(-10, 60, 200), 0.75, 20.0)) > 0)


def test_a_writer_band_grows_the_letters_bodies_not_the_ascenders_lengths():
    (_, body, xh), (_, tall_body, tall_xh) = _ink_extent("mum"), _ink_extent("mum", band=1.3)
    (_, stem, _), (_, tall_stem, _) = _ink_extent("lhl"), _ink_extent("lhl", band=1.3)
    assert tall_xh == pytest.approx(1.3 * xh)
    assert 1.2 < tall_body / body < 1.4, (body, tall_body)
    # An ascender's stem grows by the band's growth only: 0.3 x-heights, not 30% of its height.
    assert abs((tall_stem - stem) - 0.3 * xh) < 0.12 * xh, (stem, tall_stem, xh)
    (_, small_body, _) = _ink_extent("mum", band=0.75)
    assert 0.68 < small_body / body < 0.82

@pytest.mark.parametrize("font", ["delius", "hi-melody", "sacramento", "edu-vic-wa-nt-hand", "architects-daughter",
                                  "gochi-hand"])
def test_breaks_never_erase_a_glyph_or_a_dot_nor_split_one_off(font):
    # Nor may a cut split off a small piece of a stroke: the tip of an "l" cut off is the dot of
    # an "i" (stage 16 read broken l's as i); the main stroke stays in pieces of a quarter or more.
    bank = FontBank(FONTS_DIR, [font], DEFAULT_SYMBOLS)
    size = bank.grid_size(40.0)
    stroke = max(1.0, bank.stroke_width(font, size))
    rng = np.random.default_rng(0)
    cut = 0
    for ch in "ijt;:!?%abcdefghklmnopqrsuvwxyzABEMTW0123456789":
        original = bank.glyph(font, size, ch).mask
        n, labels, stats, _ = cv2.connectedComponentsWithStats((original > 127).astype(np.uint8), connectivity=8)
        main = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else labels > 0
        for _ in range(4):
            mask = original.copy()
            cut += break_stroke(mask, stroke, rng)
            after = mask > 127
            assert after.sum() >= 0.75 * (original > 127).sum(), (font, ch)
            for k in range(1, n):  # every piece of the glyph (dots included) keeps most of its ink
                piece = labels == k
                assert after[piece].sum() >= 0.6 * piece.sum(), (font, ch, k)
            pieces = cv2.connectedComponentsWithStats((after & main).astype(np.uint8), connectivity=8)[2]
            areas = pieces[1:, cv2.CC_STAT_AREA]
            assert not areas.size or areas.min() >= 0.25 * areas.sum(), (font, ch, areas)
    assert cut > 15  # breaks do happen


def test_instance_displacement_is_each_instance_own_map_at_its_centre():
    # Two instances: the first shifted down 2 px, the second rotated; at each centre only the
    # instance's own map acts, and half-way the two blend.
    inst = np.array([[10, 0, 0, 0, 0, 0, 2.0, 0, 0], [30, 0, 0, -0.1, 0.1, 0, 0.0, 0, 0]], np.float32)
    px = np.array([10.0, 30.0, 20.0, 30.0], np.float32)
    py = np.array([0.0, 0.0, 0.0, -10.0], np.float32)
    dx, dy = instance_displacement(px, py, inst, x_height=20.0)
    # Half-way: (2 + 0.1 * (20 - 30)) / 2, the mean of both maps there.
    np.testing.assert_allclose(dy[:3], [2.0, 0.0, 0.5], atol=1e-5)
    np.testing.assert_allclose(dx[3], 1.0, atol=1e-5)  # -0.1 * (-10) above the second centre


JOIN_FONTS = ["delius", "sacramento", "architects-daughter", "playwrite-nz", "gochi-hand"]


@pytest.mark.parametrize("font", JOIN_FONTS)
def test_round_letters_are_left_at_the_top_and_others_at_the_baseline(font):
    # An "o" joined from its lowest right ink grows a tail at the baseline and reads as an "a";
    # hands leave o, b, v, w, r and f at the shoulder (the arm, the bar), along the x-height.
    bank = FontBank(FONTS_DIR, [font], DEFAULT_SYMBOLS)
    size = bank.grid_size(40.0)
    xh = bank.metrics(font).x_height * size
    for ch in "obvwrf":
        a = bank.anchors(font, size, ch)
        glyph = bank.glyph(font, size, ch)
        assert a.bridge and a.exit_y < -0.5 * xh, (font, ch, a, xh)  # the upper half
        assert a.exit_x > glyph.left + 0.4 * glyph.mask.shape[1], (font, ch)  # not its left side
    for ch in "acdehimnu":
        a = bank.anchors(font, size, ch)
        assert not a.bridge and a.exit_y > -0.6 * xh, (font, ch, a, xh)
        # A bridge enters the letter's top, a cup join lower down its left side.
        assert a.bridge_entry_y < -0.6 * xh and a.bridge_entry_y <= a.entry_y, (font, ch, a, xh)


def test_bridges_leave_from_the_top_of_the_ink_and_enter_a_letter_not_its_dot():
    # Over every listed font: a script "b"'s loop or an "f"'s hook runs on above the x-height,
    # and a bridge leaving from there would cross the letter's top; an "i"'s dot may reach
    # into the x-height band, and a bridge must not end on it.
    names = read_font_list(FONTS_DIR / "train-fonts.txt")
    bank = FontBank(FONTS_DIR, names, DEFAULT_SYMBOLS)
    size = bank.grid_size(40.0)
    bridges = 0
    for font in names:
        if font not in bank.coverage():
            continue
        xh = bank.metrics(font).x_height * size
        for ch in "bf":
            a, glyph = bank.anchors(font, size, ch), bank.glyph(font, size, ch)
            if a is None or not a.bridge:
                continue
            bridges += 1
            row, col = int(a.exit_y - glyph.top), int(a.exit_x - glyph.left)
            assert not (glyph.mask[max(0, row - 2): row, col] > 127).any(), (font, ch, a)  # the top of its ink
        for ch in "ij":
            a, glyph = bank.anchors(font, size, ch), bank.glyph(font, size, ch)
            if a is None:
                continue
            n, labels, stats, _ = cv2.connectedComponentsWithStats((glyph.mask > 127).astype(np.uint8), connectivity=8)
            piece = labels[int(a.bridge_entry_y - glyph.top), int(a.bridge_entry_x - glyph.left)]
            # The piece entered is a stroke reaching the band's lower half; a dot never does.
            bottom = glyph.top + stats[piece, cv2.CC_STAT_TOP] + stats[piece, cv2.CC_STAT_HEIGHT]
            assert piece > 0 and bottom > -0.5 * xh, (font, ch, a)
    assert bridges > 150


@pytest.mark.parametrize("font", JOIN_FONTS)
def test_a_joined_o_grows_no_tail_at_the_baseline(font):
    synth = LineSynthesizer(SynthConfig(**STILL), seed=0)
    style = sample_style(np.random.default_rng(0), synth.config, synth.fonts, font, False, 30.0)
    style.hand = Hand(style.hand.x_height, style.hand.stroke, 1.0, 1.0, 0.0, 0.0, synth.config)
    xh = style.hand.x_height

    def connectors(word: str) -> list[np.ndarray]:
        """The rows of each connector drawn in `word` over a few draws of its instances."""
        rows = []
        for seed in range(6):
            pieces = render_word(word, style, 1.0, 1.0, synth.fonts, None, np.random.default_rng(seed)).pieces
            rows += [y + np.nonzero(mask > 127)[0] for mask, _, y in pieces[len(word):]]
        return rows

    # From the o's shoulder into the n's top: the connector stays in the x-height band's upper
    # part; an a, c, e or i is left at the baseline.
    high = connectors("on")
    assert high and all(rows.max() < -0.35 * xh for rows in high), font
    if font != "sacramento":  # whose script letters already run into each other: nothing to join
        low = [rows for word in ("an", "cn", "en", "in") for rows in connectors(word)]
        assert low and max(rows.max() for rows in low) > -0.3 * xh, font
