"""Synthetic line throughput, single process and single thread: lines/s per CPU core.

    python bench/bench_synth.py [--n 1000] [--warmup 8000] [--split train] [--skip-warmed]

Reports three figures: "cold" (the first --warmup lines of a fresh process, fonts and corpora
loading included: a CPU training's one loader worker, which starts unwarmed), "steady" (the
next --n lines of that process, its glyph caches still filling: ~0.5 new glyphs a line after
8,000 lines) and "warmed" (--n lines of a second synthesizer whose glyph caches were filled
first by `LineSynthesizer.warm`, as a GPU training fills them before its loader workers fork:
what each of those workers delivers from its first line, hwr.synth.warmup). Rates use CPU time
of this process, so other load on a shared machine counts against it only through shared caches
and cores; wall-clock rates are printed beside them. The target is >= 300 lines/s per core for
the workers that feed a GPU: the warmed figure.
"""
from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--warm-processes", type=int, default=os.cpu_count() or 1,
                        help="processes that fill the warmed synthesizer's glyph caches (untimed)")
    parser.add_argument("--skip-warmed", action="store_true", help="only the cold and steady figures")
    args = parser.parse_args()
    # One core: OpenCV would otherwise spread each small call over threads.
    cv2.setNumThreads(1)

    synth = LineSynthesizer(SynthConfig(), split=args.split, seed=args.seed)
    cpu, wall, _ = timed(synth, 0, args.warmup)
    print(f"cold   {args.warmup:6d} lines: {args.warmup / cpu:7.1f} lines/s CPU, {args.warmup / wall:7.1f} wall")
    misses = synth.fonts.glyph_misses
    cpu, wall, pixels = timed(synth, args.warmup, args.n)
    print(f"steady {args.n:6d} lines: {args.n / cpu:7.1f} lines/s CPU, {args.n / wall:7.1f} wall "
          f"(mean {pixels / args.n / 1000:.0f} kpx per line, {synth.fonts.cached_glyphs} glyphs cached, "
          f"{synth.fonts.glyph_misses - misses} rasterised in the timed lines)")
    if args.skip_warmed:
        return
    # Another seed than the cold run's, so its lines are not ones this process rendered already.
    warmed = LineSynthesizer(SynthConfig(), split=args.split, seed=args.seed + 1)
    glyphs = warmed.warm(args.warm_processes)
    timed(warmed, 0, 100)  # untimed: the corpora load on the first lines
    misses = warmed.fonts.glyph_misses
    cpu, wall, pixels = timed(warmed, 100, args.n)
    print(f"warmed {args.n:6d} lines: {args.n / cpu:7.1f} lines/s CPU, {args.n / wall:7.1f} wall "
          f"({glyphs} glyphs warmed, {warmed.fonts.glyph_misses - misses} rasterised in the timed lines)")


if __name__ == "__main__":
    main()
