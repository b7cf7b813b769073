from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from hwr.recognition.image_formats import IMAGE_SUFFIXES, UNIDENTIFIED, UNREADABLE_FORMATS, unidentified_reason
from hwr.recognition.imaging import ImageError, load_gray


def test_browsers_jpeg_names_are_images(tmp_path):
    assert {".jfif", ".jpe", ".pnm"} <= IMAGE_SUFFIXES
    saved = tmp_path / "letter.jfif"
    Image.fromarray(np.full((20, 60), 200, np.uint8)).save(saved, format="JPEG")
    assert load_gray(saved).shape == (20, 60)


@pytest.mark.skipif(not features.check("jpg_2000"), reason="this Pillow has no OpenJPEG")
def test_jpeg_2000_masters_are_read(tmp_path):
    assert ".jp2" in IMAGE_SUFFIXES and ".jp2" not in UNREADABLE_FORMATS
    master = tmp_path / "master.jp2"
    Image.fromarray(np.full((20, 60), 90, np.uint8)).save(master)
    assert load_gray(master).shape == (20, 60)


def test_a_format_hwr_cannot_read_is_refused_by_name(tmp_path):
    photo = tmp_path / "IMG_0042.HEIC"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    with pytest.raises(ImageError) as refused:
        load_gray(photo)
    assert str(refused.value) == (f"{photo}: not a readable image: HEIC (a phone's photo format) files cannot be "
                                  "read here; convert it to PNG, JPEG or TIFF")


def test_other_files_pillow_cannot_identify_keep_the_plain_reason(tmp_path):
    assert unidentified_reason(tmp_path / "scan.png") == UNIDENTIFIED
    assert unidentified_reason(object()) == UNIDENTIFIED
    assert not set(UNREADABLE_FORMATS) & IMAGE_SUFFIXES
    assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in UNREADABLE_FORMATS)
    assert isinstance(unidentified_reason(Path("x.djvu")), str) and "DjVu" in unidentified_reason("x.djvu")
