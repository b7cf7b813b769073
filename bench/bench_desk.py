"""How a model reads line images photographed on a dark desk: a slip of paper with one line
written on it, in a 4:3 or 16:9 photo (imaging.sheet_on_dark_ground, imaging.strip_like).

    python bench/bench_desk.py --model models/hwr-en-small --n 100 --json desk.json

Every line of the harder validation set (`--seed`) is pasted on a desk (gray 40, 60 or 80 by
line, grain of 8 levels, lighter by 25 levels from left to right) as each form draws it, and
read greedily through the line path (`hwr transcribe --mode line`, `hwr eval`), once as hwr
reads now and once as before 2026-12-07: no strip of paper taken for a sheet (the polarity test
took the desk for a negative's ground and the slip's paper for light strokes) and no crop to the
sheet (the desk read as ink). "inverted" counts the photos the polarity test judges light on
dark, "cropped" those cut to their sheet. The forms "as drawn" and "banded" (a dark band over
the lowest third, reaching the edges) are controls: nothing there is a sheet on a desk.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

import numpy as np

from hwr.datasets.synthetic import hard_validation_lines
from hwr.recognition import imaging
from hwr.recognition.imaging import load_gray, readable_gray
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts
from hwr.synth.config import HARD_SEED

DESK_LEVELS = (40, 60, 80)


def on_desk(gray: np.ndarray, index: int, width_share: float, aspect: float) -> np.ndarray:
    """The line as a slip of paper `width_share` of a photo of `aspect` (width / height) wide, at
    its middle row and a quarter of the spare width from the left, on a grainy desk."""
    height, width = gray.shape
    photo_width = int(width / width_share)
    photo_height = max(int(photo_width / aspect), 3 * height)
    rng = np.random.default_rng(index)
    level = DESK_LEVELS[index % len(DESK_LEVELS)]
    desk = level + rng.normal(0, 8, (photo_height, photo_width)) + np.linspace(0, 25, photo_width)[None]
    photo = np.clip(desk, 0, 255).astype(np.uint8)
    top, left = (photo_height - height) // 2, (photo_width - width) // 4
    photo[top:top + height, left:left + width] = gray
    return photo


def card(gray: np.ndarray) -> np.ndarray:
    """The line on a card three times its height: its paper above and below."""
    paper = int(np.percentile(gray, 90))
    return np.pad(gray, ((gray.shape[0], gray.shape[0]), (0, 0)), constant_values=paper)


def banded(gray: np.ndarray, index: int) -> np.ndarray:
    out = gray.copy()
    out[-gray.shape[0] // 3:] = DESK_LEVELS[index % len(DESK_LEVELS)]
    return out


FORMS = {
    "as drawn": lambda g, i: g,
    "slip 4:3, half wide": lambda g, i: on_desk(g, i, 0.5, 4 / 3),
    "slip 16:9, half wide": lambda g, i: on_desk(g, i, 0.5, 16 / 9),
    "slip 4:3, 70% wide": lambda g, i: on_desk(g, i, 0.7, 4 / 3),
    "slip 16:9, 30% wide": lambda g, i: on_desk(g, i, 0.3, 16 / 9),
    "slip 3:4 (an upright phone), 90% wide": lambda g, i: on_desk(g, i, 0.9, 3 / 4),
    "card 4:3, half wide": lambda g, i: on_desk(card(g), i, 0.5, 4 / 3),
    "banded": banded,
}


def read(recognizer: Recognizer, images: list[np.ndarray], samples, batch_size: int = 16) -> dict:
    counts = ErrorCounts()
    for sample, rec in zip(samples, recognizer.recognize(images, batch_size)):
        counts.add(sample.text, rec.text)
    # Through the module, so that main's patches for "before" apply.
    return {"cer": round(100 * counts.cer, 2),
            "inverted": sum(bool(imaging.light_ink_on_dark(image)) for image in images),
            "cropped": sum(imaging.sheet_on_dark_ground(image) is not None for image in images)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/hwr-en-small")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=HARD_SEED)
    parser.add_argument("--forms", help=f"comma-separated, of: {', '.join(FORMS)} (default: all)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    names = args.forms.split(",") if args.forms else list(FORMS)
    unknown = [name for name in names if name not in FORMS]
    if unknown:
        parser.error(f"--forms: no form {', '.join(unknown)}; the forms are {', '.join(FORMS)}")

    recognizer = Recognizer.load(args.model, device="cpu")
    samples = list(hard_validation_lines(args.n, seed=args.seed))
    grays = [readable_gray(load_gray(s.image)) for s in samples]
    report = {"model": args.model, "seed": args.seed, "lines": len(samples), "forms": {}}
    for name in names:
        images = [FORMS[name](g, i) for i, g in enumerate(grays)]
        now = read(recognizer, images, samples)
        with mock.patch.object(imaging, "strip_like", lambda part, shape: False), \
                mock.patch.object(imaging, "sheet_on_dark_ground", lambda gray: None):
            before = read(recognizer, images, samples)
        report["forms"][name] = {"now": now, "before": before}
        print(name, json.dumps(report["forms"][name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
