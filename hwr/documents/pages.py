"""Page inputs: which pages a batch holds, their stable ids, and their pixels.

An input is an image file, a folder (searched recursively), a glob pattern, or a text file
listing one path per line (relative paths are relative to the list file). Formats: PNG,
JPEG, TIFF (every frame of a multi-page TIFF), BMP, WebP, GIF, PNM and PDF (rasterised with
pypdfium2, Apache/BSD licensed, at `dpi`).

Page ids are stable across runs and machines: the file's path relative to the folder or
list it came from (the bare name for a file given directly), without its suffix, plus
`#p<N>` (1-based) for each page of a document with more than one page: "letters/0042",
"ledger#p3". Two inputs with the same id (a.png and a.jpg) keep their suffix instead.
"""
from __future__ import annotations

import glob
import logging
import multiprocessing
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from hwr.recognition.imaging import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, ImageError, load_gray, pil_to_gray, single_threaded_opencv

log = logging.getLogger("hwr.documents.pages")

PDF_SUFFIX = ".pdf"
PAGE_SUFFIXES = IMAGE_SUFFIXES | {PDF_SUFFIX}
LIST_SUFFIXES = {".txt", ".lst", ".list"}
DEFAULT_DPI = 300
# pdfium keeps global state and is not thread-safe: one render at a time.
_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class PageRef:
    """One page of one input file, before it is loaded."""

    page_id: str
    path: Path
    index: int = 0  # page (frame) index within the file
    count: int = 1  # pages in the file

    @property
    def source(self) -> str:
        return str(self.path) if self.count == 1 else f"{self.path}#p{self.index + 1}"


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(file, id stem) for every input; missing files are kept so that they get reported."""
    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for p in sorted(q for q in path.rglob("*") if q.suffix.lower() in PAGE_SUFFIXES and q.is_file()):
                found.append((p, p.relative_to(path).with_suffix("").as_posix()))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES and not path.name.endswith(".gt.txt"):
            found.extend(_read_list(path))
        elif not path.exists() and glob.has_magic(str(item)):
            for p in sorted(Path(q) for q in glob.glob(str(item), recursive=True)):
                if p.is_file() and p.suffix.lower() in PAGE_SUFFIXES:
                    found.append((p, p.with_suffix("").name))
        else:
            found.append((path, path.with_suffix("").name))
    return _unique_ids(found)


def _read_list(list_file: Path) -> list[tuple[Path, str]]:
    out = []
    for raw in list_file.read_text(encoding="utf-8").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        listed = Path(entry)
        if listed.is_absolute():
            out.append((listed, listed.with_suffix("").name))
        else:
            # The id keeps the listed sub-folders (not "..": ids never point outside).
            stem = "/".join(part for part in listed.with_suffix("").parts if part not in ("..", "."))
            out.append((list_file.parent / listed, stem))
    return out


def _unique_ids(found: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    seen: dict[str, int] = {}
    for _, stem in found:
        seen[stem] = seen.get(stem, 0) + 1
    out, used = [], set()
    for path, stem in found:
        if (path, stem) in used:
            continue  # the same file named twice (a folder and a glob): read it once
        used.add((path, stem))
        out.append((path, stem + path.suffix if seen[stem] > 1 else stem))
    return out


def page_refs(inputs: Iterable[str | Path]) -> Iterator[PageRef | tuple[str, str, Exception]]:
    """A PageRef per page; a file whose pages cannot be counted gives (id, source, error)."""
    for path, stem in expand_inputs(inputs):
        try:
            count = count_pages(path)
        except ImageError as exc:
            yield stem, str(path), exc
            continue
        for index in range(count):
            yield PageRef(stem if count == 1 else f"{stem}#p{index + 1}", path, index, count)


def count_pages(path: Path) -> int:
    if not path.exists():
        raise ImageError(str(path), "file not found")
    if path.suffix.lower() == PDF_SUFFIX:
        import pypdfium2 as pdfium

        with _PDFIUM_LOCK:
            try:
                pdf = pdfium.PdfDocument(str(path))
            except pdfium.PdfiumError as exc:
                raise ImageError(str(path), f"not a readable PDF ({exc})") from None
            try:
                return len(pdf)
            finally:
                pdf.close()
    if path.suffix.lower() in {".tif", ".tiff"}:
        try:
            with Image.open(path) as img:
                return max(1, getattr(img, "n_frames", 1))
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(str(path), f"not a readable image ({exc})") from None
    return 1


def load_page(ref: PageRef, dpi: int = DEFAULT_DPI) -> np.ndarray:
    """The page's pixels as uint8 grayscale; ImageError (naming the page) when unusable."""
    suffix = ref.path.suffix.lower()
    if suffix == PDF_SUFFIX:
        return render_pdf_page(ref.path, ref.index, dpi)
    if ref.count > 1:
        try:
            with Image.open(ref.path) as img:
                img.seek(ref.index)
                img.load()
                return pil_to_gray(img.copy(), ref.source)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(ref.source, f"not a readable image ({exc})") from None
    return load_gray(ref.path)


