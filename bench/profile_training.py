"""Profile training steps with torch.profiler: where a step's time goes, and how long the GPU waits.

    python bench/profile_training.py --config configs/hwr-en-small-stage8-gpu.json \
        [--init models/hwr-en-small] [--wait 20] [--active 30] [--out runs/profile]

Trains from the config (its data, batch size and loader workers; fresh output folder) for
--wait + --active steps and records the last --active with the profiler. Writes
<out>/trace.json.gz (open it in Perfetto or chrome://tracing), <out>/ops.txt (the ops that take
the most time) and <out>/summary.json: steps/s and lines/s over the recorded steps, and on a GPU
the share of that wall time in which no kernel ran (`gpu_idle_share`: the union of the kernels'
time ranges against the wall time) and the host's waits for the GPU per step
(`host_syncs_per_step`: CUDA synchronize calls; a step that never waits has none; `host_sync_s`:
the seconds they took), and on any device `loader_wait_s`: the seconds the training process
waited for its loader's next batch (the rendering workers falling behind).
Issue 22's target is training at >= 80% of the network alone (bench_nets.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import shutil
import time
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, schedule

from hwr.config_args import read_config_file
from hwr.training.train import TrainConfig, train


def busy_seconds(ranges: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start_us, end_us) ranges: kernels on several streams
    overlap, and summed they would count the same busy time twice."""
    busy, end = 0.0, float("-inf")
    for start, stop in sorted(ranges):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy / 1e6


def gpu_activity(events) -> tuple[float, int]:
    """Kernel busy seconds and host synchronize calls among a profiler's events.

    Kernels are the CUDA-side events; the GPU time that key_averages() also books on the CPU
    op that launched each kernel, and user annotations (ProfilerStep#N), are not kernels."""
    kernels = [(e.time_range.start, e.time_range.end) for e in events
               if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
    syncs = sum(1 for e in events if e.device_type == DeviceType.CPU and "Synchronize" in e.name)
    return busy_seconds(kernels), syncs


def host_seconds(events, name_part: str) -> float:
    """Seconds the host spent in events whose name holds `name_part` (nested ones once)."""
    return busy_seconds([(e.time_range.start, e.time_range.end) for e in events
                         if e.device_type == DeviceType.CPU and name_part in e.name])


# torch.utils.data names each fetch of a loader's next batch so in a trace.
LOADER_FETCH = "enumerate(DataLoader)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a training config (hwr train --config)")
    parser.add_argument("--init", default="models/hwr-en-small", help="initial weights ('none': from scratch)")
    parser.add_argument("--wait", type=int, default=20, help="steps before recording (loaders filling, cuDNN autotune)")
    parser.add_argument("--active", type=int, default=30, help="steps recorded")
    parser.add_argument("--workers", type=int, help="loader processes (default: the config's)")
    parser.add_argument("--device", help="override the config's device")
    parser.add_argument("--out", default="runs/profile")
    args = parser.parse_args()

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(**read_config_file(args.config))
    steps = args.wait + args.active
    overrides = dict(out=str(out / "run"), max_steps=steps, val_every=steps + 1, max_minutes=0, resume=False,
                     init_from=None if args.init == "none" else args.init, val="synth:val:16")
    if args.workers is not None:
        overrides["workers"] = args.workers
    # Loader processes start fresh (spawn): a fork of a process whose profiler is running
    # crashed in glibc's allocator on the CPU (the forked copy inherits the profiler's threads).
    overrides["loader_start"] = "spawn"
    if args.device:
        overrides["device"] = args.device
    cfg = dataclasses.replace(cfg, **overrides)
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    # The schedule records steps wait+1 .. wait+active (one warm-up step before them is dropped).
    prof = profile(activities=activities, schedule=schedule(wait=args.wait - 1, warmup=1, active=args.active, repeat=1),
                   record_shapes=False)
    marks: dict[str, float] = {}

    def on_step(step: int) -> None:
        if step in (args.wait, steps):
            if cuda:
                torch.cuda.synchronize()
            marks["start" if step == args.wait else "end"] = time.perf_counter()
        prof.step()

    with prof:
        train(cfg, on_step=on_step)
    wall = marks["end"] - marks["start"]
    events = prof.events()
    averages = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    (out / "ops.txt").write_text(averages.table(sort_by=sort, row_limit=40))
    trace = out / "trace.json"
    prof.export_chrome_trace(str(trace))
    with trace.open("rb") as src, gzip.open(out / "trace.json.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    trace.unlink()
    summary = {"device": "cuda" if cuda else "cpu", "steps": args.active, "batch_size": cfg.batch_size,
               "workers": cfg.workers, "wall_s": round(wall, 3), "steps_per_s": round(args.active / wall, 2),
               "lines_per_s": round(args.active * cfg.batch_size / wall, 1),
               "loader_wait_s": round(host_seconds(events, LOADER_FETCH), 3)}
    if cuda:
        kernel_s, syncs = gpu_activity(events)
        summary.update(gpu_kernel_s=round(kernel_s, 3), gpu_idle_share=round(max(0.0, 1.0 - kernel_s / wall), 3),
                       host_syncs_per_step=round(syncs / args.active, 2),
                       host_sync_s=round(host_seconds(events, "Synchronize"), 3), gpu=torch.cuda.get_device_name())
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
