"""Real handwritten letters (EMNIST, data/letters) as glyphs: hand-printed lines by real people.

EMNIST (Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten letters") centres and
scales every character into the same 28x28 box, so an "o" is as tall as an "l" there. A line
needs the writer's proportions back: each letter is drawn at the height its class has in
handwriting (x-height letters, ascenders, descenders, capitals; `LETTER_HEIGHTS`) and sits on
the baseline, or hangs below it for g and p. Only 21 letters exist (a b c d e f g h i k l m n o
p r s t u v w, both cases), so letter lines write words made of those only (text.py).

No writer ids: a fixed random 15% of the samples is the "val" split (digits.held_out).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hwr.synth.digits import RealGlyphs, _crop_to_ink, read_labelled

LETTERS_FILE = "letters/emnist-21-letters.npz"
EMNIST_LETTERS = frozenset("abcdefghiklmnoprstuvwABCDEFGHIKLMNOPRSTUVW")

# Ink height in x-heights, and how far the ink reaches below the baseline (x-heights): typical
# proportions of hand-printed letters (ascenders ~1.5, capitals ~1.4, t and i a little less).
_ASCENDERS = {"b": 1.5, "d": 1.5, "f": 1.55, "h": 1.5, "k": 1.5, "l": 1.5, "t": 1.3, "i": 1.3}
_DESCENDERS = {"g": 1.45, "p": 1.45}
DESCENT = 0.48  # descenders hang this far below the baseline, x-heights
CAP_HEIGHT = 1.4


def letter_height(ch: str) -> tuple[float, float]:
    """(ink height, depth below the baseline) of a letter, both in x-heights."""
    if ch.isupper():
        return CAP_HEIGHT, 0.0
    if ch in _DESCENDERS:
        return _DESCENDERS[ch], DESCENT
    return _ASCENDERS.get(ch, 1.0), 0.0


class EmnistLetters:
    """Letter images of one split, cropped to their ink; loaded lazily once per process."""

    def __init__(self, path: Path, split: str = "train"):
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'val'")
        self.path = Path(path)
        self.split = split
        self._glyphs: RealGlyphs | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "split": self.split, "_glyphs": None}

    @property
    def available(self) -> bool:
        return self.path.is_file()

    def _loaded(self) -> RealGlyphs:
        if self._glyphs is None:
            by_label = read_labelled(self.path, self.split)
            self._glyphs = RealGlyphs({ch: [_crop_to_ink(im) for im in images] for ch, images in by_label.items()})
        return self._glyphs

    @property
    def chars(self) -> frozenset[str]:
        return frozenset(self._loaded().crops)

    def glyph(self, ch: str, rng: np.random.Generator, x_height: float, stroke: float | None = None
              ) -> tuple[np.ndarray, int]:
        """A random sample of `ch` at its handwriting size; returns the mask and its top (y of
        the first row, relative to the baseline, negative above it)."""
        glyphs = self._loaded()
        pick = int(rng.integers(len(glyphs.crops[ch])))
        height, depth = letter_height(ch)
        jitter = 1.0 + 0.06 * float(rng.standard_normal())
        mask = glyphs.scaled(ch, pick, height * x_height * jitter, stroke)
        top = int(round(depth * x_height)) - mask.shape[0]
        return mask, top
