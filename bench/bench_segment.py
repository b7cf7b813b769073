"""Line segmentation alone on synthetic validation pages: lines matched, exact line counts, time.

    python bench/bench_segment.py [--seeds 5] [--pages 36] [--archive] [--json out.json]

Renders pages `LineSynthesizer(split="val", seed=s).sample_page(i)` for s < --seeds and
i < --pages (validation fonts, 4-12 lines a page; the defaults are the 180 pages whose
figures the README and the segmenter's comments quote: 1,448 lines), segments each with
`hwr.documents.segment.analyse_page` (OpenCV on one thread, only segmentation timed) and
matches detected lines to the truth at IoU >= 0.5 (`hwr.documents.page_eval.match_lines`).
Reports lines matched, pages whose line count is exact, lines found that match nothing, and
seconds a page; with --json, each page's counts (to compare two versions page by page).
--archive draws the same pages on old leaves (capture.py's archive condition: faded ink, the
back's writing showing through, heavy grain).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

from hwr.documents.page_eval import match_lines
from hwr.documents.segment import analyse_page
from hwr.synth import LineSynthesizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=36, help="pages per seed")
    parser.add_argument("--archive", action="store_true", help="the pages on old leaves (faded, grainy)")
    parser.add_argument("--json", type=Path, help="write the per-page counts here")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pages, seconds = [], 0.0
    for seed in range(args.seeds):
        synthesizer = LineSynthesizer(split="val", seed=seed)
        for index in range(args.pages):
            rendered = synthesizer.sample_page(index, archive=args.archive)
            truth = [[tuple(p) for p in line["polygon"]] for line in rendered.to_json()["lines"]]
            start = time.perf_counter()
            layout = analyse_page(rendered.image)
            seconds += time.perf_counter() - start
            matched = len(match_lines(truth, [line.polygon for line in layout.lines]))
            pages.append({"seed": seed, "page": index, "lines": len(truth), "found": len(layout.lines),
                          "matched": matched})
    lines = sum(p["lines"] for p in pages)
    found = sum(p["found"] for p in pages)
    matched = sum(p["matched"] for p in pages)
    summary = {"pages": len(pages), "lines": lines, "matched": matched, "found": found,
               "found_unmatched": found - matched, "exact_counts": sum(p["lines"] == p["found"] for p in pages),
               "seconds_per_page": round(seconds / len(pages), 3)}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "pages": pages}, indent=1))


if __name__ == "__main__":
    main()
