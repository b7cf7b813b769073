"""How a model reads line images padded or masked with a flat fill, with and without the fill
taken out first (hwr.recognition.fill).

    python bench/bench_fill.py --model models/hwr-en-small --n 300 --seed 7 --json fill.json

Line images from other tools and data sets come padded to a size (white or black around the
line: `pad`), or cut along a polygon with white or black outside it (`band`: a wavy band a few
pixels around the ink, as a polygon hugs a line). Every line of the harder validation set
(`--seed`; 7 is the draw the fill's thresholds were chosen on, 19 the standard set) is read
greedily as drawn and in each of those forms, by condition, once as hwr reads now and once with
the fill left in (no fill found, as before 2026-12-06), also as negatives. "changed" counts
the lines as drawn that the fill step changes at all (they should be few: white paper that
saturates at the border).
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

from hwr.datasets.synthetic import hard_validation_lines
from hwr.recognition import imaging
from hwr.recognition.fill import fill_to_paper
from hwr.recognition.imaging import load_gray, readable_gray
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts
from hwr.synth.config import HARD_SEED


def padded(gray: np.ndarray, value: int) -> np.ndarray:
    """The line on a canvas of `value` three times as tall and about twice as wide (a data set's fixed size)."""
    height, width = gray.shape
    return cv2.copyMakeBorder(gray, height, height, width // 5, width, cv2.BORDER_CONSTANT, value=value)


def band_masked(gray: np.ndarray, value: int) -> np.ndarray:
    """`value` above and below a wavy band 4-5 pixels beyond the line's darkest pixels (its ink),
    as a tool that cuts a line along its polygon fills what lies outside it."""
    ink_rows = np.flatnonzero((gray < np.percentile(gray, 5)).any(axis=1))
    if len(ink_rows) == 0:
        return gray
    height, width = gray.shape
    wave = (np.sin(np.arange(width) / 37.0) * 3).astype(int)
    rows = np.arange(height)[:, None]
    outside = (rows < ink_rows[0] - 4 + wave) | (rows >= ink_rows[-1] + 5 + wave)
    out = gray.copy()
    out[outside] = value
    return out


FORMS = {"as drawn": lambda g: g, "pad white": lambda g: padded(g, 255), "pad black": lambda g: padded(g, 0),
         "band white": lambda g: band_masked(g, 255), "band black": lambda g: band_masked(g, 0)}
# The same lines as negatives (light ink on a dark ground: microfilm, a scan saved inverted),
# padded or masked white or black: a fill swayed the polarity test (imaging.readable_line).
FORMS.update({"negative": lambda g: 255 - g,
              "negative pad white": lambda g: 255 - padded(g, 0), "negative pad black": lambda g: 255 - padded(g, 255),
              "negative band white": lambda g: 255 - band_masked(g, 0),
              "negative band black": lambda g: 255 - band_masked(g, 255)})


def read(recognizer: Recognizer, images: list[np.ndarray], samples, batch_size: int = 16) -> dict:
    counts: dict[str, ErrorCounts] = defaultdict(ErrorCounts)
    for sample, rec in zip(samples, recognizer.recognize(images, batch_size)):
        for group in ("all", sample.meta.get("condition", "?")):
            counts[group].add(sample.text, rec.text)
    return {name: round(100 * c.cer, 2) for name, c in sorted(counts.items())}


def form_arguments(description: str, forms: dict, lines: int) -> tuple[argparse.Namespace, list[str]]:
    """The command line of a bench that reads the harder set in `forms` (--model, --n, default
    `lines`, --seed, --forms, --json), and the names of the forms it asks for."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/hwr-en-small")
    parser.add_argument("--n", type=int, default=lines)
    parser.add_argument("--seed", type=int, default=HARD_SEED)
    parser.add_argument("--forms", help=f"comma-separated, of: {', '.join(forms)} (default: all)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    names = args.forms.split(",") if args.forms else list(forms)
    unknown = [name for name in names if name not in forms]
    if unknown:
        parser.error(f"--forms: no form {', '.join(unknown)}; the forms are {', '.join(forms)}")
    return args, names


def harder_set(args: argparse.Namespace) -> tuple[Recognizer, list, list[np.ndarray]]:
    """The model (on the CPU), the harder set's lines (args.n, args.seed) and each line's image
    as the recogniser reads it."""
    samples = list(hard_validation_lines(args.n, seed=args.seed))
    return Recognizer.load(args.model, device="cpu"), samples, [readable_gray(load_gray(s.image)) for s in samples]


def compared_forms(names: list[str], images_of: Callable[[str], list], read_images: Callable[[list], dict],
                   undone: Callable[[], AbstractContextManager], before: str = "before") -> dict:
    """{form: {"now": figures, `before`: figures}}: each form's images read as hwr reads now and
    within `undone()` (the patches that take the change away), printed as each form is done."""
    figures = {}
    for name in names:
        images = images_of(name)
        now = read_images(images)
        with undone():
            figures[name] = {"now": now, before: read_images(images)}
        print(name, json.dumps(figures[name]), flush=True)
    return figures


def main() -> None:
    args, names = form_arguments(__doc__, FORMS, 300)
    recognizer, samples, grays = harder_set(args)
    changed = sum(fill_to_paper(g)[0] is not g for g in grays)
    report = {"model": args.model, "seed": args.seed, "lines": len(samples), "changed": changed, "cer": {}}
    print(f"{changed} of {len(samples)} lines as drawn changed by the fill step", flush=True)
    report["cer"] = compared_forms(names, lambda name: [FORMS[name](g) for g in grays],
                                   lambda images: read(recognizer, images, samples),
                                   lambda: mock.patch.object(imaging, "find_fill", lambda gray: None), "fill left in")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
