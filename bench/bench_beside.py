"""What reading an adapted model beside its base model (`hwr adapt --beside`) costs, and what
the base model reading only the adapted one's doubtful lines gives up.

    python bench/bench_beside.py --model models/my-hand --below 0.95,0.98 --decoders greedy,auto
    python bench/bench_beside.py --model models/my-hand --hand my-hand-lines/ --json beside.json

A pair's adapted network reads every line; the base model (its `beside/` folder) reads the lines
the adapted one reads less surely than `--below` (Recognizer.beside_below; above 1: every line, as
before 2026-12-06), and each line keeps the surer reading. Each set is read as `hwr eval` reads it
(padded batches of 16) by the adapted network alone and by the pair at each `--below`, greedily
and with the default LM search; every reading is scored against the pair reading every line
twice with a paired bootstrap. Sets: the harder validation set (`--seed`: other hands than the
one adapted to, mostly) and, with `--hand`, the adapted hand's own held-out lines (any data
form `hwr eval` reads). Lines/s is the whole reading's, network and decoding, on this machine as
it is: compare it within one run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_width_variants import add_reading_arguments, read

from hwr.datasets import open_dataset
from hwr.datasets.synthetic import hard_validation_lines
from hwr.recognition.model import BESIDE_DOUBTFUL_BELOW, Recognizer, beside_dir
from hwr.scoring.report.compare import compare_reports

EVERY_LINE = 2.0  # a beside_below above any confidence


def confidences_alone(model: str, lines) -> list[float]:
    """Each line's greedy confidence from the adapted network alone: what the pair decides by."""
    recognizer = Recognizer.load(model, device="cpu")
    recognizer.beside = None
    return [r.confidence for r in recognizer.recognize_normalized(lines, 16)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an adapted model folder with beside/ (hwr adapt --beside)")
    parser.add_argument("--below", default=f"0.9,0.95,{BESIDE_DOUBTFUL_BELOW:g}",
                        help="adapted-network confidences under which the base model reads a line too, "
                             "comma-separated (every line twice and the adapted network alone are always read)")
    add_reading_arguments(parser, lines=400, what="lines of the harder set (a --hand set is read whole)")
    parser.add_argument("--hand", help="the adapted hand's held-out lines (a dataset spec hwr eval reads)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if beside_dir(Path(args.model)) is None:
        parser.error(f"--model {args.model}: no beside/ folder (adapt it with --beside)")

    sets = {"harder": list(hard_validation_lines(args.n, seed=args.seed))}
    if args.hand:
        hand = open_dataset(args.hand)
        sets["hand"] = [hand[i] for i in range(len(hand))]
    preprocess = Recognizer.load(args.model, device="cpu").preprocess
    belows = sorted({float(b) for b in args.below.split(",")})
    report: dict = {"model": args.model, "seed": args.seed, "sets": {}}
    for name, samples in sets.items():
        lines = [preprocess(s.image) for s in samples]
        confidences = confidences_alone(args.model, lines)
        report["sets"][name] = figures = {}
        for decoder in args.decoders.split(","):
            recognizer = Recognizer.load(args.model, device="cpu", decoder=decoder)
            pair = recognizer.beside
            recognizer.beside_below = EVERY_LINE
            full, full_speed = read(recognizer, samples, lines)
            recognizer.beside = None
            alone, alone_speed = read(recognizer, samples, lines)
            recognizer.beside = pair
            figures[decoder] = {"every line twice": {"cer": full.cer, "lines_per_s": full_speed},
                                "adapted alone": {"cer": alone.cer, "lines_per_s": alone_speed}}
            for below in belows:
                if below >= EVERY_LINE:
                    continue
                recognizer.beside_below = below
                scored, speed = read(recognizer, samples, lines)
                comparison = compare_reports(full, scored, "every line twice", f"below {below:g}").to_dict()
                figures[decoder][f"below {below:g}"] = {
                    "cer": scored.cer, "lines_per_s": speed,
                    "read_twice": sum(c < below for c in confidences) / len(lines),
                    "against_every_line": {k: v for k, v in comparison.items() if k != "disagreements"}}
            for label, result in figures[decoder].items():
                print(name, decoder, label, json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
