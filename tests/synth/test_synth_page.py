"""Synthetic pages: line polygons hold their ink, baselines lie inside them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hwr.records import Page
from hwr.synth import LineSynthesizer
from hwr.synth.page import render_page
from hwr.synth.render import EMNIST_FONT, MNIST_FONT


@pytest.fixture(scope="module")
def synth() -> LineSynthesizer:
    return LineSynthesizer(seed=2)


def polygon_mask(shape, polygon) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.array(polygon, np.int32)], 1)
    return mask.astype(bool)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_line_polygons_contain_their_ink(synth, index):
    rendered = synth.sample_page(index, n_lines=4)
    page = rendered.page
    assert isinstance(page, Page) and len(page.lines) == 4
    assert rendered.image.shape == (page.height, page.width) == rendered.ink.shape
    union = np.zeros(rendered.ink.shape, bool)
    for line in page.lines:
        inside = polygon_mask(union.shape, line.polygon)
        assert rendered.ink[inside].max() > 128, line.text  # each polygon holds ink
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        contour = np.array(line.polygon, np.float32)
        (x0, y0), (x1, y1) = line.baseline[0], line.baseline[-1]
        for t in np.linspace(0.0, 1.0, 50):  # all along the baseline, not just its ends
            point = (float(x0 + t * (x1 - x0)), float(y0 + t * (y1 - y0)))
            assert cv2.pointPolygonTest(contour, point, True) >= -1.0, (line.text, point)
        assert line.text
        union |= inside
    # All ink (beyond faint interpolation fringes) lies in some line's polygon.
    assert not (rendered.ink[~union] > 64).any()


def test_pages_are_reproducible_and_json_ready(synth):
    a, b = render_page(5, 3, synthesizer=synth), render_page(5, 3, synthesizer=synth)
    assert np.array_equal(a.image, b.image)
    assert [line.text for line in a.page.lines] == [line.text for line in b.page.lines]
    data = a.to_json()
    assert len(data["lines"]) == 3 and {"polygon", "baseline", "text", "font"} <= set(data["lines"][0])


def test_a_page_is_one_writer_with_one_set_of_letter_proportions(synth, monkeypatch):
    import hwr.synth.synthesizer as synthesizer

    styles = []
    real_sample_style = synthesizer.sample_style

    def recording(*args, **kwargs):
        style = real_sample_style(*args, **kwargs)
        styles.append(style)
        return style

    monkeypatch.setattr(synthesizer, "sample_style", recording)
    synth.sample_page(3, n_lines=5)
    proportions = {style.proportions for style in styles if style.hand is not None}
    assert len(styles) == 5 and len(proportions) == 1
    styles.clear()
    for index in range(5):  # lines on their own: each writer their own
        synth.sample(index)
    assert len({style.proportions for style in styles if style.hand is not None}) > 1


def test_a_page_is_written_with_one_pen(synth):
    # A ballpoint line under a marker line is no one's page (and misleads the segmenter's density).
    pens_per_page = []
    for index in range(6):
        meta = synth.sample_page(index, n_lines=4).line_meta
        pens_per_page.append({m["pen"] for m in meta if m["font"] not in (MNIST_FONT, EMNIST_FONT)})
    assert all(len(pens) <= 1 for pens in pens_per_page), pens_per_page
    assert len(set().union(*pens_per_page)) > 1  # pages differ


def test_a_pages_lines_share_their_pen_and_stroke_change(synth, monkeypatch):
    # One writer, one pen: the width, the nib and the thickening or thinning hold for the page.
    from hwr.synth import augment, render

    pens, changes = [], []
    real_style, real_change = render.sample_style, augment.change_stroke_width

    def recording_style(*args, **kwargs):
        style = real_style(*args, **kwargs)
        pens.append(style.pen)
        return style

    def recording_change(ink, change, cfg):
        changes.append(change)
        return real_change(ink, change, cfg)

    monkeypatch.setattr("hwr.synth.synthesizer.sample_style", recording_style)
    monkeypatch.setattr(augment, "change_stroke_width", recording_change)
    per_page = []
    for index in range(4):
        pens.clear()
        changes.clear()
        synth.sample_page(index, n_lines=4)
        assert len(changes) == 4 and len(set(changes)) == 1
        drawn = [p for p in pens if p is not None]
        # A line whose text the font lacks is drawn in another font, at another layout size.
        assert len({round(p.width, 6) for p in drawn}) <= 2
        assert len({(p.name, p.angle, p.wave[2:], round(p.jitter / p.jitter_wavelength, 9)) for p in drawn}) <= 1
        per_page.append({round(p.width, 6) for p in drawn})
    assert len(set().union(*per_page)) > 1  # pages differ


def test_an_archive_page_keeps_its_lines_and_only_its_look_changes():
    from hwr.synth import LineSynthesizer, SynthConfig

    synth = LineSynthesizer(SynthConfig(min_chars=5, max_chars=20), split="val", seed=4)
    plain, old = synth.sample_page(1, n_lines=3), synth.sample_page(1, n_lines=3, archive=True)
    assert [line.text for line in old.page.lines] == [line.text for line in plain.page.lines]
    assert [line.polygon for line in old.page.lines] == [line.polygon for line in plain.page.lines]
    assert old.image.shape == plain.image.shape and np.array_equal(old.ink, plain.ink)
    paper = plain.ink == 0
    assert old.image[paper].std() > plain.image[paper].std()  # grain and blotches
    again = synth.sample_page(1, n_lines=3, archive=True)
    assert np.array_equal(again.image, old.image)
