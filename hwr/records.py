"""Typed records that carry a line (and later a page) through every pipeline step.

image -> LineSample -> network -> Recognition; pages group Lines.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

ImageSource = Union[str, Path, np.ndarray, "Image.Image"]


@dataclass
class LineSample:
    """One line of a data set: an image (path or pixels) with its ground truth.

    Readers yield these; `image` is either a path (loaded lazily) or a grayscale uint8 array.
    `meta` holds reader-specific fields (writer id, font name, ...) used for breakdowns.
    """

    id: str
    text: str
    image: ImageSource
    meta: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        """What a message names: the line's file when it has one (what the user can open), else its id.

        A line whose pixels are already in memory names the file they came from (meta "file":
        an image path, or `page.xml#line` for a PAGE line cut from its page)."""
        if isinstance(self.image, (str, Path)):
            return str(self.image)
        return str(self.meta.get("file") or self.id)

    @property
    def row(self) -> str:
        """The list file's row that named this line (`lines.tsv:12`: a manifest, IAM lines.txt),
        or "" when no list file did."""
        source, line_no = self.meta.get("source"), self.meta.get("line_no")
        return f"{source}:{line_no}" if source and line_no is not None else ""

    def with_row(self, message: str) -> str:
        """`message` (about this line's image) with the row that named it, when one did: a bad
        image is named by its file, and the row is where the user fixes or removes it."""
        return f"{message} (listed at {self.row})" if self.row else message

    @property
    def files(self) -> list[str]:
        """The files this line was read from: its image, and what the readers name in meta
        ("source": the list, manifest or image; "gt"; "page_image"; "file": a PAGE XML as
        `page.xml#line`, or the image of a line already in memory)."""
        files = [str(self.image)] if isinstance(self.image, (str, Path)) else []
        files += [str(self.meta[key]) for key in ("source", "gt", "page_image") if self.meta.get(key)]
        named = str(self.meta.get("file") or "")
        line_mark = f"#{self.meta.get('line')}"
        if named:
            files.append(named[: -len(line_mark)] if "line" in self.meta and named.endswith(line_mark) else named)
        return files


@dataclass
class WordBox:
    """A recognised word located on its line (from CTC forced alignment).

    x0/x1 are in pixels of the source line image (before normalisation); pages map them to
    page coordinates through the line's box.
    """

    text: str
    confidence: float
    x0: float
    x1: float


@dataclass
class Recognition:
    """What the recognizer read on one line.

    `char_confidences[k]` is the posterior of the k-th output character; `char_frames[k]` is
    the (first, last) CTC frame that emitted it, in network output frames.
    `confidence` is the line confidence: the mean of the character confidences (1.0 for an
    empty line whose frames are all confidently blank).
    """

    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    char_frames: list[tuple[int, int]] = field(default_factory=list)
    # Scale from output frames to x pixels of the normalised line image.
    frame_width: float = 1.0
    # Filled by forced alignment when word boxes are asked for (see hwr.recognition.align).
    words: list[WordBox] = field(default_factory=list)


@dataclass
class Line:
    """A text line on a page: geometry in page pixel coordinates plus what was read."""

    id: str
    polygon: list[tuple[int, int]]
    baseline: list[tuple[int, int]]
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    text: str = ""
    recognition: Recognition | None = None

    @property
    def read_text(self) -> str:
        """The line's text as the outputs give it: what was read, else the text it came with."""
        return self.recognition.text if self.recognition else self.text


@dataclass
class Region:
    """A text region (block or column) as the segmenter found it: its lines, in reading order.

    `line_ids` name lines of the page (`Line.id`); the page's `regions` list is the reading
    order of the regions, so writers emit regions as found instead of re-guessing them."""

    id: str
    line_ids: list[str] = field(default_factory=list)


@dataclass
class Page:
    """A page image and its lines in reading order.

    `regions` is what the segmenter found (empty when the page did not come from it, e.g. a
    line image or a page rebuilt from JSON; writers then group lines by geometry)."""

    id: str
    source: str
    width: int
    height: int
    lines: list[Line] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    # Degrees the image was turned clockwise to read it (0, 90, 180, 270: a page scanned
    # sideways or upside down, hwr.documents.orientation). Geometry stays in the pixels of the
    # image as given; each baseline runs the way its line reads.
    orientation: int = 0

    @property
    def text(self) -> str:
        return "\n".join(line.read_text for line in self.lines)


# `#p<N>` (1-based) ends the source and id of a page of a multi-page document (a PDF, a
# multi-page TIFF): "ledger.tif#p3" (hwr.documents.pages.PageRef); its outputs are "ledger#p3.*".
DOCUMENT_PAGE_SUFFIX = re.compile(r"#p([0-9]+)$")


def document_page_number(name: str) -> int | None:
    """The page number a `#p<N>` suffix gives `name` (a page source, id or output stem), or None."""
    match = DOCUMENT_PAGE_SUFFIX.search(name)
    return int(match.group(1)) if match else None


def _source_file(source: str) -> tuple[Path, str] | None:
    """The file a page source names and its `#p<N>` ("" for a file of one page); None when it
    names no file (an upload's display name)."""
    match = DOCUMENT_PAGE_SUFFIX.search(source)
    for path, suffix in ((source, ""), *(((source[: match.start()], match.group(0)),) if match else ())):
        try:
            if Path(path).is_file():
                return Path(path), suffix
        except (OSError, ValueError):  # a name too long, a NUL: no file
            continue
    return None


def source_identity(source: str) -> str:
    """A page source as the same input spells it whatever the working folder or the path given
    (`scans/a.png`, `./scans/a.png`, `/home/me/scans/a.png`): the file's resolved path, with
    its `#p<N>`. A source that names no file (an upload's display name) stays as it is."""
    found = _source_file(source)
    return str(found[0].resolve()) + found[1] if found else source


def input_stamp(source: str) -> dict | None:
    """The size and modification time of the file a page source names (the whole file, for a
    page of a PDF or TIFF): what tells a page scanned again under its old name from the one
    read. None when it names no file."""
    found = _source_file(source)
    if found is None:
        return None
    try:
        stat = found[0].stat()
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# Where in the pipeline an input failed: values of FailedInput.stage.
FAILURE_STAGES = ("input", "read", "segment", "recognize", "write", "truth")


@dataclass(frozen=True)
class FailedInput:
    """One input that could not be used, and why: the one failure record of the CLI, the UI
    and the scorer (errors file, JSON outputs, summaries).

    `source` names the file (with `#pN` for a page of a document); `stage` is one of
    FAILURE_STAGES: "input" (listing inputs: an unreadable folder or list file), "read"
    (opening or decoding), "segment", "recognize", "write" (outputs), "truth" (ground truth);
    `message` says why, without the file name; `page_id` is the output id when one was given.
    """

    source: str
    stage: str
    message: str
    page_id: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"
