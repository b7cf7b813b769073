"""The CPU half of scoring a data set (read each line image, normalise it to the network's
height) in worker processes that never import torch, for `hwr eval --workers N --processes`.

A labelled line is read as `Recognizer.prepare` reads it, but in the page pipeline's workers
(`hwr.documents.workers.PageWorkers`): each job is one batch of samples, its lines come back as
uint8 ink in one shared memory block, and a worker that crashes (a decoder's segfault) is
replaced, the batch it held read again line by line so that only the line that kills a worker
is reported unreadable, and the rest go on. On a many-core GPU host
the evaluating process then only feeds the network, as `hwr transcribe --processes` does.

This module must stay torch-free: spawned workers import it to find `prepare_samples`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from hwr.documents.prepare import PreparedPage, ink_to_uint8
from hwr.documents.workers import PageWorkers
from hwr.recognition.imaging import ImageError, NormalizeConfig, normalize_line_with_geometry
from hwr.records import FailedInput, LineSample


@dataclass(frozen=True)
class SampleBatch:
    """One job: consecutive samples of a data set (images as paths or pixels), from `start`."""

    start: int
    samples: tuple[LineSample, ...]

    @property
    def page_id(self) -> str:
        # What the page pipeline's failure records name; a batch has no page, so its lines.
        return f"lines {self.start + 1}-{self.start + len(self.samples)}"

    @property
    def source(self) -> str:
        return self.page_id


@dataclass
class PreparedSamples(PreparedPage):
    """A SampleBatch read: per sample None (its line is the next of `images`) or the
    (source, reason) it could not be read for."""

    unreadable: list[tuple[str, str] | None] = field(default_factory=list)


def prepare_samples(batch: SampleBatch, settings: NormalizeConfig) -> PreparedSamples:
    """Read and normalise a batch's lines (in a worker). An unreadable image fails its line
    alone, with the message `Recognizer.prepare` gives."""
    prepared = PreparedSamples(batch.page_id, batch.source)
    for sample in batch.samples:
        try:
            ink, geometry = normalize_line_with_geometry(sample.image, settings)
        except ImageError as exc:
            prepared.unreadable.append((exc.source, exc.reason))
            continue
        prepared.unreadable.append(None)
        prepared.images.append(ink_to_uint8(ink))
        prepared.geometries.append(geometry)
    return prepared


def as_prepared_lines(batch: SampleBatch, prepared: PreparedPage):
    """A worker's result as `Recognizer.prepare` would have given it (a PreparedLines): failed
    lines as FailedInputs in their slots. A batch whose worker died fails every line of it."""
    from hwr.recognition.model import PreparedLines  # the evaluating process holds torch anyway

    lines = PreparedLines()
    if not isinstance(prepared, PreparedSamples):  # the pool's own failure record (a dead worker)
        reason = prepared.failure.message if prepared.failure else "not read"
        lines.slots = [FailedInput(sample.where, "read", reason, page_id=str(k))
                       for k, sample in enumerate(batch.samples)]
        return lines
    images, geometries = iter(prepared.images), iter(prepared.geometries)
    for k, unreadable in enumerate(prepared.unreadable):
        if unreadable is not None:
            lines.slots.append(FailedInput(unreadable[0], "read", unreadable[1], page_id=str(k)))
            continue
        lines.slots.append(None)
        lines.positions.append(k)
        lines.arrays.append(next(images))
        lines.geometries.append(next(geometries))
    return lines


def sample_batches(samples: Sequence[LineSample], batch_size: int) -> Iterator[SampleBatch]:
    """The data set in jobs of `batch_size` samples. The samples are taken here, in the
    evaluating thread: a data set that renders its lines on demand is not thread-safe."""
    for start in range(0, len(samples), batch_size):
        yield SampleBatch(start, tuple(samples[i] for i in range(start, min(start + batch_size, len(samples)))))


def prepared_in_workers(samples: Sequence[LineSample], batch_size: int, normalize: NormalizeConfig,
                        workers: int, prepare: Callable = prepare_samples) -> Iterator[tuple[list[LineSample], object]]:
    """(batch's samples, PreparedLines) for each batch, in order, read by `workers` torch-free
    processes (at most two batches a worker ahead of the network). A batch whose worker died
    (twice: the pool retries it alone) is read again one line at a time, so that only the line
    that kills a worker fails. `prepare`: the per-batch function (module-level, picklable);
    tests swap it to inject faults."""
    with PageWorkers(normalize, workers=workers, processes=True, prepare=prepare) as pool:
        batches = sample_batches(samples, batch_size)
        pending: list[SampleBatch] = []

        def remembered() -> Iterator[SampleBatch]:
            for batch in batches:
                pending.append(batch)
                yield batch

        for prepared in pool.prepared(remembered()):
            batch = pending.pop(0)
            if not isinstance(prepared, PreparedSamples) and len(batch.samples) > 1:
                prepared = _line_by_line(batch, normalize, prepare)
            yield list(batch.samples), as_prepared_lines(batch, prepared)


def _line_by_line(batch: SampleBatch, normalize: NormalizeConfig, prepare: Callable) -> PreparedSamples:
    """A batch that killed its worker, each line read alone in a pool of its own: the lines
    that kill a worker again fail (LINE_WORKER_DIED), the others are read."""
    singles = [SampleBatch(batch.start + k, (sample,)) for k, sample in enumerate(batch.samples)]
    whole = PreparedSamples(batch.page_id, batch.source)
    with PageWorkers(normalize, workers=1, processes=True, prepare=prepare) as pool:
        for single, prepared in zip(singles, pool.prepared(singles)):
            if not isinstance(prepared, PreparedSamples):
                whole.unreadable.append((single.samples[0].where, LINE_WORKER_DIED))
                continue
            whole.unreadable.extend(prepared.unreadable)
            whole.images.extend(prepared.images)
            whole.geometries.extend(prepared.geometries)
    return whole


LINE_WORKER_DIED = "the worker process reading this line died (a crash in an image decoder?)"
