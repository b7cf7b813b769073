"""Real handwritten digits (the MNIST share in data/digits, and EMNIST digits in data/letters)
as glyphs for synthetic lines.

The MNIST file holds 800 28x28 images per class, white ink on black (MNIST's convention, which is
also our ink-coverage convention: 0 = paper, 255 = ink). Split: the first 700 of each class
are "train", the last 100 "val", so validation digit strings are written by unseen hands.
EMNIST digits (other writers, no writer ids) hold out a fixed random 15% (`held_out`).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DIGITS_FILE = "digits/mnist-train-800-per-class.npz"
# Real digits by other writers (EMNIST Digits, 500 per class; no writer ids, so a fixed random
# HELD_OUT_SHARE of them is validation). Used beside MNIST when present.
EMNIST_DIGITS_FILE = "letters/emnist-digits-500-per-class.npz"
TRAIN_PER_CLASS = 700
HELD_OUT_SHARE = 0.15
HELD_OUT_SEED = 19  # fixes which EMNIST samples are validation, for every run and machine


def held_out(n: int) -> np.ndarray:
    """Which of n samples (without writer ids) belong to validation: a fixed random 15%."""
    order = np.random.default_rng(HELD_OUT_SEED).permutation(n)
    mask = np.zeros(n, bool)
    mask[order[: int(round(HELD_OUT_SHARE * n))]] = True
    return mask


def read_labelled(path: Path, split: str) -> dict[str, list[np.ndarray]]:
    """An EMNIST-style file (keys `images` (n, 28, 28), `labels` (n,)): one split's images by label."""
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a labelled character file with images and labels ({exc})") from None
    keep = held_out(len(labels))
    if split == "train":
        keep = ~keep
    out: dict[str, list[np.ndarray]] = {}
    for image, label in zip(images[keep], labels[keep]):
        out.setdefault(str(label), []).append(image)
    return out


class MnistDigits:
    """Digit images of one split, cropped to their ink; loaded lazily once per process.

    emnist_path: EMNIST digits added to the pool (their own held-out 15% for "val").
    """

    def __init__(self, path: Path, split: str = "train", emnist_path: Path | None = None):
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'val'")
        self.path = Path(path)
        self.split = split
        self.emnist_path = Path(emnist_path) if emnist_path else None
        self._glyphs: RealGlyphs | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "split": self.split, "emnist_path": self.emnist_path, "_glyphs": None}

    def _loaded(self) -> RealGlyphs:
        if self._glyphs is None:
            crops = {}
            extra = read_labelled(self.emnist_path, self.split) if self.emnist_path else {}
            with np.load(self.path) as data:
                for digit in "0123456789":
                    images = data[digit]
                    images = images[:TRAIN_PER_CLASS] if self.split == "train" else images[TRAIN_PER_CLASS:]
                    crops[digit] = [_crop_to_ink(im) for im in [*images, *extra.get(digit, [])]]
            self._glyphs = RealGlyphs(crops)
        return self._glyphs

    @property
    def crops(self) -> dict[str, list[np.ndarray]]:
        return self._loaded().crops

    def count(self, digit: str) -> int:
        return len(self.crops[digit])

    def glyph(self, digit: str, rng: np.random.Generator, height: float, stroke: float | None = None) -> np.ndarray:
        """A random sample of `digit` scaled to `height` px of ink (aspect kept), ink = 255.

        stroke: the pen width (px) of the text around it. MNIST strokes are ~15% of the digit
        height, bolder than most pens at our sizes, so the digit is eroded towards it.
        """
        glyphs = self._loaded()
        pick = int(rng.integers(len(glyphs.crops[digit])))
        return glyphs.scaled(digit, pick, height, stroke)


class RealGlyphs:
    """Real handwritten characters by label, cropped to their ink, each one's pen width measured
    the first time it is drawn: measured up front, the 31,000 EMNIST letters and MNIST/EMNIST
    digits cost every process that writes one of them ~6 s on a 2-core VM (a loader worker's
    start; a 5-minute `hwr adapt`'s rehearsal and forgetting check), where a run draws a few
    thousand of them."""

    def __init__(self, crops: dict[str, list[np.ndarray]]):
        self.crops = crops
        self._stroke_ratios: dict[tuple[str, int], float] = {}

    def stroke_ratio(self, label: str, pick: int) -> float:
        key = (label, pick)
        if key not in self._stroke_ratios:
            self._stroke_ratios[key] = _stroke_ratio(self.crops[label][pick])
        return self._stroke_ratios[key]

    def scaled(self, label: str, pick: int, height: float, stroke: float | None = None) -> np.ndarray:
        """Sample `pick` of `label` at `height` px of ink (scale_glyph)."""
        return scale_glyph(self.crops[label][pick], self.stroke_ratio(label, pick), height, stroke)


def scale_glyph(crop: np.ndarray, stroke_ratio: float, height: float, stroke: float | None = None) -> np.ndarray:
    """A real handwritten character (cropped to its ink) at `height` px of ink, its pen eroded
    towards `stroke` px (never by more than a third, never losing half its ink)."""
    h, w = crop.shape
    scale = max(height, 4.0) / h
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    glyph = cv2.resize(crop, size, interpolation=interp)
    if scale > 1.3:
        # Upscaling blurs the 28 px original; a steeper tone curve restores a pen edge.
        glyph = cv2.LUT(glyph, _SHARPEN_LUT)
    if stroke is not None:
        own = stroke_ratio * size[1]
        # Never erode more than a third of the stroke: a broken character would not read.
        thinning = min(int(round(own - stroke)), int(own / 3))
        if thinning >= 1:
            thinned = cv2.erode(glyph, np.ones((thinning + 1, thinning + 1), np.uint8))
            # A character that loses most of its ink would not read as its label: keep it bold.
            if np.count_nonzero(thinned > 127) >= 0.5 * np.count_nonzero(glyph > 127):
                glyph = thinned
    return glyph


_SHARPEN_LUT = np.clip((np.arange(256, dtype=np.float32) - 128.0) * 2.0 + 128.0, 0, 255).astype(np.uint8)



def _stroke_ratio(crop: np.ndarray) -> float:
    """Pen width / digit height (MNIST pens differ a lot: ~0.1 to 0.3 of the height).

    Twice the distance from the stroke's centre line to its edge: the 90th percentile of the
    distance transform over ink pixels (robust to loops and crossings, unlike run lengths).
    """
    ink = (crop > 127).astype(np.uint8)
    if not ink.any():
        return 0.15
    distance = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    return 2.0 * float(np.percentile(distance[ink > 0], 90)) / crop.shape[0]


def _crop_to_ink(image: np.ndarray, threshold: int = 20) -> np.ndarray:
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    if rows.size == 0:
        return image
    return np.ascontiguousarray(image[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])
