"""The text size of binary pages: letters among grain, a few long joined words. Binarisation and
borders are tested through whole pages in test_segment.py."""
from __future__ import annotations

import cv2
import numpy as np

from hwr.documents.page_ink import text_size


def test_text_height_is_the_letters_not_the_grain_that_outnumbers_them():
    binary = np.zeros((400, 1200), np.uint8)
    for row in range(3):
        cv2.putText(binary, "handwriting on an old leaf", (20, 100 + 120 * row), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 1, 3)
    clean = text_size(binary)[0]
    rng = np.random.default_rng(0)
    grainy = binary.copy()
    for y, x in zip(rng.integers(0, 396, 1500), rng.integers(0, 1196, 1500)):
        grainy[y:y + 4, x:x + 4] = 1  # clumps as tall as the smallest pieces counted
    assert clean is not None and clean > 20
    assert abs(text_size(grainy)[0] - clean) <= 0.2 * clean


def test_text_height_of_a_few_long_joined_words_and_their_dots_is_the_plain_median():
    # One line of joined writing on a page of its own: two long words, an i's dot and a
    # comma. Half its ink lies in pieces more than twice the median's height, as on a grainy
    # leaf, but a few pieces are not grain (taken for it, the line lost its tail).
    binary = np.zeros((200, 900), np.uint8)
    binary[60:140, 20:400] = 1
    binary[70:130, 450:880] = 1
    for x in (410, 420, 430):
        binary[150:162, x:x + 4] = 1
    assert text_size(binary)[0] == 12.0
