"""A flat fill around a line image (padding, a polygon's mask) is taken out before normalisation;
a line's own paper, evenly white or not, is left as it is."""
import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hwr.recognition.fill import fill_to_paper, find_fill
from hwr.recognition.imaging import (
    FILL_LOOK_ROWS,
    NormalizeConfig,
    dark_ink_on_light,
    normalize_line,
    normalize_line_with_geometry,
    readable_gray,
    readable_line,
)

from helpers import render_line


def scanned(text: str = "the quick brown fox", seed: int = 0) -> np.ndarray:
    """A line on gray, uneven, noisy paper, as a scan or photo gives it."""
    ink = 255 - render_line(text, size=28).astype(np.float32)
    height, width = ink.shape
    rng = np.random.default_rng(seed)
    paper = 190 + 25 * np.linspace(0, 1, width)[None, :] + rng.normal(0, 4, (height, width))
    return np.clip(paper - ink * 0.6, 0, 255).astype(np.uint8)  # ink of 30-50, never the black of a fill


def band_masked(gray, value):
    out = gray.copy()
    rows = np.flatnonzero((gray < 120).any(axis=1))
    wave = (np.sin(np.arange(gray.shape[1]) / 9.0) * 2).astype(int)
    below = np.arange(gray.shape[0])[:, None]
    out[(below < rows[0] - 3 + wave) | (below > rows[-1] + 3 + wave)] = value
    return out


@pytest.mark.parametrize("value", [255, 0, 128])
def test_padding_around_a_scanned_line_is_cut_off_and_the_line_reads_as_itself(value):
    line = scanned()
    pad = cv2.copyMakeBorder(line, 40, 50, 30, 300, cv2.BORDER_CONSTANT, value=value)
    out, x, y = fill_to_paper(pad)
    assert (x, y) == (30, 40) and np.array_equal(out, line)
    alone, framed = normalize_line(line), normalize_line(pad)
    assert framed.shape == alone.shape and np.abs(framed - alone).max() < 1e-6


def test_a_white_pad_around_near_white_grainy_paper_is_cut_off():
    """The pad ends at a step of a few levels there, as paper that a scan saturates does, but
    along straight edges. Left in, it set the paper's level, and the paper's grain read as ink."""
    ink = 255 - render_line("the quick brown fox", size=28).astype(np.float32)
    rng = np.random.default_rng(3)
    line = np.clip(247 + rng.normal(0, 3, ink.shape) - ink * 0.6, 0, 255).astype(np.uint8)
    pad = cv2.copyMakeBorder(line, 40, 50, 30, 300, cv2.BORDER_CONSTANT, value=255)
    out, x, y = fill_to_paper(pad)
    assert (x, y) == (30, 40) and np.array_equal(out, line)


def test_padding_saved_as_jpeg_is_cut_off_too():
    pad = cv2.copyMakeBorder(scanned(), 40, 40, 30, 200, cv2.BORDER_CONSTANT, value=255)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", pad, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_GRAYSCALE)
    out, x, y = fill_to_paper(jpeg)
    assert abs(x - 30) <= 8 and abs(y - 40) <= 8 and out.shape[1] < scanned().shape[1] + 16


@pytest.mark.parametrize("value", [0, 255])
def test_a_polygon_s_mask_becomes_the_line_s_paper(value):
    line = scanned()
    masked = band_masked(line, value)
    out, x, y = fill_to_paper(masked)
    filled = out != line[y : y + out.shape[0], x : x + out.shape[1]]
    paper = np.percentile(line, 90)
    assert filled.any() and np.abs(out[filled].astype(int) - paper).max() <= 8
    # Normalised, the mask no longer reads as ink: the line's ink box and ink are its own.
    alone, cut = normalize_line(line), normalize_line(masked)
    assert abs(cut.shape[1] - alone.shape[1]) <= 0.05 * alone.shape[1] and abs(cut.mean() - alone.mean()) < 0.03


NEGATIVE_FORMS = {
    "pad white": lambda g: cv2.copyMakeBorder(g, 40, 50, 30, 300, cv2.BORDER_CONSTANT, value=255),
    "pad black": lambda g: cv2.copyMakeBorder(g, 40, 50, 30, 300, cv2.BORDER_CONSTANT, value=0),
    "mask white": lambda g: band_masked(g, 255),
    "mask black": lambda g: band_masked(g, 0),
}


