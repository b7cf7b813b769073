"""Training throughput of the line recognizers: forward + CTC loss + backward, in lines/s.

    python bench/bench_nets.py --quick                      # < 1 minute on 2 CPU cores
    python bench/bench_nets.py --sizes 64x512,128x1024 --batch-size 8
    python bench/bench_nets.py --device cuda --batch-size 32  # mixed precision, as `hwr train` (fp16)

Each network gets lines of the benchmarked height (its config's `line_height` is set to it)
filled with random ink, full width, and random 20-character targets. One untimed warm-up
step, then timed steps until `--min-seconds` have passed (at least `--steps`). On a GPU the
step is `hwr train`'s: fp16 autocast with loss scaling, the widths on the host (the networks
count their frames there without waiting for the GPU), CTC in float32.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from hwr.recognition.nets import build_network, count_parameters, make_config

NUM_CLASSES = 96
TARGET_LENGTH = 20
# (label, architecture, preset): the two MDLSTM presets against the default CNN + BLSTM.
NETWORKS = {
    "mdlstm-graves2009": ("mdlstm", "graves2009"),
    "mdlstm-voigtlaender2016": ("mdlstm", "voigtlaender2016"),
    "crnn": ("crnn", None),
    "crnn-compact": ("crnn", "compact"),
    "crnn-base": ("crnn", "base"),
    "crnn-puigcerver2017": ("crnn", "puigcerver2017"),
}


@dataclass
class Result:
    network: str
    size: str
    batch_size: int
    parameters: int
    seconds_per_step: float

    @property
    def lines_per_second(self) -> float:
        return self.batch_size / self.seconds_per_step


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def training_step(net, images, widths, targets, target_lengths, amp: bool) -> None:
    with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=amp):
        logits, lengths = net(images, widths)
    # CTC in float32: the log-space recursions underflow in half precision.
    log_probs = logits.float().log_softmax(-1)
    loss = nn.CTCLoss(blank=0, zero_infinity=True)(log_probs, targets, lengths, target_lengths)
    net.zero_grad(set_to_none=True)
    SCALER.scale(loss).backward() if amp else loss.backward()


# Loss scaling as `hwr train` does with fp16 (its cost is in the step timed).
SCALER = torch.amp.GradScaler("cuda", enabled=torch.cuda.is_available())


@torch.inference_mode()
def inference_step(net, images, widths, targets, target_lengths, amp: bool) -> None:
    with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=amp):
        logits, _ = net(images, widths)
    logits.float().log_softmax(-1).argmax(-1)  # greedy decoding's device-side work


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_network(label: str, size: tuple[int, int], batch_size: int, device: torch.device,
                  steps: int, min_seconds: float, warmup: bool = True, inference: bool = False) -> Result:
    arch, preset = NETWORKS[label]
    height, width = size
    torch.manual_seed(0)
    net = build_network(arch, make_config(arch, preset, line_height=height), NUM_CLASSES)
    net.to(device).train(not inference)
    step = inference_step if inference else training_step
    images = (torch.rand(batch_size, 1, height, width, device=device) > 0.8).float()
    widths = torch.full((batch_size,), width, dtype=torch.long)  # on the host, as hwr train keeps them
    targets = torch.randint(1, NUM_CLASSES, (batch_size, TARGET_LENGTH), device=device)
    target_lengths = torch.full((batch_size,), TARGET_LENGTH, dtype=torch.long, device=device)
    args = (net, images, widths, targets, target_lengths, device.type == "cuda")
    if warmup:  # allocator, kernels, autotuning
        step(*args)
        _sync(device)
    done, start = 0, time.perf_counter()
    while done < steps or time.perf_counter() - start < min_seconds:
        step(*args)
        _sync(device)
        done += 1
    elapsed = (time.perf_counter() - start) / done
    return Result(label, f"{height}x{width}", batch_size, count_parameters(net), elapsed)


def benchmark(networks: list[str], sizes: list[tuple[int, int]], batch_size: int,
              device: str = "cpu", threads: int = 2, steps: int = 2,
              min_seconds: float = 5.0, warmup: bool = True, report=print, inference: bool = False) -> list[Result]:
    """Measure every network at every size; `report` gets each result line as it comes."""
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = True
    dev = torch.device(device)
    what = "forward only (inference)" if inference else "forward + CTC + backward"
    report(f"device {dev}, {threads} CPU threads, batch {batch_size}, {what}")
    report(f"{'network':26} {'size':>9} {'params':>10} {'s/step':>8} {'lines/s':>8}")
    results = []
    for size in sizes:
        for label in networks:
            r = bench_network(label, size, batch_size, dev, steps, min_seconds, warmup, inference)
            results.append(r)
            report(f"{r.network:26} {r.size:>9} {r.parameters:>10,} "
                   f"{r.seconds_per_step:8.3f} {r.lines_per_second:8.1f}")
    return results


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=",".join(NETWORKS), help="comma-separated subset")
    parser.add_argument("--sizes", default="64x512,128x1024", help="HEIGHTxWIDTH, comma-separated")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=2, help="at least this many timed steps")
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--inference", action="store_true", help="time forward passes only")
    parser.add_argument("--quick", action="store_true",
                        help="64x512, batch 2, one step, no warm-up: a smoke run under a minute")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    batch_size, steps, min_seconds = args.batch_size, args.steps, args.min_seconds
    if args.quick:
        sizes, batch_size, steps, min_seconds = [(64, 512)], 2, 1, 0.0
    networks = args.nets.split(",")
    unknown = set(networks) - set(NETWORKS)
    if unknown:
        parser.error(f"unknown network(s) {sorted(unknown)}; choose from {sorted(NETWORKS)}")
    return benchmark(networks, sizes, batch_size, args.device, args.threads, steps,
                     min_seconds, warmup=not args.quick, inference=args.inference)


if __name__ == "__main__":
    main()
