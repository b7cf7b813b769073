"""Pages to text: load -> segment -> cut lines -> Recognizer -> Page -> writers.

`transcribe_page` does one page. `run_batch` does many: pages load and segment in worker
threads (or processes) while the recognizer reads lines of several pages in one width-sorted
batch (the GPU stays busy); outputs are written atomically; `resume` skips pages whose outputs
all exist; a broken page goes to the errors file and the batch goes on.

Mode: "page" treats every input as a page. "auto" treats PDFs and multi-page TIFFs as pages,
and a single image as a page when the segmenter finds two or more text lines on it;
otherwise the image is one line image, read whole exactly as `--mode line` would read it.
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

from hwr.training.distributed import context_from_env
from hwr.recognition.imaging import NormalizeConfig, load_gray, normalize_line_with_geometry
from hwr.documents.linegeom import cut_line
from hwr.documents.pages import DEFAULT_DPI, PageRef, load_page, page_refs, prefetch_map
from hwr.records import Line, Page
from hwr.documents.segment import SegmentConfig, analyse_page
from hwr.documents.writers import output_paths, write_page_files

log = logging.getLogger("hwr.documents.pipeline")

MODES = ("auto", "page", "line")


def segment_and_crop(gray: np.ndarray, config: SegmentConfig | None = None) -> tuple[list[Line], list[np.ndarray]]:
    """Lines of a page (reading order) and each line's grayscale image (see hwr.documents.linegeom)."""
    lines = analyse_page(gray, config).lines
    return lines, [cut_line(gray, line) for line in lines]


def transcribe_page(recognizer, image, page_id: str = "page", source: str = "",
                    segment_config: SegmentConfig | None = None, batch_size: int = 16, words: bool = True) -> Page:
    """One page image (uint8 gray array or anything load_gray reads) -> Page with text;
    `words`: also locate words on each line (Recognition.words, for PAGE Word / ALTO String)."""
    gray = load_gray(image)
    if not source and isinstance(image, (str, Path)):
        source = str(image)
    lines, crops = segment_and_crop(gray, segment_config)
    prepared = [recognizer.preprocess_with_geometry(crop) for crop in crops]
    arrays = [a for a, _ in prepared]
    geometries = [g for _, g in prepared] if words else None
    for line, rec in zip(lines, recognizer.recognize_normalized(arrays, batch_size, geometries)):
        line.recognition = rec
    return Page(id=page_id, source=source, width=gray.shape[1], height=gray.shape[0], lines=lines)


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
    line_images: int = 0  # inputs read as single lines (auto mode)
    lines: int = 0
    skipped: int = 0  # pages whose outputs existed (resume)
    failures: list[dict] = field(default_factory=list)  # {"page", "source", "error"}
    seconds: float = 0.0

    def text(self) -> str:
        rate = self.pages / self.seconds if self.seconds else 0.0
        line_rate = self.lines / self.seconds if self.seconds else 0.0
        return (f"pages {self.pages}  line images {self.line_images}  lines {self.lines}  "
                f"failures {len(self.failures)}  skipped {self.skipped}  time {self.seconds:.1f} s  "
                f"({rate:.2f} pages/s, {line_rate:.1f} lines/s)")


@dataclass
class _Prepared:
    """A page after the worker thread: segmented and cut, ready for the recognizer."""

    page: Page | None
    arrays: list[np.ndarray]
    geometries: list = field(default_factory=list)
    is_line: bool = False
    error: dict | None = None


def is_complete(page_id: str, output_dir: str | Path | None, formats: Iterable[str]) -> bool:
    # Outputs are only ever renamed into place whole, so existing means complete.
    return output_dir is not None and all(p.is_file() for p in output_paths(page_id, output_dir, formats))


