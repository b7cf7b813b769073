"""Decoding benchmark: greedy vs character-LM vs word-LM beam search, confidence calibration,
and forced-alignment accuracy. CPU only; run with OMP_NUM_THREADS set to the cores you have.

    python bench/bench_decode.py --model runs/hwr-en-small/best --n 300           # measure
    python bench/bench_decode.py --model runs/hwr-en-small/best --n 200 --tune    # grid search

Everything runs on synthetic *validation* lines (held-out fonts and text): tuning uses one
seed's lines and the final figures another seed's, so the reported numbers are not the ones
the settings were picked on. Network posteriors are computed once and shared by all decoders,
so decoding speed is measured apart from the network.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from hwr.datasets.synthetic import SyntheticLines
from hwr.recognition.align import align_labels, char_extents
from hwr.recognition.decode import make_decoder
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts

# Print-like and casual validation fonts: their glyph boxes are well defined (cursive joins
# make "where does this letter end" a matter of opinion).
ALIGN_FONTS = ("delius", "short-stack", "architects-daughter", "gochi-hand")


@dataclass
class Posteriors:
    """Network output for a set of lines, kept per batch, ready for any decoder."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    references: list[str]
    frame_width: float
    network_s: float


def compute_posteriors(recognizer: Recognizer, samples, batch_size: int = 16) -> Posteriors:
    lines = [recognizer.preprocess(s.image) for s in samples]
    started = time.perf_counter()
    batches = [recognizer.log_probs(lines[i : i + batch_size]) for i in range(0, len(lines), batch_size)]
    network_s = time.perf_counter() - started
    frame_width = float(getattr(recognizer.net, "width_factor", 1))
    return Posteriors(batches, [s.text for s in samples], frame_width, network_s)


def run_decoder(decoder, post: Posteriors) -> dict:
    started = time.perf_counter()
    recs = [r for lp, lengths in post.batches for r in decoder.decode(lp, lengths, post.frame_width)]
    decode_s = time.perf_counter() - started
    counts = ErrorCounts()
    for ref, rec in zip(post.references, recs):
        counts.add(ref, rec.text)
    n = len(recs)
    return {"cer": counts.cer, "wer": counts.wer, "lines": n, "decode_lines_per_s": n / decode_s,
            "total_lines_per_s": n / (decode_s + post.network_s), **calibration(post.references, recs)}


def calibration(references: list[str], recs, share: float = 0.1) -> dict:
    """CER of the least confident `share` of lines vs the rest: does sorting by confidence
    find the errors?"""
    order = np.argsort([r.confidence for r in recs], kind="stable")
    k = max(1, int(round(share * len(recs))))

    def corpus_cer(idx):
        counts = ErrorCounts()
        for i in idx:
            counts.add(references[i], recs[i].text)
        return counts.cer

    return {"cer_least_confident_10pct": corpus_cer(order[:k]), "cer_rest": corpus_cer(order[k:])}


def tune(recognizer: Recognizer, post: Posteriors, modes: list[str]) -> dict:
    """Grid over LM weight, blank penalty and the insertion score of each mode (validation lines)."""
    grids = {
        # Beam widths too: 4 tokens per frame and a 10-nat threshold keep the search several
        # times faster than 12 and 20 at the same CER (December, stage 14), so the widths are
        # tried at those.
        "beam-char": {"lm_weight": [0.6, 1.0, 1.5], "blank_penalty": [1.0, 2.0, 3.0], "sil_score": [0.0, 1.0],
                      "beam_size": [8, 16], "beam_size_token": [4], "beam_threshold": [10.0]},
        # A negative word score also taxes the out-of-vocabulary path per letter (each letter
        # is a lexicon "word" there), so it is how the search learns to prefer real words.
        "beam-word": {"lm_weight": [0.3, 0.6, 1.0], "word_score": [-2.0, 0.0, 1.5, 3.0], "blank_penalty": [0.0, 1.5]},
    }
    best = {}
    for name, grid in grids.items():
        if name not in modes:
            continue
        results = []
        for values in itertools.product(*grid.values()):
            options = dict(zip(grid, values))
            r = run_decoder(make_decoder(name, recognizer.charset, **options), post)
            results.append((r["cer"], r["wer"], options))
            print(f"  {name} {options}: CER {r['cer']:.4f} WER {r['wer']:.4f}", flush=True)
        best[name] = min(results, key=lambda x: (x[0] + x[1], str(x[2])))
        print(f"best {name}: {best[name]}", flush=True)
    return best


