"""Pixel noise: pepper found and removed, thin strokes and clean images left alone, noise measured."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hwr.recognition.noise import NOISE_SIGMA, noise_sigma, pepper_share, smoothed, without_pepper

from helpers import gaussian_noise, salt_and_pepper


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


def test_pepper_is_found_and_filtered_out_keeping_the_strokes():
    page = np.full((200, 300), 235, np.uint8)
    cv2.putText(page, "ink", (20, 140), cv2.FONT_HERSHEY_SIMPLEX, 4.0, 20, 9)
    noisy = salt_and_pepper(page, 0.08)
    assert pepper_share(noisy, 80) > 0.02
    cleaned = without_pepper(noisy)
    assert pepper_share(cleaned, 80) < 0.001
    strokes = page < 128
    # The strokes stay ink and the paper stays paper but for a few clusters of specks.
    assert (cleaned[strokes] < 128).mean() > 0.97
    assert (cleaned[~strokes] < 128).mean() < 0.002


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
