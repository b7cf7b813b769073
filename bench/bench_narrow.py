"""How a model reads narrower (and wider) hands: the harder validation set squeezed sideways.

    python bench/bench_narrow.py                                   # the shipped model
    python bench/bench_narrow.py --models models/hwr-en-small models/hwr-en-base --scales 1,0.8,0.65
    python bench/bench_narrow.py --models OLD NEW --condition paper --kind corpus --json narrow.json

Fonts are each drawn at one width, and people write from cramped to sprawling. Every line of
the harder validation set (validation fonts, text and real characters only) is resized to
`scale` times its width, its height kept, and read greedily; the CER at each scale says how
much a narrower hand costs the model (stage 17, which only saw the fonts' own widths, read
the set a fifth narrower 26% worse: 6.15% -> 7.77% on 300 lines). `--condition`/`--kind`
restrict the set to one capture condition or text kind (the engine's own weights otherwise),
which makes lines of one kind easier to compare. The resize thins vertical strokes along with
the letters, which a narrow hand with the same pen would not do, so read the figures as a
probe, not as a writer's CER.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import cv2
import numpy as np

from hwr.datasets.synthetic import SyntheticLines
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts
from hwr.synth.config import HARD_SEED, hard_validation_config


def squeezed(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` at `scale` times its width (at least one pixel), its height kept."""
    width = max(1, round(image.shape[1] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (width, image.shape[0]), interpolation=interpolation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[None],
                        help="model directories or names (default: the shipped model)")
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--scales", default="1,0.8,0.65,1.25", help="comma-separated width scales")
    parser.add_argument("--condition", default=None, help="only this capture condition (capture.CONDITIONS)")
    parser.add_argument("--kind", default=None, help="only this text kind (e.g. corpus)")
    parser.add_argument("--seed", type=int, default=HARD_SEED)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    config = hard_validation_config()
    if args.condition:
        config = replace(config, condition_weights={args.condition: 1.0})
    if args.kind:
        config = replace(config, kind_weights={args.kind: 1.0})
    lines = SyntheticLines(args.lines, config=config, split="val", seed=args.seed)
    samples = [lines[i] for i in range(len(lines))]
    scales = [float(s) for s in args.scales.split(",")]
    results = []
    for model in args.models:
        recognizer = Recognizer.load(model)
        for scale in scales:
            readings = recognizer.recognize([squeezed(s.image, scale) for s in samples])
            score = ErrorCounts()
            for sample, reading in zip(samples, readings):
                score.add(sample.text, reading.text)
            results.append({"model": str(model or "default"), "scale": scale, "cer": score.cer, "wer": score.wer,
                            "lines": len(samples)})
            print(f"{model or 'default'}  width x{scale:<5g} CER {100 * score.cer:6.2f}%  WER {100 * score.wer:6.2f}%",
                  flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"lines": len(samples), "seed": args.seed, "condition": args.condition, "kind": args.kind,
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
