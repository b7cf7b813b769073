"""Rendering loader workers, cold against warmed (hwr.synth.warmup): lines/s of a DataLoader
of synthetic training lines over its first lines, as a training run's loader starts.

    python bench/bench_render_workers.py [--workers 2] [--lines 6000] [--warm-processes 0]

Runs twice, each in a fresh process state: "cold" (workers rasterise glyphs as lines need
them) and "warm" (the parent warms the renderer on --warm-processes processes, default one per
core, then the workers fork and inherit it). Prints wall seconds of the warm-up and lines/s of
the workers after it, and lines/s counting it: what a GPU stage of that length would get.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import cv2
from torch.utils.data import DataLoader

from hwr.datasets.synthetic import SyntheticLines, warm_renderer


def _as_is(batch):
    return batch


def _one_thread(_):
    cv2.setNumThreads(1)


def run(warm: bool, workers: int, lines: int, processes: int, seed: int) -> None:
    data = SyntheticLines(10 * lines, split="train", seed=seed)
    start = time.monotonic()
    if warm:
        warm_renderer(data, processes)
    warmed = time.monotonic()
    loader = DataLoader(data, batch_size=50, num_workers=workers, collate_fn=_as_is, worker_init_fn=_one_thread,
                        multiprocessing_context="fork")
    done = 0
    for batch in loader:
        done += len(batch)
        if done >= lines:
            break
    end = time.monotonic()
    print(f"{'warm' if warm else 'cold'}: warm-up {warmed - start:5.1f} s; {done} lines in {end - warmed:5.1f} s "
          f"({done / (end - warmed):6.1f} lines/s; {done / (end - start):6.1f} counting the warm-up)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lines", type=int, default=6000)
    parser.add_argument("--warm-processes", type=int, default=0, help="0: one per core")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    processes = args.warm_processes or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")  # each run starts without the other's caches
    for warm in (False, True):
        child = context.Process(target=run, args=(warm, args.workers, args.lines, processes, args.seed))
        child.start()
        child.join()


if __name__ == "__main__":
    main()
