"""Render a sheet of synthetic lines with their labels: docs/synth-samples.png.

    python bench/make_sample_sheet.py [--split train] [--seed 0] [--out docs/synth-samples.png]

One section per effect of the engine (issue 19): the same line without and with per-instance
variation, by a cramped and a sprawling writer and by writers of small and large x-height;
allographs; joins and breaks; each pen model; each capture condition; real EMNIST letters and
digits; the held-out hands. Each row shows a line at its rendered size (scaled down only if
wider than the sheet) under a caption with the effect, the label, font, pen and condition, so a
reader can check label/image agreement.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hwr.synth import LineSynthesizer, SynthConfig
from hwr.synth.capture import CONDITIONS
from hwr.synth.pens import PENS

SHEET_WIDTH = 1400
CAPTION_HEIGHT = 22
GAP = 10
MAX_ROW_HEIGHT = 150


def sheet(rows: list[tuple[str, np.ndarray]], width: int = SHEET_WIDTH) -> Image.Image:
    caption_font = ImageFont.load_default(size=15)
    tiles = []
    for caption, image in rows:
        line = Image.fromarray(image)
        scale = min(1.0, width / line.width, MAX_ROW_HEIGHT / line.height)
        if scale < 1.0:
            line = line.resize((max(1, round(line.width * scale)), max(1, round(line.height * scale))), Image.LANCZOS)
        tile = Image.new("L", (width, CAPTION_HEIGHT + line.height + GAP), 255)
        ImageDraw.Draw(tile).text((4, 3), caption, fill=0, font=caption_font)
        tile.paste(line, (0, CAPTION_HEIGHT))
        tiles.append(tile)
    out = Image.new("L", (width, sum(t.height for t in tiles)), 255)
    y = 0
    for tile in tiles:
        out.paste(tile, (0, y))
        y += tile.height
    return out


def _caption(effect: str, line) -> str:
    return f"{effect}: {line.text!r}   [{line.font}, pen {line.pen}, {line.condition}]"


def effect_rows(split: str = "train", seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(caption, image) rows, one or more per effect."""
    base = SynthConfig(condition_weights={"paper": 1.0}, kind_weights={"corpus": 1.0}, restroke_prob=0.0,
                       join_line_prob=0.0, break_line_prob=0.0, ruled_prob=0.0, jpeg_prob=0.0,
                       struck_word_prob=0.0, allograph_line_prob=0.0, neighbour_prob=0.0)
    rows = []

    def render(cfg: SynthConfig, index: int, condition: str | None = None, kinds=None, effect: str = ""):
        synth = LineSynthesizer(cfg, split=split, seed=seed, kinds=kinds)
        line = synth.render(synth.rng(index), condition)
        rows.append((_caption(effect, line), line.image))

    render(replace(base, instance_prob=0.0), 1, effect="font glyphs as drawn (no per-instance variation)")
    render(replace(base, instance_prob=1.0), 1, effect="every instance its own shape, words own slant/squeeze")
    for width, hand in ((0.7, "a cramped"), (1.3, "a sprawling")):
        render(replace(base, instance_prob=1.0, writer_width_range=(width, width)), 1,
               effect=f"the same line by {hand} writer (letters {width:g} times the font's width)")
    for band, size in ((0.75, "small"), (1.3, "large")):
        render(replace(base, instance_prob=1.0, writer_band_range=(band, band)), 1,
               effect=f"the same line by a writer of {size} x-height (the band {band:g} times the font's)")
    render(replace(base, instance_prob=1.0), 2, effect="one form per letter")
    render(replace(base, instance_prob=1.0, allograph_line_prob=1.0, allograph_letter_prob=0.5), 2,
           effect="the same font and text with allographs: some letters in two forms, the second from another hand")
    render(replace(base, instance_prob=1.0, join_line_prob=1.0, join_prob_range=(0.9, 1.0)), 2,
           effect="joins between lowercase letters (o, b, v, w, r, f left at the top by a bridge)")
    render(replace(base, instance_prob=1.0, break_line_prob=1.0, break_glyph_prob=0.5), 2,
           effect="breaks in strokes")
    render(replace(base, instance_prob=1.0, struck_word_prob=1.0), 2,
           effect="a struck-out word (labelled #, training lines)")
    for pen in PENS:
        render(replace(base, restroke_prob=1.0, restroke_pens={pen: 1.0}), 3, effect=f"pen {pen}")
    everything = replace(base, restroke_prob=0.3, join_line_prob=0.4, break_line_prob=0.25, ruled_prob=0.15,
                         jpeg_prob=0.3)
    for k, condition in enumerate(CONDITIONS):
        render(everything, 4 + k, condition, effect=f"capture {condition}")
    render(replace(everything, neighbour_prob=1.0), 17, "paper",
           effect="tails of the lines above and below, as a page's bounding box cuts them")
    render(everything, 10, kinds=("letters",), effect="real EMNIST letters")
    render(everything, 11, kinds=("digits",), effect="real MNIST/EMNIST digits")
    hard = LineSynthesizer(SynthConfig(kind_weights={"corpus": 1.0}), split="val", seed=seed)
    for index, name in enumerate(("edu-vic-wa-nt-hand", "playwrite-nz", "hi-melody", "sedgwick-ave")):
        line = hard.write_line(hard.rng(20 + index), font=name)
        if line.font == name:
            rows.append((f"held-out hand {name}: {line.text!r}", 255 - line.ink))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["train", "val"], default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "synth-samples.png"))
    args = parser.parse_args()
    image = sheet(effect_rows(args.split, args.seed))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({image.width}x{image.height})")


if __name__ == "__main__":
    main()
