"""Measure a trained model and write its MODEL_CARD.md: accuracy per held-out validation font,
on held-out MNIST digit strings, and greedy decoding speed on this machine.

    python bench/model_card.py models/hwr-en-small --lines 800 --digit-lines 300

Validation data only (the 8 held-out fonts, held-out corpus lines, held-out MNIST digits):
numbers here are for model selection and reporting, not an independent test.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import torch
from gpu_busy import GpuBusy  # bench/ is on the path when run as a script

from hwr.datasets.synthetic import SyntheticLines, digit_string_lines
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts
from hwr.synth.fonts import VALIDATION_FONTS


def score_by_font(recognizer: Recognizer, lines) -> tuple[ErrorCounts, dict[str, ErrorCounts]]:
    samples = [lines[i] for i in range(len(lines))]
    recognitions = recognizer.recognize([s.image for s in samples], batch_size=32)
    total, per_font = ErrorCounts(), defaultdict(ErrorCounts)
    for sample, rec in zip(samples, recognitions):
        total.add(sample.text, rec.text)
        per_font[sample.meta.get("font", "?")].add(sample.text, rec.text)
    return total, dict(per_font)


def speed(recognizer: Recognizer, lines, threads: int, big_batch: int = 0) -> dict:
    """Lines/s at batch 16 and ms for one line, padding + network + greedy decoding on normalised
    lines (`big_batch`: also lines/s at that batch size, the GPU's working point)."""
    torch.set_num_threads(threads)
    # As `prepare` keeps them for this device (uint8 ink for a GPU, floats on a CPU).
    normalized = recognizer.prepare([lines[i].image for i in range(len(lines))]).arrays
    recognizer.recognize_normalized(normalized[:64], 16)  # warm-up: every batch shape once
    # Median of 5 passes: a single pass on a shared VM swings by +-20%.
    passes = []
    for _ in range(5):
        start = time.perf_counter()
        recognizer.recognize_normalized(normalized[:64], 16)
        passes.append(time.perf_counter() - start)
    batch_rate = 64 / sorted(passes)[len(passes) // 2]
    extra = {}
    if big_batch:
        recognizer.recognize_normalized(normalized, big_batch)  # warm-up (cuDNN picks its kernels)
        big_passes = []
        with GpuBusy(recognizer.device) as busy:
            for _ in range(3):
                start = time.perf_counter()
                recognizer.recognize_normalized(normalized, big_batch)
                big_passes.append(time.perf_counter() - start)
        extra[f"batch{big_batch}_lines_per_s"] = round(len(normalized) / sorted(big_passes)[1], 1)
        extra.update({f"batch{big_batch}_{key}": value for key, value in busy.summary().items()})
    singles = []
    for line in normalized[:20]:
        start = time.perf_counter()
        recognizer.recognize_normalized([line], 1)
        singles.append(time.perf_counter() - start)
    singles.sort()
    widths = [n.shape[1] for n in normalized[:64]]
    return {"threads": threads, "batch16_lines_per_s": round(batch_rate, 1),
            "one_line_ms_median": round(1000 * singles[len(singles) // 2], 1),
            "mean_line_width_px": round(sum(widths) / len(widths)), **extra}


def repeated_speed(recognizer: Recognizer, lines, threads: int, runs: int) -> dict:
    """`speed` run `runs` times a few seconds apart: the median run, and the range of the batch
    rate, because on a shared VM the rate drifts by tens of percent from minute to minute."""
    results = []
    for _ in range(runs):
        results.append(speed(recognizer, lines, threads))
        time.sleep(2)
    results.sort(key=lambda r: r["batch16_lines_per_s"])
    median = dict(results[len(results) // 2])
    rates = [r["batch16_lines_per_s"] for r in results]
    median.update(runs=runs, batch16_min=min(rates), batch16_max=max(rates))
    return median


def speed_range(cpu: dict) -> str:
    if cpu.get("runs", 1) < 2:
        return ""
    return f" (median of {cpu['runs']} runs; range {cpu['batch16_min']}-{cpu['batch16_max']})"


def gpu_line(gpu: dict | None) -> str:
    if not gpu:
        return "- GPU: not measured for this model (no GPU was available to the session that trained it)."
    return (f"- GPU ({gpu['device']}): {gpu['batch16_lines_per_s']} lines/s at batch 16, "
            f"{gpu['batch256_lines_per_s']} lines/s at batch 256"
            + (f" (GPU busy {gpu['batch256_gpu_busy_percent']:.0f}% of the time)"
               if gpu.get("batch256_gpu_busy_percent") is not None else "")
            + f"; {gpu['one_line_ms_median']} ms for one line (median)"
            + (f"; measured on {gpu['measured_on']}." if gpu.get("measured_on") else "."))


def last_run(training: dict) -> str:
    """What the weights are: a run's best checkpoint, or the mean of its snapshots (hwr average)."""
    averaged = training.get("averaged_from")
    if averaged:
        names = ", ".join(Path(d).name for d in averaged)
        return f"the mean of {len(averaged)} snapshots of one run (`hwr average`: {names})"
    return f"{training.get('minutes', '?')} minutes to its best checkpoint (step {training.get('best_step', '?')})"


def render_card(model_dir: Path, recognizer: Recognizer, total, per_font, digits, cpu, recipe: str,
                training_notes: str = "", gpu: dict | None = None) -> str:
    training = recognizer.config.training
    rows = "\n".join(f"| {font if font != 'mnist' else 'MNIST digit strings (mixed in)'} | {c.lines} | "
                     f"{c.cer:.2%} | {c.wer:.2%} |" for font, c in sorted(per_font.items()))
    cfg = training.get("config", {})
    fonts = sorted(((c.cer, f) for f, c in per_font.items() if f != "mnist"), reverse=True)
    weakest = ", ".join(f"{f} (CER {c:.1%})" for c, f in fonts[:2])
    return f"""# {model_dir.name}

English handwriting line recognizer shipped with hwr (loaded by default).

## Architecture
- `{recognizer.config.arch}` preset `{cfg.get('preset') or 'default'}`: {json.dumps(recognizer.config.net)}
- Parameters: {recognizer.num_parameters:,}; input: grayscale lines normalised to height {recognizer.normalize_config.line_height} px
- Output: CTC over {len(recognizer.charset) - 1} symbols (printable ASCII) + blank

## Training data
Synthetic only (`hwr.synth`): lines rendered on the fly from the 49 training fonts (the 65 fonts of
`data/fonts/train-fonts.txt` minus the 8 validation fonts below), corpus text (BSD fortunes, World
English Bible, SCOWL words; every 20th corpus line held out for validation), generated numbers,
dates, prices, times, phone numbers, abbreviations and punctuation, and real MNIST digit strings
(first 700 per class). Writer-like augmentation: size, letter and word spacing jitter, baseline
drift, slant, rotation, stroke width, elastic distortion, ink, blur, paper texture, ruled lines,
JPEG artefacts (see `hwr/synth/config.py` for every setting).

## Reproduce
```
{recipe}
```
Last training run: {last_run(training)},
device `{cfg.get('device', '?')}`, batch {cfg.get('batch_size', '?')}, {cfg.get('optimizer', '?')} lr {cfg.get('lr', '?')}.
{training_notes}
## Validation (held-out fonts and text; greedy decoding)
Validation fonts: {", ".join(VALIDATION_FONTS)} (never trained on). The mixed set below has the
synthetic engine's validation mix of text kinds, with its full augmentation.

| font | lines | CER | WER |
|---|---|---|---|
{rows}
| **all** | {total.lines} | **{total.cer:.2%}** | **{total.wer:.2%}** |

MNIST digit strings from the 100 held-out digits per class: {digits.lines} lines, CER **{digits.cer:.2%}**, WER {digits.wer:.2%}.

## Speed (greedy decoding, normalised lines, {platform.processor() or platform.machine()}, {cpu['threads']} CPU threads)
- {cpu['batch16_lines_per_s']} lines/s at batch 16{speed_range(cpu)}; {cpu['one_line_ms_median']} ms for one line (median); mean line width {cpu['mean_line_width_px']} px. The lines
  are sorted by width into batches, and on the CPU each batch runs ragged (`hwr.recognition.nets.ragged`: the
  convs in width groups, the LSTMs in segments of steps), so short lines skip the padding.
{gpu_line(gpu)}

## Known limits
- Weakest held-out fonts: {weakest}.
- Trained on synthetic handwriting from fonts only: real hands vary more (connected cursive, corrections,
  uneven baselines), so expect clearly higher error on real scans than on the validation fonts above.
- English printable ASCII only; no accents, no long s, no non-Latin scripts.
- Line images only; pages go through `hwr transcribe` page segmentation first.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--lines", type=int, default=800)
    parser.add_argument("--digit-lines", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", default="hwr train --config configs/hwr-en-small.json --out runs/hwr-en-small",
                        help="the command(s) that reproduce the model (newlines allowed)")
    parser.add_argument("--training-notes", type=Path, help="markdown file: how this run went (stages, machine, curve)")
    parser.add_argument("--gpu-speed", type=Path, help="JSON from --speed-only --device cuda, for the card")
    parser.add_argument("--speed-runs", type=int, default=5, help="CPU speed measurements for the card")
    parser.add_argument("--speed-only", action="store_true", help="print the speed figures as JSON, no card")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(args.model, device=args.device)
    if args.speed_only:
        gpu = args.device != "cpu"
        figures = speed(recognizer, SyntheticLines(2048 if gpu else 64, split="val", seed=99), args.threads,
                        big_batch=256 if gpu else 0)
        figures["device"] = torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine()
        print(json.dumps(figures))
        return
    total, per_font = score_by_font(recognizer, SyntheticLines(args.lines, split="val", seed=1234))
    digits, _ = score_by_font(recognizer, digit_string_lines(args.digit_lines, split="val", seed=1234))
    cpu = repeated_speed(recognizer, SyntheticLines(64, split="val", seed=99), args.threads, args.speed_runs)
    notes = "\n" + args.training_notes.read_text(encoding="utf-8").strip() + "\n" if args.training_notes else ""
    gpu = json.loads(args.gpu_speed.read_text()) if args.gpu_speed else None
    card = render_card(args.model, recognizer, total, per_font, digits, cpu, args.recipe.replace("\\n", "\n"), notes,
                       gpu)
    (args.model / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    summary = {"val_cer": total.cer, "val_wer": total.wer, "digits_cer": digits.cer, "cpu": cpu, "gpu": gpu,
               "per_font_cer": {f: c.cer for f, c in per_font.items()}}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
