"""Pages to text: load -> segment -> cut lines -> Recognizer -> Page -> writers.

`transcribe_page` does one image. `run_batch` does many, and is the one batch path of the
CLI (`hwr transcribe`, every mode), the UI's Batch tab and the page scorer: pages load and
segment in worker threads (or processes) while the recognizer reads lines of several pages in
one width-sorted batch (the GPU stays busy); outputs are written atomically; `resume` skips
pages whose outputs all exist; an input that fails at any stage becomes a `FailedInput`
(errors file, summary) and the batch goes on.

Modes (`layout_page` holds the one rule, for the CLI and the UI alike):
- "line": every input (every page of a document) is one line image, read whole.
- "page": every input is a page, segmented into lines.
- "auto": a page of a PDF or of a multi-page TIFF is a page; a single image is a page when the
  segmenter finds two or more text lines on it, otherwise a line image read whole, exactly as
  "line" would read it.
"""
from __future__ import annotations

import functools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hwr.documents.linegeom import cut_line
from hwr.documents.pages import DEFAULT_DPI, PageRef, load_page, page_refs, prefetch_map
# The modes' one rule lives in the torch-free hwr.documents.prepare (page worker processes use
# it too); re-exported here for the CLI and the UI.
from hwr.documents.prepare import MODES, layout_page, line_inputs
from hwr.documents.segment import SegmentConfig, analyse_page
from hwr.documents.writers import output_paths, write_page_files
from hwr.recognition.imaging import NormalizeConfig, load_gray
from hwr.records import FailedInput, Line, Page
from hwr.training.distributed import context_from_env

log = logging.getLogger("hwr.documents.pipeline")


# --- one image ------------------------------------------------------------------------------

def segment_and_crop(gray: np.ndarray, config: SegmentConfig | None = None) -> tuple[list[Line], list[np.ndarray]]:
    """Lines of a page (reading order) and each line's grayscale image (see hwr.documents.linegeom)."""
    lines = analyse_page(gray, config).lines
    return lines, [cut_line(gray, line) for line in lines]


def transcribe_image(recognizer, image, mode: str = "page", page_id: str = "page", source: str = "",
                     is_document_page: bool = False, segment_config: SegmentConfig | None = None,
                     batch_size: int = 16, words: bool = True) -> tuple[Page, bool]:
    """One image (uint8 gray array or anything load_gray reads) read in `mode` -> (Page with
    text, whether it was read as one line image). `words`: also locate words on each line
    (Recognition.words, for PAGE Word / ALTO String)."""
    gray = load_gray(image)
    if not source and isinstance(image, (str, Path)):
        source = str(image)
    page, is_line = layout_page(gray, mode, page_id, source, is_document_page, segment_config)
    arrays, geometries = line_inputs(gray, page, is_line, recognizer.normalize_config)
    for line, rec in zip(page.lines, recognizer.recognize_normalized(arrays, batch_size,
                                                                     geometries if words else None)):
        line.recognition = rec
    return page, is_line


def transcribe_page(recognizer, image, page_id: str = "page", source: str = "",
                    segment_config: SegmentConfig | None = None, batch_size: int = 16, words: bool = True) -> Page:
    """One page image, segmented into lines (mode "page"), with its text."""
    return transcribe_image(recognizer, image, "page", page_id, source, False, segment_config, batch_size, words)[0]


# --- batches -------------------------------------------------------------------------------

@dataclass
class BatchConfig:
    mode: str = "auto"
    formats: list[str] = field(default_factory=lambda: ["txt"])
    output_dir: str | None = None
    resume: bool = False
    errors: str | None = None  # errors file; default <output_dir>/errors.tsv
    dpi: int = DEFAULT_DPI
    workers: int = 2  # page loading + segmentation threads (or processes)
    # Worker processes instead of threads: for many-core hosts, where the threads' Python work
    # (segmentation, line cutting) contends for the GIL. Costs a second or two of start-up.
    processes: bool = False
    batch_size: int = 16
    batch_lines: int = 64  # lines gathered across pages before the recognizer runs
    # Locate words (CTC alignment) for PAGE Word / ALTO String elements; None: when an
    # output format carries words (json, pagexml, alto), not for plain text.
    words: bool | None = None
    progress: bool = True


