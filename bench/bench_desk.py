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

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
from bench_fill import compared_forms, form_arguments, harder_set  # bench/ is on the path when run as a script

from hwr.recognition import imaging
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts

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
    "slip 4:3 half wide": lambda g, i: on_desk(g, i, 0.5, 4 / 3),
    "slip 16:9 half wide": lambda g, i: on_desk(g, i, 0.5, 16 / 9),
    "slip 4:3 70% wide": lambda g, i: on_desk(g, i, 0.7, 4 / 3),
    "slip 16:9 30% wide": lambda g, i: on_desk(g, i, 0.3, 16 / 9),
    "slip 3:4 (an upright phone) 90% wide": lambda g, i: on_desk(g, i, 0.9, 3 / 4),
    "card 4:3 half wide": lambda g, i: on_desk(card(g), i, 0.5, 4 / 3),
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


@contextmanager
def as_before() -> Iterator[None]:
    """hwr as before 2026-12-07: no strip of paper is a sheet, and no sheet is cut out."""
    with mock.patch.object(imaging, "strip_like", lambda part, shape: False), \
            mock.patch.object(imaging, "sheet_on_dark_ground", lambda gray: None):
        yield


def main() -> None:
    args, names = form_arguments(__doc__, FORMS, 100)
    recognizer, samples, grays = harder_set(args)
    forms = compared_forms(names, lambda name: [FORMS[name](g, i) for i, g in enumerate(grays)],
                           lambda images: read(recognizer, images, samples), as_before)
    report = {"model": args.model, "seed": args.seed, "lines": len(samples), "forms": forms}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
