import os

import cv2
import numpy as np
import pytest
from PIL import Image

from hwr.recognition import imaging
from hwr.recognition.imaging import MIN_LINE_ROWS, ImageError, NormalizeConfig, load_gray, normalize_line

import bad_inputs
from helpers import render_line


def test_normalize_crops_to_ink_and_fixes_height(line_image):
    img = line_image("hello")
    padded = np.full((img.shape[0] + 100, img.shape[1] + 300), 255, np.uint8)
    padded[50 : 50 + img.shape[0], 150 : 150 + img.shape[1]] = img
    a = normalize_line(img, NormalizeConfig(line_height=32))
    b = normalize_line(padded, NormalizeConfig(line_height=32))
    assert a.shape[0] == b.shape[0] == 32
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    assert abs(a.shape[1] - b.shape[1]) <= 2  # white margins were cropped away
    assert a.mean() > 0.05  # ink is bright


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1"])
def test_every_pillow_mode_loads(tmp_path, line_image, mode):
    gray = line_image("mode test")
    img = Image.fromarray(gray)
    if mode == "I;16":
        img = Image.fromarray(gray.astype(np.uint16) * 257)
    elif mode == "RGBA":
        rgba = np.zeros(gray.shape + (4,), np.uint8)
        rgba[..., 3] = 255 - gray  # ink opaque black, paper transparent
        img = Image.fromarray(rgba, "RGBA")
    else:
        img = img.convert(mode)
    path = tmp_path / "x.png"
    img.save(path)
    out = normalize_line(path, NormalizeConfig(line_height=32))
    assert out.shape[0] == 32 and out.max() > 0.5


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_tiff_with_pixels_that_are_not_numbers_is_refused_naming_the_file(tmp_path, line_image, bad):
    pixels = line_image("float").astype(np.float32) / 255
    good, broken = tmp_path / "good.tif", tmp_path / "broken.tif"
    Image.fromarray(pixels).save(good)
    assert load_gray(good).max() == 255  # a float scan loads, stretched to 8 bits
    pixels[0, 0] = bad
    Image.fromarray(pixels).save(broken)
    with pytest.raises(ImageError, match="broken.tif: .*not numbers"):
        load_gray(broken)


def test_a_premultiplied_la_image_and_any_path_object_load(tmp_path, line_image):
    gray = line_image("premultiplied")
    la = Image.merge("LA", [Image.fromarray(np.zeros_like(gray)), Image.fromarray(255 - gray)]).convert("La")
    assert np.abs(load_gray(la).astype(int) - gray).max() <= 2  # was "conversion from La to L not supported"
    Image.fromarray(gray).save(tmp_path / "line.png")

    class Location:  # an os.PathLike that is no pathlib.Path, as open() takes
        def __fspath__(self):
            return str(tmp_path / "line.png")

    assert np.array_equal(load_gray(Location()), gray)


def test_a_transparent_colour_is_paper_as_an_alpha_channel_is(tmp_path, line_image):
    """A PNG optimiser writes an on/off alpha as a tRNS colour: a page of dark blue ink on
    transparent black had read as black, and the page as empty."""
    gray = line_image("clear")
    rgb = np.zeros(gray.shape + (3,), np.uint8)
    rgb[gray < 128] = (0, 0, 80)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(0, 0, 0))
    Image.fromarray(np.where(gray < 128, 40, 0).astype(np.uint8)).save(tmp_path / "l.png", transparency=0)
    for name in ("rgb.png", "l.png"):
        loaded = load_gray(tmp_path / name)
        assert np.median(loaded) == 255 and ((loaded < 128) == (gray < 128)).mean() > 0.99, name
    wide = np.where(gray < 128, 9000, 0).astype(np.uint16)  # a 16-bit tRNS value: no Pillow conversion keeps it
    Image.fromarray(wide).save(tmp_path / "wide.png", transparency=0)
    loaded = load_gray(tmp_path / "wide.png")
    assert np.median(loaded) == 255 and ((loaded < 128) == (gray < 128)).mean() > 0.99


def test_a_cmyk_jpeg_stored_without_adobes_inversion_is_read_inverted_and_said(tmp_path, line_image, caplog):
    """Pillow reads every CMYK JPEG as Adobe-inverted: one stored plainly decoded all black."""
    gray = line_image("inks")
    cmyk = Image.fromarray(gray).convert("RGB").convert("CMYK")
    cmyk.save(tmp_path / "adobe.jpg", quality=95)
    Image.fromarray(255 - np.asarray(cmyk), "CMYK").save(tmp_path / "plain.jpg", quality=95)
    Image.new("CMYK", (40, 20), (0, 0, 0, 255)).save(tmp_path / "black.jpg")
    for name in ("adobe.jpg", "plain.jpg"):
        loaded = load_gray(tmp_path / name)
        assert ((loaded < 128) == (gray < 128)).mean() > 0.98, name
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == [str(tmp_path / "plain.jpg")]
    assert load_gray(tmp_path / "black.jpg").max() < 16  # black either way: as it decodes


