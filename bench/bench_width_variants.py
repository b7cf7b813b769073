"""Whether reading each line at more widths (`--width-variants`) reads better, and what it costs.

    python bench/bench_width_variants.py --model models/hwr-en-small --variants 1.3 --json widths.json
    python bench/bench_width_variants.py --variants "1.3;1.15,1.3" --below 0.95,2 --seed 7 --decoders greedy

Each set is read as `hwr eval` reads it (Recognizer.recognize_normalized: padded batches, the
stretch applied to each batch's doubtful lines), once as normalised and once with each list of
extra factors and each confidence below which lines are read again, greedily and with the
default LM search; every reading is scored against the plain one with a paired
bootstrap (hwr.scoring). The sets: the harder validation set (`--seed`; the factors were chosen
on seed 7, so the standard seed is the check) and the same engine writing text from outside the
corpora (bench_lm's second set). Lines/s is the whole reading's, network and decoding, on this
machine as it is: compare it within one run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench_lm import default_prose, lines_with_text, prose_lines

from hwr.datasets.synthetic import hard_validation_lines
from hwr.recognition.model import Recognizer
from hwr.recognition.settings import DOUBTFUL_BELOW
from hwr.scoring.evaluate import score_texts
from hwr.scoring.report.compare import compare_reports
from hwr.synth.config import HARD_SEED


def parse_variants(text: str) -> list[tuple[float, ...]]:
    """"1.3;1.15,1.3" -> [(1.3,), (1.15, 1.3)]: lists of extra factors, each read against none."""
    return [tuple(float(f) for f in part.split(",")) for part in text.split(";") if part.strip()]


WARM_UP_LINES = 16


def read(recognizer: Recognizer, samples, lines, batch_size: int = 16):
    """The set's readings (normalised `lines`) scored as `hwr eval` scores them, and lines/s of
    the network and decoding (after a warm-up batch)."""
    recognizer.recognize_normalized(lines[:WARM_UP_LINES], batch_size)
    started = time.perf_counter()
    results = recognizer.recognize_normalized(lines, batch_size)
    lines_per_s = len(samples) / (time.perf_counter() - started)
    report = score_texts([s.id for s in samples], [s.text for s in samples], [r.text for r in results])
    return report, lines_per_s


def add_reading_arguments(parser: argparse.ArgumentParser, lines: int, what: str = "lines of each set") -> None:
    """The options of the benches that read the harder set several ways: the decoders, and the
    set's size (`what` says what --n counts) and seed."""
    parser.add_argument("--decoders", default="greedy,auto")
    parser.add_argument("--n", type=int, default=lines, help=what)
    parser.add_argument("--seed", type=int, default=HARD_SEED, help="the harder set's seed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/hwr-en-small")
    parser.add_argument("--variants", default="1.3", help="lists of extra width factors, ';' between lists")
    parser.add_argument("--below", default=str(DOUBTFUL_BELOW),
                        help="greedy confidences under which lines are read again, comma-separated (above 1: all)")
    add_reading_arguments(parser, lines=600)
    parser.add_argument("--sets", default="harder,other-text")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    builders = {"harder": lambda: list(hard_validation_lines(args.n, seed=args.seed)),
                "other-text": lambda: lines_with_text(prose_lines(default_prose(), args.n))}
    preprocess = Recognizer.load(args.model, device="cpu").preprocess
    report: dict = {"model": args.model, "seed": args.seed, "sets": {}}
    for name in args.sets.split(","):
        samples = builders[name]()
        lines = [preprocess(s.image) for s in samples]
        report["sets"][name] = figures = {}
        for decoder in args.decoders.split(","):
            plain, plain_speed = read(Recognizer.load(args.model, device="cpu", decoder=decoder), samples, lines)
            figures[decoder] = {"plain": {"cer": plain.cer, "wer": plain.wer, "lines_per_s": plain_speed}}
            print(name, decoder, "plain", json.dumps(figures[decoder]["plain"]), flush=True)
            for factors in parse_variants(args.variants):
                for below in (float(b) for b in args.below.split(",")):
                    recognizer = Recognizer.load(args.model, device="cpu", decoder=decoder, width_variants=factors,
                                                 width_variants_below=below)
                    scored, speed = read(recognizer, samples, lines)
                    label = f"{','.join(map(str, factors))} below {below:g}"
                    comparison = compare_reports(plain, scored, "plain", label).to_dict()
                    result = {"cer": scored.cer, "wer": scored.wer, "lines_per_s": speed,
                              "against_plain": {k: v for k, v in comparison.items() if k != "disagreements"}}
                    figures[decoder][label] = result
                    print(name, decoder, label, json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
