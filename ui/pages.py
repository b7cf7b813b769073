"""An uploaded image becomes a `Page`: cut into lines by the page pipeline, or read as one line.

Also the page's round trip through JSON (the UI keeps the last result in the browser, so the
server holds no per-user state), the user's corrections, and the downloads.
"""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np

from hwr.documents.pages import id_within_name_limit
from hwr.documents.pipeline import MODES
from hwr.documents.pipeline import transcribe_image as read_image
from hwr.documents.writers import SUFFIXES, write_page_files
from hwr.recognition.charset import unwritable_symbol
from hwr.recognition.imaging import ImageError, load_gray
from hwr.recognition.model import Recognizer
from hwr.records import Line, Page, Recognition, Region, WordBox

from .uploads import UploadError, display_name

LAYOUTS = MODES  # the page pipeline's modes, under the name the UI shows


def transcribe_image(recognizer: Recognizer, gray: np.ndarray, layout: str = "auto", page_id: str = "page",
                     source: str = "") -> tuple[Page, str]:
    """Read an image (uint8 gray) as a page of lines or as one line; returns the page and the
    layout used ("page" or "line"). "auto" is the pipeline's rule (hwr.documents.prepare.layout_page
    and its second reading), the same for the CLI, this tab and the Batch tab."""
    if layout not in LAYOUTS:
        raise UploadError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    page, is_line = read_image(recognizer, gray, layout, page_id=page_id, source=source)
    return page, "line" if is_line else "page"


def mean_confidence(page: Page) -> float | None:
    confs = [line.recognition.confidence for line in page.lines if line.recognition is not None]
    return float(np.mean(confs)) if confs else None


def apply_corrections(page: Page, corrected: str) -> Page:
    """The user's edited text, one line of text per detected line, replaces what was read."""
    if not page.lines:
        if corrected.strip():
            raise UploadError("no text lines were detected, so there is nothing to correct")
        return page
    texts = corrected.replace("\r\n", "\n").split("\n")
    if len(texts) == len(page.lines) + 1 and texts[-1] == "":
        texts.pop()  # a final newline typed after the last line is not an extra line
    if len(texts) != len(page.lines):
        raise UploadError(f"the corrected text has {len(texts)} lines but {len(page.lines)} lines were detected; "
                          "keep one line of text per detected line")
    for number, text in enumerate(texts, start=1):
        if bad := _unwritable_chars(text):
            raise UploadError(f"line {number} of the corrected text holds {bad}, which no transcription holds "
                              "(pasted from elsewhere?); remove it")
    page = dataclasses.replace(page, lines=[dataclasses.replace(line) for line in page.lines])
    for line, text in zip(page.lines, texts):
        if line.recognition is not None and text == line.recognition.text:
            continue
        # A line a person has checked is certain: confidence 1 keeps writers' confidence
        # attributes truthful instead of carrying the machine's doubt over to the new text.
        line.text = text
        line.recognition = Recognition(text=text, confidence=1.0, char_confidences=[1.0] * len(text))
    return page


def _unwritable_chars(text: str) -> str:
    """The control characters (a tab aside), lone surrogates and line/paragraph separators in
    `text`, written \\xNN; "" when none. Saved as training lines, a NUL or a lone carriage return
    made a line the reader refuses (adapt then left it out in silence), and U+2028 split one line
    in two for any reader that splits lines as Python does; exported, they went raw into the XML."""
    bad = sorted({ch for ch in text if ch != "\t" and unwritable_symbol(ch)})
    return " ".join(ascii(ch) for ch in bad)


# The page JSON's digest (hwr_ui.collection.page_key) of the pixels the page was read from:
# a webcam or clipboard image always arrives as "image.png", so a name cannot tell two apart.
IMAGE_KEY = "image_key"


def page_to_dict(page: Page, image_key: str | None = None) -> dict:
    return dataclasses.asdict(page) | ({IMAGE_KEY: image_key} if image_key else {})


