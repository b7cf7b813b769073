"""How busy the GPU was while a benchmark ran: nvidia-smi's utilisation, sampled beside it.

Issue 22 asks every throughput figure to come with the GPU's busy share: a pipeline that
reads 5,000 lines/s with the GPU busy 2% of the time is waiting on the host, one at 90% on
the network. The benchmarks measure their timed part inside

    with GpuBusy(device) as busy:
        ...
    print(busy.describe())  # "GPU busy 37% (median 35%, 52 samples)"; "" on a CPU

and any command can be measured whole:

    python bench/gpu_busy.py -- python bench/bench_pages.py --device cuda ...

nvidia-smi (`--query-gpu=utilization.gpu --loop-ms`) runs as a child process for the block's
duration: the measured process only reads its lines in a thread (nvidia-smi itself takes a
little host CPU; start one sampler per benchmark, not per short turn: `GpuBusy.during`), and no
NVML binding is needed (the GPU image has none). Its "utilization" is the share of the sample period in which a
kernel ran, not how much of the GPU the kernels filled: a low figure says the GPU waited,
a high one does not say it was used well. Torch-free: the page benchmarks' workers import it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

SAMPLE_MS = 200


def smi_index(device_index: int = 0) -> str:
    """nvidia-smi's index of a torch device: nvidia-smi numbers every GPU of the host, torch
    those CUDA_VISIBLE_DEVICES leaves it, in that order."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[device_index] if device_index < len(visible) else str(device_index)


class GpuBusy:
    """nvidia-smi sampling the GPU's utilisation (percent) while the block runs.

    `device`: a torch device, its name ("cuda:1"), or None; nothing is sampled unless it is a
    CUDA device, so a benchmark's CPU runs print nothing more. `command`: the sampler (tests
    give a stand-in)."""

    def __init__(self, device=None, sample_ms: int = SAMPLE_MS, command: list[str] | None = None):
        name = str(device) if device is not None else ""
        self.enabled = name.startswith("cuda")
        index = int(name.split(":")[1]) if ":" in name else 0
        self.command = command or ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                   f"--loop-ms={sample_ms}", f"--id={smi_index(index)}"]
        self.samples: list[float] = []
        self.times: list[float] = []  # time.monotonic() at which each sample was read
        self.error = ""
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        if not self.enabled:
            return self
        try:
            self._process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, errors="replace")
        except OSError as exc:  # no nvidia-smi on the PATH: the figure is missing, not the benchmark
            self.error = f"{self.command[0]}: {exc.strerror or exc}"
            return self
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._reader.start()
        return self

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            try:
                value = float(line.strip().rstrip("%"))
            except ValueError:  # "[N/A]", a warning: the sample is missing, not zero
                if line.strip() and not self.error:
                    self.error = line.strip()[:120]
                continue
            self.times.append(time.monotonic())
            self.samples.append(value)

    def __exit__(self, *exc_info) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # The reader alone reads stdout, to its end: the samples in flight are kept.
        if self._reader is not None:
            self._reader.join(timeout=5)
        stderr = process.stderr.read() if process.stderr else ""
        if not self.samples and not self.error:
            self.error = (stderr or "").strip()[:120] or f"{self.command[0]} gave no samples"

    def during(self, spans: list[tuple[float, float]]) -> GpuBusy:
        """The samples read within the (start, end) monotonic-time spans, as a GpuBusy of their
        own: one sampler for a benchmark whose settings take turns (starting nvidia-smi for each
        short turn costs CPU in the timed part, and its first sample comes late)."""
        part = GpuBusy(command=self.command)
        part.enabled, part.error = self.enabled, self.error
        for moment, value in zip(self.times, self.samples):
            if any(start <= moment <= end for start, end in spans):
                part.times.append(moment)
                part.samples.append(value)
        return part

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None

    def summary(self) -> dict:
        """The figures for a benchmark's JSON: {} on a CPU."""
        if not self.enabled:
            return {}
        if not self.samples:
            return {"gpu_busy_percent": None, "gpu_busy_error": self.error}
        return {"gpu_busy_percent": round(self.mean, 1), "gpu_busy_median": statistics.median(self.samples),
                "gpu_busy_samples": len(self.samples)}

    def describe(self) -> str:
        """One line for a benchmark's output: "" on a CPU."""
        if not self.enabled:
            return ""
        if not self.samples:
            return f"GPU busy: not measured ({self.error})"
        return (f"GPU busy {self.mean:.0f}% (median {statistics.median(self.samples):.0f}%, "
                f"{len(self.samples)} samples)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a command and print the GPU's busy share while it ran.",
                                     usage="python bench/gpu_busy.py [--device cuda:N] -- COMMAND ...")
    parser.add_argument("--device", default="cuda", help="the GPU to sample (torch's name)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with GpuBusy(args.device) as busy:
        returncode = subprocess.call(command)
    print(busy.describe(), file=sys.stderr)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
