"""Synthetic line throughput, single process and single thread: lines/s per CPU core.

    python bench/bench_synth.py [--n 1000] [--warmup 3000] [--split train]

Reports two figures: "cold" (the first --warmup lines of a fresh process, fonts and corpora
loading included) and "steady" (the next --n lines, once the per-process glyph cache has
filled; that is what a DataLoader worker delivers for most of a training run). Rates use CPU
time of this process, so other load on a shared machine does not count against it; wall-clock
rates are printed beside them. The target is >= 300 steady lines/s.
"""
from __future__ import annotations

import argparse
import time

import cv2

from hwr.synth import LineSynthesizer, SynthConfig


def timed(synth: LineSynthesizer, start: int, count: int) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and total pixels for `count` lines from index `start`."""
    cpu, wall = time.process_time(), time.perf_counter()
    pixels = 0
    for i in range(start, start + count):
        pixels += synth.sample(i).image.size
    return time.process_time() - cpu, time.perf_counter() - wall, pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="lines timed in the steady state")
    parser.add_argument("--warmup", type=int, default=8000, help="lines rendered first (timed as 'cold')")
    parser.add_argument("--split", choices=["train", "val"], default="train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # One core: OpenCV would otherwise spread each small call over threads.
    cv2.setNumThreads(1)

    synth = LineSynthesizer(SynthConfig(), split=args.split, seed=args.seed)
    cpu, wall, _ = timed(synth, 0, args.warmup)
    print(f"cold   {args.warmup:6d} lines: {args.warmup / cpu:7.1f} lines/s CPU, {args.warmup / wall:7.1f} wall")
    misses = synth.fonts.glyph_misses
    cpu, wall, pixels = timed(synth, args.warmup, args.n)
    print(f"steady {args.n:6d} lines: {args.n / cpu:7.1f} lines/s CPU, {args.n / wall:7.1f} wall "
          f"(mean {pixels / args.n / 1000:.0f} kpx per line, {len(synth.fonts._glyphs)} glyphs cached, "
          f"{synth.fonts.glyph_misses - misses} rasterised in the timed lines)")


if __name__ == "__main__":
    main()