def render_pdf_page(path: Path, index: int, dpi: int = DEFAULT_DPI) -> np.ndarray:
    import pypdfium2 as pdfium

    source = f"{path}#p{index + 1}"
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            raise ImageError(source, f"not a readable PDF ({exc})") from None
        try:
            page = pdf[index]
            width, height = page.get_size()  # points (1/72 inch)
            scale = dpi / 72.0
            # A poster-sized page at 300 dpi would be a decompression bomb: cap the pixels.
            if width * height * scale * scale > MAX_IMAGE_PIXELS:
                scale = (MAX_IMAGE_PIXELS / (width * height)) ** 0.5
                log.warning("%s: page too large for %d dpi; rendered at %.0f dpi", source, dpi, scale * 72)
            bitmap = page.render(scale=scale, grayscale=True)
            image = bitmap.to_pil()
            return pil_to_gray(image, source)
        except pdfium.PdfiumError as exc:
            raise ImageError(source, f"cannot render PDF page ({exc})") from None
        finally:
            pdf.close()


def prefetch_map(fn: Callable, items: Iterable, workers: int = 2, window: int | None = None,
                 processes: bool = False) -> Iterator:
    """fn over items in worker threads (or processes), results in input order, at most
    `window` ahead.

    Image decoding, PDF rendering and OpenCV release the GIL, so threads overlap page loading
    with recognition on a few cores. The Python parts of segmentation do not, so on a many-core
    host (a GPU server) threads stop scaling at a few pages at a time: `processes` runs `fn` in
    spawned worker processes instead (fn and items must pickle; spawn, not fork, because the
    parent holds torch's and OpenCV's thread pools).
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    window = window or 2 * workers
    if processes:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=single_threaded_opencv)
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="hwr-pages")
    with pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def iter_pages(inputs: Iterable[str | Path], dpi: int = DEFAULT_DPI, workers: int = 2,
               skip: Callable[[str], bool] | None = None) -> Iterator[tuple[str, str, np.ndarray | Exception]]:
    """(page_id, source, gray page or the exception that made it unusable), in input order.

    Pages load in `workers` threads; `skip(page_id)` drops pages before they are loaded
    (resuming a batch). An unreadable page yields its exception, never stops the iteration.
    """
    def load(ref):
        if isinstance(ref, tuple):
            return ref
        try:
            return ref.page_id, ref.source, load_page(ref, dpi)
        except Exception as exc:  # noqa: BLE001 - one broken page never stops a batch
            return ref.page_id, ref.source, exc

    refs = (r for r in page_refs(inputs) if skip is None or not skip(r[0] if isinstance(r, tuple) else r.page_id))
    yield from prefetch_map(load, refs, workers)
