"""How long line normalisation (hwr.recognition.imaging) takes a line, whole and by stage.

    python bench/bench_normalize.py                          # 300 lines of another draw of the harder set
    python bench/bench_normalize.py --data pairs:/data/lines --lines 500 --rounds 7

Every line the network reads passes through `normalize_line` (gray, paper evened out, contrast
stretched, cropped to the ink, resized to the model's height), on the loader threads of
`hwr transcribe` and `hwr eval` and in the training workers. The lines are loaded as gray
once, then timed on one thread (one OpenCV thread too, as in the loader workers):
  whole        normalize_line with the paper evened out (the shipped models' setting)
  unflattened  the same without evening out the paper (models saved before it existed)
  flatten      flatten_background alone
  ink map      the contrast stretch alone (ink_map of the flattened line)
  polarity     light_ink_on_dark alone (whether the line is light ink on dark, to invert it)
  specks       without_pepper alone (the salt-and-pepper test; no line here is filtered)
Passes are interleaved round by round (a shared VM drifts by tens of percent from minute to
minute); each figure is the median round with the range. Default data: a draw of the harder
set that no model card reports (seed 1019), lines of 110 x 1,216 px on average.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from hwr.datasets import open_dataset
from hwr.recognition.imaging import (
    NormalizeConfig,
    flatten_background,
    ink_map,
    light_ink_on_dark,
    load_gray,
    normalize_line,
)
from hwr.recognition.noise import without_pepper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synth:hard:300:1019", help="any data spec hwr eval reads")
    parser.add_argument("--lines", type=int, default=300, help="at most this many lines of --data")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.lines < 1 or args.rounds < 1:
        parser.error("--lines and --rounds must be at least 1")

    cv2.setNumThreads(1)
    dataset = open_dataset(args.data)
    grays = [load_gray(dataset[i].image) for i in range(min(args.lines, len(dataset)))]
    flattened = [flatten_background(g) for g in grays]
    shapes = np.array([g.shape for g in grays])
    print(f"{len(grays)} lines of {args.data}, {shapes[:, 0].mean():.0f} x {shapes[:, 1].mean():.0f} px on average; "
          f"one thread")
    flat, unflat = NormalizeConfig(flatten_background=True), NormalizeConfig(flatten_background=False)
    def each(step, lines):
        # Nothing kept: holding 300 full-size float maps would time the allocator's page faults.
        def run() -> None:
            for line in lines:
                step(line)
        return run

    passes = {
        "whole": each(lambda g: normalize_line(g, flat), grays),
        "unflattened": each(lambda g: normalize_line(g, unflat), grays),
        "flatten": each(flatten_background, grays),
        "ink map": each(ink_map, flattened),
        "polarity": each(light_ink_on_dark, grays),
        "specks": each(without_pepper, grays),
    }
    for run in passes.values():  # warm caches and OpenCV's first-call costs
        run()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.rounds):
        for name, run in passes.items():
            started = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - started) / len(grays) * 1000)
    for name, t in times.items():
        print(f"{name:12s} {sorted(t)[len(t) // 2]:6.2f} ms a line (range {min(t):.2f}-{max(t):.2f})")


if __name__ == "__main__":
    main()
