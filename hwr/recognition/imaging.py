"""Image loading and line normalisation: the one path every line image takes to the network.

Training, evaluation, transcription and the UI all call `normalize_line`, so a model sees the
same pixels at every stage. Convention for the network: float32 in [0, 1] with ink = 1 and
background = 0, so zero padding of a batch is indistinguishable from empty paper.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageOps, TiffImagePlugin

from hwr.errors import HwrError
from hwr.fileio import special_file_kind
from hwr.recognition.fill import Fill, around_a_line, fill_to_paper, find_fill, paper_for_fill
from hwr.recognition.image_formats import unidentified_reason
from hwr.recognition.libtiff_messages import libtiff_messages_named
from hwr.recognition.noise import without_pepper

log = logging.getLogger(__name__)
ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})

# Pages at 600 dpi are ~35 Mpx; anything far beyond is a decompression bomb or a mistake.
MAX_IMAGE_PIXELS = 120_000_000
MAX_SIDE = 60_000
# Pillow's own guard (warn above its limit, refuse above twice that) must not refuse a page
# hwr accepts. Raised once, here, never per call: pages load in threads (see check_image_size).
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageError(HwrError, ValueError):
    """An image could not be used; the message names the file and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass
class NormalizeConfig:
    """How a line image becomes network input; saved with each model."""

    line_height: int = 48
    # Margin kept around the ink box, as a fraction of the ink height.
    margin: float = 0.1
    # Lines wider than this (after resizing to line_height) are squeezed to fit: memory guard.
    max_width: int = 4096
    # Percentiles for contrast stretching: robust to specks and uneven paper.
    low_percentile: float = 2.0
    high_percentile: float = 98.0
    # Even out the paper's brightness before the stretch (flatten_background): phone photos.
    flatten_background: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NormalizeConfig:
        # Models saved before flatten_background existed were trained without it, and read best
        # as they were trained.
        d = {"flatten_background": False, **d}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    return f"<{type(source).__name__}>"