class ErrorLog:
    """Failed pages, one TSV row each (page id, source, reason), flushed as they happen."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._file = None

    def add(self, failure: dict) -> None:
        log.error("%s: %s", failure["source"], failure["error"])
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        clean = [str(failure[k]).replace("\t", " ").replace("\n", " ") for k in ("page", "source", "error")]
        self._file.write("\t".join(clean) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def run_batch(recognizer, inputs: Iterable[str | Path], config: BatchConfig | None = None,
              segment_config: SegmentConfig | None = None,
              on_page: Callable[[Page, bool], None] | None = None) -> BatchSummary:
    """Transcribe every page of `inputs`; `on_page(page, is_line_image)` sees each result."""
    config = config or BatchConfig()
    if config.mode not in ("auto", "page"):
        raise ValueError(f"run_batch handles modes auto and page, not {config.mode!r}")
    # Under torchrun each rank reads every world_size-th page of the deterministic page order
    # and writes that page's outputs itself; resume is per page, so a rerun with any number
    # of ranks skips what is done.
    ctx = context_from_env()
    errors_path = config.errors or (Path(config.output_dir) / "errors.tsv" if config.output_dir else None)
    if errors_path is not None and ctx.enabled:
        errors_path = Path(errors_path).with_suffix(f".rank{ctx.rank}{Path(errors_path).suffix}")
    errors = ErrorLog(errors_path)
    summary = BatchSummary()
    started = time.perf_counter()

    def wanted(ref) -> bool:
        if isinstance(ref, PageRef) and config.resume and is_complete(ref.page_id, config.output_dir, config.formats):
            summary.skipped += 1
            return False
        return True

    # Only the normalisation settings go to the workers (picklable, unlike the network).
    prepare = functools.partial(_prepare, normalize_config=recognizer.normalize_config, config=config,
                                segment_config=segment_config)
    refs = (r for i, r in enumerate(page_refs(inputs)) if i % ctx.world_size == ctx.rank and wanted(r))
    bar = _progress(config.progress)
    pending: list[_Prepared] = []
    try:
        for item in prefetch_map(prepare, refs, config.workers, processes=config.processes):
            if item.error is not None:
                summary.failures.append(item.error)
                errors.add(item.error)
                bar.update(1)
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


def _prepare(ref, normalize_config: NormalizeConfig, config: BatchConfig, segment_config) -> _Prepared:
    if isinstance(ref, tuple):  # the file could not even be opened to count its pages
        page_id, source, exc = ref
        return _Prepared(None, [], error={"page": page_id, "source": source, "error": _reason(exc)})
    try:
        gray = load_page(ref, config.dpi)
        lines = analyse_page(gray, segment_config).lines
        page = Page(id=ref.page_id, source=ref.source, width=gray.shape[1], height=gray.shape[0], lines=lines)
        if config.mode == "auto" and ref.count == 1 and len(lines) < 2:
            # A line image: read it whole, as line mode does, one line spanning the image.
            h, w = gray.shape
            page.lines = [Line(id="l001", polygon=[(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)],
                               baseline=[(0, h - 1), (w - 1, h - 1)], bbox=(0, 0, w, h))]
            array, geometry = normalize_line_with_geometry(gray, normalize_config)
            return _Prepared(page, [array], [geometry], is_line=True)
        prepared = [normalize_line_with_geometry(cut_line(gray, line), normalize_config) for line in lines]
        return _Prepared(page, [a for a, _ in prepared], [g for _, g in prepared])
    except Exception as exc:  # noqa: BLE001 - one broken page never stops a batch
        log.debug("page %s failed", ref.source, exc_info=True)
        return _Prepared(None, [], error={"page": ref.page_id, "source": ref.source, "error": _reason(exc)})


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return reason or f"{type(exc).__name__}: {exc}"


def _finish(pending: list[_Prepared], recognizer, config: BatchConfig, summary: BatchSummary, errors: ErrorLog,
            on_page, bar) -> None:
    """Recognise the lines of several pages in one call (sorted by width inside), then write."""
    if not pending:
        return
    arrays = [a for p in pending for a in p.arrays]
    words = config.words if config.words is not None else bool({"json", "pagexml", "alto"} & set(config.formats))
    geometries = [g for p in pending for g in p.geometries] if words else None
    results = recognizer.recognize_normalized(arrays, config.batch_size, geometries) if arrays else []
    k = 0
    for item in pending:
        page = item.page
        for line in page.lines:
            line.recognition = results[k]
            k += 1
        try:
            if config.output_dir:
                write_page_files(page, config.output_dir, page.id, config.formats)
        except (OSError, ValueError) as exc:
            failure = {"page": page.id, "source": page.source, "error": f"cannot write outputs ({exc})"}
            summary.failures.append(failure)
            errors.add(failure)
            bar.update(1)
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
