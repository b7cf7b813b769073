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
import hashlib
import logging
import math
import os
import re
import threading
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hwr.documents.writers import SUFFIXES
from hwr.fileio import NAME_MAX, exists, file_in_any_unicode_form, is_dir, is_file
from hwr.interrupts import exit_with_parent, quiet_workers_context, stop_workers_now
from hwr.logs import init_worker_logging, level_for_workers
from hwr.recognition.image_formats import (
    IMAGE_SUFFIXES,
    UNREADABLE_FORMATS,
    USUAL_SUFFIXES,
    is_tiff,
    unidentified_reason,
)
from hwr.recognition.imaging import (
    MAX_IMAGE_PIXELS,
    MAX_SIDE,
    ImageError,
    check_file,
    check_image_size,
    exif_warnings_named,
    load_gray,
    open_image,
    pil_to_gray,
    reissue_warnings,
    single_threaded_opencv,
)
from hwr.recognition.libtiff_messages import libtiff_messages_named

log = logging.getLogger("hwr.documents.pages")

PDF_SUFFIX = ".pdf"
# Files of formats hwr cannot read are listed too: they fail naming the format, never pass unseen.
PAGE_SUFFIXES = IMAGE_SUFFIXES | {PDF_SUFFIX} | UNREADABLE_FORMATS.keys()
LIST_SUFFIXES = {".txt", ".lst", ".list"}
STDIN_NAME = "-"
DEFAULT_DPI = 300
# pdfium keeps global state and is not thread-safe: one render at a time.
_PDFIUM_LOCK = threading.Lock()
# Folders reached twice that this process has warned of: `hwr transcribe` walks its inputs to
# check its reports' paths, then to read them, and had said so twice.
_LOOPS_SAID: set[tuple[str, str]] = set()
# pdfium's FPDF_ERR_PASSWORD (fpdfview.h), named here so reading a folder of images never imports pdfium.
PDFIUM_PASSWORD_ERROR = 4


@dataclass(frozen=True)
class PageRef:
    """One page of one input file, before it is loaded; or an input that failed already.

    `error` is set (and the page is not loaded) when the input could not even be listed or
    counted: an unreadable folder or list file, a file whose pages cannot be counted.
    `label` is what messages call the file when its path is not what the user knows (the UI's
    uploads); the default is the path."""

    page_id: str
    path: Path
    index: int = 0  # page (frame) index within the file
    count: int = 1  # pages in the file
    error: str = ""
    error_stage: str = "read"  # FailedInput.stage of `error`: "input" (listing) or "read" (counting)
    label: str = ""
    dpi: int | None = None  # a PDF page's resolution when it must be this one (ground truth's); None: the batch's

    @property
    def source(self) -> str:
        name = self.label or str(self.path)
        return name if self.count == 1 else f"{name}#p{self.index + 1}"

    @property
    def is_document_page(self) -> bool:
        """A page of a PDF or of a multi-page TIFF (auto mode reads it as a page, never a line)."""
        return self.count > 1 or self.path.suffix.lower() == PDF_SUFFIX