@dataclass
class BatchSummary:
    pages: int = 0
    line_images: int = 0  # inputs read as single lines (auto and line modes)
    lines: int = 0
    skipped: int = 0  # pages whose outputs existed (resume)
    failures: list[FailedInput] = field(default_factory=list)
    seconds: float = 0.0
    errors_file: str | None = None  # where the failures were listed (TSV, ERRORS_COLUMNS)

    def text(self) -> str:
        rate = self.pages / self.seconds if self.seconds else 0.0
        line_rate = self.lines / self.seconds if self.seconds else 0.0
        return (f"pages {self.pages}  line images {self.line_images}  lines {self.lines}  "
                f"failures {len(self.failures)}  skipped {self.skipped}  time {self.seconds:.1f} s  "
                f"({rate:.2f} pages/s, {line_rate:.1f} lines/s)")


@dataclass
class _Prepared:
    """A page after the worker: segmented and cut, ready for the recognizer; or its failure."""

    page: Page | None
    arrays: list[np.ndarray]
    geometries: list = field(default_factory=list)
    is_line: bool = False
    failure: FailedInput | None = None


def is_complete(page_id: str, output_dir: str | Path | None, formats: Iterable[str]) -> bool:
    # Outputs are only ever renamed into place whole, so existing means complete.
    return output_dir is not None and all(p.is_file() for p in output_paths(page_id, output_dir, formats))


ERRORS_COLUMNS = ("page_id", "source", "stage", "message")


