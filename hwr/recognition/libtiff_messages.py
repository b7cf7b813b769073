"""libtiff's error messages, told naming the file they are about.

Pillow decodes compressed TIFFs (LZW, Deflate, JPEG, CCITT fax) with libtiff, and libtiff's own
error handler prints straight to stderr under the name Pillow gives every file it hands over:
"tempfile.tif: Using code not yet in table." In a folder of thousands of scans that line says
neither which file is damaged nor whether anything came of it. Here libtiff's error handler is
replaced (once, process-wide) by one that hands each message to the file being read in that
thread (`libtiff_messages_named`): a damaged file's error then carries libtiff's words, and a
file read in spite of an error is logged as a warning naming it. A message from a read outside
any such block is printed as libtiff would have. (libtiff's warnings need nothing: Pillow turns
them off while it decodes.)

The handler is installed only where the libtiff that Pillow's decoder uses can be found (it is
loaded into this process: Linux and other systems with /proc/self/maps, or Pillow's own bundled
copy next to it); elsewhere libtiff prints as before. Torch-free."""
from __future__ import annotations

import ctypes
import glob
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# A message is formatted into this many bytes; libtiff's are one line.
_MESSAGE_BYTES = 1024
# A damaged file can say something for every strip: the first few different messages are told.
MAX_TOLD = 3


@dataclass(eq=False)  # told apart by identity: nested blocks may name one file twice
class TiffMessages:
    """What libtiff said while one file was read."""
    name: str
    errors: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)

    def errors_text(self) -> str:
        return "; ".join(self.errors[:MAX_TOLD]) + (f" (and {len(self.errors) - MAX_TOLD} more)"
                                                    if len(self.errors) > MAX_TOLD else "")


_reading = threading.local()  # .files: the stack of TiffMessages being read in this thread
_install_lock = threading.Lock()
_installed: list = []  # the ctypes callback, kept alive as long as libtiff may call it; [] when not installed
_tried = False

_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace").strip()


def _formatter():
    libc = ctypes.CDLL(None)
    vsnprintf = libc.vsnprintf
    # A va_list reaches a handler as a pointer on x86-64 and arm64 Linux (an array there, a
    # struct passed by reference here) and as a char* elsewhere: passed on as it came.
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    vsnprintf.restype = ctypes.c_int

    def formatted(fmt: bytes, args) -> str:
        out = ctypes.create_string_buffer(_MESSAGE_BYTES)
        vsnprintf(out, _MESSAGE_BYTES, fmt, args)
        return _text(out.value)
    return formatted


def _handler(formatted):
    def told(module: bytes | None, fmt: bytes, args) -> None:
        try:
            text = formatted(fmt, args)
            files = getattr(_reading, "files", None)
            if files:
                files[-1].add(text)
            else:  # libtiff's own form, "module: message" (Pillow's module is "tempfile.tif")
                module_text = _text(module)
                sys.stderr.write(f"{module_text + ': ' if module_text else ''}{text}\n")
        except Exception:  # noqa: BLE001 - an exception cannot cross back into C
            pass
    return _HANDLER(told)


def loaded_libtiffs() -> list[str]:
    """The paths of the libtiff copies loaded into this process ([] where /proc is not)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return sorted({line.split(None, 5)[-1].strip() for line in maps
                           if "libtiff" in os.path.basename(line.split(None, 5)[-1].strip())})
    except OSError:
        return []


def pillows_libtiff() -> str | None:
    """The path of the libtiff Pillow decodes with, when it is a shared library apart from
    Pillow's own module; None when it cannot be found (then nothing is replaced)."""
    from PIL import features

    if not features.check_codec("libtiff"):  # also loads Pillow's C module, and the libtiff it links
        return None
    loaded = loaded_libtiffs()
    import PIL

    # Pillow's wheels carry their own copy (pillow.libs/ beside PIL/ on Linux, PIL/.dylibs/ on
    # macOS): where another libtiff is loaded too (GDAL's, the system's), Pillow's is the one.
    # Compared resolved: the maps file holds real paths, PIL.__file__ the one it was imported by
    # (a virtual environment reached through a link; a review).
    site = os.path.dirname(os.path.dirname(os.path.realpath(PIL.__file__)))
    own = [path for path in loaded if os.path.dirname(os.path.realpath(path)) in (
        os.path.join(site, "pillow.libs"), os.path.join(site, "PIL", ".dylibs"))]
    if own or len(loaded) == 1:  # one loaded and not bundled: Pillow built against the system's
        return (own or loaded)[0]
    if loaded:  # several, none Pillow's own: which one decodes for Pillow cannot be told
        return None
    # Found where /proc is not (macOS).
    bundled = sorted(glob.glob(os.path.join(os.path.dirname(PIL.__file__), ".dylibs", "libtiff*")))
    return bundled[0] if bundled else None


def install() -> bool:
    """Replace libtiff's error handler (once per process); False where it stays libtiff's."""
    global _tried
    if _tried:  # every image opened asks: no lock once it is settled
        return bool(_installed)
    with _install_lock:
        if _tried:
            return bool(_installed)
        _tried = True
        try:
            path = pillows_libtiff()
            if path is None:
                return False
            libtiff = ctypes.CDLL(path)
            on_error = _handler(_formatter())
            libtiff.TIFFSetErrorHandler.argtypes = [_HANDLER]
            libtiff.TIFFSetErrorHandler.restype = ctypes.c_void_p
            libtiff.TIFFSetErrorHandler(on_error)
        except Exception as exc:  # noqa: BLE001 - no libc, a libtiff without the setter: libtiff's own handler stays
            log.debug("libtiff's messages stay libtiff's (%s)", exc)
            return False
        _installed.append(on_error)
        return True


@contextmanager
def libtiff_messages_named(name: str) -> Iterator[TiffMessages]:
    """While the block runs, what libtiff says in this thread is about the file `name`.

    When the block raises an OSError (Pillow's "decoder error -2", "image file is truncated")
    after libtiff said why, the OSError carries libtiff's words; when it ends well in spite of
    an error, the error is logged as a warning naming the file. Blocks nest: the innermost names
    the file (a page of a multi-page TIFF)."""
    install()
    said = TiffMessages(name)
    files = getattr(_reading, "files", None)
    if files is None:
        files = _reading.files = []
    files.append(said)
    try:
        yield said
    except OSError as exc:
        if said.errors and type(exc) is OSError:
            raise OSError(f"{exc}; libtiff: {said.errors_text()}") from exc
        raise
    except BaseException:
        if said.errors:  # the caller tells the failure its own way; libtiff's words with -v
            log.info("%s: libtiff: %s", name, said.errors_text())
        raise
    else:
        if said.errors:
            log.warning("%s: libtiff: %s (read as far as it goes)", name, said.errors_text())
    finally:
        files.remove(said)
