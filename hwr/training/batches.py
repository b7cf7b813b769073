"""From line records to padded network batches: normalise, encode, group by width.

The same `normalize_line` that transcription uses runs here, inside DataLoader workers. The
workers hand batches over as uint8 ink, as the page pipeline hands its lines to the network:
a quarter of float32's bytes to pass from the worker, pin and copy to a GPU; the training
step makes them float ink on the device (`hwr.recognition.feed.ink_to_device`).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from hwr.documents.line_batches import pad_uint8
from hwr.documents.prepare import ink_to_uint8
from hwr.recognition.charset import Charset, UnknownCharacterError, normalize_text
from hwr.recognition.imaging import ImageError, NormalizeConfig, normalize_line
from hwr.records import LineSample


@dataclass
class EncodedLine:
    id: str
    text: str
    image: np.ndarray  # uint8 (H, W), ink = 255
    labels: list[int]
    error: str | None = None  # set when the line could not be used (skip-bad mode)


class EncodedLines(Dataset):
    """Wraps any sequence/Dataset of LineSample; yields normalised, label-encoded lines.

    With `skip_bad`, an unreadable image or unencodable text yields an EncodedLine whose
    `error` names the file and the reason; `collate_lines` drops it and reports it.
    """

    def __init__(self, samples: Sequence[LineSample], charset: Charset, normalize: NormalizeConfig,
                 skip_bad: bool = False):
        self.samples = samples
        self.charset = charset
        self.normalize = normalize
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> EncodedLine:
        sample = self.samples[index]
        text = normalize_text(sample.text)
        try:
            labels = self.charset.encode(text)
            image = normalize_line(sample.image, self.normalize)
        except (ImageError, UnknownCharacterError) as exc:
            if not self.skip_bad:
                raise
            # An ImageError names its file already: the message names it once.
            where = "" if str(exc).startswith(f"{sample.where}: ") else f"{sample.where}: "
            return EncodedLine(sample.id, text, np.zeros((1, 1), np.uint8), [], error=sample.with_row(f"{where}{exc}"))
        return EncodedLine(sample.id, text, ink_to_uint8(image), labels)


@dataclass
class LineBatch:
    images: torch.Tensor  # (N, 1, H, W_max) uint8 ink (255 = ink), zero padded on the right
    widths: torch.Tensor  # (N,) int64
    targets: torch.Tensor  # concatenated label ids
    target_lengths: torch.Tensor  # (N,)
    ids: list[str]
    texts: list[str]
    errors: list[str]
    # Fewest output frames CTC needs for each text (ctc_frames): counted here, in the loader,
    # so the training step compares it with the network's frame counts on the host.
    frames_needed: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def pin_memory(self) -> LineBatch:
        """Pin what the training step copies to the GPU (images, targets), so the copies run
        without the host; widths and lengths are read on the host and stay as they are."""
        self.images = self.images.pin_memory()
        self.targets = self.targets.pin_memory()
        return self


def collate_lines(lines: Sequence[EncodedLine]) -> LineBatch:
    good = [line for line in lines if line.error is None]
    errors = [line.error for line in lines if line.error is not None]
    if not good:
        empty = torch.zeros((0, 1, 1, 1), dtype=torch.uint8)
        z = torch.zeros(0, dtype=torch.long)
        return LineBatch(empty, z, z, z, [], [], errors, z)
    padded, widths = pad_uint8([line.image for line in good])
    images, widths = torch.from_numpy(padded), torch.from_numpy(widths)
    targets = torch.tensor([label for line in good for label in line.labels], dtype=torch.long)
    target_lengths = torch.tensor([len(line.labels) for line in good], dtype=torch.long)
    needed = torch.tensor([ctc_frames(line.labels) for line in good], dtype=torch.long)
    return LineBatch(images, widths, targets, target_lengths, [line.id for line in good], [line.text for line in good],
                     errors, needed)


def ctc_frames(labels: Sequence[int]) -> int:
    """The fewest output frames CTC can align a text to: one per label, plus a blank between
    each pair of equal neighbours ("ll" needs three frames: l, blank, l)."""
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def collate_pool(lines: Sequence[EncodedLine], batch_size: int) -> list[LineBatch]:
    """A pool of lines -> width-sorted batches (little padding), built where the pool was
    rendered: in a loader worker, the batches then reach the training process as tensors in
    shared memory, not as pickled arrays it must unpickle, sort and pad itself."""
    pool = sorted(lines, key=lambda line: line.image.shape[1])
    return [collate_lines(pool[i : i + batch_size]) for i in range(0, len(pool), batch_size)]


class WidthBucketSampler(Sampler[list[int]]):
    """Batches of similar-width lines (less padding, less wasted compute), in random order.

    Widths are estimated from a cheap proxy (text length) when images are not yet decoded:
    for handwriting the rendered width is roughly proportional to the number of characters.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 bucket_factor: int = 50):
        self.sizes = list(sizes)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.bucket_factor = bucket_factor

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.sizes) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.sizes)))
        if self.shuffle:
            rng.shuffle(order)
        # Sort within large chunks only, so batches stay diverse across epochs.
        chunk = self.batch_size * self.bucket_factor
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.sizes[i])
            batches.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        if self.shuffle:
            rng.shuffle(batches)
        return iter(batches)
