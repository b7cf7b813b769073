"""A synthesizer whose lines after the first take a minute each, so that a render worker is
busy when the caller stops (tests/synth/test_synth_parallel.py). Torch-free: the spawned
workers import it to unpickle the synthesizer."""
from __future__ import annotations

import time

from hwr.synth.synthesizer import LineSynthesizer


class SlowAfterTheFirstLine(LineSynthesizer):
    def sample(self, index: int):
        if index > 0:
            time.sleep(60)
        return super().sample(index)