def pil_to_gray(img: Image.Image, source: str = "<image>") -> np.ndarray:
    """Any Pillow mode to a uint8 grayscale array (alpha composited on white, 16-bit rescaled)."""
    check_image_size(img.width, img.height, source)
    if hasattr(img, "getexif"):
        with exif_warnings_named(source):
            img = ImageOps.exif_transpose(img)
    if img.mode == "P" or (img.mode in ("L", "RGB") and "transparency" in img.info):
        # A transparent colour (PNG's tRNS: what optimisers make of an on/off alpha) is
        # transparency as an alpha channel is: the page had read as its hidden colour, often black.
        img = img.convert("RGBA")
    if img.mode == "La":  # premultiplied: Pillow converts it to LA only
        img = img.convert("LA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, _ground_for(img)), img)
    if img.mode in WIDE_MODES:
        return _wide_to_gray(img, source)
    if img.mode == "1":
        img = img.convert("L")
    if img.mode == "CMYK":
        return _cmyk_to_gray(img, source)
    if img.mode != "L":
        img = img.convert("RGB").convert("L")
    return np.asarray(img, dtype=np.uint8).copy()


def _cmyk_to_gray(img: Image.Image, source: str) -> np.ndarray:
    """A CMYK image as gray. Pillow takes every CMYK JPEG's inks as stored inverted (as Adobe's
    software writes them); one stored plainly decodes all black, and its page had read as
    empty, exit 0. Such an image is read with its inks inverted, and said so."""
    gray = np.asarray(img.convert("RGB").convert("L"), dtype=np.uint8).copy()
    if gray.max() >= 16:
        return gray
    turned = np.asarray(ImageChops.invert(img).convert("RGB").convert("L"), dtype=np.uint8).copy()
    if turned.min() == turned.max():
        return gray  # all ink either way: nothing tells the two apart
    log.warning("%s: a CMYK image whose inks decode all black; read with its inks inverted (stored without the "
                "inversion Adobe's software writes)", source)
    return turned


def _ground_for(rgba: Image.Image) -> tuple[int, int, int, int]:
    """What transparency is put on: white, as a viewer shows it, but for light writing on a
    transparent ground (white ink: on white it vanished, and the page read as empty), which goes
    on black, as dark paper; the polarity tests then read it as light ink on dark. A light solid
    part (a sheet cut out of a photo) is no writing, and goes on white."""
    pixels = np.asarray(rgba)
    shown = pixels[..., 3] > 127
    if 0 < shown.mean() < 0.5 and np.asarray(rgba.convert("L"))[shown].mean() > 200 and _stroke_like(shown):
        return 0, 0, 0, 255
    return 255, 255, 255, 255


def _stroke_like(mask: np.ndarray) -> bool:
    """Whether the pixels of `mask` are strokes rather than solid parts: under a third of them
    left by an erosion an eighth of the image across. A phone's cut-out of a sheet of paper,
    white and solid on transparency, is put on white as before (a review helper)."""
    scale = min(1.0, 512 / max(mask.shape))  # the look at 512 px: a large page's erosion costs nothing
    small = cv2.resize(mask.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) > 0.5
    if not small.any():
        return True  # strokes thinner than the look's pixels
    size = max(3, min(small.shape) // 8)
    inner = cv2.erode(small.astype(np.uint8), np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return inner.sum() < small.sum() / 3


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
# At most this many pixels at either end of a wide image's values may be left out of its
# stretch as stray (a hot or dead sensor pixel, a marker value an export left in a corner): a
# dot of writing is more, and flat paper stretched without it would turn its grain to speckle.
STRAY_PIXELS = 8


def _wide_to_gray(img: Image.Image, source: str) -> np.ndarray:
    """16-bit, 32-bit and float pixels stretched to uint8 between their darkest and lightest
    values, a few stray ones apart: one pixel of 65535 in a page of 8-bit values (or 1000 in a
    float page of 0-1) had squeezed the page into one or two gray levels, and it read as empty.
    float32 throughout: a 120-megapixel page in float64 had taken three times an 8-bit page's
    memory."""
    values = np.asarray(img)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        # NaN or infinity in a float image (a failed scan export): no scale to stretch by.
        raise ImageError(source, "the image holds pixels that are not numbers (NaN or infinity)")
    transparent = img.info.get("transparency")
    if isinstance(transparent, int) and values.dtype.kind == "u":
        # A 16-bit PNG's tRNS value: white, as alpha is composited on white.
        values = np.where(values == transparent, np.iinfo(values.dtype).max, values)
    return stretched_to_uint8(values)


def stretched_to_uint8(values: np.ndarray) -> np.ndarray:
    """Pixels of any range stretched to uint8 between their darkest and lightest values, a few
    stray ones apart (_stretch_range); one value everywhere is white paper."""
    lo, hi = _stretch_range(values.ravel())
    if hi <= lo:
        return np.full(values.shape, 255, np.uint8)
    gray = values.astype(np.float32)
    gray -= lo
    gray *= 255 / (hi - lo)
    np.clip(gray, 0, 255, out=gray)
    return np.rint(gray, out=gray).astype(np.uint8)


def _stretch_range(flat: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of a wide image's values: min and max, but for up to STRAY_PIXELS values at
    either end separated from the rest by a gap wider than the rest's whole range, when the
    paper (the median) then still lies in the outer quarter of the range at one end, as a page's
    paper does. Writing is more pixels than that; a page whose only ink is a dot is stretched
    whole (without it, its paper's grain would fill the range as speckle)."""
    full = lo, hi = float(flat.min()), float(flat.max())
    k = min(STRAY_PIXELS, (flat.size - 1) // 2)
    if k < 1 or hi <= lo:
        return full
    low = np.sort(np.partition(flat, k)[:k + 1]).astype(np.float64)
    high = np.sort(np.partition(flat, flat.size - k - 1)[flat.size - k - 1:]).astype(np.float64)
    core_lo, core_hi = low[-1], high[0]
    for c in range(k, 0, -1):  # the most strays first: several of one value sit together
        rest = high[-c - 1] - core_lo
        if rest > 0 and high[-c] - high[-c - 1] > rest:
            hi = float(high[-c - 1])
            break
    for c in range(k, 0, -1):
        rest = core_hi - low[c]
        if rest > 0 and low[c] - low[c - 1] > rest:
            lo = float(low[c])
            break
    if (lo, hi) == full:
        return full
    paper = (float(np.median(flat[::max(1, flat.size // 1_000_000)])) - lo) / (hi - lo)
    return (lo, hi) if not 0.25 < paper < 0.75 else full


def check_image_size(width: int, height: int, source: str) -> None:
    """Refuse empty and oversized images from their header, before any pixel is decoded.

    hwr checks sizes itself instead of tuning Pillow's process-wide `Image.MAX_IMAGE_PIXELS`
    per call: pages load in threads, and one thread restoring the limit would make another
    thread's large, valid page fail. Pillow's own guard (2x its limit) still raises at open
    for absurd headers; load_gray turns that into the same ImageError."""
    if width <= 0 or height <= 0:
        raise ImageError(source, "image is empty (0 pixels)")
    # Name the limit that was hit: a 70000x10 strip is far below the pixel limit.
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageError(source, f"image too large ({width}x{height} pixels; the limit is "
                                 f"{MAX_SIDE:,} pixels a side)")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(source, f"image too large ({width}x{height} pixels; the limit is "
                                 f"{MAX_IMAGE_PIXELS:,} pixels)")


def load_gray(source) -> np.ndarray:
    """Load a path, bytes, PIL image or array as uint8 grayscale, with clear errors naming the file.

    Raises ImageError for anything else (None, numbers, ...), unreadable or oversized files,
    closed PIL images and arrays that are not images (see array_to_gray)."""
    name = _describe(source)
    if isinstance(source, np.ndarray):
        return array_to_gray(source, name)
    if isinstance(source, Image.Image):
        return _pil_source_to_gray(source, name)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):  # any path object, as open() takes
        source = Path(name)
        check_file(source, name)
    else:
        raise ImageError(name, "not an image: expected a file path, bytes, a PIL image or a numpy array")
    return _opened(source, name, decode=True)


def check_image_file(path: str | Path) -> tuple[int, int]:
    """Raise ImageError (naming the file) for what `load_gray` would refuse from the file's
    header alone: missing, a folder, empty, not an image format, too large. No pixel is decoded
    (a tenth of a millisecond a file), so a data set can be checked whole before a long run;
    a file cut short after its header is still found only when it is read.

    Returns (width, height) as `load_gray` will give it: upright, after the EXIF orientation."""
    name = _describe(path)
    check_file(Path(path), name)
    return _opened(path, name, decode=False)


def check_file(path: Path, name: str) -> None:
    """ImageError naming `name` unless `path` is a regular file with something in it."""
    if not path.exists():
        raise ImageError(name, "file not found")
    if path.is_dir():
        raise ImageError(name, "is a directory, not an image")
    if not path.is_file():
        # A FIFO, socket or device: its size says nothing, and reading a FIFO would wait forever.
        raise ImageError(name, f"is {special_file_kind(path) or 'not a regular file'}, not an image")
    if path.stat().st_size == 0:
        raise ImageError(name, "file is empty (0 bytes)")


# The EXIF orientation tag, and the orientations that turn the image a quarter (exif_transpose
# swaps its sides).
ORIENTATION_TAG = 0x0112
_QUARTER_TURNS = {5, 6, 7, 8}


def pixels_digest(gray: np.ndarray) -> str:
    """A digest of an image's pixels (shape and type included): the same image, however it
    was named or reached, has the same digest."""
    digest = hashlib.sha256(f"{gray.shape}|{gray.dtype}".encode())
    digest.update(np.ascontiguousarray(gray).tobytes())
    return digest.hexdigest()


# catch_warnings swaps module-wide state: two threads inside it at once could leave warnings
# swallowed for good, so the EXIF reads take turns (they are short).
_EXIF_READ_LOCK = threading.Lock()


@contextmanager
def exif_warnings_named(name: str) -> Iterator[None]:
    """Pillow warns about damaged EXIF ("Corrupt EXIF data. Expecting to read 12 bytes...") with
    no file name, which in a batch of thousands says nothing; log it naming the file instead.
    The image is still read: Pillow keeps the tags it could parse."""
    caught: list = []
    try:
        with _EXIF_READ_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        reissue_warnings(caught, name)


def reissue_warnings(caught: list, name: str) -> None:
    """Pillow's warnings `caught` while reading the file `name`, told again: those about the file
    (damaged tags, its size) naming it, others as they came."""
    for warning in caught:
        if "EXIF" in str(warning.message):
            log.warning("%s: damaged image tags (EXIF or TIFF), read as far as they go (%s)",
                        name, str(warning.message).strip())
        elif issubclass(warning.category, Image.DecompressionBombWarning):
            log.warning("%s: %s", name, str(warning.message).strip())
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


@contextmanager
def open_image(source) -> Iterator[Image.Image]:
    """`Image.open`, a path read through a file object: Pillow memory-maps an uncompressed
    image opened by name, and maps a TIFF whose orientation tag turns it a quarter with its
    upright size (Pillow 12.3: scrambled stripes and no error); a file object is read, not mapped.
    What libtiff says meanwhile names the file (`libtiff_messages_named`)."""
    name = _describe(source)
    # libtiff speaks while a compressed TIFF is opened and decoded, in the caller's block too.
    with libtiff_messages_named(name):
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fp:
                with exif_warnings_named(name):  # a JPEG without a JFIF resolution reads its EXIF here
                    img = Image.open(fp)
                with img:
                    yield img
        else:
            with exif_warnings_named(name):
                img = Image.open(source)
            with img:
                yield img


def _opened(source, name: str, decode: bool):
    """Open an image file (or file-like object); with decode, its pixels as uint8 gray, else
    its upright (width, height) from the header."""
    try:
        with open_image(source) as img:
            check_image_size(img.width, img.height, name)
            if not decode:
                # A PNG's getexif() decodes the whole image when its eXIf chunk is not in the
                # header: only header EXIF is read here (JPEG, TIFF, WebP; a PNG's early eXIf).
                has_exif = img.format != "PNG" or "exif" in img.info
                with exif_warnings_named(name):
                    turned = has_exif and img.getexif().get(ORIENTATION_TAG) in _QUARTER_TURNS
                # The size as stored: Pillow 12 already gives a turned TIFF its upright size.
                width, height = ((img.tag_v2.get(TiffImagePlugin.IMAGEWIDTH, img.width),
                                  img.tag_v2.get(TiffImagePlugin.IMAGELENGTH, img.height))
                                 if img.format == "TIFF" else img.size)
                return (height, width) if turned else (width, height)
            # An animated GIF, WebP or PNG: its first frame is the image (as a still of it shows
            # it); said, since the writing may be on another frame. Not a TIFF (its pages are
            # pages: hwr.documents.pages) nor a phone's MPO JPEG (the photo, then a preview).
            if img.format in ANIMATION_FORMATS and getattr(img, "n_frames", 1) > 1:
                log.warning("%s: an animation of %d frames; only the first is read", name, img.n_frames)
            img.load()
            return pil_to_gray(img, name)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's text quotes its own guard, twice hwr's limit: say hwr's, as check_image_size does.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"
        raise ImageError(name, f"image too large ({size}; the limit is {MAX_IMAGE_PIXELS:,} pixels)") from None
    except PermissionError as exc:
        raise ImageError(name, f"cannot read the file ({exc.strerror or exc})") from None
    except Image.UnidentifiedImageError:
        # Pillow's own text names its file object ("<_io.BufferedReader name=...>"), not the file.
        raise ImageError(name, unidentified_reason(source)) from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise TypeError, IndexError, ... on bad files
        raise ImageError(name, f"not a readable image ({type(exc).__name__}: {exc})") from None


def _pil_source_to_gray(img: Image.Image, name: str) -> np.ndarray:
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - a closed or broken PIL image raises anything
        raise ImageError(name, f"PIL image cannot be read ({type(exc).__name__}: {exc}); is it closed?") from None
    try:
        return pil_to_gray(img, name)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError(name, f"PIL image cannot be read ({type(exc).__name__}: {exc}); is it closed?") from None


def array_to_gray(arr: np.ndarray, source: str = "<array>") -> np.ndarray:
    """A numpy image (HxW, HxWx3 RGB, HxWx4 RGBA; bool, integer or float dtype) to uint8 gray.

    Pixels are read on the scale they were most likely written in (`_nominal_top`): 0-1 (floats,
    or integers 0 and 1: a mask; floats a little above 1 after a brightness change, up to their
    highest), 0-255 whatever the dtype, 10-, 12- or 16-bit integers, floats of -1 to 1; any
    other range is stretched between its darkest and lightest values, as a 16-bit or float file
    is (`_wide_to_gray`). Fixed scales of old (x255 only up to 1.0, /257 for uint16 alone, a clip
    at 255) had read such arrays as nearly black or white lines: empty text, surely. NaN or infinite
    values are refused (an all-NaN array would otherwise become a blank-looking image that
    reads as anything)."""
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError(source, f"unsupported array dtype {arr.dtype} (expected bool, integer or float pixels)")
    if arr.dtype == np.bool_:
        arr = np.where(arr, 255, 0).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(source, f"unsupported array shape {arr.shape}")
    if arr.size == 0:
        raise ImageError(source, "image is empty (0 pixels)")
    check_image_size(arr.shape[1], arr.shape[0], source)
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ImageError(source, "array holds NaN or infinite values")
    if arr.dtype != np.uint8:
        arr = _scaled_to_uint8(arr)
    if arr.ndim == 2:
        return pil_to_gray(Image.fromarray(arr, "L"), source)
    mode = "RGB" if arr.shape[2] == 3 else "RGBA"
    return pil_to_gray(Image.fromarray(np.ascontiguousarray(arr), mode), source)


def _scaled_to_uint8(arr: np.ndarray) -> np.ndarray:
    """array_to_gray's scale for a non-uint8 array; an RGBA array's alpha is scaled on its own."""
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.dstack([_scaled_to_uint8(arr[:, :, :3]), _scaled_to_uint8(arr[:, :, 3])])
    values = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # big-endian pixels as numbers
    lo, hi = float(values.min()), float(values.max())
    offset, top = (1.0, 2.0) if values.dtype.kind == "f" and -1.0 <= lo < 0.0 and hi <= 1.0 else (  # -1 to 1
        0.0, _nominal_top(values.dtype.kind, lo, hi))
    if top is None:  # negative pixels, or past any nominal scale: only the range tells
        return stretched_to_uint8(values)
    # float32, as _wide_to_gray: a page-sized array in float64 takes three times an 8-bit page's memory.
    scaled = values.astype(np.float32)
    scaled += offset
    scaled *= 255.0 / top
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.uint8)


# The white of integer pixels past 8 bits: 10-, 12- and 16-bit scans and sensors.
WIDE_WHITES = (1023, 4095, 65535)
# Floats up to this much above 1 are a 0-1 scale brightened a little (augmentation, a gain).
FLOAT_OVERSHOOT = 1.5


def _nominal_top(kind: str, lo: float, hi: float) -> float | None:
    """The value that is white on the scale an array's pixels were most likely written in, from
    its lowest and highest value: 1 (floats, a 0/1 mask), the highest a hair above 1, 255, the
    smallest of WIDE_WHITES that holds them; None past all of them, or below 0.

    A fixed scale, not the range: a blank line of paper 230-235 stretched to 0-255 had become
    ink (its grain read as letters), and a one-value alpha had become fully transparent."""
    if lo < 0:
        return None
    if hi <= 1 and (kind == "f" or hi == 1):
        return 1.0
    if kind == "f" and hi <= FLOAT_OVERSHOOT:
        return hi
    if hi <= 255:
        return 255.0
    if kind == "f":
        return None
    return next((float(white) for white in WIDE_WHITES if hi <= white), None)


# Gray levels: an image (or its 2-98% percentile band) spanning fewer is flat.
FLAT_RANGE = 8
# Ink covering under 2% of a line (wide margins) leaves both percentiles on the paper: the
# stretch then runs from the darkest pixel to the paper, over at least this many levels, so
# faint ink (gray 170 on white) is read as ink while a speck of dust (gray 230) stays paper.
# It had been absolute darkness (0 to 255), by which gray-170 ink fell below ink_bbox's threshold:
# the line read as blank, surely.
SPARSE_INK_MIN_RANGE = 96


def one_shade(gray: np.ndarray) -> bool:
    """True for a uint8 image with no strokes to read: all black, all white, a 1x1 crop."""
    return int(gray.max()) - int(gray.min()) < FLAT_RANGE


# Polarity (light_ink_on_dark). An image is inverted only when three tests agree, at about
# LINE_ROWS rows when it is shaped like a text line (LINE_SHAPE times wider than tall or more),
# at PAGE_ROWS when it may be a page (where a text line is still a few rows high):
# - the ground is dark: the median pixel (the ground covers most of a text image) is darker than
#   midway between the 2nd and 98th percentiles;
# - nothing light is a sheet: no connected light part covers LIGHT_REGION_MAX of the image (the
#   paper of a page photographed on a dark table, inside a black frame, or lit beside shade), nor
#   is a smaller one solid (sheet_like: a card far off on a dark desk, or a slip of paper with one
#   line on it);
# - the ink is light: the paper around each pixel is the median over POLARITY_WINDOW of the rows
#   (wider than any stroke, so shade is paper too), and of the pixels a quarter of the contrast
#   away from it, more lie above than below. A tie (strokes blurred into the paper) is looked at
#   again at twice the rows.
# The last test alone inverted 4-54 of 200 harder-set lines given black frames of 1-8 px or dark
# bands, and every synthetic page on a dark table. With all three, none of those lines or pages
# (bare, with a black border, on a table filling 3-81% of the photo) is inverted, nor any of
# 1,800 plain harder, struck and training lines, while 468 of the harder set's 600 lines
# inverted and 27 of 30 pages inverted are found; the rest are read as given (shaded photos, and
# lines whose light ink joins into one large part at this scale).
LINE_ROWS = 24
PAGE_ROWS = 128
LINE_SHAPE = 3
POLARITY_WINDOW = 0.375
LIGHT_REGION_MAX = 0.1
SHEET_MIN_SHARE = 0.02
SHEET_MIN_FILL = 0.6
SHEET_MIN_SIDE = 0.15
# A slip of paper with one line written on it, photographed on a dark desk (4:3 or 16:9, the slip
# a third to two thirds of the photo's width), is 3-12% of the photo high: under SHEET_MIN_SIDE, and
# often under SHEET_MIN_SHARE of it. It is a sheet too (slip_like) when it is STRIP_MIN_ROWS thick
# or more at the scale looked at (a stroke is a pixel or two thick once the image is shrunk
# STRIP_MIN_SHRINK times), STRIP_MIN_LENGTH of the photo long, clear of its edges across its
# thickness, and has writing inside. Without it, most such photos were inverted (bench/bench_desk.py,
# docs/line-normalisation.md).
STRIP_MIN_ROWS = 4
STRIP_MIN_LENGTH = 0.25
STRIP_MIN_SHRINK = 4
# A slip is one only where nothing else light shows, looked at 4 times finer (slips_alone).
SLIP_LOOK_ROWS = 4 * PAGE_ROWS
SLIP_ALONE_MAX = 0.001
# sheet_on_dark_ground takes the paper's level from the lightest thousandth of the photo (the slip
# can be under the lightest 2% that light_ink_on_dark's percentile looks at).
SHEET_PAPER_PERCENTILE = 99.9


def light_ink_on_dark(gray: np.ndarray) -> bool:
    """True for a uint8 image written light on a dark ground: chalk on a blackboard, a microfilm
    negative, a scan saved inverted."""
    if one_shade(gray):
        return False
    rows = polarity_rows(gray)
    for looked in (rows, 2 * rows):
        small = shrunk_to_rows(gray, looked)
        low, high, light_parts = light_parts_on_dark(small)
        if light_parts is None:  # a light ground: dark ink, or nothing to tell
            return False
        if light_parts[1:, cv2.CC_STAT_AREA].max(initial=0) > LIGHT_REGION_MAX * small.size:
            return False  # a sheet of paper (beside a dark table or in a frame, or half in shade)
        if sheets_among(light_parts, small, gray, (high - low) / 4):
            return False  # a small sheet (a card or a slip far off on a dark desk): solid, not strokes
        light, dark = ink_beside_paper(small, max(FLAT_RANGE, (high - low) / 4))
        if light != dark:
            return light > dark
    return False


def polarity_rows(gray: np.ndarray) -> int:
    """The rows light_ink_on_dark first looks at an image at: LINE_ROWS for a text line's shape,
    PAGE_ROWS for a page's."""
    return LINE_ROWS if gray.shape[1] >= LINE_SHAPE * gray.shape[0] else PAGE_ROWS


def strips_seen(gray: np.ndarray, small: np.ndarray) -> bool:
    """Whether `small`, `gray` shrunk, may hold a slip of paper (slip_like): `gray` is shaped like a
    photo, not a text line (whose light strokes, a negative's, join into bands), and was shrunk
    STRIP_MIN_SHRINK times or more (a stroke is then a pixel or two thick)."""
    return polarity_rows(gray) == PAGE_ROWS and gray.shape[0] >= STRIP_MIN_SHRINK * small.shape[0]


def light_parts_on_dark(small: np.ndarray, light: float = 98) -> tuple[float, float, np.ndarray | None]:
    """(low, high, stats): the 2nd and `light` percentiles of a uint8 image (its darkest and
    lightest pixels when they span under FLAT_RANGE: a few strokes on a wide ground), and
    cv2.connectedComponentsWithStats' stats of the parts lighter than midway between them, row 0
    the rest; stats is None when the median pixel is on the light side (a light ground)."""
    low, ground, high = np.percentile(small, (2, 50, light))
    if high - low < FLAT_RANGE:
        low, high = float(small.min()), float(small.max())
    middle = (low + high) / 2
    if ground >= middle:
        return low, high, None
    return low, high, cv2.connectedComponentsWithStats((small > middle).astype(np.uint8), connectivity=8)[2]


def sheets_among(parts: np.ndarray, small: np.ndarray, gray: np.ndarray, contrast: float) -> list[int]:
    """Rows of `parts` (stats of the light parts of `small`, `gray` shrunk; row 0 the rest) that
    are sheets of paper: sheet_like, or, where strips_seen, slip_like (its writing `contrast` or
    more darker than its paper) when nothing else light shows in `gray` (slips_alone): a desk
    holds no light strokes, while a negative's light band (a title bar, a table's header, a label)
    has its light writing around it (a review helper's cases)."""
    rows = range(1, len(parts))
    sheets = [row for row in rows if sheet_like(parts[row], small.shape)]
    if not strips_seen(gray, small):
        return sheets
    slips = [row for row in rows if row not in sheets and slip_like(parts[row], small, contrast)]
    if slips and slips_alone(gray, small, parts[sheets + slips], contrast):
        return sorted(sheets + slips)
    return sheets


def slips_alone(gray: np.ndarray, small: np.ndarray, boxes: np.ndarray, contrast: float) -> bool:
    """Whether, at SLIP_LOOK_ROWS, under SLIP_ALONE_MAX of `gray` outside `boxes` (stats of parts
    of `small`, a pixel around each) is `contrast` or more lighter than its median: a negative's
    light strokes, too thin to show at PAGE_ROWS, show there; a desk's grain does not."""
    fine = shrunk_to_rows(gray, SLIP_LOOK_ROWS)
    light = fine.astype(np.int16) >= float(np.median(fine)) + 2 * contrast
    scale = fine.shape[0] / small.shape[0]
    for left, top, width, height in boxes[:, :4]:
        light[max(0, int((top - 1) * scale)):int((top + height + 1) * scale),
              max(0, int((left - 1) * scale)):int((left + width + 1) * scale)] = False
    return np.count_nonzero(light) <= SLIP_ALONE_MAX * light.size


def sheet_on_dark_ground(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the box around the sheets of paper (sheets_among: a page, a card, a slip)
    that a uint8 photo of a dark desk or table holds clear of its edges, tight to the paper at full
    size; None when the image is not such a photo: shaped like a text line (whose light strokes,
    a negative's, join into solid parts), a light ground, paper reaching an edge (a line half in
    shade or above a dark band, whose writing also lies outside the light part)."""
    if polarity_rows(gray) != PAGE_ROWS or one_shade(gray):
        return None
    small = shrunk_to_rows(gray, PAGE_ROWS)
    low, high, parts = light_parts_on_dark(small, light=SHEET_PAPER_PERCENTILE)
    if parts is None:
        return None
    sheets = [row for row in sheets_among(parts, small, gray, (high - low) / 4)
              if clear_of_the_edges(parts[row], small.shape)]
    if not sheets:
        return None
    x0, y0 = parts[sheets, cv2.CC_STAT_LEFT], parts[sheets, cv2.CC_STAT_TOP]
    x1, y1 = x0 + parts[sheets, cv2.CC_STAT_WIDTH], y0 + parts[sheets, cv2.CC_STAT_HEIGHT]
    factor = shrink_factor(gray, PAGE_ROWS)
    # At full size, a pixel of the small image around (the sheet's edge was blurred into the desk).
    top, left = max(0, (y0.min() - 1) * factor), max(0, (x0.min() - 1) * factor)
    return tight_to_paper(gray, (left, top, (x1.max() + 1) * factor, (y1.max() + 1) * factor), (low + high) / 2)


def clear_of_the_edges(part: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a connected part's box (a row of cv2.connectedComponentsWithStats' stats) touches
    none of the edges of an image of `shape`."""
    left, top = part[cv2.CC_STAT_LEFT], part[cv2.CC_STAT_TOP]
    return (left > 0 and top > 0 and left + part[cv2.CC_STAT_WIDTH] < shape[1]
            and top + part[cv2.CC_STAT_HEIGHT] < shape[0])


def tight_to_paper(gray: np.ndarray, box: tuple[int, int, int, int], middle: float) -> tuple[int, int, int, int] | None:
    """`box` (x0, y0, x1, y1) in `gray` narrowed to the rows and columns whose median is paper
    (lighter than `middle`), so that no strip of desk is left along its edges to read as ink; None
    when under half of them are (a part that looked solid only at the small size is no sheet)."""
    left, top, right, bottom = (int(value) for value in box)
    around = gray[top:bottom, left:right]
    paper_columns = np.flatnonzero(np.median(around, axis=0) > middle)
    paper_rows = np.flatnonzero(np.median(around, axis=1) > middle)
    if 2 * len(paper_columns) < around.shape[1] or 2 * len(paper_rows) < around.shape[0]:
        return None
    return (left + int(paper_columns[0]), top + int(paper_rows[0]),
            left + int(paper_columns[-1]) + 1, top + int(paper_rows[-1]) + 1)


def sheet_like(part: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a connected part (a row of cv2.connectedComponentsWithStats' stats) of an image of
    `shape` is a sheet: its bounding box covers SHEET_MIN_SHARE of the image or more and is at
    least SHEET_MIN_SIDE of the image's shorter side wide and high, and the part fills
    SHEET_MIN_FILL of the box (paper with dark writing on it). Strokes, even joined into a long
    word, fill a fraction of theirs, and a straight one (an l, a dash), which fills its box, is thin."""
    width, height = int(part[cv2.CC_STAT_WIDTH]), int(part[cv2.CC_STAT_HEIGHT])
    return (width * height >= SHEET_MIN_SHARE * shape[0] * shape[1]
            and min(width, height) >= SHEET_MIN_SIDE * min(shape)
            and part[cv2.CC_STAT_AREA] >= SHEET_MIN_FILL * width * height)


def slip_like(part: np.ndarray, small: np.ndarray, contrast: float) -> bool:
    """Whether a connected part of `small` (as sheet_like) is a slip of paper with a line written
    on it: a strip (strip_like) that fills SHEET_MIN_FILL of its box and encloses writing, pixels
    `contrast` or more below the box's median that do not reach the box's edge (4-connected). A
    light bar with nothing on it (a negative's black bar, a blackboard's ledge) encloses nothing,
    nor does a negative's underline joined to the letters above it: its dark is their ground."""
    left, top = int(part[cv2.CC_STAT_LEFT]), int(part[cv2.CC_STAT_TOP])
    width, height = int(part[cv2.CC_STAT_WIDTH]), int(part[cv2.CC_STAT_HEIGHT])
    if part[cv2.CC_STAT_AREA] < SHEET_MIN_FILL * width * height or not strip_like(part, small.shape):
        return False
    inside = small[top:top + height, left:left + width]
    dark = np.pad((inside <= np.median(inside) - contrast).astype(np.uint8), 1, constant_values=1)
    cv2.floodFill(dark, None, (0, 0), 2)  # the dark reaching the edge, through the padding
    return bool((dark == 1).any())


def strip_like(part: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether the bounding box of a connected part (as sheet_like) is shaped like a slip of
    paper's: STRIP_MIN_ROWS thick or more but under SHEET_MIN_SIDE of the image's shorter side,
    along its length STRIP_MIN_LENGTH of the image or more, and clear of the image's edges across
    its thickness (a light band along a negative's edge, where a scanner's lid showed, is no slip)."""
    left, top = int(part[cv2.CC_STAT_LEFT]), int(part[cv2.CC_STAT_TOP])
    width, height = int(part[cv2.CC_STAT_WIDTH]), int(part[cv2.CC_STAT_HEIGHT])
    if width >= height:
        length, off_the_edges = width / shape[1], 0 < top and top + height < shape[0]
    else:
        length, off_the_edges = height / shape[0], 0 < left and left + width < shape[1]
    thickness = min(width, height)
    return (off_the_edges and length >= STRIP_MIN_LENGTH
            and STRIP_MIN_ROWS <= thickness < SHEET_MIN_SIDE * min(shape))


def shrink_factor(gray: np.ndarray, rows: int) -> int:
    """The whole factor shrunk_to_rows shrinks `gray` by to bring it nearest above `rows` rows (1:
    not shrunk)."""
    return max(1, gray.shape[0] // rows)


def shrunk_to_rows(gray: np.ndarray, rows: int) -> np.ndarray:
    """`gray` shrunk by the whole factor that brings it nearest above `rows` rows (shrink_factor;
    OpenCV's fast path for INTER_AREA; the last few rows and columns are left out), or itself."""
    factor = shrink_factor(gray, rows)
    if factor == 1:
        return gray
    h, w = gray.shape[0] // factor, max(1, gray.shape[1] // factor)
    return cv2.resize(gray[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA)


def ink_beside_paper(gray: np.ndarray, contrast: float) -> tuple[int, int]:
    """(pixels lighter than their paper by more than `contrast`, pixels darker): the paper is
    the median over POLARITY_WINDOW of the rows around each pixel, the edges mirrored (repeated,
    a dark edge row would be a dark band as wide as the window)."""
    window = max(3, int(gray.shape[0] * POLARITY_WINDOW) | 1)
    half = window // 2
    border = cv2.BORDER_REFLECT_101 if min(gray.shape) > half else cv2.BORDER_REPLICATE  # reflecting needs room
    padded = cv2.copyMakeBorder(np.ascontiguousarray(gray), half, half, half, half, border)
    paper = cv2.medianBlur(padded, window)[half: half + gray.shape[0], half: half + gray.shape[1]]
    above = gray.astype(np.int16) - paper
    return np.count_nonzero(above > contrast), np.count_nonzero(above < -contrast)


def polarity_judged(gray: np.ndarray, fill: Fill | None) -> np.ndarray:
    """What light_ink_on_dark judges of a uint8 image whose flat fill (fill.find_fill) is `fill`:
    the line inside it when it was pasted around one (fill.around_a_line; a black pad around a
    negative's dark ground read as dark ink's paper, and a white one as a sheet), else the image."""
    return fill.polarity_view(gray) if fill is not None and around_a_line(gray, fill) else gray


# A large image (a page) is looked at about this many rows tall (shrunk_to_rows) for a fill
# around a line: at full size, finding none on a noisy page scan took ten times the polarity test.
FILL_LOOK_ROWS = 256


def dark_ink_on_light(gray: np.ndarray) -> np.ndarray:
    """The uint8 image as the recogniser and the segmenter read it, dark ink on light paper:
    inverted when it is written light on dark (light_ink_on_dark, judged inside a fill pasted
    around a line: polarity_judged), else itself. Both know dark ink only: the other way round
    they read the ground as one long stroke. An image under twice FILL_LOOK_ROWS rows is judged
    as readable_line judges it (but for a photo of a sheet on a dark desk, which readable_line
    judges cut out), so a padded negative line given to the page path (hwr transcribe in auto
    mode) is turned into dark ink before it is segmented, as the line path turns it."""
    small = shrunk_to_rows(gray, FILL_LOOK_ROWS)
    view = polarity_judged(small, find_fill(small))
    return 255 - gray if light_ink_on_dark(gray if view is small else view) else gray


def readable_gray(gray: np.ndarray) -> np.ndarray:
    """A uint8 page or line as the segmenter and the recogniser read it: dark ink on light paper
    (dark_ink_on_light) with pepper specks removed (noise.without_pepper). Pages get it before
    their lines are cut, because cutting a line along a sloping baseline interpolates the
    specks into grey blots that no longer stand out from their neighbours."""
    return without_pepper(dark_ink_on_light(gray))


def readable_line(gray: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A uint8 line image as the recogniser reads it (readable_gray) without a flat fill around it
    (fill.fill_to_paper), and x and y of its first pixel in `gray`. A fill sways the polarity
    test, so that is judged on the line inside it (a black pad around a negative's dark ground
    read as dark ink's paper), when the rest is a line with its own paper (fill.around_a_line).
    A photo of a slip or a card on a dark desk is read as the paper alone (sheet_on_dark_ground):
    the desk read as ink."""
    fill = find_fill(gray)
    # A flat fill is taken out as before (a pad cut off keeps the line's own margins); a desk
    # has grain, and no fill.
    sheet = sheet_on_dark_ground(gray) if fill is None else None
    if sheet is not None:
        x0, y0, x1, y1 = sheet
        crop = gray[y0:y1, x0:x1]
        line, x, y = readable_paper(crop, find_fill(crop))
        return line, x + x0, y + y0
    return readable_paper(gray, fill)


def readable_paper(gray: np.ndarray, fill: Fill | None) -> tuple[np.ndarray, int, int]:
    """readable_line of an image that is no sheet on a dark ground, whose fill is `fill` (find_fill)."""
    inverted = light_ink_on_dark(polarity_judged(gray, fill))
    dark_ink = 255 - gray if inverted else gray
    readable = without_pepper(dark_ink)
    if readable is not dark_ink:
        return fill_to_paper(readable)  # specks over a pad hid it: looked for again
    # The fill found is the fill of what is read (find_fill reads an image and its inverse alike,
    # but for ties of levels).
    return paper_for_fill(readable, fill.inverted() if fill is not None and inverted else fill)


# OpenCV's histogram counts in float32, exact up to 2**24 pixels a bin; larger images use numpy's.
CALCHIST_EXACT_PIXELS = 2**24


def uint8_percentiles(gray: np.ndarray, percentiles: tuple[float, ...]) -> list[np.float64]:
    """np.percentile's default (linear) percentiles of a uint8 image, read off its histogram.

    Sorting the pixels (np.percentile's partition of a float copy) was a quarter of a line's
    normalisation; a 256-bin histogram gives the same order statistics in a tenth of the time.
    """
    if gray.size < CALCHIST_EXACT_PIXELS:
        counts = cv2.calcHist([np.ascontiguousarray(gray)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(gray.ravel(), minlength=256)
    cumulative = np.cumsum(counts)
    last = gray.size - 1

    def order_statistic(rank: int) -> np.float64:
        # The rank-th smallest pixel (0-based): the first gray level whose count reaches past it.
        return np.float64(np.searchsorted(cumulative, rank, side="right"))

    values = []
    for percentile in percentiles:
        position = percentile / 100.0 * last
        below = int(np.floor(position))
        low, high = order_statistic(below), order_statistic(min(below + 1, last))
        fraction = position - below
        # numpy's own interpolation, to the last bit: from the nearer neighbour.
        values.append(high - (high - low) * (1 - fraction) if fraction >= 0.5 else low + (high - low) * fraction)
    return values


def ink_map(gray: np.ndarray, low_percentile: float = 2.0, high_percentile: float = 98.0) -> np.ndarray:
    """uint8 gray (dark ink on light paper) -> ink intensity in [0, 1], contrast-stretched.

    Float64 (float32 for a line of one shade); normalize_line's resize returns float32."""
    if one_shade(gray):
        # One shade everywhere (all black, all white, a 1x1 crop) has no strokes to read; as
        # absolute darkness an all-black line was one big blot that read as "1".
        return np.zeros(gray.shape, np.float32)
    lo, hi = uint8_percentiles(gray, (low_percentile, high_percentile))
    if hi - lo < FLAT_RANGE:  # a few ink pixels on wide paper: from the darkest of them to the paper
        lo = min(float(gray.min()), hi - SPARSE_INK_MIN_RANGE)
    # The stretch of each of the 256 gray levels, then looked up per pixel: the same values as
    # computing it per pixel, in a fraction of the time.
    levels = np.arange(256, dtype=np.float32)
    stretch = np.clip((hi - levels) / (hi - lo), 0.0, 1.0)
    return cv2.LUT(np.ascontiguousarray(gray), stretch.reshape(1, 256))


# The paper's brightness is estimated at 1/BACKGROUND_SCALE of the line's size (a blur of it is
# all that is kept, so detail is not lost; ~0.5 ms a line of the harder set), over a window of
# BACKGROUND_WINDOW line heights: wider than any stroke, narrower than a shadow's edge. Both
# chosen on a draw of the harder validation set that the model card does not report. Images
# taller than BACKGROUND_MAX_ROWS rows at that scale are shrunk further, so a whole page read
# as one line costs what its width does, not its area times its height.
BACKGROUND_SCALE = 4
BACKGROUND_WINDOW = 0.5
BACKGROUND_MAX_ROWS = 32
# The paper is taken to be at least this bright: dividing by a darker estimate (a near-black
# photo, the table beyond a page's edge) would stretch sensor noise into ink.
MIN_PAPER = 32


def flatten_background(gray: np.ndarray) -> np.ndarray:
    """uint8 gray (dark ink on light paper) -> uint8 gray with the paper evened out.

    A phone photo lights a line unevenly (a gradient, vignetting, the phone's shadow across
    part of it); one contrast stretch over the whole line then leaves the dark side's paper as
    faint ink and the light side's strokes weak. Each pixel is divided by the paper's brightness
    around it: a grey closing (the local maximum, so strokes vanish from it) of the line at a
    quarter of its size, smoothed and scaled back. Evenly lit paper, whiteboard and binarised
    lines come back (nearly) unchanged; a line of one shade comes back as it is (ink_map reads
    it as blank; evened out, its noise would be stretched into ink).
    """
    if one_shade(gray):
        return gray
    h, w = gray.shape
    scale = max(BACKGROUND_SCALE, h // BACKGROUND_MAX_ROWS)
    # Shrunk by a whole factor (OpenCV's fast path for INTER_AREA, a quarter of the time of a
    # fractional one) from the largest part of the line that factor divides; the last few rows
    # and columns take the paper of their neighbours.
    rows, cols = max(1, h // scale), max(1, w // scale)
    whole = gray[: min(h, rows * scale), : min(w, cols * scale)]
    small = cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA)
    size = max(3, int(round(h / scale * BACKGROUND_WINDOW)) | 1)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
    paper = cv2.GaussianBlur(paper, (0, 0), size / 4)
    paper = cv2.resize(paper, (whole.shape[1], whole.shape[0]), interpolation=cv2.INTER_LINEAR)
    paper = cv2.copyMakeBorder(paper, 0, h - whole.shape[0], 0, w - whole.shape[1], cv2.BORDER_REPLICATE)
    # No pixel brighter than its paper (the blur and the upscaling undershoot at edges).
    paper = np.maximum(np.maximum(paper, gray), MIN_PAPER)
    return cv2.divide(gray, paper, scale=255)


def ink_bbox(ink: np.ndarray, threshold: float = 0.35) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1, exclusive) of pixels above threshold, or None if blank."""
    mask = ink > threshold
    if not mask.any():
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@dataclass
class LineGeometry:
    """Where the normalised line came from: its crop offset in the source image and the resize
    factors, so positions found on the network's input (word boxes) map back to the source."""

    x_offset: float = 0.0
    y_offset: float = 0.0
    x_scale: float = 1.0  # normalised pixels per source pixel, horizontally
    y_scale: float = 1.0

    def to_source_x(self, x: float) -> float:
        return self.x_offset + x / self.x_scale


# The fewest rows a line image may have: a sliver has no line of writing to read (the shipped
# model read lines shrunk whole to 8 rows at 84% CER; a tight crop of 5 rows still holds a
# few-pixel x-height).
MIN_LINE_ROWS = 5


def normalize_line(source, config: NormalizeConfig | None = None) -> np.ndarray:
    """Line image (any source) -> float32 (line_height, W) array, ink = 1, cropped and resized."""
    return normalize_line_with_geometry(source, config)[0]


def single_threaded_opencv(*_) -> None:
    """Worker-process initialiser: one OpenCV thread. OpenCV's own pool defaults to every core,
    so N worker processes would each start one thread per core; the workers are the parallelism."""
    cv2.setNumThreads(1)


def normalize_line_with_geometry(source, config: NormalizeConfig | None = None) -> tuple[np.ndarray, LineGeometry]:
    """`normalize_line`, plus the crop and scale that map normalised x back to source pixels."""
    config = config or NormalizeConfig()
    # Specks go before the ink box is looked for: all over a noisy line image, they put the box
    # at its edges, and the network read them as letters (noise.without_pepper). A data set's
    # padding or a polygon's mask around the line, flat white or black, became part of its ink
    # box and turned its paper into ink (hwr.recognition.fill).
    loaded = load_gray(source)
    if loaded.shape[0] < MIN_LINE_ROWS:
        # A sliver (a segmenter's bad crop, one row of a line) stretched to the network's height
        # became stripes, read as "IlI1I..." at middling confidence: a line has more rows.
        raise ImageError(_describe(source), f"{loaded.shape[0]} px high: too thin to hold a line of writing (at "
                                            f"least {MIN_LINE_ROWS} rows)")
    gray, fill_x, fill_y = readable_line(loaded)
    if config.flatten_background:
        gray = flatten_background(gray)
    ink = ink_map(gray, config.low_percentile, config.high_percentile)
    # Suppress faint paper texture before looking for the ink box.
    ink[ink < 0.1] = 0.0
    box = ink_bbox(ink)
    if box is None:
        return blank_line(config)
    x0, y0, x1, y1 = box
    margin = int(round(config.margin * (y1 - y0)))
    h, w = ink.shape
    x0, y0 = max(0, x0 - margin), max(0, y0 - margin)
    x1, y1 = min(w, x1 + margin), min(h, y1 + margin)
    crop = ink[y0:y1, x0:x1]
    out = resize_to_height(crop, config.line_height, config.max_width)
    # Scales from the actual output size: max_width may have squeezed x more than y.
    geometry = LineGeometry(float(fill_x + x0), float(fill_y + y0), out.shape[1] / crop.shape[1],
                            out.shape[0] / crop.shape[0])
    return out, geometry


def blank_line(config: NormalizeConfig) -> tuple[np.ndarray, LineGeometry]:
    """The network input of a line without ink: a blank line is valid input (it reads as empty
    text), a small blank strip."""
    return np.zeros((config.line_height, config.line_height // 2), np.float32), LineGeometry()


def resize_to_height(ink: np.ndarray, height: int, max_width: int) -> np.ndarray:
    h, w = ink.shape
    new_w = max(1, int(round(w * height / h)))
    new_w = min(new_w, max_width)
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    out = cv2.resize(ink, (new_w, height), interpolation=interp)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