def render_line(text: str, font_path: Path, size: int = 40, pad: int = 30):
    """A line drawn with a font, and the x centre of every non-space glyph's ink box."""
    font = ImageFont.truetype(str(font_path), size, layout_engine=ImageFont.Layout.BASIC)
    width = int(font.getlength(text)) + 2 * pad
    img = Image.new("L", (width, size * 2 + 2 * pad), 255)
    ImageDraw.Draw(img).text((pad, pad), text, font=font, fill=0)
    centres = []
    for k, ch in enumerate(text):
        if ch == " ":
            continue
        x0, _, x1, _ = font.getbbox(ch)
        centres.append(pad + font.getlength(text[:k]) + (x0 + x1) / 2)
    return np.asarray(img), centres


def alignment_error(recognizer: Recognizer, texts: list[str], fonts_dir: Path) -> dict:
    """Mean |aligned centre - true centre| of non-space characters, in source pixels, when the
    reference text is force-aligned to the network's posteriors."""
    errors, pitches = [], []
    for i, text in enumerate(texts):
        font = fonts_dir / f"{ALIGN_FONTS[i % len(ALIGN_FONTS)]}-latin-400-normal.woff2"
        image, true_centres = render_line(text, font)
        line, geometry = recognizer.preprocess_with_geometry(image)
        lp, _ = recognizer.log_probs([line])
        aligned = align_labels(lp[:, 0], recognizer.charset.encode(text))
        if not aligned:
            continue
        extents = char_extents([(a.first, a.last) for a in aligned], float(recognizer.net.width_factor))
        centres = [geometry.to_source_x((x0 + x1) / 2) for (x0, x1), ch in zip(extents, text) if ch != " "]
        errors.extend(abs(a - b) for a, b in zip(centres, true_centres))
        pitches.append((true_centres[-1] - true_centres[0]) / max(1, len(true_centres) - 1))
    return {"mean_abs_x_error_px": float(np.mean(errors)), "median_abs_x_error_px": float(np.median(errors)),
            "mean_char_pitch_px": float(np.mean(pitches)), "chars": len(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="runs/hwr-en-small/best")
    parser.add_argument("--n", type=int, default=300, help="validation lines to score")
    parser.add_argument("--seed", type=int, default=1, help="seed of the scored validation lines")
    parser.add_argument("--tune", action="store_true", help="grid-search on lines of --tune-seed first")
    parser.add_argument("--tune-seed", type=int, default=7)
    parser.add_argument("--tune-modes", default="beam-char,beam-word", help="decoders to tune, comma-separated")
    parser.add_argument("--align-lines", type=int, default=60)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    recognizer = Recognizer.load(args.model, device="cpu")
    report: dict = {"model": args.model}
    if args.tune:
        tune_post = compute_posteriors(recognizer, list(SyntheticLines(args.n, split="val", seed=args.tune_seed)))
        tuned = tune(recognizer, tune_post, args.tune_modes.split(","))
        report["tuned"] = {k: {"cer": v[0], "wer": v[1], **v[2]} for k, v in tuned.items()}
    samples = list(SyntheticLines(args.n, split="val", seed=args.seed))
    post = compute_posteriors(recognizer, samples)
    report["network_lines_per_s"] = len(samples) / post.network_s
    for name in ("greedy", "beam-char", "beam-word"):
        started = time.perf_counter()
        decoder = make_decoder(name, recognizer.charset)
        load_s = time.perf_counter() - started
        report[name] = {**run_decoder(decoder, post), "load_s": load_s}
        print(name, json.dumps(report[name]), flush=True)
    from hwr.assets import data_dir

    if args.align_lines:
        texts = [s.text for s in samples[: args.align_lines]]
        report["alignment"] = alignment_error(recognizer, texts, data_dir() / "fonts")
        print("alignment", json.dumps(report["alignment"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