def test_white_writing_on_a_transparent_ground_is_not_put_on_white(tmp_path, line_image):
    """White ink on transparency vanished on the white it was put on: the page read as empty."""
    gray = line_image("white ink")
    rgba = np.full(gray.shape + (4,), 255, np.uint8)
    rgba[..., 3] = 255 - gray  # the writing opaque, the ground transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "white.png")
    loaded = load_gray(tmp_path / "white.png")
    assert ((loaded > 128) == (gray < 128)).mean() > 0.98  # light on dark: the polarity tests invert it
    rgba[..., :3] = 0  # dark writing, as before: on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "dark.png")
    assert ((load_gray(tmp_path / "dark.png") < 128) == (gray < 128)).mean() > 0.98


def test_a_sheet_cut_out_of_a_photo_is_put_on_white(tmp_path, line_image):
    """A phone's cut-out of a written sheet (white paper, solid, on transparency) had been put on
    black as if it were white ink (a review helper)."""
    gray = line_image("cut out")
    h, w = gray.shape
    rgba = np.zeros((3 * h, 2 * w, 4), np.uint8)  # the sheet a sixth of the canvas
    rgba[h:2 * h, w // 2:w // 2 + w, :3] = gray[..., None]
    rgba[h:2 * h, w // 2:w // 2 + w, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    loaded = load_gray(tmp_path / "cutout.png")
    assert (loaded[:h] == 255).all() and np.array_equal(loaded[h:2 * h, w // 2:w // 2 + w], gray)


@pytest.mark.parametrize("stray", [65535, -1000.0, 1000.0])
def test_a_stray_pixel_far_beyond_a_wide_images_values_does_not_squeeze_the_page(tmp_path, line_image, stray):
    """One hot pixel of 65535 in a page of 8-bit values (or 1000 in a float page of 0-1) had
    squeezed the page into one or two gray levels: it read as empty, exit 0."""
    gray = line_image("stray")
    if isinstance(stray, int):
        pixels = gray.astype(np.uint16)
    else:
        pixels = gray.astype(np.float32) / 255
    pixels[0, 0] = stray
    Image.fromarray(pixels).save(tmp_path / "page.tif")
    loaded = load_gray(tmp_path / "page.tif")
    assert np.array_equal(loaded[1:], gray[1:]) or np.abs(loaded[1:].astype(int) - gray[1:]).max() <= 1


def _as_array(gray: np.ndarray, form: str) -> np.ndarray:
    """An 8-bit line as a caller's array of another form (what a probe's arrays had read as empty)."""
    return {
        "float 0-1, one pixel a hair above": lambda g: np.where(np.arange(g.size).reshape(g.shape) == 0, 1.0001,
                                                                 g / 255.0),
        "float 0-1.05 (brightened)": lambda g: np.clip(g / 255.0 * 1.05, 0, 1.05),
        "float -1 to 1": lambda g: g / 127.5 - 1.0,
        "8-bit values in uint16": lambda g: g.astype(np.uint16),
        "10-bit uint16": lambda g: g.astype(np.uint16) * 4,
        "16-bit values in int32": lambda g: g.astype(np.int32) * 257,
        "big-endian 16-bit": lambda g: (g.astype(np.uint16) * 257).astype(">u2"),
        "int 0/1 mask": lambda g: (g > 127).astype(np.int64),
        "float32 0-255": lambda g: g.astype(np.float32),
    }[form](gray)


@pytest.mark.parametrize("form", ["float 0-1, one pixel a hair above", "float 0-1.05 (brightened)", "float -1 to 1",
                                  "8-bit values in uint16", "10-bit uint16", "16-bit values in int32",
                                  "big-endian 16-bit", "int 0/1 mask", "float32 0-255"])
def test_an_array_of_any_pixel_range_loads_as_its_8_bit_line(line_image, form):
    """Fixed scales (x255 only up to 1.0, /257 for uint16 alone, a clip at 255) had made these
    nearly black or white: each read as empty text with 0.99 confidence."""
    gray = line_image("arrays")
    loaded = load_gray(_as_array(gray, form))
    if form == "int 0/1 mask":
        assert np.array_equal(loaded, np.where(gray > 127, 255, 0))
    else:
        assert np.abs(loaded[1:].astype(int) - gray[1:]).max() <= 3, form  # [0, 0] is the stray of the first


def test_a_blank_line_as_an_array_of_a_wide_scale_stays_blank():
    """Stretched between its lowest and highest value, the grain of blank paper (230-235 of 255)
    had become ink, and the blank line was read as letters."""
    paper = np.random.default_rng(0).integers(230, 236, (40, 400)).astype(np.uint8)
    for blank in (paper.astype(np.float32), paper.astype(np.uint16) * 257, paper.astype(np.int32) * 4):
        assert np.abs(load_gray(blank).astype(int) - paper).max() <= 2, blank.dtype
        assert normalize_line(blank).max() == 0.0, blank.dtype


@pytest.mark.parametrize("dtype, white", [(np.uint16, 65535), (np.int32, 65535), (np.float32, 1.0)])
def test_an_rgba_arrays_alpha_keeps_its_scale_not_its_range(dtype, white):
    ink = np.zeros((20, 30, 4), dtype)
    ink[..., 3] = white  # opaque black everywhere but a half-transparent block
    ink[5:15, 10:20, 3] = white / 2
    gray = load_gray(ink)
    assert gray[0, 0] == 0 and 120 <= gray[10, 15] <= 135  # black at half opacity on white: mid gray
    floats = np.ones((20, 30, 4), np.float32)  # white, opaque: one alpha value, not stretched to 0
    floats[5:15, 5:25, :3] = 0.0
    assert load_gray(floats)[0, 0] == 255 and load_gray(floats)[10, 10] == 0


def test_a_wide_page_whose_only_ink_is_a_dot_is_stretched_whole():
    """The strays' rule never drops writing: ink rarer than the strays allowed is kept on flat
    paper (no range for a gap to exceed) and on grainy paper (cut, the grain would fill the range)."""
    rng = np.random.default_rng(0)
    flat = np.full((300, 300), 50000, np.uint16)
    flat[150, 150:155] = 0
    grainy = (50000 + rng.normal(0, 100, (300, 300))).astype(np.uint16)
    grainy[150, 150:155] = 1000
    for pixels in (flat, grainy):
        loaded = imaging.pil_to_gray(Image.fromarray(pixels))
        assert (loaded < 128).sum() == 5 and np.median(loaded) > 240


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".bmp"])
def test_other_formats(tmp_path, line_image, suffix):
    path = tmp_path / f"x{suffix}"
    Image.fromarray(line_image("fmt")).save(path)
    assert load_gray(path).ndim == 2


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match="nope.png: file not found"):
        load_gray(missing)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png: file is empty"):
        load_gray(empty)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(ImageError, match="corrupt.png: not a readable image"):
        load_gray(corrupt)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match="notes.png"):
        load_gray(text)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 3000), 255).save(path)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(ImageError, match="big.png: image too large"):
        load_gray(path)


