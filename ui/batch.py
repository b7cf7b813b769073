"""Batch tab logic: many images, PDFs (or zips of them) in, one row per page and a zip of outputs out.

PDFs and multi-page TIFFs give one row per page ("scan.pdf#p2"), read by `hwr transcribe`'s
batch path (hwr.documents.pipeline). One unreadable file never stops the batch: its row says
why, and the rest goes on.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from hwr.documents.pages import PAGE_SUFFIXES, PageRef, TakenNames, count_pages, id_within_name_limit, load_page
from hwr.documents.pipeline import READING_SETTINGS_FILE, BatchConfig, transcribe_refs
from hwr.documents.writers.common import unique_name
from hwr.documents.writers.manifest import MANIFEST_NAME
from hwr.fileio import atomic_output
from hwr.recognition.imaging import ImageError
from hwr.recognition.model import Recognizer
from hwr.records import FailedInput, Page
from hwr.spreadsheet import text_cell

from .pages import LAYOUTS, export_formats, mean_confidence
from .uploads import EARLIER_COPIES, NESTED_ZIP, UploadError, ZipLimits, display_name, extract_zip

log = logging.getLogger("ui.batch")

TABLE_HEADERS = ["file", "layout", "lines", "confidence", "text", "error"]
PREVIEW_CHARS = 120  # the table shows the start of the text; the zip has all of it
LINE_BREAK = " | "
COLUMN_WIDTHS = ["24%", "7%", "6%", "9%", "34%", "20%"]


@dataclass
class BatchInput:
    file: str  # what the user calls the file: its name, or zip name/path inside the zip
    path: Path
    page: int = 0  # page index within a PDF or multi-page TIFF
    pages: int = 1
    error: str = ""  # why its pages could not even be counted

    @property
    def name(self) -> str:
        return self.file if self.pages == 1 else f"{self.file}#p{self.page + 1}"


@dataclass
class BatchRow:
    name: str
    layout: str = ""
    lines: int = 0
    confidence: float | None = None
    text: str = ""
    error: str = ""
    # What a correction needs: the page as read (lines, polygons, text) and where its image is.
    page: Page | None = field(default=None, repr=False)
    ref: PageRef | None = field(default=None, repr=False)

    @property
    def correctable(self) -> bool:
        """Read without error, with lines whose text the user can correct and save."""
        return not self.error and self.page is not None and self.ref is not None and bool(self.page.lines)

    def image(self) -> np.ndarray:
        """The page's gray image, loaded again from the batch's input (PDF pages rendered again)."""
        if self.ref is None:
            raise ValueError(f"{self.name}: no page image kept")
        return load_page(self.ref)

    def cells(self) -> list:
        conf = "" if self.confidence is None else round(self.confidence, 3)
        text = self.text.replace("\n", LINE_BREAK)  # a table cell shows a page's lines on one row
        preview = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."
        return [self.name, self.layout, self.lines, conf, preview, self.error]


def collect_inputs(uploads: list[str | Path], work: Path, limits: ZipLimits) -> list[BatchInput]:
    """Uploaded files kept in `work`, zips unpacked there (their image and PDF files in path
    order), and every page of a PDF or multi-page TIFF as an input of its own."""
    inputs: list[BatchInput] = []
    names: set[str] = set()
    for number, upload in enumerate(uploads):
        name = _distinct_name(display_name(upload), names)
        if Path(upload).suffix.lower() != ".zip":
            inputs += _pages_of(name, _kept_upload(Path(upload), work / "uploads" / f"{number:04d}"))
            continue
        folder = work / "unzipped" / f"{number:04d}"
        # A damaged member costs its own row, as an unreadable file does, and a zip that cannot
        # be used at all costs its one row: never the batch.
        damaged: dict[str, str] = {}
        try:
            files = {path.relative_to(folder).as_posix(): path
                     for path in extract_zip(upload, folder, limits, damaged)}
            # A zip inside it is a folder of pages the user meant: its own row, not left out in
            # silence as a transcript or a thumbnail beside the pages is.
            members = sorted((m for m in [*files, *damaged] if _page_or_zip(m)), key=PurePosixPath)
            if not members:
                raise UploadError(f"{name} holds no images ({', '.join(sorted(PAGE_SUFFIXES))})")
        except UploadError as exc:
            inputs.append(BatchInput(name, Path(upload), error=str(exc)))
            continue
        for member in members:
            label = f"{name}/{member}"
            if member in damaged:
                inputs.append(BatchInput(label, folder / member, error=damaged[member]))
            elif PurePosixPath(member).suffix.lower() == ".zip":
                inputs.append(BatchInput(label, files[member], error=NESTED_ZIP))
            else:
                inputs += _pages_of(label, files[member])
    if not inputs:
        raise UploadError("no files were uploaded")
    return inputs


def _page_or_zip(member: str) -> bool:
    """Whether a zip's member (or the earlier copies of one it holds twice) is a page or a zip."""
    suffix = PurePosixPath(member.removesuffix(EARLIER_COPIES)).suffix.lower()
    return suffix in PAGE_SUFFIXES or suffix == ".zip"


def _kept_upload(upload: Path, folder: Path) -> Path:
    """The upload linked (or copied) into the batch's own folder: gradio sweeps its copies of
    uploads once they are an hour old, and a batch of long PDFs read them for longer (its pages
    had failed as "file not found"), as does correcting a page of it later. An upload that
    cannot be kept stays where it is: reading it then says what is wrong with it."""
    kept = folder / upload.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.link(upload, kept)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(upload, kept)
    except OSError:
        return upload
    return kept