@dataclass
class _Found:
    """An input file as listed: its path, its id stem, and the input it came from."""

    path: Path
    stem: str
    root: str = ""  # the folder or list file it was found in ("" for a file given directly)
    error: str = ""  # set for an input that could not be listed (the path is the folder or list)


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(file, id stem) for every input; missing files are kept so that they get reported.

    A folder or list file that cannot be read raises ImageError naming it (`page_refs`, the
    batch's way in, reports it as a failed input instead)."""
    out = []
    for entry in _unique_ids(_listed(inputs)):
        if entry.error:
            raise ImageError(str(entry.path), entry.error)
        out.append((entry.path, entry.stem))
    return out


def input_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Every file these inputs stand for (folders walked, patterns and list files expanded) and
    the list files themselves: what no output of the command may be written over. Inputs that
    cannot be listed or do not exist are left out here (the batch reports them)."""
    inputs = list(inputs)
    named = [Path(i) for i in inputs if is_file(i)]
    return named + [entry.path for entry in _listed(inputs) if not entry.error and is_file(entry.path)]


def may_name_several(inputs: Iterable[str | Path]) -> bool:
    """Whether these inputs can stand for more than one file (several inputs, a folder, a glob
    pattern, a list file): then each result is shown with the file it came from."""
    inputs = list(inputs)
    if len(inputs) != 1:
        return len(inputs) > 1
    path = Path(inputs[0])
    return is_dir(path) or (not exists(path) and glob.has_magic(str(path))) or _is_list_file(path)


def _is_list_file(path: Path) -> bool:
    return is_file(path) and path.suffix.lower() in LIST_SUFFIXES and not path.name.endswith(".gt.txt")


def _listed(inputs: Iterable[str | Path]) -> list[_Found]:
    inputs = list(inputs)
    # With several folders, each folder's name starts its ids: batch1/scan001 and
    # batch2/scan001 stay apart, and an id never depends on which other files exist.
    folders = [Path(i) for i in inputs if is_dir(i)]
    prefixes = _folder_prefixes(folders) if len(folders) > 1 else {}
    found: list[_Found] = []
    for item in inputs:
        path = Path(item)
        if is_dir(path):
            prefix = prefixes.get(path.resolve(), "")
            listed = _walk(path, prefix)
            kind = "folder holds no image or PDF files"
        elif _is_list_file(path):
            listed = _read_list(path)
            kind = "list file lists no files"
        elif not exists(path) and glob.has_magic(str(item)):
            listed = _without_copies([_Found(p, p.with_suffix("").name)
                                      for p in sorted(Path(q) for q in glob.glob(str(item), recursive=True))
                                      if is_file(p) and p.suffix.lower() in PAGE_SUFFIXES])
            kind = "pattern matches no files"
        elif str(item) == STDIN_NAME and not exists(path):
            # Tesseract's "-": said plainly, not "file not found".
            listed, kind = [], "standard input ('-') is not read: save the image to a file and name that"
        else:
            listed, kind = [_Found(path, path.with_suffix("").name)], ""
        # An input that stands for nothing is a mistake (a typo in a pattern, the wrong
        # folder): reported as a failed input, never left out in silence beside the others.
        found.extend(listed or [_Found(path, path.name or str(item), str(item), kind)])
    return found


def _folder_prefixes(folders: list[Path]) -> dict[Path, str]:
    """Each folder's id prefix: its name, or as many of its last path parts as tell it apart
    from another given folder of that name (p/scans/ and q/scans/). It depends on the set of
    folders only, never on their order, so a resume given them in another order finds the
    same ids."""
    return _distinguishing_prefixes({f.resolve() for f in folders})


def _distinguishing_prefixes(paths: set[Path]) -> dict[Path, str]:
    """Each path's last parts, as many as tell it apart from the others ("scans/", "p/scans/"),
    with a trailing slash: a function of the set alone, whatever the order."""
    # Never the anchor ("/", "C:\\"): an id that starts with it would put outputs outside
    # the output folder. The root itself gets no prefix.
    parts = {path: path.parts[1:] if path.anchor else path.parts for path in paths}
    prefixes = {}
    for path, own in parts.items():
        others = [o for p, o in parts.items() if p != path]
        k = 1
        while k < len(own) and any(o[-k:] == own[-k:] for o in others):
            k += 1
        prefixes[path] = "/".join(own[-k:]) + "/" if own else ""
    return prefixes


def _walk(folder: Path, prefix: str) -> list[_Found]:
    """Page files under a folder, in path order; a sub-folder that cannot be read is reported
    (pathlib's rglob would skip it without a word). Hidden files and folders are not pages:
    thumbnails (.thumbnails/), macOS's resource forks (._scan.png), version control (.git/);
    one named directly is read."""
    found: list[_Found] = []
    hidden = 0

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        found.append(_Found(where, prefix + where.relative_to(folder).as_posix(), str(folder),
                            f"cannot read folder ({exc.strerror or exc})"))

    # Linked sub-folders are followed (a scan archive often links its volumes in); a folder
    # reached twice (a link loop, two links to one folder) is read the first time only.
    visited: set[str] = set()
    for top, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(top)
        if real in visited:
            if (top, real) not in _LOOPS_SAID:  # a command lists its inputs more than once
                _LOOPS_SAID.add((top, real))
                log.warning("%s: already read as %s (a symbolic link loop?); not read again", top, real)
            dirs[:] = []
            continue
        visited.add(real)
        hidden += sum(name.startswith(".") for name in dirs) + sum(name.startswith(".") for name in files)
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in files:
            p = Path(top) / name
            if p.suffix.lower() in PAGE_SUFFIXES and not name.startswith("."):
                # A broken or looping link, a pipe or a device is listed too: reading it fails
                # with its reason (hwr.recognition.imaging.check_file), never in silence.
                found.append(_Found(p, prefix + p.relative_to(folder).with_suffix("").as_posix(), str(folder)))
    if hidden:
        _say_once("%s: %d hidden files and folders not read (name one to read it)", folder, hidden)
    return sorted(_without_copies(found), key=lambda f: f.path.relative_to(folder).parts)


def _without_copies(found: list[_Found]) -> list[_Found]:
    """The files listed, less those of an unusual format (JPEG 2000, AVIF, HEIC, a camera's raw
    file...) beside a file of a usual one or a PDF with their name: copies of that page, not
    pages of their own (a camera's RAW+JPEG pairs had all failed, and renamed the JPEGs'
    outputs; TIFF masters beside JPEG 2000 copies had been read twice). Named directly, or in
    a list file, such a file is read."""
    usual = USUAL_SUFFIXES | {PDF_SUFFIX}
    pages = {(entry.path.parent, entry.path.stem) for entry in found
             if not entry.error and entry.path.suffix.lower() in usual}
    kept = [entry for entry in found if entry.error or entry.path.suffix.lower() in usual
            or (entry.path.parent, entry.path.stem) not in pages]
    if len(kept) < len(found):
        _say_once("%d files left out as copies of a page of theirs in a usual format (%s, ...); name one to read it",
                  len(found) - len(kept), next(e.path for e in found if e not in kept))
    return kept


_SAID: set[tuple] = set()


def _say_once(message: str, *args) -> None:
    """An info line about a listing, once per process: a command lists its inputs more than once
    (its outputs' checks, then the run), and said each such line as often."""
    if (message, *map(str, args)) not in _SAID:
        _SAID.add((message, *map(str, args)))
        log.info(message, *args)


def _read_list(list_file: Path, reading: frozenset[Path] = frozenset(), prefix: str = "") -> list[_Found]:
    """The files a list file names. A list file it names stands for the files that one lists,
    as a folder it names stands for its pages (their ids start with its folder as listed:
    `prefix`); `reading`: the list files this one was named from, so a list that names itself
    (or one naming it) is a failure, not endless."""
    # Imported here: the page workers import this module, and hwr.datasets is more than they need.
    from hwr.datasets.errors import byte_rows, comment_row, text_rows

    reading = reading | {list_file.resolve()}
    try:
        data = list_file.read_bytes()
    except OSError as exc:
        return [_Found(list_file, list_file.stem, str(list_file), f"cannot read list file ({exc.strerror or exc})")]
    if b"\x00" in data:  # UTF-16 ("Unicode" in Windows editors; without a BOM it decodes): no row is a name
        return [_Found(list_file, list_file.stem, str(list_file),
                       f"list file is not UTF-8 (NUL at byte {data.index(0)} of the file; UTF-16?); save it as UTF-8")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # A row or two in another encoding (a Latin-1 name pasted in) must not lose the other
        # rows: such a row names a file by its bytes, as a folder listing would (os.fsdecode).
        bad_rows = [no for no, row in enumerate(byte_rows(data), start=1) if not _is_utf8(row)]
        shown = ", ".join(map(str, bad_rows[:5])) + (", ..." if len(bad_rows) > 5 else "")
        log.warning("%s: not UTF-8 on line(s) %s; those rows are read as file names byte for byte", list_file, shown)
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogateescape")
    out = []
    # Rows end as the data readers' do (a lone CR ends one; U+2028 or a form feed in a name
    # does not); a `#` row, indented or not, is a comment.
    for raw in text_rows(text):
        entry = raw.strip()
        if not entry or comment_row(entry):
            continue
        listed = Path(entry)
        if listed.is_absolute():
            path, stem = listed, listed.with_suffix("").name
        else:
            # The id keeps the listed sub-folders (not "..": ids never point outside).
            path = list_file.parent / listed
            stem = prefix + "/".join(part for part in listed.with_suffix("").parts if part not in ("..", "."))
        if is_dir(path):
            # A listed folder stands for its pages, as it does on the command line; their ids
            # start with the folder as listed (a dot in its name is no suffix).
            if listed.is_absolute():
                folder = listed.name + "/"
            else:
                parts = [p for p in listed.parts if p not in ("..", ".")]
                folder = prefix + "/".join(parts) + "/" if parts else prefix
            pages = _walk(path, folder)
            out.extend(pages or [_Found(path, stem, str(list_file), "folder holds no image or PDF files")])
        elif _is_list_file(path):
            if path.resolve() in reading:
                out.append(_Found(path, stem, str(list_file), "list files name each other in a loop"))
            else:
                folder = stem.rpartition("/")[0]  # "" for a list named by an absolute path (its stem is its name)
                nested = _read_list(path, reading, folder + "/" if folder else "")
                out.extend(nested or [_Found(path, stem, str(list_file), "list file lists no files")])
        else:
            # A list typed on Linux naming a file a Mac's zip wrote decomposed ("é" as "e" + accent):
            # the rows look alike, and "no such file" had named a file the user could see.
            out.append(_Found(file_in_any_unicode_form(path) or path, stem, str(list_file)))
    return out


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class TakenNames:
    """Page ids in use and the output files they name. Two ids clash when they are equal or
    when their outputs share a file name in `formats`: x's ALTO (x.alto.xml) is the PAGE XML
    of x.alto (from x.alto.png). Names are compared case-folded: on macOS's and Windows' file
    systems (and in a zip unpacked there) A.txt and a.txt are one file, and the second page
    written had replaced the first's outputs."""

    def __init__(self, formats: Iterable[str] = ()):
        self.suffixes = [SUFFIXES[fmt] for fmt in formats]
        self.ids: set[str] = set()
        self.files: set[str] = set()

    def _files(self, page_id: str) -> set[str]:
        return {(page_id + suffix).casefold() for suffix in self.suffixes}

    def free(self, page_id: str) -> bool:
        return page_id.casefold() not in self.ids and not self._files(page_id) & self.files

    def take(self, page_id: str) -> None:
        self.ids.add(page_id.casefold())
        self.files |= self._files(page_id)

    def unique(self, page_id: str) -> str:
        """`page_id`, or `page_id-2`, `page_id-3`... : the first that is free (now taken)."""
        candidate, k = page_id, 1
        while not self.free(candidate):
            k += 1
            candidate = f"{page_id}-{k}"
        self.take(candidate)
        return candidate


# File systems take names of at most NAME_MAX bytes. An output's name is its page id's last
# part and the endings hwr adds: ".alto.xml", a document page's "#p<N>", a clash's file suffix
# and "-<k>". A scan named near the limit (legal, and common from archives' long titles) had
# failed at its ALTO file after its other outputs were written, at every --resume again.
ID_ENDINGS_RESERVE = 40  # bytes
DIGEST_CHARS = 10


def name_digest(name: str) -> str:
    """A short digest of a file name's bytes: the same every run, apart for names apart."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:DIGEST_CHARS]


def id_within_name_limit(page_id: str) -> str:
    """`page_id`, its last part cut so that every output's name fits NAME_MAX, and ending in
    "~" and a digest of the whole part: ids cut alike stay apart, and are the same every run."""
    folder, slash, name = page_id.rpartition("/")
    limit = NAME_MAX - ID_ENDINGS_RESERVE
    if len(os.fsencode(name)) <= limit:
        return page_id
    kept, size = [], DIGEST_CHARS + 1
    for ch in name:  # whole characters: a cut inside one would be no UTF-8
        size += len(os.fsencode(ch))
        if size > limit:
            break
        kept.append(ch)
    digest = name_digest(name)
    return f"{folder}{slash}{''.join(kept)}~{digest}"


def _unique_ids(found: list[_Found], formats: Iterable[str] = ()) -> list[_Found]:
    """Drop repeats of the same file; make colliding ids unique, deterministically.

    A clash between two files (a.png and a.jpg) keeps their suffixes; a clash that remains
    (the same name given directly, by a glob or a list of absolute paths, from two folders)
    starts each id with as much of its folder's path as tells the folders apart (box1/f/0001,
    box3/f/0001), so an id depends on the clashing files alone, never on their order: a
    resume after a new file joined the clash never takes another file's earlier outputs (a
    file that gets a longer prefix is read again). Ids apart only by case clash too; those of one
    folder end in a digest of their file's name. A clash still left (of output file names in
    `formats`, see TakenNames; a prefixed id equal to another file's own) is numbered -2, -3
    in the order of the files' paths, whatever the order of the inputs."""
    out, seen_files = [], set()
    for entry in found:
        # The same file named twice (a folder and a glob, x/a.png and x/../x/a.png, a folder
        # and a file in it): read once, with the id it was first listed under.
        key = os.path.normpath(os.path.abspath(entry.path))
        if key in seen_files:
            continue
        seen_files.add(key)
        entry.stem = id_within_name_limit(entry.stem)
        out.append(entry)

    def root(entry: _Found) -> Path:  # the folder the id is relative to ("sub/x" of a list: above sub/)
        parents = Path(os.path.abspath(entry.path)).parents
        return parents[min(len(entry.stem.split("/")), len(parents)) - 1]

    # Ids apart only by case clash too (TakenNames): their outputs are one file where case is
    # not told apart (macOS, Windows, a zip unpacked there).
    clashing: dict[str, list[_Found]] = {}
    for entry in out:
        if not entry.error:
            clashing.setdefault(entry.stem.casefold(), []).append(entry)
    for group in (g for g in clashing.values() if len(g) > 1):
        # Files of one folder apart by their suffix (a.png, a.jpg) keep it...
        per_root = Counter(root(e) for e in group)
        same_stem = Counter((root(e), e.stem) for e in group)
        for entry in group:
            if same_stem[root(entry), entry.stem] > 1:
                entry.stem += entry.path.suffix
        # ...and those of one folder apart only by case (Scan.png, scan.png: a case-sensitive
        # disk) end in a digest of their own name, so neither id depends on the other file.
        same_folder = Counter((root(e), e.stem.casefold()) for e in group)
        for entry in group:
            if same_folder[root(entry), entry.stem.casefold()] > 1:
                entry.stem += "~" + name_digest(entry.path.name)
        # ...and files of several folders start with as much of the folder as tells them apart.
        if len(per_root) > 1:
            prefixes = _distinguishing_prefixes(set(per_root))
            for entry in group:
                entry.stem = prefixes[root(entry)] + entry.stem
    # Numbered in path order, not input order: the same files named in another order (a
    # resume) get the same ids.
    taken = TakenNames(formats)
    for entry in sorted(out, key=lambda e: os.path.abspath(e.path)):
        entry.stem = taken.unique(entry.stem)
    return out


def page_refs(inputs: Iterable[str | Path], formats: Iterable[str] = ()) -> Iterator[PageRef]:
    """A PageRef per page, in input order; an input that cannot be listed or counted gives
    one PageRef with `error` set, so that it is reported and the rest goes on. `formats`: the
    outputs the batch writes, so that no two pages' output files share a name."""
    formats = list(formats)
    entries = _unique_ids(_listed(inputs), formats)
    # Every id in use: the files' own, and the page ids of documents read so far. A document
    # whose page ids would take one (scan.tif's "scan#p1" beside a file scan#p1.png) gets a
    # stem of its own for all its pages, so no output overwrites another's.
    taken = TakenNames(formats)
    for entry in entries:
        taken.take(entry.stem)
    for entry in entries:
        if entry.error:
            yield PageRef(entry.stem, entry.path, error=entry.error, error_stage="input")
            continue
        try:
            counted = count_pages(entry.path)
        except ImageError as exc:
            # A file named that is not there matched nothing, as a glob that matches nothing
            # does: a listing error, so a run given nothing but such names read nothing (exit 2).
            stage = "read" if os.path.lexists(entry.path) else "input"
            yield PageRef(entry.stem, entry.path, error=exc.reason, error_stage=stage)
            continue
        count = counted.listed
        if count == 1:
            yield PageRef(entry.stem, entry.path, 0, 1)
            continue
        stem, k = entry.stem, 1
        while not all(taken.free(f"{stem}#p{i + 1}") for i in range(count)):
            k += 1
            stem = f"{entry.stem}-{k}"
        for index in range(count):
            taken.take(f"{stem}#p{index + 1}")
            yield PageRef(f"{stem}#p{index + 1}", entry.path, index, count, error=counted.error_of(index))


@dataclass(frozen=True)
class PageCount:
    """How many pages of a file can be listed, and why the rest cannot (a multi-page TIFF whose
    page chain breaks: its pages before the break are still read, not lost with the rest)."""

    pages: int
    broken_rest: str = ""  # the reason no page after `pages` can be listed; "" when none is missing

    @property
    def listed(self) -> int:
        """Pages to list: the readable ones, and one failed page for a broken page chain."""
        return self.pages + bool(self.broken_rest)

    def error_of(self, index: int) -> str:
        """Why the page at `index` cannot be read before loading it ("" for a readable one)."""
        return self.broken_rest if index == self.pages else ""


# A page chain longer than this is taken to be looping, not a real document.
_MAX_TIFF_PAGES = 100_000


# A page tree that says it holds no pages, and no page object anywhere in the file.
_EMPTY_PAGE_TREE = re.compile(rb"/Count\s*0\b")
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


def _pdf_load_error(path: Path, exc: Exception) -> str:
    """Why PDFium would not open a PDF. It refuses one with no pages as a failed load without a
    reason: its error code reads "success", or a stale code left by an earlier failure in the
    process, so such a file is recognised by its page tree instead."""
    if getattr(exc, "err_code", None) == 0 or _holds_no_pages(path):
        return "the PDF has no pages"
    if getattr(exc, "err_code", None) == PDFIUM_PASSWORD_ERROR:  # pdfium's words: "Incorrect password error"
        return "the PDF is password-protected; save a copy without the password and read that"
    image_format = _image_format(path)
    if image_format:  # an image under a PDF's name: say so, not "Data format error"
        return f"not a PDF: it is a {image_format} image under a PDF's name; name it .{image_format.lower()} to read it"
    return f"not a readable PDF ({exc})"


def _image_format(path: Path) -> str | None:
    """The image format Pillow finds in the file, if any (no pixel decoded)."""
    try:
        with open_image(path) as img:
            return img.format
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is no image
        return None


def _holds_no_pages(path: Path) -> bool:
    try:
        if path.stat().st_size > 1 << 20:  # a PDF without pages is small; a large one is broken otherwise
            return False
        data = path.read_bytes()
    except OSError:
        return False
    return bool(_EMPTY_PAGE_TREE.search(data)) and not _PAGE_OBJECT.search(data)


def count_pages(path: Path) -> PageCount:
    """Pages in a file (PDF pages, TIFF frames; 1 for other images); ImageError when not even
    one page can be listed."""
    try:
        found = path.exists()
    except OSError as exc:  # a name over 255 bytes, a folder it may not look into: a failed input, with its cause
        raise ImageError(str(path), exc.strerror or str(exc)) from None
    if not found:
        raise ImageError(str(path), "broken or looping symbolic link" if path.is_symlink() else "file not found")
    check_file(path, str(path))  # a folder, a pipe (opening one would wait forever), an empty file
    if path.suffix.lower() == PDF_SUFFIX:
        import pypdfium2 as pdfium

        with _PDFIUM_LOCK:
            try:
                pdf = pdfium.PdfDocument(str(path))
            except pdfium.PdfiumError as exc:
                raise ImageError(str(path), _pdf_load_error(path, exc)) from None
            try:
                pages = len(pdf)
            finally:
                pdf.close()
        if pages == 0:
            raise ImageError(str(path), "the PDF has no pages")
        return PageCount(pages)
    if is_tiff(path):
        try:
            with open_image(path) as img, exif_warnings_named(str(path)):  # each page's tags are read
                check_image_size(img.width, img.height, str(path))
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        count = max(1, getattr(img, "n_frames", 1))
                except Exception:  # noqa: BLE001 - a broken page chain raises TypeError, KeyError, ...
                    return _walk_tiff_pages(img)
                if _damaged_page_header(caught):  # Pillow counted on past a page it could not read
                    return _walk_tiff_pages(img)
                reissue_warnings(caught, str(path))
                return PageCount(count, _looped_back(img, count))
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageError(str(path), f"image too large (decompression bomb guard): {exc}") from None
        except Image.UnidentifiedImageError:
            raise ImageError(str(path), unidentified_reason(path)) from None
        except Exception as exc:  # noqa: BLE001 - a broken first page raises TypeError, KeyError, ...
            raise ImageError(str(path), f"not a readable image ({type(exc).__name__}: {exc})") from None
    return PageCount(1)


def _walk_tiff_pages(img: Image.Image) -> PageCount:
    """Follow a TIFF's page chain to where it breaks (Pillow's page count gives up at the first
    bad link, which would lose every page of the file, or counts a page whose header it could
    not read, which then decodes as a black page and hides the pages after it)."""
    for index in range(1, _MAX_TIFF_PAGES):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                img.seek(index)
        except EOFError:
            return PageCount(index, _looped_back(img, index))
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on a bad page header
            return PageCount(index, f"the file's page chain breaks at this page; it and any after it cannot be "
                                    f"read ({type(exc).__name__}: {exc})")
        damaged = _damaged_page_header(caught)
        if damaged:
            return PageCount(index, f"the file's page chain breaks at this page (its page header is cut short: "
                                    f"{damaged}); it and any after it cannot be read")
    return PageCount(_MAX_TIFF_PAGES, f"more than {_MAX_TIFF_PAGES} pages: the page chain loops")


def _looped_back(img: Image.Image, pages: int) -> str:
    """Why the page after the last of `pages` is missing when the last page's link leads back to
    an earlier page (Pillow stops there as at the chain's end: the pages after it had been lost
    without a word); "" at a true end."""
    try:
        img.seek(pages - 1)
        following = img.tag_v2.next
        earlier = getattr(img, "_frame_pos", [])
    except Exception:  # noqa: BLE001 - the page read a moment ago: nothing more to learn
        return ""
    if not following or following not in earlier:
        return ""
    return (f"the file's page chain loops back to page {earlier.index(following) + 1} after page {pages}: the pages "
            "after it cannot be found (a damaged file)")


def _damaged_page_header(caught: list) -> str:
    """Pillow's warning, among those `caught` while it read a TIFF page's header, that the header
    ends before its entries do (a damaged page directory: "Corrupt EXIF data. Expecting to read
    12 bytes but only got 0"); "" when there is none."""
    return next((str(w.message).strip() for w in caught if "Corrupt EXIF data" in str(w.message)), "")


def load_page(ref: PageRef, dpi: int = DEFAULT_DPI) -> np.ndarray:
    """The page's pixels as uint8 grayscale; ImageError (naming the page) when unusable."""
    if ref.error:
        raise ImageError(ref.source, ref.error)
    suffix = ref.path.suffix.lower()
    if suffix == PDF_SUFFIX:
        return render_pdf_page(ref.path, ref.index, ref.dpi or dpi, ref.source)
    if ref.count > 1:
        try:
            with open_image(ref.path) as img:
                # Loading a frame reads its tags again (TiffImagePlugin's load_end): a damaged
                # tag warns there too, and the warning (Pillow's or libtiff's) must name the page.
                with exif_warnings_named(ref.source), libtiff_messages_named(ref.source):
                    try:
                        img.seek(ref.index)
                    except Exception as exc:  # noqa: BLE001 - Pillow counted the page, but its header is bad
                        raise ImageError(ref.source, f"the file's page chain breaks at this page; it cannot be read "
                                                     f"({type(exc).__name__}: {exc})") from None
                    check_image_size(img.width, img.height, ref.source)
                    img.load()
                return pil_to_gray(img.copy(), ref.source)
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageError(ref.source, f"image too large (decompression bomb guard): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow's TIFF decoder raises many types on broken frames
            raise ImageError(ref.source, f"not a readable image ({type(exc).__name__}: {exc})") from None
    try:
        return load_gray(ref.path)
    except ImageError as exc:
        raise ImageError(ref.source, exc.reason) from None


def pdf_render_scale(width_pt: float, height_pt: float, dpi: int) -> float:
    """Render scale (pixels per point) for a PDF page: `dpi`, or lower so that the bitmap,
    whose sides pdfium rounds up, stays within MAX_IMAGE_PIXELS and MAX_SIDE."""
    scale = dpi / 72.0
    if _bitmap_pixels(width_pt, height_pt, scale) <= MAX_IMAGE_PIXELS and max(width_pt, height_pt) * scale <= MAX_SIDE:
        return scale
    scale = min(scale, (MAX_IMAGE_PIXELS / (width_pt * height_pt)) ** 0.5, MAX_SIDE / max(width_pt, height_pt))
    # Whole pixels below the exact scale, then a hair less, so that pdfium's ceil lands on them:
    # at 14400 x 14400 pt the exact scale gives 10955^2 = 120,012,025 pixels, just over the cap.
    whole = min(max(1, math.floor(width_pt * scale)) / width_pt, max(1, math.floor(height_pt * scale)) / height_pt)
    return whole * (1 - 1e-9)


def pdf_dpi_for_size(path: Path, index: int, size: tuple[int, int]) -> int | None:
    """The resolution at which `render_pdf_page` draws the page `size` (width, height) pixels,
    None when none does or the page cannot be read. A PAGE file of a PDF page gives the pixels
    its coordinates count, not the --dpi it was transcribed at: the page is drawn at that."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            return None
        try:
            width_pt, height_pt = pdf[index].get_size()
        except (pdfium.PdfiumError, IndexError):
            return None
        finally:
            pdf.close()
    if width_pt <= 0 or height_pt <= 0:
        return None
    # pdfium rounds the sides up, so the dpi is at or just below this; the longer side says it best.
    guess = max(size) * 72.0 / max(width_pt, height_pt)
    for dpi in sorted({math.floor(guess), round(guess), math.floor(guess) - 1}, key=lambda d: abs(d - guess)):
        scale = pdf_render_scale(width_pt, height_pt, dpi) if dpi > 0 else 0
        if scale and (math.ceil(width_pt * scale), math.ceil(height_pt * scale)) == tuple(size):
            return dpi
    return None


def _bitmap_pixels(width_pt: float, height_pt: float, scale: float) -> int:
    return math.ceil(width_pt * scale) * math.ceil(height_pt * scale)


def render_pdf_page(path: Path, index: int, dpi: int = DEFAULT_DPI, source: str | None = None) -> np.ndarray:
    import pypdfium2 as pdfium

    source = source or f"{path}#p{index + 1}"
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            raise ImageError(source, _pdf_load_error(path, exc)) from None
        try:
            page = pdf[index]
            width, height = page.get_size()  # points (1/72 inch)
            if width <= 0 or height <= 0:
                raise ImageError(source, f"PDF page has no area ({width} x {height} pt)")
            # A poster-sized page at 300 dpi would be a decompression bomb: cap the pixels.
            scale = pdf_render_scale(width, height, dpi)
            # Said only when the resolution falls by a dpi or more: a cap a hair under (a page
            # 14,400 pt long) had been announced as "rendered at 300 dpi".
            if scale * 72.0 <= dpi - 1:
                log.warning("%s: page too large for %d dpi; rendered at %.0f dpi", source, dpi, scale * 72)
            bitmap = page.render(scale=scale, grayscale=True)
            gray = pil_to_gray(bitmap.to_pil(), source)
            if gray.min() == gray.max():
                _check_page_images(page, source)
            return gray
        except pdfium.PdfiumError as exc:
            raise ImageError(source, f"cannot render PDF page ({exc})") from None
        finally:
            pdf.close()


def _check_page_images(page, source: str) -> None:
    """ImageError naming the page when one of its images cannot be decoded. pdfium draws nothing
    for such an image (a scan's JPEG data damaged by bit rot or a download cut short), so the
    page rendered blank and was read as an empty page, exit 0. Asked of blank pages only: a
    page's scan is decoded again to find out. Only images on the page (not drawn beside it)
    and of no more pixels than hwr reads (MAX_IMAGE_PIXELS: pdfium decodes them whole, and
    refuses some that large) are asked."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = page.get_bbox()
    for found in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)):
        try:
            x0, y0, x1, y1 = found.get_bounds()
            width, height = found.get_px_size()
        except pdfium.PdfiumError:
            continue
        if x1 <= left or x0 >= right or y1 <= bottom or y0 >= top or width * height > MAX_IMAGE_PIXELS:
            continue
        try:
            # Left to its finalizer: closing a bitmap pdfium made warns, naming no file, that
            # it "is a potentially unsafe operation" (on every blank scanned page of a book).
            found.get_bitmap()
        except pdfium.PdfiumError:
            raise ImageError(source, "an image on this PDF page cannot be decoded (a damaged file?); the page "
                                     "renders blank") from None


def _init_page_worker(log_level: int | None = None) -> None:
    """Process-pool initialiser of prefetch_map: one OpenCV thread, the parent's logging, and
    gone with its parent."""
    single_threaded_opencv()
    init_worker_logging(log_level)
    exit_with_parent()


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
        pool = ProcessPoolExecutor(workers, mp_context=quiet_workers_context("spawn"),
                                   initializer=_init_page_worker, initargs=(level_for_workers(),))
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="hwr-pages")
    finished = False
    try:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        if finished or not processes:
            pool.shutdown(cancel_futures=True)  # threads cannot be stopped: the pages they hold finish
        else:
            stop_workers_now(pool)