def test_a_refused_size_names_the_limit_it_exceeds():
    with pytest.raises(ImageError, match=r"strip.png: image too large .*the limit is 60,000 pixels a side"):
        imaging.check_image_size(70_000, 10, "strip.png")
    with pytest.raises(ImageError, match=r"\(20000x20000 pixels; the limit is 120,000,000 pixels\)"):
        imaging.check_image_size(20_000, 20_000, "square.png")


def test_blank_image_gives_empty_strip():
    out = normalize_line(np.full((40, 200), 255, np.uint8), NormalizeConfig(line_height=32))
    assert out.shape[0] == 32 and out.max() == 0.0


def test_an_image_of_one_shade_has_no_ink_whatever_its_darkness():
    for shade, shape in ((0, (40, 200)), (128, (40, 200)), (0, (5, 5)), (255, (5, 500))):
        out = normalize_line(np.full(shape, shade, np.uint8), NormalizeConfig(line_height=32))
        assert out.shape[0] == 32 and out.max() == 0.0, (shade, shape)


@pytest.mark.parametrize("rows", [1, 4])
def test_a_line_image_too_thin_to_hold_writing_is_refused_by_name(tmp_path, rows):
    """A sliver of a line (a bad crop) stretched to the network's height had read as stripes:
    "IlI1I..." at middling confidence, a thousand letters for one row of a long line."""
    line = render_line("thin slices")
    middle = line.shape[0] // 2
    sliver = line[middle:middle + rows]
    with pytest.raises(ImageError, match=rf"<ndarray>: {rows} px high: too thin to hold a line of writing"):
        normalize_line(sliver)
    cv2.imwrite(str(tmp_path / "sliver.png"), np.tile(sliver, (1, 8)))
    with pytest.raises(ImageError, match=r"sliver.png: \d px high: too thin"):
        normalize_line(tmp_path / "sliver.png")
    normalize_line(line[middle - 2:middle - 2 + MIN_LINE_ROWS])  # from MIN_LINE_ROWS on, read as any line


