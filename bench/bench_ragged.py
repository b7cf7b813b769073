"""What the ragged-batch plans (hwr.recognition.nets.ragged) buy on the CPU, and the costs they model.

    python bench/bench_ragged.py                 # ~2 minutes on 2 CPU cores
    python bench/bench_ragged.py --lines 64 400 --rounds 7

1. Kernel costs behind the plans' constants: one single-direction LSTM layer of the model's
   size (call overhead and per-step cost by batch size) and the model's conv stack (call
   overhead and cost per pixel column by batch and width).
2. Lines/s at batch 16 (network + greedy decoding on normalised validation lines) with the
   plans on and off, interleaved round by round because a shared VM drifts by tens of
   percent from minute to minute; the median round of each, and whether every text matched.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import torch

from hwr.datasets.synthetic import SyntheticLines
from hwr.recognition.model import Recognizer
from hwr.recognition.nets import crnn


def median_seconds(fn, repeats: int = 9) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@torch.inference_mode()
def recurrence_costs(net: crnn.CRNN) -> None:
    rnn = net.rnn
    weights = [getattr(rnn, f"{name}_l1") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    print(f"LSTM layer 2 ({2 * rnn.hidden_size} -> {rnn.hidden_size}), "
          "one direction: us per call at T steps")
    for lines in (1, 4, 8, 16):
        h0 = torch.zeros(1, lines, rnn.hidden_size)
        row = []
        for steps in (1, 50, 200):
            x = torch.randn(steps, lines, 2 * rnn.hidden_size)
            row.append(1e6 * median_seconds(
                lambda: torch.lstm(x, (h0, h0), weights, True, 1, 0.0, False, False, False)))
        per_step = (row[2] - row[1]) / 150
        print(f"  {lines:2d} lines: T=1 {row[0]:7.0f}  T=50 {row[1]:7.0f}  T=200 {row[2]:7.0f}"
              f"   per step {per_step:5.1f} us = {per_step / lines:4.2f} us per line-step")


@torch.inference_mode()
def conv_costs(net: crnn.CRNN) -> None:
    print("conv stack: ms per call, us per pixel column of one line")
    for lines, width in ((1, 100), (1, 1600), (4, 400), (16, 100), (16, 400), (16, 1600)):
        images = torch.rand(lines, 1, net.config.line_height, width).contiguous(memory_format=torch.channels_last)
        widths = torch.full((lines,), width)
        seconds = median_seconds(lambda: net.convolve(images, widths))
        print(f"  {lines:2d} x {width:4d} px: {1e3 * seconds:7.2f} ms  {1e6 * seconds / (lines * width):5.2f} us")


def plans_off():
    """Patch the plans to one group and one segment: the plain padded batch."""
    return mock.patch.multiple(
        crnn,
        width_groups=lambda widths: [sorted(range(len(widths)), key=lambda i: widths[i])],
        recurrence_segments=lambda lengths: [(0, max(lengths), len(lengths))],
    )


def lines_per_second(recognizer: Recognizer, count: int, rounds: int) -> None:
    samples = SyntheticLines(count, split="val", seed=99)
    lines = [recognizer.preprocess(samples[i].image) for i in range(count)]
    with plans_off():
        padded_texts = [r.text for r in recognizer.recognize_normalized(lines, 16)]
    ragged_texts = [r.text for r in recognizer.recognize_normalized(lines, 16)]
    rates = {"padded": [], "ragged": []}
    for _ in range(rounds):
        for name in rates:
            with plans_off() if name == "padded" else contextlib.nullcontext():
                rates[name].append(count / median_seconds(lambda: recognizer.recognize_normalized(lines, 16), 1))
    summary = ", ".join(f"{name} {sorted(r)[len(r) // 2]:.1f} (range {min(r):.0f}-{max(r):.0f})"
                        for name, r in rates.items())
    print(f"{count} lines at batch 16, lines/s: {summary}; same texts: {padded_texts == ragged_texts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--lines", type=int, nargs="+", default=[64, 400])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(args.model)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    recurrence_costs(recognizer.net)
    conv_costs(recognizer.net)
    for count in args.lines:
        lines_per_second(recognizer, count, args.rounds)


if __name__ == "__main__":
    main()
