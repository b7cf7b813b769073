"""hwr.synth.augment: line-level changes of the pen keep every piece of ink the label names."""
import numpy as np

from hwr.synth import augment
from hwr.synth.config import SynthConfig


def test_thinning_a_line_never_takes_a_whole_piece_of_ink():
    """An i's dot or a letter thinned per instance already faded below half under the line's
    erosion (its total loss allowed it): a letter in the label all but gone from the image."""
    ink = np.zeros((40, 200), np.uint8)
    ink[5:35, 10:190] = 255  # a thick stroke: most of the ink, which thins well
    ink[2, 195] = 255  # a dot of one pixel, which a 2x2 erosion takes
    cfg = SynthConfig()
    assert augment.change_stroke_width(ink, augment.THINNER, cfg) is ink  # kept as it was
    ink[2, 195] = 0
    thinned = augment.change_stroke_width(ink, augment.THINNER, cfg)
    assert np.count_nonzero(thinned > 127) < np.count_nonzero(ink > 127)  # without the dot it thins
