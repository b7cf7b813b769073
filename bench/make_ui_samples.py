"""Render the UI's example inputs into data/samples/ (shipped in the repository).

    python bench/make_ui_samples.py [--out data/samples]

Everything comes from the synthetic engine's *validation* split (held-out fonts and text), so
the examples show the model on writing it was not trained on, and reruns give the same files:

    line-NN.png + line-NN.gt.txt   single lines with their ground truth
    page-01.jpg + page-01.json     one page with its line geometry and text
    eval-lines.zip                 the lines as an image + .gt.txt pairs data set, the
                                   Evaluate tab's example upload

The folder is flat because pyproject's data-files copies `data/samples/*` file by file.
"""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

from PIL import Image

from hwr.synth import LineSynthesizer

REPO = Path(__file__).resolve().parent.parent
# Indices of the val split chosen by eye: several fonts, prose and digits, short and long.
LINE_INDICES = (1, 2, 4, 6, 7, 0)
PAGE_INDEX = 0
PAGE_LINES = 6
# Keep examples commit-sized: lines wider than this are skipped; the page is a JPEG (as most
# scans and phone photos are) because its paper noise makes a PNG four times larger.
MAX_LINE_WIDTH = 1400
PAGE_JPEG_QUALITY = 85


def save_png(gray, path: Path) -> None:
    # optimize=True: these files live in git, so a few KB each matters.
    Image.fromarray(gray).save(path, optimize=True)


def write_lines(synth: LineSynthesizer, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, index in enumerate(LINE_INDICES, start=1):
        sample = synth.sample(index)
        if sample.image.shape[1] > MAX_LINE_WIDTH:
            continue
        image = folder / f"line-{n:02d}.png"
        save_png(sample.image, image)
        (folder / f"line-{n:02d}.gt.txt").write_text(sample.text + "\n", encoding="utf-8")
        written += [image, image.with_name(f"line-{n:02d}.gt.txt")]
    return written


def write_page(synth: LineSynthesizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page = synth.sample_page(PAGE_INDEX, n_lines=PAGE_LINES)
    Image.fromarray(page.image).save(folder / "page-01.jpg", quality=PAGE_JPEG_QUALITY)
    (folder / "page-01.json").write_text(json.dumps(page.to_json(), indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")


def write_eval_zip(files: list[Path], path: Path) -> None:
    # Fixed timestamps make the zip byte-identical across reruns (no spurious git diffs).
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files):
            info = zipfile.ZipInfo(f"lines/{f.name}", date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "samples")
    args = parser.parse_args(argv)
    synth = LineSynthesizer(split="val")
    lines = write_lines(synth, args.out)
    write_page(synth, args.out)
    write_eval_zip(lines, args.out / "eval-lines.zip")
    print(f"wrote {len(lines) // 2} lines, 1 page and eval-lines.zip to {args.out}")


if __name__ == "__main__":
    main()
