"""Synthetic handwriting: text sampling, font and MNIST-digit rendering, writer-like
augmentation, page layout and dataset export.

    text.py        what is written (corpora, numbers, dates, punctuation) within the charset
    fonts.py       which fonts (train/val split), their charset coverage, the glyph cache
    digits.py      real MNIST digits as glyphs
    hand.py        a writer's variation: every glyph instance its own map, joins, breaks
    render.py      glyph layout of one line with per-word jitter
    augment.py     stroke width, slant/rotation/elastic warp, paper, ink, blur, noise, JPEG
    capture.py     capture conditions: paper scan, whiteboard, binarised, low-res, phone photo, archive leaf
    synthesizer.py LineSynthesizer: one reproducible line per (seed, split, index)
    page.py        several lines on a page, with polygons and baselines
    export.py      datasets on disk (IAM or image/.gt.txt pairs, optional pages)
"""
from hwr.synth.config import SynthConfig
from hwr.synth.export import SynthExportConfig, export_dataset
from hwr.synth.fonts import VALIDATION_FONTS, FontBank, fonts_for_split, missing_chars
from hwr.synth.page import SynthPage, render_page
from hwr.synth.synthesizer import LineSynthesizer, RenderedLine
from hwr.synth.text import TextSampler, clean_text

__all__ = [
    "SynthConfig",
    "SynthExportConfig",
    "export_dataset",
    "SynthPage",
    "render_page",
    "VALIDATION_FONTS",
    "FontBank",
    "fonts_for_split",
    "missing_chars",
    "LineSynthesizer",
    "RenderedLine",
    "TextSampler",
    "clean_text",
]
