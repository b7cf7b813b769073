"""SyntheticLines: a reproducible map-style Dataset that DataLoader workers can render."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from torch.utils.data import DataLoader

from hwr.datasets.synthetic import SyntheticLines, digit_string_lines
from hwr.recognition.imaging import NormalizeConfig, normalize_line
from hwr.records import LineSample


def _as_list(batch):
    return batch


def test_items_are_line_samples():
    lines = SyntheticLines(6, seed=1)
    assert len(lines) == 6
    sample = lines[2]
    assert isinstance(sample, LineSample) and sample.text
    assert sample.image.dtype == np.uint8 and sample.image.ndim == 2
    assert lines[-1].id == lines[5].id
    with pytest.raises(IndexError):
        lines[6]
    # The trainer's normalisation accepts the rendered pixels as they are.
    assert normalize_line(sample.image).shape[0] == NormalizeConfig().line_height


def test_workers_render_what_the_main_process_renders():
    lines = SyntheticLines(4, seed=2)
    clone = pickle.loads(pickle.dumps(lines))
    assert np.array_equal(clone[1].image, lines[1].image)
    loader = DataLoader(lines, batch_size=2, num_workers=1, collate_fn=_as_list)
    from_workers = [s for batch in loader for s in batch]
    assert [s.text for s in from_workers] == [lines[i].text for i in range(4)]
    assert all(np.array_equal(a.image, lines[i].image) for i, a in enumerate(from_workers))


def test_digit_string_lines_come_from_held_out_digits():
    lines = digit_string_lines(4, seed=3)
    assert lines.split == "val"
    for i in range(4):
        sample = lines[i]
        assert sample.meta["kind"] == "digits" and set(sample.text) <= set("0123456789 ")
