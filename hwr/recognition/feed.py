"""Line batches -> the network's device, overlapped with the network on the GPU.

Line batches arrive as padded uint8 arrays (hwr.documents.line_batches). They cross to the
device as uint8, a quarter of float32's bytes, and become float [0, 1] ink there. On CUDA:
- the host batch is copied into pinned (page-locked) memory, so the copy to the device can be
  asynchronous (`non_blocking=True`): from pageable memory CUDA copies through a staging
  buffer and the host waits;
- the copy runs on a side stream, issued for batch n+1 before the network runs on batch n,
  so the transfer overlaps the compute; the compute stream waits on the copy stream only
  when it reaches batch n+1 (`wait_stream`), and `record_stream` tells the caching allocator
  that the tensor is used on the compute stream, so its memory is not reused too early.
On CPU none of that applies: the batch is wrapped without a copy and converted in place.
Lines read one by one (`Recognizer.recognize`, `hwr eval`) are padded here too
(`lines_to_device`): on CUDA straight into pinned memory, as uint8 (`Recognizer.prepare`
keeps them so there).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext

import numpy as np
import torch

from hwr.documents.line_batches import WIDTH_MULTIPLE, LineBatch, padded_shape
from hwr.records import Recognition

INK_SCALE = 1.0 / 255.0


def to_device(images: np.ndarray, device: torch.device, stream: torch.cuda.Stream | None = None) -> torch.Tensor:
    """uint8 (N, 1, H, W) host batch -> float32 ink in [0, 1] on `device`.

    With a CUDA `stream`, the copy and the conversion are queued on it and the call returns
    at once; the caller must make its compute stream wait on `stream` before use."""
    host = torch.from_numpy(images)
    if device.type != "cuda":
        return host.to(device).float().mul_(INK_SCALE)
    host = host.pin_memory()
    with torch.cuda.stream(stream) if stream is not None else nullcontext():
        return host.to(device, non_blocking=True).float().mul_(INK_SCALE)


def ink_to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch of uint8 ink (a training LineBatch's images, pinned for a GPU by the loader)
    -> float32 ink in [0, 1] on `device`, converted there; a float batch is only moved."""
    moved = images.to(device, non_blocking=True)
    return moved.float().mul_(INK_SCALE) if moved.dtype == torch.uint8 else moved


def lines_to_device(lines: Sequence[np.ndarray], device: torch.device,
                    width_multiple: int = WIDTH_MULTIPLE) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised lines of one height -> ((N, 1, H, W) float ink on `device`, right-zero-padded to
    the widest rounded up; the widths, on the host). The lines are float ink in [0, 1] or uint8
    ink (0..255), all of one kind.

    On CUDA the lines are padded straight into pinned memory, not padded and then copied into
    it, and the copy is asynchronous; uint8 lines cross as uint8 (a quarter of float32's
    bytes to zero, fill and copy) and become floats on the device. On a CPU a float batch is
    the padded array itself."""
    shape, widths = padded_shape(lines, width_multiple)
    dtype = lines[0].dtype
    if any(line.dtype != dtype for line in lines) or dtype not in (np.uint8, np.float32):
        kinds = sorted({str(line.dtype) for line in lines})
        raise ValueError(f"lines of one batch must all be uint8 or all float32; got {kinds}")
    host = torch.zeros(shape, dtype=torch.uint8 if dtype == np.uint8 else torch.float32,
                       pin_memory=device.type == "cuda")
    view = host.numpy()
    for i, line in enumerate(lines):
        view[i, 0, :, : line.shape[1]] = line
    images = host.to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        images = images.float().mul_(INK_SCALE)
    return images, torch.from_numpy(widths)


def device_batches(batches: Iterable[LineBatch], device: torch.device
                   ) -> Iterator[tuple[LineBatch, torch.Tensor, torch.Tensor]]:
    """(batch, images on device, widths on the host) for each batch; on CUDA the next batch's
    copy is in flight while the caller runs the network on this one. The widths stay on the
    host: the networks count their frames from host widths, and frames counted on the GPU
    would have to come back before cuDNN's packed kernel could start (a wait every batch)."""
    if device.type != "cuda":
        for batch in batches:
            yield batch, to_device(batch.images, device), torch.from_numpy(batch.widths)
        return
    copy_stream = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)

    def issue(batch: LineBatch):
        return batch, to_device(batch.images, device, copy_stream), torch.from_numpy(batch.widths)

    ahead = None
    for batch in batches:
        issued = issue(batch)
        if ahead is not None:
            yield _ready(ahead, compute, copy_stream)
        ahead = issued
    if ahead is not None:
        yield _ready(ahead, compute, copy_stream)


def _ready(issued, compute, copy_stream):
    batch, images, widths = issued
    compute.wait_stream(copy_stream)
    images.record_stream(compute)
    return batch, images, widths


def recognize_line_batches(recognizer, batches: Iterable[LineBatch]) -> Iterator[tuple[LineBatch, list[Recognition]]]:
    """Each LineBatch with its recognitions, in order (the copy of the next batch overlapping
    this one's network on CUDA; with search workers, the search of earlier batches overlapping
    both: Recognizer.read_batches)."""
    yield from recognizer.read_batches(device_batches(batches, recognizer.device))
