"""How much `hwr adapt` helps a hand the model reads badly, and what it costs the other hands.

    python bench/bench_adapt.py [--model models/hwr-en-small] [--sizes 20,50,200] [--minutes 5]
                                [--writer auto] [--habits per-line|held] [--threads 2] [--decoder greedy]
                                [--unlabeled 0] [--json out.json]

"Writers" no model here was trained on: each validation font of the synthetic engine
(hwr.synth.fonts.VALIDATION_FONTS), its lines written through LineSynthesizer's write path
with one font, so each line still varies (slant, spacing, warp, letter instances, paper) as
one person's lines do; and real held-out MNIST digits (the synthetic engine's "val" digits).
--habits per-line (the default) also draws each line's size and pen anew, as if many people
shared the font; --habits held keeps one size and one pen per font, as one person does.

1. Score the model on `--probe` lines of every validation font; the worst is the writer to
   adapt to (unless --writer names one).
2. For each adaptation size N: write N lines of that writer (distinct from its test lines),
   run `hwr.training.adapt.adapt` with a wall-clock budget of --minutes, and score the
   result on --test unseen lines of the writer ("target") and on lines of the other
   validation fonts plus real digit strings ("others": forgetting).

Reports CER before/after for each, wall minutes, and whether the issue-20 target holds at 50
lines: target CER at least halved within 5 minutes, others up by at most 10% relative. Wall
minutes depend on what else runs on the machine: report the load beside them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hwr.datasets.synthetic import digit_string_lines
from hwr.recognition.model import Recognizer, beside_dir
from hwr.records import LineSample, Recognition
from hwr.scoring.metrics import ErrorCounts
from hwr.synth import augment
from hwr.synth.config import SynthConfig
from hwr.synth.fonts import VALIDATION_FONTS
from hwr.synth.hand import Proportions, writer_proportions
from hwr.synth.pens import draw_pen_name
from hwr.synth.synthesizer import LineSynthesizer
from hwr.training.adapt import AdaptConfig, adapt

# Running text of every kind but "digits" (those are MNIST digits, not the writer's font).
TEXT_KINDS = tuple(k for k in SynthConfig().kind_weights if k != "digits")
TEST_SEED, ADAPT_SEED = 101, 202  # separate seeds: test lines never appear among adaptation lines
HABITS_SEED = 303  # a held-habits writer's size and pen
UNLABELED_SEED = 404  # the writer's uncorrected lines (--unlabeled): neither test nor adaptation lines


@dataclass(frozen=True)
class Writer:
    """A validation font as a person. x_height, pen and proportions None: every line draws its
    own, as lines of many people sharing one font would ("per-line", the default); set, they are
    one person's habits, kept on every line ("held", as the engine's pages keep them)."""

    font: str
    x_height: float | None = None
    pen: str | None = None
    proportions: Proportions | None = None  # letter width and x-height band (hand.writer_proportions)


def make_writer(font: str, habits: str) -> Writer:
    """habits "held": a size, a pen and letter proportions drawn once per font (seeded by its
    name, so the lines adapted on and the lines scored share them), from the engine's own
    distributions."""
    if habits == "per-line":
        return Writer(font)
    cfg = SynthConfig()
    rng = np.random.default_rng([HABITS_SEED, zlib.crc32(font.encode())])
    x_height = float(rng.uniform(*cfg.x_height_range))
    pen = draw_pen_name(rng, cfg)
    return Writer(font, x_height, pen, writer_proportions(rng, cfg))


def writer_lines(writer: Writer, n: int, seed: int) -> list[LineSample]:
    """n lines of one writer, each drawn with the engine's per-line variation (what the writer
    does not hold). Lines whose text the font cannot write (the engine would switch fonts)
    are skipped."""
    font = writer.font
    synth = LineSynthesizer(split="val", seed=seed, kinds=TEXT_KINDS)
    cfg = synth.config
    lines, index = [], 0
    while len(lines) < n:
        rng = synth.rng(index)
        index += 1
        ink = synth.write_line(rng, font=font, x_height=writer.x_height, pen=writer.pen,
                               proportions=writer.proportions)
        if ink.font != font or not ink.text.strip():
            continue
        ink, _ = augment.crop_with_margins(ink, rng, cfg)
        paper, level = augment.make_paper(ink.ink.shape, rng, cfg)
        gray, _ = augment.apply_ink(paper, level, ink.ink, rng, cfg)
        image = augment.scan(gray, rng, cfg)
        lines.append(LineSample(f"{font}-{seed}-{index:05d}", ink.text, image, {"font": font, "pen": ink.pen}))
    return lines


def other_hands(exclude: str, per_font: int, digits: int, habits: str) -> list[LineSample]:
    """Lines of the other validation fonts and real held-out digit strings."""
    lines = [s for font in VALIDATION_FONTS if font != exclude
             for s in writer_lines(make_writer(font, habits), per_font, TEST_SEED)]
    ds = digit_string_lines(digits, split="val", seed=TEST_SEED)
    return lines + [ds[i] for i in range(digits)]


def read(model: Path, lines: list[LineSample], decoder: str = "greedy") -> list[Recognition]:
    """The lines read with `decoder`: greedy, as adapt measures its own held-out lines, unless
    --decoder asks for how a user reads them (auto: the commands' default search)."""
    recognizer = Recognizer.load(model, device="cpu", decoder=decoder)
    return recognizer.recognize([s.image for s in lines], batch_size=16)


def cer_of_readings(lines: list[LineSample], texts: list[str]) -> float:
    counts = ErrorCounts()
    for line, text in zip(lines, texts):
        counts.add(line.text, text)
    return counts.cer


def cer_of(model: Path, lines: list[LineSample], decoder: str = "greedy") -> float:
    return cer_of_readings(lines, [rec.text for rec in read(model, lines, decoder)])


def surer_readings(first: list[Recognition], second: list[Recognition]) -> list[str]:
    """Line by line, the reading of the model surer of it (the higher line confidence): how the
    adapted model would read beside its base model, each keeping the lines it reads best."""
    return [a.text if a.confidence >= b.confidence else b.text for a, b in zip(first, second)]


def worst_writer(model: Path, probe: int, habits: str, decoder: str) -> tuple[str, dict[str, float]]:
    cers = {font: cer_of(model, writer_lines(make_writer(font, habits), probe, TEST_SEED), decoder)
            for font in VALIDATION_FONTS}
    return max(cers, key=cers.get), cers


def write_pairs(lines: list[LineSample], folder: Path) -> Path:
    """The adaptation lines as a user would hand them over: image + .gt.txt pairs."""
    folder.mkdir(parents=True)
    for i, line in enumerate(lines):
        Image.fromarray(np.asarray(line.image)).save(folder / f"line-{i:04d}.png")
        (folder / f"line-{i:04d}.gt.txt").write_text(line.text + "\n", encoding="utf-8")
    return folder


def adaptation_lines(model: Path, writer: Writer, size: int, choose: str, pool: int) -> list[LineSample]:
    """The lines the user corrects. "random": any `size` of the writer's lines; "least-confident":
    the `size` lines the base model is least sure of among `pool` times as many (uncertainty
    sampling: what a user who corrects the lines the model flags would hand over)."""
    if choose == "random":
        return writer_lines(writer, size, ADAPT_SEED)
    candidates = writer_lines(writer, size * pool, ADAPT_SEED)
    recognitions = Recognizer.load(model, device="cpu").recognize([s.image for s in candidates], batch_size=16)
    order = sorted(range(len(candidates)), key=lambda i: recognitions[i].confidence)
    return [candidates[i] for i in sorted(order[:size])]


def run_size(model: Path, writer: Writer, size: int, target: list[LineSample], others: list[LineSample],
             base_readings: tuple[list[Recognition], list[Recognition]], args, work: Path) -> dict:
    own = adaptation_lines(model, writer, size, args.choose, args.pool)
    data = write_pairs(own, work / f"lines-{size}")
    unlabeled = []
    if args.unlabeled:
        # The rest of the writer's collection, as the user would give it: images, no text.
        folder = write_pairs(writer_lines(writer, args.unlabeled, UNLABELED_SEED), work / f"unlabeled-{size}")
        for transcription in folder.glob("*.gt.txt"):
            transcription.unlink()
        unlabeled = [str(folder)]
    out = work / f"adapted-{size}"
    cfg = AdaptConfig(model=str(model), out=str(out), minutes=args.minutes, threads=args.threads,
                      workers=args.workers, seed=args.seed, max_steps=args.max_steps,
                      freeze_conv=args.freeze_conv == "yes",
                      rehearsal=args.rehearsal, lr=args.lr, patience=args.patience, batch_size=args.batch_size,
                      unlabeled=unlabeled,
                      **dict(_setting(s) for s in args.set))
    start, cpu = time.monotonic(), time.process_time()
    result = adapt([str(data)], cfg)
    wall, cpu = (time.monotonic() - start) / 60, (time.process_time() - cpu) / 60
    load = os.getloadavg()[0]
    # CPU minutes (both threads) beside wall minutes: on a shared machine the wall clock
    # counts the other jobs' time too.
    row = {"lines": size, "freeze_conv": result.freeze_conv, "minutes": round(wall, 2), "cpu_minutes": round(cpu, 2),
           "load_avg_1min": round(load, 2), "steps": result.steps,
           "held_out_before": round(result.before_cer, 4), "held_out_after": round(result.after_cer, 4),
           "adapted_kept": result.improved, "pseudo_lines": result.pseudo_lines, "mix": result.mix,
           "check_before": result.others_before,
           "check_after": result.others_after,
           # The lines it learned from (held-out ones included): far below the unseen lines'
           # figure means it learned those lines more than the hand.
           "own_lines_before": round(cer_of(model, own, args.decoder), 4),
           "own_lines_after": round(cer_of(out, own, args.decoder), 4),
           **_scores("target", target, base_readings[0], read(out, target, args.decoder)),
           **_scores("others", others, base_readings[1], read(out, others, args.decoder))}
    if beside_dir(out) is not None:
        row.update(beside_readings(out, target, others, args))
    print(json.dumps(row), flush=True)
    return row


def beside_readings(out: Path, target: list[LineSample], others: list[LineSample], args) -> dict:
    """An output read beside its base model (`--beside`): the adapted network alone, and the pair
    with the base model reading only the lines the adapted one reads less surely than each of
    --beside-below (Recognizer.beside_below): CER, the share of lines read twice, and the
    seconds of reading both sets (the pair's cost against the adapted network alone)."""
    recognizer = Recognizer.load(out, device="cpu", decoder=args.decoder)
    pair = recognizer.beside
    figures = {}
    for below in [None, *args.beside_below]:
        recognizer.beside, name = (None, "alone") if below is None else (pair, f"below_{below:g}")
        recognizer.beside_below = below or 1.0
        start = time.perf_counter()
        readings = [recognizer.recognize([s.image for s in lines], batch_size=16) for lines in (target, others)]
        figures[f"beside_{name}"] = {
            "seconds": round(time.perf_counter() - start, 2),
            **{f"{set_name}_cer": round(cer_of_readings(lines, [r.text for r in read_]), 4)
               for set_name, lines, read_ in zip(("target", "others"), (target, others), readings)}}
        if below is None:
            alone = [r.confidence for read_ in readings for r in read_]
        else:
            figures[f"beside_{name}"]["read_twice"] = round(sum(c < below for c in alone) / len(alone), 3)
    return figures


def _scores(name: str, lines: list[LineSample], base: list[Recognition], adapted: list[Recognition]) -> dict:
    """CER before and after, and with each line read by whichever of the two is surer of it
    ("selected": what `hwr adapt --beside` reads, here for a model adapted without it; with
    `--set check_lines=0` it uses all of the change)."""
    return {f"{name}_before": round(cer_of_readings(lines, [r.text for r in base]), 4),
            f"{name}_after": round(cer_of_readings(lines, [r.text for r in adapted]), 4),
            f"{name}_selected": round(cer_of_readings(lines, surer_readings(adapted, base)), 4),
            f"{name}_adapted_surer": round(sum(a.confidence >= b.confidence for a, b in zip(adapted, base))
                                           / max(len(lines), 1), 3)}


def _setting(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    return name.strip(), json.loads(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/hwr-en-small")
    parser.add_argument("--sizes", default="20,50,200", help="adaptation line counts, comma-separated")
    parser.add_argument("--minutes", type=float, default=5.0, help="budget of each adapt run")
    parser.add_argument("--writer", default="auto", help="validation font to adapt to; auto: the worst read")
    parser.add_argument("--habits", choices=["per-line", "held"], default="per-line",
                        help="per-line: each line of a font draws its own size and pen; held: one size "
                             "and pen per font, as one person's lines")
    parser.add_argument("--probe", type=int, default=40, help="lines per font to find the worst")
    parser.add_argument("--test", type=int, default=120, help="unseen lines of the writer to score")
    parser.add_argument("--others", type=int, default=25, help="lines of each other font (and 2x digit lines)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the 2-core laptop)")
    parser.add_argument("--workers", type=int, default=AdaptConfig.workers)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-steps", type=int, help="cap the steps (default: adapt's budget from the data size)")
    parser.add_argument("--rehearsal", type=float, default=AdaptConfig.rehearsal)
    parser.add_argument("--lr", type=float, help="peak LR (default: adapt's choice from the data size)")
    parser.add_argument("--freeze-conv", choices=["yes", "no"], default="no",
                        help="train the recurrent and output layers only")
    parser.add_argument("--patience", type=int, default=AdaptConfig.patience)
    parser.add_argument("--batch-size", type=int, default=AdaptConfig.batch_size)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                        help="any other AdaptConfig setting, e.g. --set freeze_norm=false (repeatable)")
    parser.add_argument("--choose", choices=["random", "least-confident"], default="random",
                        help="which of the writer's lines are adapted on (least-confident: of --pool times as many)")
    parser.add_argument("--pool", type=int, default=4, help="--choose least-confident: candidates per line kept")
    parser.add_argument("--unlabeled", type=int, default=0,
                        help="also give adapt this many other lines of the writer without their text (--unlabeled)")
    parser.add_argument("--decoder", default="greedy",
                        help="decoder the bench scores with (greedy, auto, beam...; adapt itself reads greedily)")
    parser.add_argument("--beside-below", type=lambda text: [float(v) for v in text.split(",")],
                        default=[0.9, 0.95, 0.98, 2.0],
                        help="an output read beside its base model (the default; not with --set beside=false): read "
                             "it with the base model reading the lines "
                             "the adapted one reads less surely than each of these (above 1: every line)")
    parser.add_argument("--keep", help="copy the adapted model folders, and the hand's unseen lines as pairs "
                                       "(target-lines/), into this folder")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    model = Path(args.model)

    if args.writer == "auto":
        font, probe = worst_writer(model, args.probe, args.habits, args.decoder)
        print("CER by validation font:", json.dumps({k: round(v, 4) for k, v in probe.items()}), flush=True)
    else:
        font, probe = args.writer, {}
    writer = make_writer(font, args.habits)
    target = writer_lines(writer, args.test, TEST_SEED + 1)
    others = other_hands(font, args.others, 2 * args.others, args.habits)
    base_readings = (read(model, target, args.decoder), read(model, others, args.decoder))
    before = (cer_of_readings(target, [r.text for r in base_readings[0]]),
              cer_of_readings(others, [r.text for r in base_readings[1]]))
    print(f"writer {writer}: target CER {before[0]:.4f} on {len(target)} lines, others {before[1]:.4f} on "
          f"{len(others)} lines", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    try:
        rows = [run_size(model, writer, int(n), target, others, base_readings, args, work)
                for n in args.sizes.split(",")]
    finally:
        if args.keep:  # the adapted folders and the hand's unseen lines, to read them again another way
            for folder in work.glob("adapted-*"):
                shutil.copytree(folder, Path(args.keep) / folder.name, dirs_exist_ok=True)
            if not (Path(args.keep) / "target-lines").exists():
                write_pairs(target, Path(args.keep) / "target-lines")
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        halved = row["target_after"] <= row["target_before"] / 2
        forgot = row["others_after"] / max(row["others_before"], 1e-9) - 1
        print(f"{row['lines']:4d} lines: target {row['target_before']:.2%} -> {row['target_after']:.2%} "
              f"({'halved' if halved else 'not halved'}), others {row['others_before']:.2%} -> "
              f"{row['others_after']:.2%} ({forgot:+.0%} rel.), {row['minutes']:.1f} min wall "
              f"(load {row['load_avg_1min']}); each line read by the surer of base and adapted: target "
              f"{row['target_selected']:.2%}, others {row['others_selected']:.2%}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(model), "writer": asdict(writer), "habits": args.habits,
                                               "decoder": args.decoder,
                                               "probe": probe,
                                               "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