def _distinct_name(name: str, taken: set[str]) -> str:
    """`name`, or "a (2).png" for the second upload called a.png (from another folder): rows
    of one name could not be told apart in the table and CSV, nor picked to correct."""
    path = Path(name)
    return unique_name(name, taken, numbered=lambda k: f"{path.stem} ({k}){path.suffix}")


def _pages_of(name: str, path: Path) -> list[BatchInput]:
    try:
        count = count_pages(path)
    except ImageError as exc:
        return [BatchInput(name, path, error=exc.reason)]  # its row says why, as the CLI's errors file would
    if count.listed == 1:
        return [BatchInput(name, path)]
    return [BatchInput(name, path, k, count.listed, error=count.error_of(k)) for k in range(count.listed)]


class BatchStopped(Exception):
    """The batch was stopped (`stop` set: the user cancelled it, or left the page)."""


def run_batch(recognizer: Recognizer, inputs: list[BatchInput], layout: str, out_dir: Path,
              progress: Callable[[int, int, str], None] | None = None, workers: int = 2,
              stop: threading.Event | None = None) -> list[BatchRow]:
    """Transcribe each input and write its outputs (every writer format) under out_dir.

    The CLI's batch path (hwr.documents.pipeline.transcribe_refs): pages load and segment in
    worker threads while the recognizer reads lines of several pages at once; a failure at any
    stage is that row's error, never the batch's. `stop`, once set, ends the batch after the
    page it is on (BatchStopped)."""
    if layout not in LAYOUTS:  # checked once here: inside the loop it would fail every row
        raise UploadError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    taken = TakenNames(export_formats())
    refs = [PageRef(_unique_stem(item, taken), item.path, item.page, item.pages, error=item.error, label=item.file)
            for item in inputs]
    names = {ref.page_id: item.name for ref, item in zip(refs, inputs)}
    by_id = {ref.page_id: ref for ref in refs}
    rows: dict[str, BatchRow] = {}

    def done(page, is_line: bool) -> None:
        if stop is not None and stop.is_set():
            raise BatchStopped("the batch was stopped")
        rows[page.id] = BatchRow(names[page.id], "line" if is_line else "page", len(page.lines),
                                 mean_confidence(page), page.text, page=page, ref=by_id[page.id])
        if progress is not None:
            progress(len(rows), len(refs), names[page.id])

    config = BatchConfig(mode=layout, formats=export_formats(), output_dir=str(out_dir), workers=workers,
                         progress=False, errors=str(out_dir.parent / f".{out_dir.name}-errors.tsv"))
    summary = transcribe_refs(recognizer, refs, config, on_page=done)
    for failure in summary.failures:
        rows[failure.page_id] = BatchRow(names[failure.page_id], error=_user_message(failure, inputs))
    return [rows[ref.page_id] for ref in refs]


def _user_message(failure: FailedInput, inputs: list[BatchInput]) -> str:
    """The failure as the user should read it: without server-side paths, and for an error
    that is not the input's fault, without internals."""
    message = failure.message
    for item in inputs:  # Pillow's messages may quote the server-side upload path; the user knows the name
        message = message.replace(str(item.path), item.file)
    if failure.stage in ("recognize", "write"):
        log.error("batch: %s failed at %s: %s", failure.source, failure.stage, failure.message)
        return f"failed on the server ({failure.stage}); see its log"
    return message


def _unique_stem(item: BatchInput, taken: TakenNames) -> str:
    # Output names keep the input's folders (zip members) and page numbers but never collide:
    # a.png and a.jpg would both want "a.txt", and x.alto.png's PAGE XML is x.png's ALTO file
    # (x.alto.xml), which one had replaced in silence.
    stem = Path(item.file).with_suffix("").as_posix().replace("/", "__")
    # Cut to fit the file system's names as transcribe's page ids are: a zip's short folder
    # names joined by "__" outgrew them, and the ALTO file failed after the others were written.
    stem = id_within_name_limit(stem)
    return taken.unique(stem if item.pages == 1 else f"{stem}#p{item.page + 1}")


def find_row(rows: list[BatchRow], name: str) -> BatchRow:
    """The batch row of a page the user can correct, by its name in the table."""
    for row in rows:
        if row.name == name and row.correctable:
            return row
    raise UploadError(f"{name}: not a page of the last batch that was read; run the batch again")


def results_csv(rows: list[BatchRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(TABLE_HEADERS)
    for row in rows:
        # File names and texts come from uploads: escaped so no spreadsheet runs them (hwr.spreadsheet).
        writer.writerow([text_cell(row.name), row.layout, row.lines,
                         "" if row.confidence is None else f"{row.confidence:.4f}", text_cell(row.text),
                         text_cell(row.error)])
    return buffer.getvalue()


def zip_outputs(rows: list[BatchRow], out_dir: Path, archive: Path) -> Path:
    """All written outputs plus results.csv (every row, including failures) in one zip,
    written whole or not at all (the download must never be a truncated zip). The batch's
    records of what it wrote and how it read (hwr.documents.writers.manifest,
    hwr.documents.pipeline.READING_SETTINGS_FILE) are no outputs of the user's."""
    records = {out_dir / MANIFEST_NAME, out_dir / READING_SETTINGS_FILE}
    with atomic_output(archive) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("results.csv", results_csv(rows))
        for path in sorted(out_dir.rglob("*")):
            if path.is_file() and path not in records:
                zf.write(path, path.relative_to(out_dir).as_posix())
    return archive
