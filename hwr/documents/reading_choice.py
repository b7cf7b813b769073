"""Auto mode's second look: a single image that the segmenter cut into lines is also read
whole, as one line image, and the surer of the two readings is kept. Torch-free.

Why: the segmenter alone took 22 of the harder set's 600 one-line images (10 of 119 photos,
8 of 105 at low resolution) for pages. A tilted or curved line, a wide gap between words or
tall letters made it find two to nine "lines", whose crops read as garbage (CER 0.2-5.0 on
those lines). Their shape does not tell them from small pages (aspect ratios 1.6:1 to 22:1 on
both sides); the network does. A line image read whole is read surely and its fragments are
not; a page squeezed to one line's height reads as a few doubtful characters. With
hwr-en-small stage 22 reading greedily: the whole reading was kept on 21 of those 22 images (the
rule was made on them) and on 38 of the 40 that a fresh draw of 1,200 such lines (seed 2) had cut,
CER on those 69% -> 11%; and on none of 59 + 150 synthetic pages of 2-6 lines in held-out fonts.

Surer means a higher mean log confidence per character read (the log of the geometric mean):
one character the network barely believed weighs more than in the plain mean, which
fragments cut through letters are full of.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from hwr.records import Recognition

# A line image read whole reads about one line's worth of text. A page squeezed into one line
# height reads a character or two, sometimes surely ("-", "#"); fewer characters than this
# share of the page's average line never count as the line.
MIN_WHOLE_SHARE_OF_A_LINE = 0.5
CONFIDENCE_FLOOR = 1e-6  # a character confidence of 0 would make the log -inf


def certainty(recognitions: Sequence[Recognition]) -> tuple[float, int]:
    """(mean log confidence of every character read, how many characters); (0.0, 0) when
    nothing was read."""
    confidences = [c for rec in recognitions for c in rec.char_confidences]
    if not confidences:
        return 0.0, 0
    return sum(math.log(max(c, CONFIDENCE_FLOOR)) for c in confidences) / len(confidences), len(confidences)


def whole_reading_wins(lines: Sequence[Recognition], whole: Recognition) -> bool:
    """Whether the image read whole (`whole`) is surer than its segmented `lines`."""
    whole_score, whole_chars = certainty([whole])
    lines_score, lines_chars = certainty(lines)
    if whole_chars == 0:
        return False  # an empty reading is no evidence of a line (a page squeezed flat reads as blank)
    if lines_chars == 0:
        return True
    if whole_chars < MIN_WHOLE_SHARE_OF_A_LINE * lines_chars / len(lines):
        return False
    return whole_score > lines_score
