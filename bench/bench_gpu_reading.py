"""Greedy reading of normalised lines: float lines against uint8 lines, float32 against float16
autocast (issue 22's lines/s).

    python bench/bench_gpu_reading.py [--model hwr-en-small] [--device cuda] [--lines 2048]

For each way of reading: lines/s at --batch-size (median of --rounds passes after one warm-up,
the padding, the copies, the network and the decoding: Recognizer.recognize_normalized), the
CER against the lines' truth, and how many lines read exactly as float lines in float32 read.
"uint8 lines" are the lines as `Recognizer.prepare` keeps them for a GPU (a quarter of the
bytes to pad, pin and copy). Then the host's share of a batch: padding it onto the device
(hwr.recognition.feed.lines_to_device, float and uint8 lines; the copy itself is asynchronous
on CUDA) and greedy decoding of its scores as reading does it (the best path on the device,
then the runs on the host), which bound the rate once the device's work overlaps them.
Autocast is what training uses (AMP); reading keeps float32 unless this shows the same texts.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from gpu_busy import GpuBusy  # bench/ is on the path when run as a script

from hwr.datasets.synthetic import SyntheticLines
from hwr.documents.prepare import ink_to_uint8
from hwr.recognition.feed import lines_to_device
from hwr.recognition.model import Recognizer
from hwr.scoring.metrics import ErrorCounts


def timed_reading(recognizer: Recognizer, normalized, batch_size: int, rounds: int) -> tuple[float, list[str], dict]:
    """(lines/s, texts, the GPU's busy share) of the median pass after a warm-up (cuDNN picks
    its kernels then); the busy share over all the timed passes."""
    texts = [r.text for r in recognizer.recognize_normalized(normalized, batch_size)]
    passes = []
    with GpuBusy(recognizer.device) as busy:
        for _ in range(rounds):
            start = time.perf_counter()
            recognizer.recognize_normalized(normalized, batch_size)
            passes.append(time.perf_counter() - start)
    return len(normalized) / sorted(passes)[len(passes) // 2], texts, busy.summary()


def host_milliseconds(recognizer: Recognizer, kinds: dict, batch_size: int) -> dict:
    """Milliseconds per batch of the host's own work: padding each kind of line onto the device,
    and greedy decoding on the CPU."""
    report = {}
    for name, normalized in kinds.items():
        chunks = [normalized[i : i + batch_size] for i in range(0, len(normalized), batch_size)]
        start = time.perf_counter()
        padded = [lines_to_device(chunk, recognizer.device) for chunk in chunks]
        report[f"pad_{name}_ms"] = round(1000 * (time.perf_counter() - start) / len(chunks), 1)
    images, widths = padded[0]
    log_probs, lengths = recognizer.padded_log_probs(images, widths)
    if log_probs.is_cuda:
        torch.cuda.synchronize()
    # As reading decodes a batch: the best path on the device, its copy, the runs on the host.
    start = time.perf_counter()
    recognizer.decoder.start(log_probs, lengths, recognizer.frame_width)()
    report["greedy_decode_ms"] = round(1000 * (time.perf_counter() - start), 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory or name (default: the shipped model)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--lines", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    recognizer = Recognizer.load(args.model, device=args.device)
    lines = SyntheticLines(args.lines, split="val", seed=99)
    samples = [lines[i] for i in range(len(lines))]
    normalized = [recognizer.preprocess(s.image) for s in samples]
    kinds = {"float_lines": normalized, "uint8_lines": [ink_to_uint8(line) for line in normalized]}
    report = {"model": str(recognizer.path), "device": str(recognizer.device), "lines": len(samples),
              "batch_size": args.batch_size}
    reference = None
    for name, kind, amp in (("float32", "float_lines", False), ("float32_uint8_lines", "uint8_lines", False),
                            ("autocast_float16", "uint8_lines", True)):
        recognizer.amp = amp and recognizer.device.type == "cuda"
        if amp and not recognizer.amp:
            continue  # autocast reading is a CUDA option
        rate, texts, busy = timed_reading(recognizer, kinds[kind], args.batch_size, args.rounds)
        counts = ErrorCounts()
        for sample, text in zip(samples, texts):
            counts.add(sample.text, text)
        reference = reference or texts
        report[name] = {"lines_per_s": round(rate, 1), "cer": round(counts.cer, 5),
                        "same_texts_as_float32": sum(a == b for a, b in zip(texts, reference)), **busy}
    recognizer.amp = False
    report["host_per_batch"] = host_milliseconds(recognizer, kinds, args.batch_size)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
