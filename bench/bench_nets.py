"""Training throughput of the line recognizers: forward + CTC loss + backward, in lines/s.

    python bench/bench_nets.py --quick                      # < 1 minute on 2 CPU cores
    python bench/bench_nets.py --sizes 64x512,128x1024 --batch-size 8
    python bench/bench_nets.py --device cuda --batch-size 32  # mixed precision, as `hwr train` (fp16)
    python bench/bench_nets.py --device cuda --nets crnn-base --sizes 48x1536 --batch-size 64 \
        --ragged --recurrence packed,reversed   # training's varied widths, both CRNN recurrences

Each network gets lines of the benchmarked height (its config's `line_height` is set to it)
filled with random ink, full width, and random 20-character targets. One untimed warm-up
step, then timed steps until `--min-seconds` have passed (at least `--steps`). On a GPU the
step is `hwr train`'s: fp16 autocast with loss scaling, the widths on the host (the networks
count their frames there without waiting for the GPU), CTC in float32.

`--ragged` gives each step a batch as training does: lines of varied widths padded to the
widest, rounded up to 64 px (hwr.training.batches), so that a batch's width is a new shape
to cuDNN now and then. `--batches` such batches (16) are cycled: the first pass over them is timed
apart (`first pass`: cuDNN's autotuning of each new width), then the steady state. The
steps are timed without a wait for the GPU after each (as training runs), one at the end.
`--recurrence packed,reversed` compares the CRNN's two recurrences on the same batches:
cuDNN's packed kernel (the GPU's path) against each direction run over the padded batch,
reversed within each line's length (the CPU's path, `CRNN.recur_reversed`).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from hwr.documents.line_batches import WIDTH_MULTIPLE
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
    recurrence: str = ""
    first_pass_seconds_per_step: float | None = None  # --ragged: the untimed-before pass, autotuning included

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


RAGGED_BATCHES = 16


def ragged_batches(batch_size: int, height: int, max_width: int, device: torch.device, count: int = RAGGED_BATCHES,
                   seed: int = 0) -> list[tuple]:
    """`count` batches as training makes them: each batch's widest line between half and all of
    `max_width`, its other lines 30-100% of that, the batch padded to a multiple of 64 px;
    targets as long as the line allows (a character per ~4 frames, at most 60)."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        widest = int(torch.randint(max_width // 2, max_width + 1, (1,), generator=gen))
        padded = -(-widest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE
        widths = (torch.rand(batch_size, generator=gen) * 0.7 + 0.3).mul(widest).long().clamp(min=WIDTH_MULTIPLE)
        widths[0] = widest
        images = (torch.rand(batch_size, 1, height, padded, generator=gen) > 0.8).float()
        images *= (torch.arange(padded)[None, :] < widths[:, None]).float()[:, None, None, :]
        target_lengths = (widths // 32).clamp(1, 60)
        targets = torch.randint(1, NUM_CLASSES, (int(target_lengths.sum()),), generator=gen)
        batches.append((images.to(device), widths, targets.to(device), target_lengths))
    return batches


def use_recurrence(net, recurrence: str) -> None:
    """Make a CRNN run `recurrence` on every device: "packed" (cuDNN's packed kernel on a GPU,
    as `hwr train` runs there) or "reversed" (`recur_reversed`, the CPU's path)."""
    if recurrence == "reversed":
        net.recur_packed = lambda seq, lengths, host_lengths=None: net.recur_reversed(seq, lengths)
    elif recurrence == "packed":
        net.recur_reversed = net.recur_packed
    else:
        raise ValueError(f"unknown recurrence {recurrence!r}: packed or reversed")


def bench_ragged(label: str, size: tuple[int, int], batch_size: int, device: torch.device, steps: int,
                 min_seconds: float, recurrence: str = "", count: int = RAGGED_BATCHES) -> Result:
    """Training steps over `ragged_batches`, cycled: the first pass apart, then the steady state."""
    arch, preset = NETWORKS[label]
    height, width = size
    torch.manual_seed(0)
    net = build_network(arch, make_config(arch, preset, line_height=height), NUM_CLASSES)
    net.to(device).train()
    if recurrence:
        use_recurrence(net, recurrence)
    batches = ragged_batches(batch_size, height, width, device, count)
    amp = device.type == "cuda"
    start = time.perf_counter()
    for images, widths, targets, target_lengths in batches:
        training_step(net, images, widths, targets, target_lengths, amp)
    _sync(device)
    first_pass = (time.perf_counter() - start) / len(batches)
    done, start = 0, time.perf_counter()
    while done < steps or time.perf_counter() - start < min_seconds:
        training_step(net, *batches[done % len(batches)], amp)
        done += 1
    _sync(device)
    elapsed = (time.perf_counter() - start) / done
    return Result(label, f"{height}x{width}", batch_size, count_parameters(net), elapsed, recurrence, first_pass)


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
              min_seconds: float = 5.0, warmup: bool = True, report=print, inference: bool = False,
              ragged: bool = False, recurrences: list[str] | None = None,
              ragged_batches: int = RAGGED_BATCHES) -> list[Result]:
    """Measure every network at every size; `report` gets each result line as it comes.
    `ragged`: training steps over batches of varied widths (`bench_ragged`), once per CRNN
    recurrence in `recurrences` (MDLSTMs have one)."""
    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = True
    dev = torch.device(device)
    what = "forward only (inference)" if inference else "forward + CTC + backward"
    if ragged:
        what += f", ragged widths ({ragged_batches} batches cycled; first pass: autotuning)"
    report(f"device {dev}, {threads} CPU threads, batch {batch_size}, {what}")
    report(f"{'network':26} {'size':>9} {'params':>10} {'s/step':>8} {'lines/s':>8}"
           + ("  recurrence  first-pass s/step" if ragged else ""))
    results = []
    for size in sizes:
        for label in networks:
            if not ragged:
                runs = [bench_network(label, size, batch_size, dev, steps, min_seconds, warmup, inference)]
            else:
                kinds = (recurrences or ["packed"]) if NETWORKS[label][0] == "crnn" else [""]
                runs = [bench_ragged(label, size, batch_size, dev, steps, min_seconds, kind, ragged_batches)
                        for kind in kinds]
            for r in runs:
                results.append(r)
                report(f"{r.network:26} {r.size:>9} {r.parameters:>10,} "
                       f"{r.seconds_per_step:8.3f} {r.lines_per_second:8.1f}"
                       + (f"  {r.recurrence or '-':10}  {r.first_pass_seconds_per_step:.3f}" if ragged else ""))
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
    parser.add_argument("--ragged", action="store_true",
                        help="training batches of varied widths, as hwr train's (SIZE's width the widest)")
    parser.add_argument("--batches", type=int, default=RAGGED_BATCHES,
                        help="with --ragged: how many batches of varied widths are cycled")
    parser.add_argument("--recurrence", default="packed",
                        help="with --ragged: the CRNN recurrence(s), comma-separated: packed, reversed")
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
    recurrences = args.recurrence.split(",")
    if set(recurrences) - {"packed", "reversed"}:
        parser.error(f"--recurrence: packed and/or reversed, not {args.recurrence!r}")
    if args.ragged and args.inference:
        parser.error("--ragged times training steps; leave out --inference")
    return benchmark(networks, sizes, batch_size, args.device, args.threads, steps,
                     min_seconds, warmup=not args.quick, inference=args.inference,
                     ragged=args.ragged, recurrences=recurrences, ragged_batches=args.batches)


if __name__ == "__main__":
    main()
