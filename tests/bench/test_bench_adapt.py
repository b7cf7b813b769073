"""bench/bench_adapt.py's writers: a validation font whose habits (size, pen) hold across
its lines, or vary line by line. Not tested here: how much adapting helps (the bench's run)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from hwr.synth.fonts import VALIDATION_FONTS

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_adapt.py"


@pytest.fixture(scope="module")
def bench_adapt():
    spec = importlib.util.spec_from_file_location("bench_adapt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_adapt"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_adapt", None)


def test_held_habits_are_one_persons_size_and_pen(bench_adapt):
    font = VALIDATION_FONTS[0]
    writer = bench_adapt.make_writer(font, "held")
    assert writer == bench_adapt.make_writer(font, "held")  # adapted-on and scored lines share it
    assert writer.x_height is not None and writer.pen is not None
    held = bench_adapt.writer_lines(writer, 4, seed=1)
    assert {s.meta["pen"] for s in held} == {writer.pen} and {s.meta["font"] for s in held} == {font}
    heights = [s.image.shape[0] for s in held]
    loose = bench_adapt.writer_lines(bench_adapt.make_writer(font, "per-line"), 4, seed=1)
    assert [s.text for s in loose] == [s.text for s in held]  # same text, other habits
    assert heights != [s.image.shape[0] for s in loose]


def test_writers_differ_between_fonts(bench_adapt):
    writers = {bench_adapt.make_writer(font, "held") for font in VALIDATION_FONTS}
    assert len({(w.x_height, w.pen) for w in writers}) > 1


def test_each_line_is_read_by_the_model_surer_of_it(bench_adapt):
    from hwr.records import LineSample, Recognition

    adapted = [Recognition("the hand", 0.9), Recognition("othr", 0.4)]
    base = [Recognition("tha hond", 0.6), Recognition("other", 0.8)]
    assert bench_adapt.surer_readings(adapted, base) == ["the hand", "other"]
    lines = [LineSample("a", "the hand", None), LineSample("b", "other", None)]
    scores = bench_adapt._scores("target", lines, base, adapted)
    assert scores["target_selected"] == 0.0 and scores["target_adapted_surer"] == 0.5
    assert scores["target_before"] == round(2 / 13, 4) and scores["target_after"] == round(1 / 13, 4)
