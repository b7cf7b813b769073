"""How lines wider than the model's max_width read: in windows (now) or squeezed to it (before).

    python bench/bench_long_lines.py --model models/hwr-en-small --joins 1,6,10,15,20 --json long.json

Long lines are made from the harder validation set (`--seed`): each line normalised to the
model's height, and `k` of them set one after another with a word's gap between them, their
texts joined by a space (so the joined line's letters are as tall and as wide as the lines'
own). Each set of joined lines is read as `hwr eval` reads lines (Recognizer.recognize_normalized:
sorted into padded batches), windowed and squeezed, and the two are compared with a paired
bootstrap (hwr.scoring). Lines/s counts the joined lines, network and decoding, on this
machine as it is: compare it within one run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from bench_width_variants import add_reading_arguments
from bench_width_variants import read as read_set

from hwr.datasets.synthetic import hard_validation_lines
from hwr.recognition.model import Recognizer
from hwr.records import LineSample
from hwr.scoring.report.compare import compare_reports

GAP_HEIGHTS = 0.6  # blank between two joined lines, in line heights: a wide word space


def joined_lines(lines: list[np.ndarray], texts: list[str], k: int, height: int) -> tuple[list, list[str]]:
    """Groups of `k` normalised lines (float ink) set side by side as gray images (255 paper),
    and their texts joined by spaces. The last group is left out when short of `k` lines."""
    gap = np.zeros((height, round(GAP_HEIGHTS * height)), np.float32)
    images, joined = [], []
    for start in range(0, len(lines) - k + 1, k):
        parts = [part for line in lines[start : start + k] for part in (line, gap)][:-1]
        images.append((255 - np.clip(np.hstack(parts), 0, 1) * 255).astype(np.uint8))
        joined.append(" ".join(texts[start : start + k]))
    return images, joined


def read(recognizer: Recognizer, images: list[np.ndarray], texts: list[str], batch_size: int):
    """The joined lines read and scored as bench_width_variants reads a set, and the widest
    line as normalised."""
    lines = [recognizer.preprocess(image) for image in images]
    samples = [LineSample(f"joined-{k:04d}", text, image) for k, (text, image) in enumerate(zip(texts, images))]
    report, lines_per_s = read_set(recognizer, samples, lines, batch_size)
    return report, lines_per_s, max(line.shape[1] for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/hwr-en-small")
    parser.add_argument("--joins", default="1,6,10,15,20", help="lines joined into one, comma-separated")
    parser.add_argument("--batch-size", type=int, default=16)
    add_reading_arguments(parser, lines=240, what="lines of the harder set, joined into fewer")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    samples = list(hard_validation_lines(args.n, seed=args.seed))
    readers = {decoder: {windowed: Recognizer.load(args.model, device="cpu", decoder=decoder, windowed=windowed)
                         for windowed in (True, False)} for decoder in args.decoders.split(",")}
    some = next(iter(readers.values()))[True]
    height = some.normalize_config.line_height
    normalised = [some.preprocess(s.image) for s in samples]
    report: dict = {"model": args.model, "seed": args.seed, "lines": len(samples), "joins": {}}
    for k in (int(j) for j in args.joins.split(",")):
        images, texts = joined_lines(normalised, [s.text for s in samples], k, height)
        report["joins"][k] = figures = {}
        for decoder, pair in readers.items():
            windowed, windowed_speed, width = read(pair[True], images, texts, args.batch_size)
            squeezed, squeezed_speed, _ = read(pair[False], images, texts, args.batch_size)
            comparison = compare_reports(squeezed, windowed, "squeezed", "windowed").to_dict()
            figures[decoder] = {
                "joined_lines": len(images), "widest": width, "max_width": pair[False].normalize_config.max_width,
                "windowed": {"cer": windowed.cer, "wer": windowed.wer, "lines_per_s": windowed_speed},
                "squeezed": {"cer": squeezed.cer, "wer": squeezed.wer, "lines_per_s": squeezed_speed},
                "windowed_against_squeezed": {key: value for key, value in comparison.items()
                                              if key != "disagreements"}}
            print(k, decoder, json.dumps(figures[decoder]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