def test_a_few_ink_pixels_on_wide_paper_still_count_as_ink():
    img = np.full((40, 2000), 250, np.uint8)
    img[15:25, 100:110] = 20  # 0.1% of the pixels: the 2-98% percentiles both see paper
    out = normalize_line(img, NormalizeConfig(line_height=32))
    assert out.max() > 0.9


def test_wide_line_is_capped():
    img = np.full((20, 5000), 255, np.uint8)
    img[5:15, :] = 0
    out = normalize_line(img, NormalizeConfig(line_height=32, max_width=1000))
    assert out.shape == (32, 1000)


# --- bad inputs (issue 21) ---------------------------------------------------------------------

def test_tiff_header_claiming_30000_square_pixels_is_refused_naming_the_file(tmp_path):
    path = bad_inputs.huge_tiff_header(tmp_path / "bomb.tif")
    # hwr's own limit, not Pillow's guard (twice it), which its text quoted
    with pytest.raises(ImageError, match=r"bomb.tif: image too large \(900,000,000 pixels; the limit is 120,000,000"):
        load_gray(path)


def test_oversized_image_is_refused_before_its_pixels_are_decoded(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (2000, 1000), 255).save(path)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 1_000_000)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded an oversized image"))
    with pytest.raises(ImageError, match="big.png: image too large"):
        load_gray(path)


