"""Equal-time training comparison: MDLSTM graves2009 against the default CRNN.

    python bench/compare_archs.py --minutes 10                  # CPU: both at once, 1 thread each
    python bench/compare_archs.py --minutes 8 --device cuda --sequential

Each network trains from scratch with `hwr train` on the same synthetic data (same seed,
batch, optimizer and schedule, each network's own learning rate) for the same wall-clock
budget, validating on the same held-out lines; the table gives the validation CER each had
reached at the same moments. On a 2-core CPU both run side by side with one torch thread and
one rendering worker each, so neither gets a better share of the machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# label -> (arch, preset, learning rate). Adam(W) at 1e-3 suits both (RNNLIB used SGD with
# momentum; Adam is what every modern MDLSTM reimplementation trains with).
NETWORKS = {
    "crnn-small": ("crnn", "small", 1e-3),
    "mdlstm-graves2009": ("mdlstm", "graves2009", 1e-3),
}


def command(label: str, args) -> list[str]:
    arch, preset, lr = NETWORKS[label]
    return [sys.executable, "-m", "hwr", "train", "--train", args.train, "--val", args.val,
            "--arch", arch, "--preset", preset, "--lr", str(lr), "--batch-size", str(args.batch_size),
            "--max-minutes", str(args.minutes), "--max-steps", "1000000", "--val-every", str(args.val_every),
            "--warmup-steps", "100", "--workers", str(args.workers), "--threads", str(args.threads),
            "--device", args.device,
            "--seed", "1", "--out", str(Path(args.out) / label)]


def history(out: Path) -> list[dict]:
    path = out / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cer_at(entries: list[dict], minutes: float) -> float | None:
    """Best validation CER reached by `minutes` (None before the first validation)."""
    seen = [e["val_cer"] for e in entries if e["minutes"] <= minutes]
    return min(seen) if seen else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--train", default="synth:train:1000000")
    parser.add_argument("--val", default="synth:val:200")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="rendering processes per network")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sequential", action="store_true", help="one after the other (a GPU)")
    parser.add_argument("--out", default="runs/compare-archs")
    args = parser.parse_args()

    if args.sequential:
        for label in NETWORKS:
            subprocess.run(command(label, args), check=True)
    else:
        jobs = [subprocess.Popen(command(label, args)) for label in NETWORKS]
        if any(job.wait() for job in jobs):
            sys.exit("a training run failed")

    histories = {label: history(Path(args.out) / label) for label in NETWORKS}
    marks = [args.minutes * k / 4 for k in (1, 2, 3, 4)]
    print(f"\nvalidation CER (best so far) after the same training time, device {args.device}")
    print("network".ljust(20) + "".join(f"{m:>9.1f} min" for m in marks) + "   steps")
    for label, entries in histories.items():
        cells = "".join(f"{'-' if c is None else f'{c:.3f}':>13}" for c in (cer_at(entries, m) for m in marks))
        print(label.ljust(20) + cells + f"   {entries[-1]['step'] if entries else 0:>5}")
    summary = {label: [{"minutes": e["minutes"], "step": e["step"], "val_cer": e["val_cer"]} for e in entries]
               for label, entries in histories.items()}
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
