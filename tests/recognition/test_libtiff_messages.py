import ctypes
import logging
import struct
import threading

import numpy as np
import pytest
from PIL import Image

from hwr.recognition import libtiff_messages
from hwr.recognition.imaging import ImageError, load_gray
from hwr.recognition.libtiff_messages import install, libtiff_messages_named, pillows_libtiff

pytestmark = pytest.mark.skipif(not install(), reason="the libtiff Pillow decodes with cannot be reached here")


@pytest.fixture(scope="module")
def libtiff():
    """libtiff's own message functions, to make it speak as it does while decoding."""
    lib = ctypes.CDLL(pillows_libtiff())
    for told in (lib.TIFFError, lib.TIFFWarning):
        told.restype = None
    return lib


def lzw_tiff(path, damaged: bool) -> None:
    """A gray LZW-compressed TIFF (decoded by libtiff); damaged: its strip's codes scrambled
    after the first few, where libtiff's LZW decoder finds codes it has not made yet."""
    pixels = np.full((40, 200), 255, np.uint8)
    pixels[15:25, 20:180:7] = 0
    Image.fromarray(pixels).save(path, compression="tiff_lzw")
    if damaged:
        data = bytearray(path.read_bytes())
        with Image.open(path) as img:
            start, length = img.tag_v2[273][0], img.tag_v2[279][0]
        for at in range(start + 4, start + length):
            data[at] ^= 0x5A
        path.write_bytes(bytes(data))


def test_a_damaged_compressed_tiff_is_refused_naming_the_file_with_libtiffs_words(tmp_path, capfd):
    scan = tmp_path / "scan-0042.tif"
    lzw_tiff(scan, damaged=True)
    with pytest.raises(ImageError) as refused:
        load_gray(scan)
    assert str(refused.value).startswith(f"{scan}: not a readable image (OSError: ")
    assert "; libtiff: " in str(refused.value)
    # Nothing on stderr under Pillow's stand-in name for every file.
    assert "tempfile.tif" not in capfd.readouterr().err


def test_a_sound_compressed_tiff_reads_without_a_word(tmp_path, caplog, capfd):
    scan = tmp_path / "scan.tif"
    lzw_tiff(scan, damaged=False)
    with caplog.at_level(logging.DEBUG, logger="hwr"):
        gray = load_gray(scan)
    assert gray.shape == (40, 200) and gray[20, 20] == 0
    assert "libtiff" not in caplog.text and capfd.readouterr().err == ""


def test_an_error_in_a_read_that_still_succeeds_is_a_warning_naming_the_file(libtiff, caplog):
    with caplog.at_level(logging.WARNING), libtiff_messages_named("box/leaf-3.tif"):
        libtiff.TIFFError(b"tempfile.tif", b"Read error on strip %d", ctypes.c_int(7))
    assert caplog.messages == ["box/leaf-3.tif: libtiff: Read error on strip 7 (read as far as it goes)"]


def test_an_oserror_carries_what_libtiff_said_and_other_errors_pass_as_they_are(libtiff):
    with pytest.raises(OSError, match=r"^decoder error -2; libtiff: Using code not yet in table$"), \
            libtiff_messages_named("a.tif"):
        libtiff.TIFFError(b"LZWDecode", b"Using code not yet in table")
        raise OSError("decoder error -2")
    with pytest.raises(ValueError, match=r"^bad mode$"), libtiff_messages_named("a.tif"):
        libtiff.TIFFError(b"x", b"y")
        raise ValueError("bad mode")
    with pytest.raises(OSError, match=r"^decoder error -2$"), libtiff_messages_named("a.tif"):
        raise OSError("decoder error -2")  # libtiff said nothing: nothing to add


def test_many_errors_are_told_up_to_a_few(libtiff):
    with pytest.raises(OSError) as refused, libtiff_messages_named("a.tif"):
        for strip in range(6):
            libtiff.TIFFError(b"x", b"bad strip %d", ctypes.c_int(strip))
        raise OSError("decoder error -2")
    assert str(refused.value) == "decoder error -2; libtiff: bad strip 0; bad strip 1; bad strip 2 (and 3 more)"


def test_nested_blocks_name_the_innermost_file_and_threads_keep_their_own(libtiff, capfd):
    heard_elsewhere = []

    def another_thread():
        libtiff.TIFFError(b"elsewhere", b"said outside any block")
        with pytest.raises(OSError), libtiff_messages_named("other.tif") as said:
            libtiff.TIFFError(b"x", b"about the other file")
            raise OSError("decoder error -2")
        heard_elsewhere.extend(said.errors)

    with pytest.raises(OSError), libtiff_messages_named("book.tif") as outer:
        with pytest.raises(OSError), libtiff_messages_named("book.tif#p2") as page:
            libtiff.TIFFError(b"x", b"about page two")
            thread = threading.Thread(target=another_thread)
            thread.start()
            thread.join()
            raise OSError("decoder error -2")
        libtiff.TIFFError(b"x", b"about the book")
        raise OSError("decoder error -2")
    assert page.errors == ["about page two"] and outer.errors == ["about the book"]
    assert heard_elsewhere == ["about the other file"]
    # Outside any block libtiff's own form stays: "module: message" on stderr.
    assert capfd.readouterr().err == "elsewhere: said outside any block\n"


def test_a_tiff_page_that_libtiff_cannot_decode_names_the_page(tmp_path):
    from hwr.documents.pages import count_pages, load_page, page_refs

    book = tmp_path / "book.tif"
    sound = Image.fromarray(np.full((40, 200), 255, np.uint8))
    sound.save(book, compression="tiff_lzw", save_all=True, append_images=[sound.copy()])
    data = bytearray(book.read_bytes())
    with Image.open(book) as img:
        img.seek(1)
        start, length = img.tag_v2[273][0], img.tag_v2[279][0]
    data[start + 2:start + length] = struct.pack("B", 0xFF) * (length - 2)
    book.write_bytes(bytes(data))
    assert count_pages(book).pages == 2
    refs = list(page_refs([book]))
    load_page(refs[0])
    with pytest.raises(ImageError) as refused:
        load_page(refs[1])
    assert str(refused.value).startswith(refs[1].source + ": not a readable image (OSError: ")
    assert "; libtiff: " in str(refused.value)


def test_installing_twice_keeps_one_handler():
    assert install() and install()
    assert len(libtiff_messages._installed) == 1


def test_pillows_own_libtiff_is_the_one_hooked_where_another_is_loaded_too(monkeypatch):
    import os

    import PIL

    site = os.path.dirname(os.path.dirname(PIL.__file__))
    pillows = os.path.join(site, "pillow.libs", "libtiff-0123abcd.so.6")
    monkeypatch.setattr(libtiff_messages, "loaded_libtiffs", lambda: ["/usr/lib/gdal/libtiff.so.6", pillows])
    assert pillows_libtiff() == pillows
    monkeypatch.setattr(libtiff_messages, "loaded_libtiffs", lambda: ["/usr/lib/libtiff.so.6"])
    assert pillows_libtiff() == "/usr/lib/libtiff.so.6"  # Pillow built against the system's
    monkeypatch.setattr(libtiff_messages, "loaded_libtiffs", lambda: ["/a/libtiff.so.5", "/b/libtiff.so.6"])
    assert pillows_libtiff() is None  # which one Pillow decodes with cannot be told: none is hooked
