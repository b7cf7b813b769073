"""Lines of many pages -> width-sorted uint8 network batches -> whole pages again. Torch-free.

A page holds 10-40 lines and a GPU batch 256: batching page by page would leave the network
mostly idle or mostly padding. `PageBatcher` pools the lines of consecutive pages, and when
the pool holds `pool_lines` lines it sorts them by width and cuts them into batches of
`batch_size`: lines of similar width share a batch, so little of each batch is padding. Every
batch is padded to a multiple of `width_multiple` pixels, the rule training's batches
(`hwr.training.batches`) and lines read one by one (`hwr.recognition.feed.lines_to_device`)
follow too (oneDNN and cuDNN build a kernel plan per distinct width, and a few dozen widths
keep those caches small). A page comes back, with every line's
recognition filled in, once its last line has been read.

Memory stays bounded: at most `pool_lines` lines wait here, plus the lines of the pages whose
batches are being read.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hwr.documents.prepare import PreparedPage
from hwr.records import FailedInput, Recognition

# Batch widths are rounded up to a multiple of this, in training (hwr.training.batches) and
# reading alike. The networks ignore padding exactly, but oneDNN (PyTorch's CPU kernels) builds
# and caches a primitive per sequence length: with every width possible, a CPU training process
# grew by gigabytes over a long run.
WIDTH_MULTIPLE = 64


@dataclass
class LineBatch:
    """Padded lines ready for the network, and where each came from."""

    images: np.ndarray  # uint8 (N, 1, line_height, W), ink = 255, zero padded on the right
    widths: np.ndarray  # int64 (N,): each line's own width
    owners: list[tuple[int, int]] = field(default_factory=list)  # (page serial, line index) per line

    def __len__(self) -> int:
        return len(self.owners)

    def split(self) -> list[LineBatch]:
        """One batch per line (to find the line that a failing batch cannot take)."""
        return [LineBatch(self.images[i : i + 1], self.widths[i : i + 1], [owner])
                for i, owner in enumerate(self.owners)]


def padded_shape(images: Sequence[np.ndarray], width_multiple: int = WIDTH_MULTIPLE
                 ) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The (N, 1, H, W) shape of (H, W_i) lines padded on the right into one batch, W the widest
    rounded up to `width_multiple`, and the widths (int64)."""
    height = images[0].shape[0]
    if any(im.shape[0] != height for im in images):
        raise ValueError(f"lines of one batch must share a height; got {sorted({im.shape[0] for im in images})}")
    widths = np.array([im.shape[1] for im in images], np.int64)
    padded = -(-int(widths.max()) // width_multiple) * width_multiple
    return (len(images), 1, height, padded), widths


def pad_uint8(images: Sequence[np.ndarray], width_multiple: int = WIDTH_MULTIPLE) -> tuple[np.ndarray, np.ndarray]:
    """(H, W_i) uint8 lines -> a right-zero-padded (N, 1, H, W) batch, W the widest rounded up
    to `width_multiple`, and the widths."""
    shape, widths = padded_shape(images, width_multiple)
    batch = np.zeros(shape, np.uint8)
    for i, im in enumerate(images):
        batch[i, 0, :, : im.shape[1]] = im
    return batch, widths


@dataclass
class _Waiting:
    prepared: PreparedPage
    remaining: int  # lines not yet recognised


class PageBatcher:
    """Pools lines across pages into width-sorted batches; gives pages back when complete.

    Use: `for batch in batcher.add(page): batcher.complete(batch, read(batch))`, then the same
    with `batcher.flush()` at the end; `batcher.done()` returns the pages completed so far.
    """

    def __init__(self, batch_size: int = 16, pool_lines: int = 64, width_multiple: int = WIDTH_MULTIPLE):
        if batch_size < 1 or pool_lines < 1:
            raise ValueError(f"batch_size and pool_lines must be >= 1, not {batch_size} and {pool_lines}")
        self.batch_size = batch_size
        self.pool_lines = pool_lines
        self.width_multiple = width_multiple
        self._serial = 0
        self._waiting: dict[int, _Waiting] = {}
        self._pool: list[tuple[int, int]] = []  # (serial, line index) of lines not yet batched
        self._done: list[PreparedPage] = []

    @property
    def pending_pages(self) -> int:
        return len(self._waiting)

    def add(self, prepared: PreparedPage) -> list[LineBatch]:
        """Take a prepared page (not a failed one); the batches that are due now, if any."""
        if prepared.failure is not None or prepared.page is None:
            raise ValueError(f"{prepared.source}: a failed page has no lines to batch ({prepared.failure})")
        if len(prepared.images) != len(prepared.page.lines):
            raise ValueError(f"{prepared.source}: {len(prepared.images)} line images for "
                             f"{len(prepared.page.lines)} lines")
        if not prepared.images:  # a blank page is complete as it is
            self._done.append(prepared)
            return []
        serial = self._serial
        self._serial += 1
        self._waiting[serial] = _Waiting(prepared, len(prepared.images))
        self._pool.extend((serial, i) for i in range(len(prepared.images)))
        return self.flush() if len(self._pool) >= self.pool_lines else []

    def flush(self) -> list[LineBatch]:
        """Every pooled line in width-sorted batches."""
        def width(owner: tuple[int, int]) -> int:
            return self._image(owner).shape[1]

        pool = sorted(self._pool, key=width)
        self._pool = []
        batches = []
        for start in range(0, len(pool), self.batch_size):
            owners = pool[start : start + self.batch_size]
            images, widths = pad_uint8([self._image(o) for o in owners], self.width_multiple)
            batches.append(LineBatch(images, widths, owners))
        return batches

    def complete(self, batch: LineBatch, recognitions: Sequence) -> None:
        """Attach a batch's recognitions (in batch order) to their lines."""
        if len(recognitions) != len(batch):
            raise ValueError(f"{len(recognitions)} recognitions for a batch of {len(batch)} lines")
        for owner, rec in zip(batch.owners, recognitions):
            serial, index = owner
            self._waiting[serial].prepared.page.lines[index].recognition = rec
            self._line_done(serial)

    def fail_line(self, owner: tuple[int, int], reason: str) -> None:
        """A line the network could not read: its page comes back with `failure` set. But when
        it is auto mode's second reading of an image (the whole image, its last line), that
        reading reads as empty and loses: the image's own lines were read (or fail themselves)."""
        serial, index = owner
        prepared = self._waiting[serial].prepared
        if prepared.read_whole_too and index == len(prepared.page.lines) - 1:
            prepared.page.lines[index].recognition = Recognition("", 0.0)
        elif prepared.failure is None:
            prepared.failure = FailedInput(prepared.source, "recognize", reason, prepared.page_id)
        self._line_done(serial)

    def _line_done(self, serial: int) -> None:
        waiting = self._waiting[serial]
        waiting.remaining -= 1
        if waiting.remaining == 0:
            del self._waiting[serial]
            waiting.prepared.images = []  # the pixels are no longer needed
            self._done.append(waiting.prepared)

    def done(self) -> list[PreparedPage]:
        """Pages whose every line has its recognition (or that failed), since the last call."""
        done, self._done = self._done, []
        return done

    def _image(self, owner: tuple[int, int]) -> np.ndarray:
        serial, index = owner
        return self._waiting[serial].prepared.images[index]
