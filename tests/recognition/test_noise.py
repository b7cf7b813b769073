"""Pixel noise: pepper found and removed, thin strokes and clean images left alone, noise measured."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hwr.recognition.noise import NOISE_SIGMA, noise_sigma, pepper_share, smoothed, stray_pepper_share, without_pepper

from helpers import gaussian_noise, render_line, salt_and_pepper


@pytest.fixture
def hairline_page():
    page = np.full((300, 400), 235, np.uint8)
    cv2.line(page, (20, 50), (380, 80), 30, 1)  # each pixel has dark neighbours along the line
    cv2.putText(page, "thin pen", (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 20, 1)
    return page


def test_a_clean_page_with_hairlines_is_returned_as_is(hairline_page):
    assert pepper_share(hairline_page, 80) == 0.0
    assert without_pepper(hairline_page) is hairline_page
    assert smoothed(hairline_page) is hairline_page


@pytest.mark.parametrize("share", [0.005, 0.08])
def test_specks_are_found_and_replaced_keeping_the_strokes(share):
    page = np.full((200, 300), 235, np.uint8)
    cv2.putText(page, "ink", (20, 140), cv2.FONT_HERSHEY_SIMPLEX, 4.0, 20, 9)
    noisy = salt_and_pepper(page, share)
    assert stray_pepper_share(noisy, 80) > 0.002
    cleaned = without_pepper(noisy)
    assert pepper_share(cleaned, 80) < 0.001
    strokes = page < 128
    # The strokes stay ink (salt in them filled) and the paper stays paper but for a few
    # clusters of specks too large to tell from ink.
    assert (cleaned[strokes] < 128).mean() > 0.99
    assert (cleaned[~strokes] < 128).mean() < 0.003


@pytest.mark.parametrize("share", [0.003, 0.01, 0.03])
def test_a_hairline_keeps_every_pixel_when_the_specks_around_it_go(hairline_page, share):
    """A 3 x 3 median over the whole image had erased it (and a thin-pen page read as blank)."""
    noisy = salt_and_pepper(hairline_page, share)
    cleaned = without_pepper(noisy)
    assert cleaned is not noisy and stray_pepper_share(cleaned, 80) < 0.0005
    hairline = (hairline_page < 128) & (noisy < 128)
    # Bar the odd piece that salt cut down to a speck's size.
    assert (cleaned[hairline] < 128).mean() > 0.99


@pytest.mark.parametrize("size", [11, 12, 13])
def test_small_clean_text_whose_dots_are_single_pixels_is_left_alone(size):
    """Each i's dot is a pixel darker than all its neighbours, 0.3% of such a line; it had made
    the line count as noisy and be filtered, and read as garbage."""
    line = render_line("minimum divided within his limits, i think", size=size, pad=3)
    assert pepper_share(line, 80) > 0.001
    assert without_pepper(line) is line


@pytest.mark.parametrize("sigma", [5.0, 12.0, 20.0])  # more is clipped at white
def test_noise_sigma_measures_gaussian_noise_on_paper_with_writing(hairline_page, sigma):
    assert noise_sigma(hairline_page) < 1.0
    assert noise_sigma(gaussian_noise(hairline_page, sigma)) == pytest.approx(sigma, rel=0.15)


def test_strong_noise_is_smoothed_and_weak_noise_is_not(hairline_page):
    weak = gaussian_noise(hairline_page, NOISE_SIGMA / 2)
    assert smoothed(weak) is weak
    strong = gaussian_noise(hairline_page, 20)
    assert noise_sigma(smoothed(strong)) < 8


def test_tiny_images_have_no_measurable_noise():
    assert noise_sigma(np.zeros((2, 2), np.uint8)) == 0.0
    tiny = np.zeros((1, 1), np.uint8)
    assert without_pepper(tiny) is tiny
