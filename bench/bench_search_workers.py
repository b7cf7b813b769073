"""Lines/s of reading with the LM search in the reading process or in search worker processes.

    python bench/bench_search_workers.py                        # the shipped model, 0/1/2 workers
    python bench/bench_search_workers.py --workers 0 1 2 4 8 --lines 2000 --batch-size 256 --device cuda

Normalised synthetic validation lines read by `Recognizer.recognize_normalized` (network + the
default decoder, `auto`: the character-LM beam search for the shipped models), once per setting
of `--workers` (0: the search in this process; N: hwr.recognition.search_workers), greedy as the
network's own pace. Settings are interleaved round by round (a shared VM drifts by tens of
percent from minute to minute) and the median round of each is printed with the range; the
workers' start (spawn, torch import, LM load) happens in an untimed first pass. Each setting's
texts must equal the in-process search's.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from gpu_busy import GpuBusy  # bench/ is on the path when run as a script

from hwr.datasets.synthetic import SyntheticLines
from hwr.recognition.model import Recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory or name (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lines", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    samples = SyntheticLines(args.lines, split="val", seed=99)
    readers = {"greedy": Recognizer.load(args.model, device=args.device)}
    for n in args.workers:
        readers[f"search, {n} workers"] = Recognizer.load(args.model, device=args.device, decoder="auto",
                                                          search_workers=n)
    first = readers["greedy"]
    lines = [first.preprocess(samples[i].image) for i in range(args.lines)]
    print(f"{args.lines} lines at batch {args.batch_size} on {first.device}; torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}; model {first.path}")
    texts = {name: [r.text for r in rec.recognize_normalized(lines, args.batch_size)] for name, rec in readers.items()}
    rates: dict[str, list[float]] = {name: [] for name in readers}
    turns: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
    # The readers take turns (a shared machine drifts): one sampler, each turn's samples its reader's.
    with GpuBusy(first.device) as busy:
        for _ in range(args.rounds):
            for name, rec in readers.items():
                started, turn_start = time.perf_counter(), time.monotonic()
                rec.recognize_normalized(lines, args.batch_size)
                if rec.device.type == "cuda":
                    torch.cuda.synchronize()
                rates[name].append(args.lines / (time.perf_counter() - started))
                turns[name].append((turn_start, time.monotonic()))
    reference = texts.get(f"search, {args.workers[0]} workers")
    for name, r in rates.items():
        same = "" if name == "greedy" else f"; same texts as {args.workers[0]} workers: {texts[name] == reference}"
        gpu = f"; {busy.during(turns[name]).describe()}" if busy.enabled else ""
        print(f"{name:18s} {sorted(r)[len(r) // 2]:8.1f} lines/s (range {min(r):.0f}-{max(r):.0f}){same}{gpu}")
    for rec in readers.values():
        rec.close()


if __name__ == "__main__":
    main()
