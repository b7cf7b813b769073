"""Scorer speed without recognition: text scoring of 10,000 lines, HTML report of 3,000.

    OMP_NUM_THREADS=1 python bench/bench_scorer.py [--lines 10000] [--report-lines 3000] [--cer 0.08]

Lines are drawn deterministically from data/corpus/fortunes.txt (a fixed word list when it
is absent) and corrupted at about --cer with substitutions, deletions and insertions, so
the alignment work resembles a real model's output. Timings use CPU time of this process
(wall time beside it), so other load on a shared machine does not count against them.
Targets (issue 9): scoring 10,000 lines < 5 s; report for 3,000 lines < 30 s.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from hwr.scoring.evaluate import score_texts, write_lines_csv, write_worst_csv
from hwr.scoring.report.analysis import analyze
from hwr.scoring.report.html import render_html, write_html

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus" / "fortunes.txt"
FALLBACK_WORDS = "the of and to in is was he for it with as his on be at by had are but from or".split()
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:'!? "


def reference_lines(n: int, rng: random.Random) -> list[str]:
    lines = [row.strip() for row in CORPUS.read_text(encoding="utf-8").splitlines() if 10 <= len(row.strip()) <= 90] \
        if CORPUS.is_file() else []
    if not lines:
        return [" ".join(rng.choice(FALLBACK_WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]
    return [rng.choice(lines) for _ in range(n)]


def corrupt(text: str, cer: float, rng: random.Random) -> str:
    out = []
    for c in text:
        roll = rng.random()
        if roll < cer / 2:
            out.append(rng.choice(ALPHABET))  # substitution
        elif roll < cer * 3 / 4:
            continue  # deletion
        elif roll < cer:
            out += [c, rng.choice(ALPHABET)]  # insertion
        else:
            out.append(c)
    return "".join(out)


def timed(fn, *args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def score_and_analyze(refs, hyps, subsets):
    report = score_texts([f"l{i:05d}" for i in range(len(refs))], refs, hyps, subsets=subsets)
    return report, analyze(report, resamples=1000)


def noisy_line_image(text: str, rng: np.random.Generator) -> np.ndarray:
    """An IAM-sized line image (about 120 px tall) with paper noise, the costly case for JPEG."""
    image = rng.normal(235, 12, size=(120, 30 * len(text) + 40)).clip(0, 255).astype(np.uint8)
    cv2.putText(image, text, (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 20, 3)
    return image


def build_report(refs, hyps, subsets, out: Path) -> int:
    report, analysis = score_and_analyze(refs, hyps, subsets)
    rng = np.random.default_rng(0)
    images = {r.id: noisy_line_image(r.reference, rng) for r in report.worst(100)}
    write_html(out / "report.html", render_html(report, analysis, "bench", "synthetic", images, 100))
    write_lines_csv(report, out / "lines.csv")
    write_worst_csv(report, out / "worst.csv")
    return (out / "report.html").stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--report-lines", type=int, default=3_000)
    parser.add_argument("--cer", type=float, default=0.08)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rng = random.Random(0)
    refs = reference_lines(args.lines, rng)
    hyps = [corrupt(r, args.cer, rng) for r in refs]
    subsets = [f"writer{i % 50:02d}" for i in range(args.lines)]

    (report, analysis), cpu, wall = timed(score_and_analyze, refs, hyps, subsets)
    print(f"scoring {args.lines} lines (CER/WER, 2x1000 bootstrap resamples, breakdowns, confusions): "
          f"{cpu:.2f} s CPU ({wall:.2f} s wall); CER {report.cer:.4f} "
          f"[{analysis.cer_ci.low:.4f}, {analysis.cer_ci.high:.4f}]  target < 5 s")
    _, text_cpu, _ = timed(score_texts, [str(i) for i in range(args.lines)], refs, hyps)
    print(f"  of which CER/WER alone: {text_cpu:.2f} s CPU")
    n = min(args.report_lines, args.lines)
    with tempfile.TemporaryDirectory() as tmp:
        size, cpu_r, wall_r = timed(build_report, refs[:n], hyps[:n], subsets[:n], Path(tmp))
    print(f"report for {n} lines (scoring, analysis, HTML with 100 images, CSVs): {cpu_r:.2f} s CPU "
          f"({wall_r:.2f} s wall), HTML {size / 1e6:.2f} MB  target < 30 s")
    return 0 if cpu < 5 and cpu_r < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
