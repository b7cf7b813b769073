"""Wall-clock time to render a synthetic evaluation set, in one process and on several, as
`hwr eval synth:...` renders it before reading (hwr.synth.parallel), and whether the lines
are the same.

    python bench/bench_render_processes.py [--set synth:hard:600] [--processes 1,2]

Each count renders the set from a fresh synthesizer (fonts, corpora and glyph caches cold in
every process, as `hwr eval` starts), so the figures include the workers' start.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hwr.datasets import open_dataset
from hwr.synth.parallel import render_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="synth:hard:600", help="a synth: data set spec")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts to time")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    figures, first = [], None
    for processes in (int(p) for p in args.processes.split(",")):
        data = open_dataset(args.set)  # a fresh synthesizer: nothing cached from the last count
        started = time.perf_counter()
        lines = render_lines(data.synthesizer, len(data), processes)
        seconds = time.perf_counter() - started
        first = first or lines
        same = all(a.text == b.text and np.array_equal(a.image, b.image) for a, b in zip(first, lines))
        figures.append({"processes": processes, "lines": len(lines), "seconds": round(seconds, 2),
                        "lines_per_s": round(len(lines) / seconds, 1), "same_lines": same})
        print(f"{processes:2d} processes: {len(lines)} lines in {seconds:6.1f} s, {len(lines) / seconds:6.1f} lines/s"
              f"{'' if same else '  (lines differ!)'}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"set": args.set, "figures": figures}, f, indent=1)


if __name__ == "__main__":
    main()
