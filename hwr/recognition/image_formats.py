"""Which files are images to hwr: the suffixes it reads, and those of formats people keep
pages in that it cannot read (so that a folder of them fails naming the format, never
passes in silence). Torch-free."""
from __future__ import annotations

import warnings
from pathlib import Path

from PIL import features

# The formats hwr has read from the start. A file of another format beside one of these with its
# name is taken for a copy of that page, not a page of its own: a camera's raw file beside its
# JPEG, a JPEG 2000 access copy beside its TIFF master (hwr.documents.pages lists the one page).
USUAL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".pbm"})
# What Pillow opens with its own code or the libraries every Pillow wheel carries. ".jfif" and
# ".jpe" are JPEGs as browsers on Windows save them; ".pnm" the netpbm family's common name.
_ALWAYS = USUAL_SUFFIXES | {".jfif", ".jpe", ".pnm"}
# Read where this Pillow was built with the codec: JPEG 2000 (libraries' and archives' masters)
# with OpenJPEG, AVIF from Pillow 11.2 with libavif.
_BY_CODEC = {"jpg_2000": frozenset({".jp2", ".j2k", ".jpf", ".jpx", ".j2c", ".jpc"}),
             "avif": frozenset({".avif"})}
_KNOWN_FORMATS = {".jp2": "JPEG 2000", ".j2k": "JPEG 2000", ".jpf": "JPEG 2000", ".jpx": "JPEG 2000",
                  ".j2c": "JPEG 2000", ".jpc": "JPEG 2000", ".avif": "AVIF",
                  ".heic": "HEIC (a phone's photo format)", ".heif": "HEIF (a phone's photo format)",
                  ".djvu": "DjVu", ".djv": "DjVu", ".jxl": "JPEG XL",
                  ".dng": "camera raw (DNG)", ".cr2": "camera raw (CR2)", ".cr3": "camera raw (CR3)",
                  ".nef": "camera raw (NEF)", ".arw": "camera raw (ARW)", ".orf": "camera raw (ORF)"}


def _has(feature: str) -> bool:
    with warnings.catch_warnings():  # an older Pillow warns of a feature it does not know
        warnings.simplefilter("ignore")
        try:
            return bool(features.check(feature))
        except (ValueError, OSError):
            return False


# File suffixes read as images everywhere (folders, zips, data sets).
IMAGE_SUFFIXES = _ALWAYS.union(*(suffixes for feature, suffixes in _BY_CODEC.items() if _has(feature)))
# Image formats that pages come in and this Pillow cannot read, by suffix: what each is called.
UNREADABLE_FORMATS = {suffix: kind for suffix, kind in _KNOWN_FORMATS.items() if suffix not in IMAGE_SUFFIXES}
# Why a file Pillow cannot identify is refused (its own text names its file object, not the file).
UNIDENTIFIED = "not a readable image (not one Pillow can identify: another format, or a damaged file)"


# A TIFF's first bytes: little- and big-endian, classic and BigTIFF.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def starts_with(path: str | Path, prefixes: tuple[bytes, ...]) -> bool:
    """Whether the file's first bytes are one of `prefixes` (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(max(len(p) for p in prefixes))
    except OSError:
        return False
    return head.startswith(prefixes)


def is_tiff(path: str | Path) -> bool:
    """A TIFF by its name or by its bytes: its pages are pages whatever the file is called (a
    multi-page TIFF saved as .png had been read as its first page alone)."""
    return Path(path).suffix.lower() in {".tif", ".tiff"} or starts_with(path, _TIFF_MAGIC)


def unidentified_reason(source) -> str:
    """Why `source` (a path or a file object) was not read when Pillow could not identify it:
    the format by name where its suffix says it is one hwr cannot read, and a PDF under another
    name as one."""
    if isinstance(source, (str, Path)) and starts_with(source, (b"%PDF-",)):
        return "not a readable image: it is a PDF file under another name; name it .pdf to read its pages"
    kind = UNREADABLE_FORMATS.get(Path(source).suffix.lower()) if isinstance(source, (str, Path)) else None
    if kind is None:
        return UNIDENTIFIED
    return f"not a readable image: {kind} files cannot be read here; convert it to PNG, JPEG or TIFF"


def usual_first(path: Path) -> tuple[bool, str]:
    """Sort key: files of the usual formats before the others, then by name (the page image
    of a ground-truth file with a TIFF master and a JPEG 2000 copy beside it is the master)."""
    return Path(path).suffix.lower() not in USUAL_SUFFIXES, str(path)
