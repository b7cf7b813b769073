"""Synthetic handwritten lines as a map-style torch Dataset, rendered on demand.

`SyntheticLines(n)[i]` is a pure function of (seed, split, i), so DataLoader workers, epochs
and resumed runs all see the same line for the same index. Fonts, corpora and digits load
lazily in each worker process (the synthesizer drops them when pickled), so the dataset is
cheap to send to workers under both fork and spawn.
"""
from __future__ import annotations

from dataclasses import replace

from torch.utils.data import Dataset

from hwr.recognition.charset import Charset
from hwr.records import LineSample
from hwr.synth.config import (
    HARD_SEED,
    SynthConfig,
    hard_validation_config,
    neighbour_validation_config,
    struck_validation_config,
)
from hwr.synth.parallel import render_lines
from hwr.synth.synthesizer import LineSynthesizer


class SyntheticLines(Dataset):
    """n synthetic lines of one split ("train" or the held-out "val" fonts, text and digits).

    kinds: restrict text kinds, e.g. ("digits",) for MNIST digit-string lines.
    """

    def __init__(self, n: int, config: SynthConfig | None = None, split: str = "train",
                 charset: Charset | None = None, seed: int = 0, kinds: tuple[str, ...] | None = None):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = int(n)
        self.synthesizer = LineSynthesizer(config, split=split, charset=charset, seed=seed, kinds=kinds)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> LineSample:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} synthetic lines")
        return self.synthesizer.sample(index % self.n)

    @property
    def split(self) -> str:
        return self.synthesizer.split


def warm_renderer(samples, processes: int) -> int:
    """Rasterise the glyphs (and load the real characters) that rendering `samples` draws on,
    when they are synthetic lines (LineSynthesizer.warm); returns the glyphs cached, 0 for
    other data."""
    return samples.synthesizer.warm(processes) if isinstance(samples, SyntheticLines) else 0


def all_lines(samples, render_processes: int) -> list:
    """Every line of a data set, in order: a synthetic set's rendered on `render_processes`
    processes (hwr.synth.parallel), the same lines as rendered one by one here."""
    if isinstance(samples, SyntheticLines):
        return render_lines(samples.synthesizer, len(samples), render_processes)
    return [samples[i] for i in range(len(samples))]


def digit_string_lines(n: int, split: str = "val", seed: int = 0, config: SynthConfig | None = None,
                       charset: Charset | None = None) -> SyntheticLines:
    """Lines of real MNIST digit strings only ("4071 2983"); the "val" split draws from the
    100 held-out digits per class, a check of how the model reads unseen hands' digits."""
    return SyntheticLines(n, config=config, split=split, charset=charset, seed=seed, kinds=("digits",))


def hard_validation_lines(n: int, seed: int = HARD_SEED, charset: Charset | None = None) -> SyntheticLines:
    """The harder validation set (`synth:hard:N`): validation fonts and text with per-instance
    variation, pen models, every capture condition (meta["condition"], so scores break down by
    it: `hwr eval synth:hard:600 --group-by condition`) and held-out real letters and digits.
    The same lines every time for a given n and seed."""
    return SyntheticLines(n, config=hard_validation_config(), split="val", charset=charset, seed=seed)


def archive_validation_lines(n: int, seed: int = HARD_SEED, charset: Charset | None = None) -> SyntheticLines:
    """The archive set (`synth:archive:N`): the harder set's writing, every line captured as an
    old leaf (capture.py "archive": faded ink, show-through, heavy grain). It is kept apart from
    the harder set, whose five conditions (and so its lines) stay as they were measured."""
    config = replace(hard_validation_config(), condition_weights={"archive": 1.0})
    return SyntheticLines(n, config=config, split="val", charset=charset, seed=seed)


def neighbour_validation_lines(n: int, seed: int = HARD_SEED, charset: Charset | None = None) -> SyntheticLines:
    """The neighbours set (`synth:neighbours:N`): the harder set's writing, every line but the
    whiteboard captures cut with the tails of the lines above and below (neighbours.py)."""
    return SyntheticLines(n, config=neighbour_validation_config(), split="val", charset=charset, seed=seed)


def struck_validation_lines(n: int, seed: int = HARD_SEED, charset: Charset | None = None) -> SyntheticLines:
    """The struck validation set (`synth:struck:N`): the harder set's lines with one word
    crossed out and labelled `#` in half of its font lines of two words or more
    (meta["struck"]; `hwr eval synth:struck:600 --group-by struck`). With the same n and seed,
    every unstruck line is the harder set's line, so the two scores differ by the strikes."""
    return SyntheticLines(n, config=struck_validation_config(), split="val", charset=charset, seed=seed)
