"""Pages scanned sideways or upside down: the turn found, lines matched, and what it costs.

    python bench/bench_orientation.py [--seeds 5] [--pages 36] [--turns 0,90,180,270] [--lines 4-12]

Renders pages `LineSynthesizer(split="val", seed=s).sample_page(i)` (validation fonts, every
capture condition, ruled paper among them) for s < --seeds and i < --pages, scans each as it
would lie needing each of --turns degrees clockwise to read, and segments it with
`hwr.documents.orientation.analyse_upright` (as hwr transcribe does) and, for the time it
adds, with `analyse_page` alone on the upright page. --lines: "4-12" draws each page's line
count as the synthesizer does; "1-12" (or any a-b) cycles through a..b, to see short pages.
Reports, per turn, pages whose turn was found, lines matched to the truth (IoU >= 0.5, in the
scan's pixels) and seconds a page (OpenCV on one thread).
"""
from __future__ import annotations

import argparse
import json
import time

import cv2

from hwr.documents.orientation import analyse_upright, points_back, turned
from hwr.documents.page_eval import match_lines
from hwr.documents.segment import analyse_page
from hwr.synth import LineSynthesizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=36, help="pages per seed")
    parser.add_argument("--turns", default="0,90,180,270", help="clockwise turns the scans need, comma-separated")
    parser.add_argument("--lines", default="4-12", help='"4-12": the synthesizer\'s draw; "a-b": cycle a..b lines')
    args = parser.parse_args()
    cv2.setNumThreads(1)
    turns = [int(t) for t in args.turns.split(",")]
    low, high = (int(n) for n in args.lines.split("-"))
    cycle = None if (low, high) == (4, 12) else list(range(low, high + 1))
    rows = {turn: {"pages": 0, "turn_found": 0, "lines": 0, "matched": 0, "seconds": 0.0, "missed": []}
            for turn in turns}
    upright_seconds = 0.0
    count = 0
    for seed in range(args.seeds):
        synthesizer = LineSynthesizer(split="val", seed=seed)
        for index in range(args.pages):
            rendered = synthesizer.sample_page(index, n_lines=cycle[count % len(cycle)] if cycle else None)
            count += 1
            start = time.perf_counter()
            analyse_page(rendered.image)
            upright_seconds += time.perf_counter() - start
            for turn in turns:
                scan = turned(rendered.image, (360 - turn) % 360)
                start = time.perf_counter()
                layout = analyse_upright(scan)
                row = rows[turn]
                row["seconds"] += time.perf_counter() - start
                height, width = scan.shape
                truth = [points_back(line.polygon, turn, width, height) for line in rendered.page.lines]
                row["pages"] += 1
                row["turn_found"] += layout.turn == turn
                row["lines"] += len(truth)
                row["matched"] += len(match_lines(truth, [line.polygon for line in layout.lines]))
                if layout.turn != turn:
                    row["missed"].append(f"{seed}/{index} ({len(truth)} lines): {layout.turn}")
    for turn, row in rows.items():
        row["seconds"] = round(row["seconds"] / max(row["pages"], 1), 3)
        print(json.dumps({"turn": turn, **row}))
    print(json.dumps({"analyse_page_upright_seconds": round(upright_seconds / max(count, 1), 3)}))


if __name__ == "__main__":
    main()
