"""The batch path with page worker processes: one process owns the model, the rest prepare pages.

    page refs --> PageWorkers (N torch-free processes: load, segment, cut, normalise to uint8)
              --> shared memory --> PageBatcher (lines of many pages, width-sorted batches)
              --> hwr.recognition.feed (to the device, network, CTC decoding)
              --> word boxes, writers, on_page (this process)

Same inputs, outputs, resume, torchrun rank split and error file as
`hwr.documents.pipeline.run_batch`, and the same texts as the in-process path (workers=0),
which runs the same code without a pool. `StageTimes` splits the wall time into what this
process waited for pages, spent on the network and spent writing, beside the workers' CPU
time, so a benchmark can say which stage bounds the rate.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hwr.documents.line_batches import LineBatch, PageBatcher
from hwr.documents.pages import PageRef, page_refs
from hwr.documents.pipeline import BatchConfig, BatchSummary, ErrorLog, _progress, is_complete
from hwr.documents.prepare import PreparedPage, PrepareSettings, failure_reason
from hwr.documents.segment import SegmentConfig
from hwr.documents.workers import PageWorkers
from hwr.documents.writers import write_page_files
from hwr.records import FailedInput, Page
from hwr.training.distributed import context_from_env

log = logging.getLogger("hwr.documents.worker_batch")

WORD_FORMATS = {"json", "pagexml", "alto"}


@dataclass
class StageTimes:
    """Seconds per stage of one batch run (wall clock in the model's process, CPU in the workers')."""

    prepare_cpu: float = 0.0  # CPU time the workers (or this process, with 0 workers) spent preparing pages
    wait: float = 0.0  # this process waiting for the next prepared page (all of preparing, with 0 workers)
    network: float = 0.0  # batches to the device, network, CTC decoding
    write: float = 0.0  # word boxes, output files, on_page
    wall: float = 0.0

    def text(self) -> str:
        other = self.wall - self.wait - self.network - self.write
        return (f"wait for pages {self.wait:.2f} s, network {self.network:.2f} s, write {self.write:.2f} s, "
                f"other {other:.2f} s of {self.wall:.2f} s wall; workers' prepare CPU {self.prepare_cpu:.2f} s")


def run_worker_batch(recognizer, inputs: Iterable[str | Path], config: BatchConfig | None = None,
                     segment_config: SegmentConfig | None = None,
                     on_page: Callable[[Page, bool], None] | None = None,
                     stages: StageTimes | None = None, start_method: str = "spawn") -> BatchSummary:
    """Transcribe every page of `inputs` with `config.workers` page workers (processes with
    `config.processes`, else threads; 0: in this process); `on_page(page, is_line_image)` sees
    each result; `stages` collects the split."""
    config = config or BatchConfig()
    stages = stages if stages is not None else StageTimes()
    settings = PrepareSettings(recognizer.normalize_config, segment_config, config.mode, config.dpi)
    ctx = context_from_env()
    errors_path = _errors_path(config, ctx)
    errors = ErrorLog(errors_path)
    summary = BatchSummary(errors_file=str(errors_path) if errors_path else None)
    started = time.perf_counter()

    def wanted(ref: PageRef) -> bool:
        if not ref.error and config.resume and is_complete(ref.page_id, config.output_dir, config.formats):
            summary.skipped += 1
            return False
        return True

    refs = (r for i, r in enumerate(page_refs(inputs)) if i % ctx.world_size == ctx.rank and wanted(r))
    run = _Run(recognizer, config, summary, errors, on_page, stages, _progress(config.progress))
    batcher = PageBatcher(config.batch_size, config.batch_lines)
    try:
        with PageWorkers(settings, config.workers, config.processes, start_method=start_method) as workers, \
                _torch_threads_beside(workers, recognizer.device):
            pages = iter(workers.prepared(refs))
            while (prepared := run.next_page(pages)) is not None:
                stages.prepare_cpu += prepared.seconds
                if prepared.failure is not None:
                    run.fail(prepared.failure)
                    continue
                run.read(batcher, batcher.add(prepared))
            run.read(batcher, batcher.flush())
    finally:
        run.bar.close()
        errors.close()
    summary.seconds = stages.wall = time.perf_counter() - started
    return summary


@contextmanager
def _torch_threads_beside(workers: PageWorkers, device) -> Iterator[None]:
    """On CPU, leave the worker processes their cores: torch's intra-op threads spin at each
    parallel region's barrier, and with one of them descheduled by a page worker the whole
    operation waits (measured on 2 shared cores: 2 threads read 2-9 lines/s where 1 read 30-40).
    Threads as workers share this process and are left alone, as is the GPU."""
    if device.type != "cpu" or not workers.processes or workers.workers == 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - workers.workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _errors_path(config: BatchConfig, ctx) -> Path | None:
    path = config.errors or (Path(config.output_dir) / "errors.tsv" if config.output_dir else None)
    if path is not None and ctx.enabled:  # one file per torchrun rank
        path = Path(path).with_suffix(f".rank{ctx.rank}{Path(path).suffix}")
    return path


@dataclass
class _Run:
    """The model process's side of one batch run."""

    recognizer: object
    config: BatchConfig
    summary: BatchSummary
    errors: ErrorLog
    on_page: Callable | None
    stages: StageTimes
    bar: object

    @property
    def words(self) -> bool:
        return self.config.words if self.config.words is not None else bool(WORD_FORMATS & set(self.config.formats))

    def next_page(self, pages) -> PreparedPage | None:
        started = time.perf_counter()
        prepared = next(pages, None)
        self.stages.wait += time.perf_counter() - started
        return prepared

    def read(self, batcher: PageBatcher, batches: list[LineBatch]) -> None:
        started = time.perf_counter()
        self._recognize(batcher, batches)
        self.stages.network += time.perf_counter() - started
        started = time.perf_counter()
        for prepared in batcher.done():
            if prepared.failure is not None:
                self.fail(prepared.failure)
            else:
                self.finish(prepared)
        self.stages.write += time.perf_counter() - started

    def _recognize(self, batcher: PageBatcher, batches: list[LineBatch]) -> None:
        """Read the batches; when one fails, read it again line by line, so that a line the
        network cannot take costs only its page (the copy-ahead generator cannot go on after
        an exception, so the rest are read one batch at a time)."""
        from hwr.recognition.feed import recognize_line_batches

        finished = 0
        try:
            for batch, recognitions in recognize_line_batches(self.recognizer, batches):
                batcher.complete(batch, recognitions)
                finished += 1
            return
        except Exception:  # noqa: BLE001 - retried below, each failure recorded
            log.debug("a batch of %d lines failed; reading it line by line", len(batches[finished]), exc_info=True)
        for batch in batches[finished:]:
            try:
                for _, recognitions in recognize_line_batches(self.recognizer, [batch]):
                    batcher.complete(batch, recognitions)
            except Exception:  # noqa: BLE001
                for single in batch.split():
                    try:
                        for _, recognitions in recognize_line_batches(self.recognizer, [single]):
                            batcher.complete(single, recognitions)
                    except Exception as exc:  # noqa: BLE001
                        batcher.fail_line(single.owners[0], failure_reason(exc))

    def finish(self, prepared: PreparedPage) -> None:
        page = prepared.page
        if self.words:
            from hwr.recognition.align import word_boxes

            for line, geometry in zip(page.lines, prepared.geometries):
                line.recognition.words = word_boxes(line.recognition, geometry)
        try:
            if self.config.output_dir:
                write_page_files(page, self.config.output_dir, page.id, self.config.formats)
        except (OSError, ValueError) as exc:
            self.fail(FailedInput(page.source, "write", f"cannot write outputs ({exc})", page.id))
            return
        if prepared.is_line:
            self.summary.line_images += 1
        else:
            self.summary.pages += 1
        self.summary.lines += len(page.lines)
        if self.on_page is not None:
            self.on_page(page, prepared.is_line)
        self.bar.update(1)
        self.bar.set_postfix(lines=self.summary.lines, refresh=False)

    def fail(self, failure: FailedInput) -> None:
        self.summary.failures.append(failure)
        self.errors.add(failure)
        self.bar.update(1)
