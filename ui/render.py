"""What the user sees of a result: the page with its lines outlined and numbered, text coloured
by confidence, and small inline thumbnails.
"""
from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hwr.records import Line, Page

# Outline colours cycle so that neighbouring lines are told apart (colour-blind safe set, Okabe-Ito).
LINE_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
# Confidence bands: above HIGH a character is shown plain; the two lower bands are highlighted
# so that the eye goes to the characters worth checking.
HIGH, LOW = 0.9, 0.6

CONFIDENCE_CSS = """
.hwr-lines { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.hwr-line { margin: 0.2em 0; white-space: pre-wrap; }
.hwr-no { display: inline-block; min-width: 2.5em; color: #666; }
.hwr-lconf { color: #666; font-size: 0.85em; margin-left: 0.8em; }
.hwr-mid { background: #ffe08a; color: #000; }
.hwr-low { background: #ff9b8f; color: #000; }
.hwr-legend { font-size: 0.85em; color: #666; margin-bottom: 0.5em; }
"""


def draw_lines(gray: np.ndarray, page: Page) -> Image.Image:
    """The page in colour with each line's polygon outlined and its number at the start."""
    image = Image.fromarray(gray).convert("RGB")
    draw = ImageDraw.Draw(image)
    stroke = max(2, round(max(image.size) / 500))
    # Numbers grow with the image, so they stay legible once the browser scales a scan down.
    font = ImageFont.load_default(size=max(16, round(math.sqrt(image.width * image.height) / 30)))
    for number, line in enumerate(page.lines, start=1):
        colour = LINE_COLOURS[(number - 1) % len(LINE_COLOURS)]
        polygon = [tuple(p) for p in line.polygon] or _box_polygon(line)
        draw.line(polygon + [polygon[0]], fill=colour, width=stroke, joint="curve")
        _draw_label(draw, str(number), line, polygon, colour, font)
    return image


def _box_polygon(line: Line) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = line.bbox
    return [(x0, y0), (x1 - 1, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)]


def _draw_label(draw: ImageDraw.ImageDraw, text: str, line: Line, polygon, colour: str, font) -> None:
    # The number sits just left of where the line starts, its foot on the baseline: the left
    # margin is usually empty, and a top corner would drift away from a slanted line's start.
    x, y = line.baseline[0] if line.baseline else (min(p[0] for p in polygon), max(p[1] for p in polygon))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    width, height = draw.im.size
    x = min(max(0, x - w - 3), width - w)
    y = min(max(0, y - h), height - h)
    draw.rectangle((x, y, x + w, y + h), fill=colour)
    draw.text((x + 3 - left, y + 2 - top), text, fill="white", font=font)


def confidence_html(page: Page) -> str:
    """Each line numbered, its characters highlighted by confidence (hover shows the value)."""
    if not page.lines:
        return "<p>No text lines found.</p>"
    rows = [_line_html(number, line) for number, line in enumerate(page.lines, start=1)]
    legend = (f'<div class="hwr-legend">Highlighted: <span class="hwr-mid">confidence below {HIGH:.0%}</span> '
              f'<span class="hwr-low">below {LOW:.0%}</span>; hover a character for its value.</div>')
    return f'<div class="hwr-lines">{legend}{"".join(rows)}</div>'


def _line_html(number: int, line: Line) -> str:
    rec = line.recognition
    if rec is None:
        body, conf = html.escape(line.text), ""
    else:
        confs = rec.char_confidences if len(rec.char_confidences) == len(rec.text) else [rec.confidence] * len(rec.text)
        body = "".join(_char_html(ch, c) for ch, c in zip(rec.text, confs))
        conf = f'<span class="hwr-lconf">{rec.confidence:.0%}</span>'
    return f'<div class="hwr-line"><span class="hwr-no">{number}</span>{body or "<i>(empty)</i>"}{conf}</div>'


def _char_html(char: str, confidence: float) -> str:
    band = "" if confidence >= HIGH else ("hwr-mid" if confidence >= LOW else "hwr-low")
    text = html.escape(char)
    if not band:
        return text
    return f'<span class="{band}" title="{confidence:.0%}">{text}</span>'


def thumbnail_uri(gray: np.ndarray, height: int = 32, max_width: int = 480) -> str:
    """A small PNG as a data: URI, so a results table needs no file serving."""
    h, w = gray.shape[:2]
    scale = min(height / max(h, 1), max_width / max(w, 1))
    thumb = Image.fromarray(gray).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