@pytest.mark.parametrize("form", NEGATIVE_FORMS)
def test_a_negative_in_a_fill_reads_as_the_line_in_dark_ink(form):
    """Light ink on a dark ground, padded or masked: the fill swayed the polarity test, and a
    black pad around a negative's ground read as the paper of dark ink (95% CER on the harder set)."""
    line = scanned()
    negative = 255 - line
    wrapped = NEGATIVE_FORMS[form](negative) if form.startswith("pad") else band_masked_negative(negative, form)
    gray, x, y = readable_line(wrapped)
    assert gray.mean() > 150  # dark ink on light paper
    if form.startswith("pad"):
        assert (x, y) == (30, 40) and gray.shape == line.shape
    alone, read = normalize_line(line), normalize_line(wrapped)
    assert abs(read.shape[1] - alone.shape[1]) <= 0.05 * alone.shape[1] and abs(read.mean() - alone.mean()) < 0.03


@pytest.mark.parametrize("form", NEGATIVE_FORMS)
def test_the_page_path_turns_a_negative_in_a_fill_into_dark_ink_as_the_line_path_does(form):
    """`hwr transcribe` turns an image into dark ink before it segments it (readable_gray): judged
    with its pad or mask, a negative stayed light on dark there and was segmented so."""
    negative = 255 - scanned()
    wrapped = NEGATIVE_FORMS[form](negative) if form.startswith("pad") else band_masked_negative(negative, form)
    assert np.array_equal(dark_ink_on_light(wrapped), 255 - wrapped)
    # A large scan of it, where the fill is looked for on a shrunk copy.
    scale = -(-2 * FILL_LOOK_ROWS // wrapped.shape[0])
    large = cv2.resize(wrapped, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(dark_ink_on_light(large), 255 - large)
    line = 255 - negative  # dark ink in the same fill stays as it is
    dark_wrapped = NEGATIVE_FORMS[form](line)
    assert dark_ink_on_light(dark_wrapped) is dark_wrapped


def band_masked_negative(negative, form):
    """band_masked of a negative: the band follows its light ink."""
    value = 255 if form.endswith("white") else 0
    return 255 - band_masked(255 - negative, 255 - value)


def test_specks_over_a_pad_do_not_keep_it():
    """A pad sprinkled with dark specks (a fax, dust) is found once they are removed."""
    line = scanned()
    pad = cv2.copyMakeBorder(line, 40, 50, 30, 300, cv2.BORDER_CONSTANT, value=255)
    rng = np.random.default_rng(0)
    specks = (rng.random(pad.shape) < 0.01) & (np.pad(np.zeros(line.shape, bool), ((40, 50), (30, 300)),
                                                         constant_values=True))
    pad[specks] = rng.integers(0, 40, specks.sum())
    assert find_fill(pad) is None
    gray, x, y = readable_line(pad)
    # (A speck within 2 px of the line's edge is beside ink: it stays, and with it a row or two.)
    assert abs(x - 30) <= 2 and abs(y - 40) <= 2 and np.abs(np.subtract(gray.shape, line.shape)).max() <= 2


def test_readable_line_is_readable_gray_for_a_line_without_a_fill():
    line = scanned()
    assert find_fill(line) is None
    gray, x, y = readable_line(line)
    assert (x, y) == (0, 0) and np.array_equal(gray, readable_gray(line))
    gray, x, y = readable_line(255 - line)
    assert (x, y) == (0, 0) and np.array_equal(gray, readable_gray(line))


def test_strokes_at_the_edge_of_a_tight_crop_stay_ink_when_the_padding_is_as_black():
    """Black ink cut tight, padded with black: the strokes that touch the crop's edge join the
    fill, and painting them paper had erased them (a binarised line read 10% instead of 5%)."""
    line = (render_line("Hello World", size=28, pad=0) > 128).astype(np.uint8) * 255
    assert (line[:, 0] == 0).any() or (line[0] == 0).any()  # ink at the crop's edge
    out, x, y = fill_to_paper(cv2.copyMakeBorder(line, 20, 20, 20, 100, cv2.BORDER_CONSTANT, value=0))
    assert (x, y) == (20, 20) and np.array_equal(out, line)


def test_a_binarised_negative_whose_strokes_all_touch_its_edges_reads_as_dark_ink_when_padded_white():
    """Cut tight, its white strokes (joined up, as cursive writing is) touch the crop's edges and
    join a white pad: what is left is its black ground alone, one shade, which is still a
    negative's ground in a fill, not a dark band on white paper, and its strokes are the fill."""
    x = np.arange(400)
    wave = np.stack([x, 20 + 12 * np.sin(x / 9.0)], axis=1).astype(np.int32)
    negative = cv2.polylines(np.zeros((40, 400), np.uint8), [wave], False, 255, thickness=1, lineType=cv2.LINE_8)
    padded = cv2.copyMakeBorder(negative, 20, 20, 20, 100, cv2.BORDER_CONSTANT, value=255)
    assert np.array_equal(dark_ink_on_light(padded), 255 - padded)
    out, x, y = readable_line(padded)
    assert (x, y) == (20, 20) and np.array_equal(out, 255 - negative)


@pytest.mark.parametrize("text", ["the quick brown fox", "o0o"])
def test_ink_on_evenly_white_paper_is_left_alone(text):
    """Whiteboard and binarised lines: the fill's level is their paper (the inside of an "o" too)."""
    line = render_line(text, size=28)
    for image in (line, (line > 128).astype(np.uint8) * 255, cv2.copyMakeBorder(line, 30, 30, 30, 200,
                                                                               cv2.BORDER_CONSTANT, value=255)):
        out, x, y = fill_to_paper(image)
        assert out is image and (x, y) == (0, 0)


@pytest.mark.parametrize(("text", "size", "stroke"),
                         [("Hello world", 28, 1), ("42", 28, 1), ("7", 40, 2), ("I", 40, 0)])
def test_bold_or_lone_letters_on_white_paper_are_left_alone(text, size, stroke):
    """Their anti-aliased edges were taken for the paper of a line in a white frame: cut to the
    bare ink and the white painted gray, "Hello world" read "Hallo worla" and "I" nothing."""
    font = ImageFont.load_default(size=size)
    image = Image.new("L", (size * (len(text) + 2), size * 2), 255)
    ImageDraw.Draw(image).text((size // 2, size // 3), text, fill=0, font=font, stroke_width=stroke, stroke_fill=0)
    gray = np.asarray(image)
    out, x, y = fill_to_paper(gray)
    assert out is gray and (x, y) == (0, 0)
    # Nor is a polarity test swayed: whether or not the white reads as a fill, the letters stay dark ink.
    out, x, y = readable_line(gray)
    assert np.array_equal(out, readable_gray(gray)) and (x, y) == (0, 0)


def test_black_ink_that_touches_a_black_mask_stays_ink():
    """Binarised strokes cut tight by a black polygon mask join the mask; painting the mask
    paper had erased them."""
    line = (render_line("Hello World, gladly", size=28, pad=6) > 128).astype(np.uint8) * 255
    rows = np.flatnonzero((line == 0).any(axis=1))
    wave = (np.sin(np.arange(line.shape[1]) / 9.0) * 3).astype(int)
    below = np.arange(line.shape[0])[:, None]
    outside = (below < rows[0] + 3 + wave) | (below > rows[-1] - 3 + wave)  # into the letters' tops and feet
    masked = np.where(outside, 0, line).astype(np.uint8)
    out, x, y = fill_to_paper(masked)
    ink_within = (masked == 0) & ~outside  # the letters' own pixels between the mask's edges
    assert ink_within.any()
    assert (out[ink_within[y : y + out.shape[0], x : x + out.shape[1]]] == 0).all()


def test_paper_evenly_lit_at_the_border_is_not_a_fill():
    """Paper that a bright scan saturates towards the edges is at one level all along the border,
    but goes on from it in small steps, where a fill ends at a jump."""
    line = scanned()
    height, width = line.shape
    rows, cols = np.mgrid[0:height, 0:width]
    edge_distance = np.minimum.reduce([rows, height - 1 - rows, cols, width - 1 - cols]).astype(np.float32)
    lit = np.clip(line.astype(np.float32) + np.clip(60 - 3 * edge_distance, 0, None), 0, 255).astype(np.uint8)
    border = np.concatenate([lit[0], lit[-1], lit[:, 0], lit[:, -1]])
    assert (border >= 253).mean() > 0.5  # a candidate fill: most of the border at 255
    out, _, _ = fill_to_paper(lit)
    assert out is lit


def test_word_boxes_of_a_padded_line_map_to_the_padded_image():
    line = scanned()
    pad = cv2.copyMakeBorder(line, 40, 40, 30, 200, cv2.BORDER_CONSTANT, value=0)
    _, alone = normalize_line_with_geometry(line, NormalizeConfig())
    _, padded = normalize_line_with_geometry(pad, NormalizeConfig())
    assert padded.x_offset == pytest.approx(alone.x_offset + 30)
    assert padded.y_offset == pytest.approx(alone.y_offset + 40)
    assert padded.x_scale == pytest.approx(alone.x_scale)