def test_loading_never_touches_pillows_process_wide_limit_or_warning_filters(tmp_path, monkeypatch):
    """Pages load in threads: a per-call change to Image.MAX_IMAGE_PIXELS (or to the warning
    filters) that one thread restores would make another thread's large page fail."""
    import warnings

    path = tmp_path / "page.png"
    Image.new("L", (300, 200), 255).save(path)
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    during = []
    decode = imaging.pil_to_gray
    def watched(*args, **kwargs):
        during.append((Image.MAX_IMAGE_PIXELS, list(warnings.filters)))
        return decode(*args, **kwargs)

    monkeypatch.setattr(imaging, "pil_to_gray", watched)
    load_gray(path)
    assert during == [before] and (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before


def test_pillows_own_guard_never_refuses_a_page_hwr_accepts():
    """Set once at import: Pillow warns above its limit and refuses above twice that, so its
    limit must not sit below hwr's (a 600 dpi A3 scan, ~70 Mpx, is a page, not a bomb)."""
    assert Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS >= imaging.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("value, message", [
    (None, "not an image"), (7, "not an image"), (3.5, "not an image"),
    (np.array([[object(), object()]], dtype=object), "dtype object"),
    (np.full((20, 40), np.nan, np.float32), "NaN or infinite"),
    (np.full((20, 40), np.inf), "NaN or infinite"),
    (np.zeros((2, 3, 4, 5), np.uint8), "shape"),
    (np.zeros((0, 10), np.uint8), "empty"),
    (np.zeros((5, 5), np.complex64), "dtype complex64"),
])
def test_values_that_are_not_images_give_image_errors(value, message):
    with pytest.raises(ImageError, match=message):
        load_gray(value)


def test_closed_pil_image_gives_an_image_error(tmp_path):
    path = tmp_path / "x.png"
    Image.new("L", (30, 20), 0).save(path)
    img = Image.open(path)
    img.close()
    with pytest.raises(ImageError, match="closed"):
        load_gray(img)


def test_bool_arrays_read_as_black_and_white():
    arr = np.zeros((10, 20), bool)
    arr[:, :10] = True
    gray = load_gray(arr)
    assert gray.dtype == np.uint8 and gray[0, 0] == 255 and gray[0, 15] == 0


def test_the_file_checks_name_pipes_folders_and_empty_files_for_what_they_are(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    for name, reason in (("pipe.png", "is a pipe, not an image"), ("empty.png", "empty"), ("folder.png", "directory"),
                         ("missing.png", "not found")):
        with pytest.raises(ImageError, match=reason) as caught:
            imaging.check_image_file(tmp_path / name)
        assert name in str(caught.value)


def test_the_header_check_gives_the_size_load_gray_will_give_even_for_a_turned_photo(tmp_path):
    img = Image.new("L", (60, 20), 200)
    exif = img.getexif()
    exif[imaging.ORIENTATION_TAG] = 6  # the camera was held on its side: turn a quarter to show upright
    img.save(tmp_path / "turned.jpg", exif=exif)
    img.save(tmp_path / "plain.png")
    for name in ("turned.jpg", "plain.png"):
        gray = load_gray(tmp_path / name)
        assert imaging.check_image_file(tmp_path / name) == (gray.shape[1], gray.shape[0])
    assert imaging.check_image_file(tmp_path / "turned.jpg") == (20, 60)


def test_an_uncompressed_tiff_turned_a_quarter_by_its_orientation_tag_reads_upright(tmp_path):
    """Pillow 12.3 memory-maps such a file, opened by name, with its upright size: stripes of
    garbage and no error. Single pages and pages of a multi-page TIFF both read upright."""
    from PIL import TiffImagePlugin

    from hwr.documents.pages import load_page, page_refs

    rng = np.random.default_rng(0)
    upright = rng.integers(0, 255, (24, 70), np.uint8)
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[imaging.ORIENTATION_TAG] = 6  # stored a quarter turn off: shown after turning it clockwise
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    stored.save(tmp_path / "turned.tif", tiffinfo=tags)  # uncompressed, Pillow's default
    assert np.array_equal(load_gray(tmp_path / "turned.tif"), upright)
    assert imaging.check_image_file(tmp_path / "turned.tif") == (70, 24)
    stored.save(tmp_path / "pages.tif", tiffinfo=tags, save_all=True, append_images=[stored])
    refs = list(page_refs([tmp_path / "pages.tif"]))
    assert len(refs) == 2 and all(np.array_equal(load_page(ref), upright) for ref in refs)


def _lit_unevenly(gray: np.ndarray) -> np.ndarray:
    """A phone's light across a line: full on the left, 45% on the right."""
    light = np.linspace(1.0, 0.45, gray.shape[1], dtype=np.float32)[None, :]
    return (gray.astype(np.float32) * light).astype(np.uint8)


def test_flatten_background_evens_out_the_paper_and_keeps_the_ink(line_image):
    clean = line_image("uneven light")
    lit = _lit_unevenly(clean)
    flat = imaging.flatten_background(lit)
    assert flat.dtype == np.uint8 and flat.shape == lit.shape
    paper, ink = clean > 200, clean < 60
    # The dark side's paper was darker than the light side's ink would read after one stretch.
    assert lit[:, -20:][paper[:, -20:]].mean() < 130
    assert flat[paper].min() > 200 and flat[paper].mean() > 245
    assert flat[ink].mean() < 70  # strokes stay dark on both sides
    assert flat[:, -40:][ink[:, -40:]].mean() < 70


def test_flatten_background_leaves_even_paper_and_binarised_lines_alone(line_image):
    clean = line_image("even paper")
    binarised = np.where(clean < 128, 0, 255).astype(np.uint8)
    assert np.array_equal(imaging.flatten_background(binarised), binarised)
    assert np.abs(imaging.flatten_background(clean).astype(int) - clean.astype(int)).max() <= 3
    for shape in [(1, 1), (2, 7), (5, 3)]:  # lines smaller than the paper's estimate
        assert imaging.flatten_background(np.full(shape, 90, np.uint8)).shape == shape


def test_a_line_lit_unevenly_normalises_like_the_evenly_lit_one(line_image):
    clean = line_image("uneven light")
    lit = _lit_unevenly(clean)
    config = NormalizeConfig(line_height=32)
    even = normalize_line(clean, config)
    flattened = normalize_line(lit, config)
    plain = normalize_line(lit, NormalizeConfig(line_height=32, flatten_background=False))
    assert flattened.shape == even.shape
    assert np.abs(flattened - even).mean() < 0.03
    # Without it, the dark side's paper stays grey ink and its box is not the ink's.
    assert np.abs(plain[:, : even.shape[1]] - even[:, : plain.shape[1]]).mean() > 3 * np.abs(flattened - even).mean()


def test_a_model_saved_before_flatten_background_reads_lines_as_it_was_trained():
    legacy = NormalizeConfig(line_height=48).to_dict()
    del legacy["flatten_background"]
    assert NormalizeConfig.from_dict(legacy).flatten_background is False
    assert NormalizeConfig.from_dict(NormalizeConfig().to_dict()).flatten_background is True


def test_a_dark_line_of_one_shade_stays_blank_when_flattened():
    """Sensor noise on a covered lens or beyond a page's edge: no paper to even out."""
    rng = np.random.default_rng(0)
    for low, high in [(0, 7), (8, 14), (120, 127)]:
        noise = rng.integers(low, high, (48, 400)).astype(np.uint8)
        assert not normalize_line(noise, NormalizeConfig(line_height=32)).any()
    dark = rng.integers(0, 30, (48, 400)).astype(np.uint8)  # near black, a wider range: stretched as before
    assert imaging.flatten_background(dark).max() <= 255 * 30 // imaging.MIN_PAPER


def test_flatten_background_of_a_tall_image_works_at_a_bounded_size():
    page = np.full((3000, 200), 230, np.uint8)
    page[1000:1040, 50:150] = 20
    flat = imaging.flatten_background(page)
    assert flat.shape == page.shape and flat[1010, 100] < 40 and flat[10, 10] > 250


@pytest.mark.parametrize("exact_limit", [imaging.CALCHIST_EXACT_PIXELS, 1])  # OpenCV's histogram, then numpy's
def test_percentiles_from_the_histogram_equal_numpys(monkeypatch, exact_limit):
    monkeypatch.setattr(imaging, "CALCHIST_EXACT_PIXELS", exact_limit)
    rng = np.random.default_rng(5)
    sparse_ink = np.full((20, 300), 247, np.uint8)
    sparse_ink[rng.random(sparse_ink.shape) < 0.03] = 40
    one_ulp_apart = np.full((1, 27), 255, np.uint8)  # numpy interpolates from the nearer neighbour here
    one_ulp_apart[0, [0, 1, 3]] = [0, 126, 126]
    images = [rng.integers(0, 256, (7, 13), dtype=np.uint8), sparse_ink, np.array([[3]], np.uint8),
              rng.integers(120, 124, (40, 41), dtype=np.uint8), one_ulp_apart]
    for gray in images:
        percentiles = (0.0, 2.0, 37.3, 98.0, 100.0)
        expected = np.percentile(gray.astype(np.float32), percentiles)
        assert imaging.uint8_percentiles(gray, percentiles) == list(expected)  # to the last bit


@pytest.mark.parametrize("shape", [(49, 203), (51, 1001), (6, 402)])
def test_flatten_background_evens_out_lines_its_scale_does_not_divide_to_the_last_pixel(shape):
    # Paper lit from one side, no strokes: evened out everywhere, the rows and columns beyond
    # the part the shrink's whole factor divides too.
    shadowed = np.tile(np.linspace(150, 250, shape[1]), (shape[0], 1)).astype(np.uint8)
    flattened = imaging.flatten_background(shadowed)
    assert flattened.shape == shape and flattened.dtype == np.uint8
    assert flattened.min() >= 235
    assert np.abs(flattened[-3:].astype(int) - flattened[-4]).max() <= 3
    assert np.abs(flattened[:, -3:].astype(int) - flattened[:, [-4]]).max() <= 3


def test_an_animation_reads_its_first_frame_and_says_so(tmp_path, caplog):
    frames = [Image.new("L", (60, 20), 255), Image.new("L", (60, 20), 0)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    gray = load_gray(tmp_path / "anim.gif")
    assert gray.shape == (20, 60) and gray.min() == 255  # the first (blank) frame
    assert any("anim.gif: an animation of 2 frames; only the first is read" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    frames[0].save(tmp_path / "still.gif")
    load_gray(tmp_path / "still.gif")
    assert not caplog.records
    Image.init()  # the plugins, SAVE_ALL's entries among them, load when first needed
    if "AVIF" not in Image.SAVE_ALL:
        pytest.skip("this Pillow writes no animated AVIF")
    # An animated AVIF had lost its other frames without a word.
    frames[0].convert("RGB").save(tmp_path / "anim.avif", save_all=True, append_images=[frames[1].convert("RGB")])
    load_gray(tmp_path / "anim.avif")
    assert any("anim.avif: an animation of 2 frames" in r.getMessage() for r in caplog.records)


def test_damaged_exif_is_logged_with_the_file_name_and_the_image_still_reads(tmp_path, caplog, recwarn):
    path = bad_inputs.damaged_exif_jpeg(tmp_path / "scan 7.jpg")
    with caplog.at_level("WARNING", logger="hwr.recognition.imaging"):
        gray = load_gray(path)
        size = imaging.check_image_file(path)
    assert gray.shape == (50, 80) and size == (80, 50)
    damaged = [r.getMessage() for r in caplog.records if "damaged image tags" in r.getMessage()]
    assert len(damaged) == 2 and all(str(path) in message for message in damaged)
    assert not [w for w in recwarn if "EXIF" in str(w.message)]  # not also Pillow's nameless warning


def test_pillows_size_warning_names_the_file(tmp_path, caplog, recwarn, monkeypatch):
    """Between Pillow's limit and twice it, Pillow only warns, naming no file."""
    from PIL import Image

    path = tmp_path / "big scan.png"
    Image.new("L", (20, 10), 255).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # 200 pixels: a warning, not Pillow's error
    with caplog.at_level("WARNING", logger="hwr.recognition.imaging"), imaging.open_image(path):
        pass
    assert any(r.getMessage().startswith(str(path)) and "decompression bomb" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_faint_sparse_ink_on_wide_paper_is_ink_and_a_speck_of_dust_is_not():
    """Under 2% ink leaves both percentiles on the paper: gray-170 writing had been mapped by
    absolute darkness to 0.33, under ink_bbox's threshold, and the line read as blank, surely."""
    line = np.full((120, 400), 255, np.uint8)
    line[55:60, 20:200] = 170
    assert imaging.ink_map(line)[57, 100] > 0.8
    assert imaging.ink_bbox(imaging.ink_map(line)) == (20, 55, 200, 60)
    speck = np.full((120, 400), 255, np.uint8)
    speck[60:62, 100:102] = 230
    assert imaging.ink_bbox(imaging.ink_map(speck)) is None
    black = line.copy()
    black[55:60, 20:200] = 0
    assert imaging.ink_map(black)[57, 100] == 1.0 and imaging.ink_map(black)[0, 0] == 0.0


# --- polarity -------------------------------------------------------------------------------

def shaded(gray: np.ndarray) -> np.ndarray:
    """The line photographed under a light falling off from left to right (paper 250 -> 110)."""
    light = np.linspace(1.0, 0.45, gray.shape[1])[None, :]
    return (gray.astype(np.float64) * light).astype(np.uint8)


@pytest.mark.parametrize("text", ["The quick brown fox", "1 2 3", "il.", "MMMMWWWW"])
def test_light_ink_on_dark_is_told_from_dark_ink_on_light(text):
    from hwr.recognition.imaging import light_ink_on_dark

    gray = render_line(text)
    for dark_ink in (gray, np.pad(gray, 200, constant_values=255)):
        assert not light_ink_on_dark(dark_ink)
        assert light_ink_on_dark(255 - dark_ink)
    # Dark ink with dark edges (a scan's black frame, a band of shadow, a table beside the
    # sheet) or in shade stays as it is. (Light ink in shade is missed: left as given.)
    framed = cv2.copyMakeBorder(gray, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=0)
    banded = gray.copy()
    banded[-gray.shape[0] // 3:] = 40
    on_table = cv2.copyMakeBorder(np.pad(gray, 30, constant_values=255), 60, 60, 60, 60, cv2.BORDER_CONSTANT,
                                  value=50)
    # A card far off on a dark desk: the paper, a twentieth of the photo, is no stroke of light ink.
    card = np.pad(np.vstack([gray] * 3), 12, constant_values=255)
    far_off = cv2.copyMakeBorder(card, *[card.shape[0] * 2] * 2, *[card.shape[1] * 2] * 2, cv2.BORDER_CONSTANT,
                                 value=40)
    for dark_ink in (shaded(gray), framed, banded, on_table, far_off):
        assert not light_ink_on_dark(dark_ink)
    # Of these, only the card on a desk is cut out for the line path: a band or shade reaches the
    # image's edges, and the writing may lie in it.
    assert [imaging.sheet_on_dark_ground(image) is not None for image in (shaded(gray), framed, banded, far_off)] == [
        False, False, False, True]
    assert not light_ink_on_dark(np.zeros((40, 300), np.uint8))  # one shade: nothing to invert


@pytest.mark.parametrize("text", ["The quick brown fox", "Then the local governors, the deputies"])
@pytest.mark.parametrize("photo_aspect", [4 / 3, 16 / 9])
def test_a_slip_of_paper_photographed_on_a_dark_desk_stays_as_it_is(text, photo_aspect):
    """The slip, half the photo's width, is under a tenth of its height: too thin for a sheet,
    until a solid strip a few rows high at the scale looked at counted as one (imaging.strip_like)."""
    from hwr.recognition.imaging import dark_ink_on_light, light_ink_on_dark

    line = render_line(text)
    slip = np.pad(cv2.resize(line, (2 * line.shape[1], 2 * line.shape[0])), 8, constant_values=255)  # a phone's pixels
    width = 2 * slip.shape[1]
    height = int(width / photo_aspect)
    top, left = (height - slip.shape[0]) // 2, slip.shape[1] // 2
    noise = np.random.default_rng(0).normal(0, 6, (height, width))
    photo = np.clip(45 + noise + np.linspace(0, 25, width)[None], 0, 255).astype(np.uint8)
    photo[top:top + slip.shape[0], left:left + slip.shape[1]] = slip
    assert not light_ink_on_dark(photo)
    assert dark_ink_on_light(photo) is photo
    # The line path reads the slip alone: the desk would read as ink.
    line, x, y = imaging.readable_line(photo)
    assert abs(x - left) <= 1 and abs(y - top) <= 1
    assert abs(line.shape[0] - slip.shape[0]) <= 2 and abs(line.shape[1] - slip.shape[1]) <= 2
    assert normalize_line(photo).shape == normalize_line(slip).shape
    # The same line on a whole sheet, as a negative (a black page with light writing) is still found:
    # its strokes are no strip.
    page = np.full_like(photo, 255)
    page[top:top + slip.shape[0], left:left + slip.shape[1]] = slip
    assert light_ink_on_dark(255 - page)
    # So is it with a light band along its foot, where a scanner's lid showed: no slip, as it
    # reaches the edge.
    page[-height // 12:] = 0
    assert light_ink_on_dark(255 - page)


def test_a_line_on_a_flat_black_canvas_is_cut_off_it_whole_shade_and_all():
    """A flat fill around a line is taken off as before (fill.fill_to_paper), not cut out to the
    paper as a slip on a desk is: the paper's shaded end, darker than midway, would go with it."""
    line = render_line("Then the local governors")
    line = shaded(np.pad(cv2.resize(line, (2 * line.shape[1], 2 * line.shape[0])), 8, constant_values=255))
    canvas = np.zeros((int(2 * line.shape[1] * 3 / 4), 2 * line.shape[1]), np.uint8)
    top, left = (canvas.shape[0] - line.shape[0]) // 2, line.shape[1] // 2
    canvas[top:top + line.shape[0], left:left + line.shape[1]] = line
    out, x, y = imaging.readable_line(canvas)
    assert (x, y) == (left, top) and out.shape == line.shape


@pytest.mark.parametrize("bar_rows", [90, 180])
def test_a_negative_page_with_a_title_bar_is_still_inverted(bar_rows):
    """A negative's light title bar holds dark writing as a slip does, but light writing shows all
    around it (imaging.slips_alone); a desk shows none (a review helper's cases)."""
    from hwr.recognition.imaging import light_ink_on_dark, sheet_on_dark_ground

    page = np.full((2200, 1700), 255, np.uint8)
    texts = ["Then the local governors", "the deputies, and the", "king had set up"] * 4
    for top, text in zip(range(500, 2000, 150), texts):
        line = render_line(text)
        line = cv2.resize(line, (2 * line.shape[1], 2 * line.shape[0]))[:, :1500]
        page[top:top + line.shape[0], 100:100 + line.shape[1]] = line
    page[150:150 + bar_rows, 100:1600] = 0  # a black title bar with white writing in it
    title = 255 - render_line("THE EVENING NEWS")
    page[160:160 + title.shape[0], 200:200 + title.shape[1]] = title
    assert light_ink_on_dark(255 - page)
    assert sheet_on_dark_ground(255 - page) is None


@pytest.mark.parametrize("bar", ["underline", "black bar", "ledge"])
def test_a_light_bar_with_nothing_written_on_it_is_no_slip(bar):
    """A negative's underline or black bar, or a blackboard's ledge, is as solid as a slip and as
    thin, but encloses no writing: the writing stays light strokes on a dark ground, inverted, and
    the line path is not cut down to the bar (a review helper's cases: read as nothing)."""
    from hwr.recognition.imaging import light_ink_on_dark, sheet_on_dark_ground

    line = render_line("governors")
    line = cv2.resize(line, (7 * line.shape[1], 7 * line.shape[0]))
    page = np.full((line.shape[0] + 300, line.shape[1] + 200), 255, np.uint8)
    page[100:100 + line.shape[0], 100:100 + line.shape[1]] = line
    below, thickness = 100 + line.shape[0] + (10 if bar == "underline" else 60), int(0.04 * page.shape[0])
    page[below:below + thickness, 100:100 + int(0.8 * line.shape[1])] = 0
    negative = 255 - page
    if bar == "ledge":  # chalk on a board of gray 50, a light ledge below the writing
        negative = np.where(negative < 128, 50, negative).astype(np.uint8)
    assert light_ink_on_dark(negative)
    assert sheet_on_dark_ground(negative) is None


def test_a_line_in_light_ink_is_normalised_as_in_dark_ink():
    from hwr.recognition.imaging import dark_ink_on_light

    gray = render_line("Negative film")
    assert dark_ink_on_light(gray) is gray
    assert np.array_equal(dark_ink_on_light(255 - gray), gray)
    assert np.array_equal(normalize_line(255 - gray), normalize_line(gray))


def test_a_file_of_no_image_format_is_named_without_pillows_file_object(tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"shopping list: milk, eggs\n")
    with pytest.raises(ImageError) as refused:
        load_gray(notes)
    assert str(refused.value) == (f"{notes}: not a readable image (not one Pillow can identify: another format, or "
                                  "a damaged file)")
