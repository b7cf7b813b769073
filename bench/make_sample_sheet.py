"""Render a sheet of synthetic lines with their labels: docs/synth-samples.png.

    python bench/make_sample_sheet.py [--n 16] [--split train] [--seed 0] [--out docs/synth-samples.png]

Each row shows a line image at its rendered size (scaled down only if wider than the sheet)
with the label, font and kind printed above it, so a reader can check label/image agreement.
"""
from __future__ import annotations

import argparse
from pathlib import Path


from PIL import Image, ImageDraw, ImageFont

from hwr.synth import LineSynthesizer

SHEET_WIDTH = 1400
CAPTION_HEIGHT = 22
GAP = 10


def sheet(samples, width: int = SHEET_WIDTH) -> Image.Image:
    caption_font = ImageFont.load_default(size=15)
    rows = []
    for sample in samples:
        line = Image.fromarray(sample.image)
        if line.width > width:
            line = line.resize((width, max(1, round(line.height * width / line.width))), Image.LANCZOS)
        row = Image.new("L", (width, CAPTION_HEIGHT + line.height + GAP), 255)
        caption = f"{sample.text!r}   [{sample.meta['font']}, {sample.meta['kind']}]"
        ImageDraw.Draw(row).text((4, 3), caption, fill=0, font=caption_font)
        row.paste(line, (0, CAPTION_HEIGHT))
        rows.append(row)
    out = Image.new("L", (width, sum(r.height for r in rows)), 255)
    y = 0
    for row in rows:
        out.paste(row, (0, y))
        y += row.height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--split", choices=["train", "val"], default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "synth-samples.png"))
    args = parser.parse_args()
    synth = LineSynthesizer(split=args.split, seed=args.seed)
    image = sheet([synth.sample(i) for i in range(args.n)])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({image.width}x{image.height})")


if __name__ == "__main__":
    main()