class ErrorLog:
    """Failed inputs, one TSV row each (ERRORS_COLUMNS), flushed as they happen."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._file = None

    def add(self, failure: FailedInput) -> None:
        log.error("%s: %s", failure.source, failure.message)
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        row = (failure.page_id, failure.source, failure.stage, failure.message)
        self._file.write("\t".join(str(v).replace("\t", " ").replace("\n", " ") for v in row) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def run_batch(recognizer, inputs: Iterable[str | Path], config: BatchConfig | None = None,
              segment_config: SegmentConfig | None = None,
              on_page: Callable[[Page, bool], None] | None = None) -> BatchSummary:
    """Transcribe every page of `inputs` (files, folders, globs, list files; see
    hwr.documents.pages); `on_page(page, is_line_image)` sees each result."""
    return transcribe_refs(recognizer, page_refs(inputs), config, segment_config, on_page)


def transcribe_refs(recognizer, refs: Iterable[PageRef], config: BatchConfig | None = None,
                    segment_config: SegmentConfig | None = None,
                    on_page: Callable[[Page, bool], None] | None = None) -> BatchSummary:
    """`run_batch` on pages already listed (the UI's uploads, the scorer's ground-truth pages)."""
    config = config or BatchConfig()
    if config.mode not in MODES:
        raise ValueError(f"unknown mode {config.mode!r}; choose one of {', '.join(MODES)}")
    # Under torchrun each rank reads every world_size-th page of the deterministic page order
    # and writes that page's outputs itself; resume is per page, so a rerun with any number
    # of ranks skips what is done.
    ctx = context_from_env()
    errors_path = config.errors or (Path(config.output_dir) / "errors.tsv" if config.output_dir else None)
    if errors_path is not None and ctx.enabled:
        errors_path = Path(errors_path).with_suffix(f".rank{ctx.rank}{Path(errors_path).suffix}")
    errors = ErrorLog(errors_path)
    summary = BatchSummary(errors_file=str(errors_path) if errors_path else None)
    started = time.perf_counter()

    def wanted(ref: PageRef) -> bool:
        if not ref.error and config.resume and is_complete(ref.page_id, config.output_dir, config.formats):
            summary.skipped += 1
            return False
        return True

    # Only the normalisation settings go to the workers (picklable, unlike the network).
    prepare = functools.partial(_prepare, normalize_config=recognizer.normalize_config, config=config,
                                segment_config=segment_config)
    mine = (r for i, r in enumerate(refs) if i % ctx.world_size == ctx.rank and wanted(r))
    bar = _progress(config.progress)
    pending: list[_Prepared] = []
    try:
        for item in prefetch_map(prepare, mine, config.workers, processes=config.processes):
            if item.failure is not None:
                _fail(item.failure, summary, errors, bar)
                continue
            pending.append(item)
            if sum(len(p.arrays) for p in pending) >= config.batch_lines:
                _finish(pending, recognizer, config, summary, errors, on_page, bar)
                pending = []
        _finish(pending, recognizer, config, summary, errors, on_page, bar)
    finally:
        bar.close()
        errors.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _prepare(ref: PageRef, normalize_config: NormalizeConfig, config: BatchConfig, segment_config) -> _Prepared:
    if ref.error:  # the input could not even be listed or its pages counted
        return _failed(ref, ref.error_stage, ref.error)
    stage = "read"
    try:
        gray = load_page(ref, config.dpi)
        stage = "segment"
        page, is_line = layout_page(gray, config.mode, ref.page_id, ref.source, ref.is_document_page, segment_config)
        stage = "recognize"
        arrays, geometries = line_inputs(gray, page, is_line, normalize_config)
        return _Prepared(page, arrays, geometries, is_line)
    except Exception as exc:  # noqa: BLE001 - one broken page never stops a batch
        log.debug("page %s failed", ref.source, exc_info=True)
        return _failed(ref, stage, _reason(exc))


def _failed(ref: PageRef, stage: str, message: str) -> _Prepared:
    return _Prepared(None, [], failure=FailedInput(ref.source, stage, message, ref.page_id))


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return reason or f"{type(exc).__name__}: {exc}"


def _fail(failure: FailedInput, summary: BatchSummary, errors: ErrorLog, bar) -> None:
    summary.failures.append(failure)
    errors.add(failure)
    bar.update(1)


def _recognize(recognizer, pending: list[_Prepared], config: BatchConfig, words: bool,
               summary: BatchSummary, errors: ErrorLog, bar) -> list[_Prepared]:
    """Read the lines of several pages in one call; if that call fails, read page by page so
    that one page the network cannot take costs only that page. Returns the pages read."""
    def read(items: list[_Prepared]) -> None:
        arrays = [a for p in items for a in p.arrays]
        geometries = [g for p in items for g in p.geometries] if words else None
        results = iter(recognizer.recognize_normalized(arrays, config.batch_size, geometries) if arrays else [])
        for item in items:
            for line in item.page.lines:
                line.recognition = next(results)

    try:
        read(pending)
        return pending
    except Exception:  # noqa: BLE001 - retried page by page below, each failure recorded
        log.debug("batch of %d pages failed; reading them one by one", len(pending), exc_info=True)
    done = []
    for item in pending:
        try:
            read([item])
            done.append(item)
        except Exception as exc:  # noqa: BLE001
            _fail(FailedInput(item.page.source, "recognize", _reason(exc), item.page.id), summary, errors, bar)
    return done


def _finish(pending: list[_Prepared], recognizer, config: BatchConfig, summary: BatchSummary, errors: ErrorLog,
            on_page, bar) -> None:
    """Recognise the lines of several pages in one call (sorted by width inside), then write."""
    if not pending:
        return
    words = config.words if config.words is not None else bool({"json", "pagexml", "alto"} & set(config.formats))
    for item in _recognize(recognizer, pending, config, words, summary, errors, bar):
        page = item.page
        try:
            if config.output_dir:
                write_page_files(page, config.output_dir, page.id, config.formats)
        except (OSError, ValueError) as exc:
            _fail(FailedInput(page.source, "write", f"cannot write outputs ({exc})", page.id), summary, errors, bar)
            continue
        if item.is_line:
            summary.line_images += 1
        else:
            summary.pages += 1
        summary.lines += len(page.lines)
        if on_page is not None:
            on_page(page, item.is_line)
        bar.update(1)
        bar.set_postfix(lines=summary.lines, refresh=False)


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit="page", disable=not enabled, file=sys.stderr, dynamic_ncols=True, desc="pages")