def page_from_dict(data: dict) -> Page:
    """Inverse of page_to_dict; JSON turned tuples into lists, so they are turned back."""
    if not isinstance(data, dict):  # the API takes any JSON here
        raise UploadError(f"not a page result from the transcribe step (a JSON {type(data).__name__})")
    try:
        lines = [_line_from_dict(d) for d in data.get("lines", [])]
        regions = [Region(str(r["id"]), [str(i) for i in r.get("line_ids", [])]) for r in data.get("regions", [])]
        orientation = int(data.get("orientation", 0))
        if orientation not in (0, 90, 180, 270):
            raise ValueError(f"orientation {orientation}: not a quarter turn")
        return Page(id=str(data["id"]), source=str(data.get("source", "")), width=int(data["width"]),
                    height=int(data["height"]), lines=lines, regions=regions, orientation=orientation)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UploadError(f"not a page result from the transcribe step ({exc!r})") from None


def _line_from_dict(d: dict) -> Line:
    rec = d.get("recognition")
    if rec is not None:
        rec = Recognition(**{**rec, "char_frames": [_numbers(f, 2, "a frame span") for f in rec.get("char_frames", [])],
                             "words": [_word(w) for w in rec.get("words", [])]})
        _text(rec.text, "text")
        _numbers([rec.confidence, rec.frame_width], 2, "confidence and frame width")
        _numbers(rec.char_confidences, len(rec.char_confidences), "character confidences")
    return Line(id=str(d["id"]), polygon=_points(d["polygon"], "polygon"), baseline=_points(d["baseline"], "baseline"),
                bbox=_numbers(d["bbox"], 4, "bbox"), text=_text(d.get("text", ""), "text"), recognition=rec)


# The page JSON comes back from the browser: geometry that is no numbers had failed in a writer
# as "something went wrong on the server", a traceback in the log.
def _numbers(values, count: int, what: str) -> tuple:
    values = tuple(values)
    if len(values) != count or not all(type(v) in (int, float) and math.isfinite(v) for v in values):
        raise ValueError(f"{what} {values!r}: not {count} finite numbers")
    return values


def _points(values, what: str) -> list[tuple]:
    return [_numbers(point, 2, f"a point of the {what}") for point in values]


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} {value!r}: not a text")
    return value


def _word(d: dict) -> WordBox:
    word = WordBox(**d)
    _text(word.text, "a word's text")
    _numbers([word.confidence, word.x0, word.x1], 3, "a word's confidence and extent")
    return word


def export_formats() -> list[str]:
    return list(SUFFIXES)


def download_stem(name: str) -> str:
    """A downloads' file name from a page id or an upload's name: its last path part, printable
    characters only, not hidden; "page" when nothing is left. The page JSON comes back from the
    browser, so its id is not to be trusted: a path in it ("../../x", "/home/me/models/x/config")
    had written the downloads there, replacing what was there. Cut to fit the file system's names
    as a page id of `hwr transcribe` is."""
    stem = "".join(c for c in re.split(r"[\\/]", name)[-1] if c.isprintable()).strip().lstrip(".")
    return id_within_name_limit(stem or "page")  # a 255-byte upload name leaves no room for ".alto.xml"


def export_page(page: Page, folder: Path, stem: str, formats: list[str] | None = None) -> list[Path]:
    """Write the page in each format (txt, JSON, PAGE XML, ALTO) as folder/<stem><suffix>, the
    stem made a plain file name (download_stem)."""
    # The page's source comes from the browser: a server path in it ("/etc/passwd") had become the
    # PAGE XML's image path, telling a web user which files the server holds.
    return write_page_files(page, folder, download_stem(stem), formats or export_formats(), locate_image=False)


def first_page(path: str) -> tuple:
    """(uint8 gray, the file's page count when it has more than one, else 0) of an upload: an
    image, or a PDF's first page. A scanned PDF dropped on this tab had been refused as "not
    one Pillow can identify: a damaged file" (a probe helper), where the Batch tab reads it."""
    from hwr.documents.pages import PDF_SUFFIX, load_page, page_refs

    if Path(path).suffix.lower() != PDF_SUFFIX:
        return load_gray(path), 0
    refs = list(page_refs([path]))
    if refs[0].error:
        raise ImageError(display_name(path), refs[0].error)
    return load_page(refs[0]), len(refs) if len(refs) > 1 else 0
