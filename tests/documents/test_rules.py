"""Ruling removal on drawn binary pages: tilted, stepped, thick rules, and strokes crossing them."""
from __future__ import annotations

import cv2
import numpy as np

from hwr.documents.rules import remove_rules


def test_tilted_rules_are_removed_and_strokes_crossing_them_kept():
    binary = np.zeros((300, 400), np.uint8)  # tall enough that the stroke is no vertical rule
    cv2.line(binary, (0, 40), (399, 52), 1, 1)  # a rule 1.7 degrees off level
    binary[20:80, 200:203] = 1  # a descender crossing it
    level_only = remove_rules(binary, 120)
    assert level_only[38:55, :190].sum() > 100  # the staircase's steps are too short
    cleaned = remove_rules(binary, 120, max_tilt_deg=2.0, crossing_run=10)
    # The rule is gone but for a few pixels at the ends of its steps (noise to the segmenter).
    assert cleaned[:, :190].sum() + cleaned[:, 210:].sum() <= 0.05 * 400
    assert cleaned[20:80, 200:203].all()  # the stroke is whole, through the rule too
    assert remove_rules(binary, 120, max_tilt_deg=2.0)[20:80, 200:203].sum() < 180  # else cut


def test_a_page_wide_rule_cut_where_it_steps_is_removed_whole():
    # A thin rule a fraction of a degree off level is grey where it steps from one pixel row to
    # the next, and binarisation cuts it there: pieces of 74 px, shorter than any rule.
    binary = np.zeros((300, 900), np.uint8)
    for step, x in enumerate(range(0, 900, 80)):
        binary[100 + step, x + 6: x + 80] = 1
    binary[60:140, 400:403] = 1  # a stroke crossing it
    binary[200:215, 100:700:20] = 1  # and a row of writing's strokes, which stays
    cleaned = remove_rules(binary, 128, max_tilt_deg=2.0, crossing_run=10)
    rule = binary[95:115].copy()
    rule[:, 395:408] = 0
    assert cleaned[95:115][rule > 0].sum() <= 0.05 * rule.sum()
    assert cleaned[60:140, 400:403].all() and cleaned[200:215].sum() == binary[200:215].sum()


def test_a_rule_through_a_letter_takes_only_its_own_rows():
    binary = np.zeros((200, 600), np.uint8)
    binary[100:102, :] = 1  # a 2-px rule
    letter = np.zeros_like(binary)
    cv2.circle(letter, (300, 98), 8, 1, 2)  # an "o" whose bowl the rule crosses
    binary |= letter
    letter[100:102] = 0
    cleaned = remove_rules(binary, 112, max_tilt_deg=2.0, crossing_run=4)
    assert cleaned[95:106, :280].sum() + cleaned[95:106, 320:].sum() == 0
    # All of the letter beside the rule; 100 of its 144 pixels when the rows beside the rule went too.
    assert (cleaned & letter).sum() == letter.sum()


def test_a_thick_rule_is_removed_though_it_is_taller_than_a_crossing_stroke():
    binary = np.zeros((300, 600), np.uint8)
    binary[100:106, :] = 1  # a 6-px rule
    binary[60:150, 300:303] = 1  # a stroke crossing it
    cleaned = remove_rules(binary, 112, max_tilt_deg=2.0, crossing_run=5)
    assert cleaned[95:111, :290].sum() + cleaned[95:111, 313:].sum() <= 0.01 * binary[100:106].sum()
    assert cleaned[60:150, 300:303].all()
